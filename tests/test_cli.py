"""The `portal` command: catalogue load reports changes; outbox list and requeue."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import CATALOGUE


def portal(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "portal.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_catalogue_load_reports_what_changed(tmp_path, database_url):
    import os

    env = {
        **os.environ,
        "PORTAL_DATA_DIR": str(tmp_path / "data"),
        "PORTAL_DATABASE_URL": database_url,
    }
    data = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    data["items"][0]["fee"] = "测试：收费说明已更新"
    data["items"].append({**data["items"][1], "code": "QT9999", "name": "测试新增事项"})
    changed = tmp_path / "catalogue.json"
    changed.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    result = portal("catalogue", "load", str(changed), env=env)
    assert result.returncode == 0, result.stderr
    assert "新增 1 项，更新 1 项" in result.stdout
    assert "+ QT9999" in result.stdout and f"~ {data['items'][0]['code']}" in result.stdout
    again = portal("catalogue", "load", str(changed), env=env)
    assert "新增 0 项，更新 0 项" in again.stdout

    broken = tmp_path / "broken.json"
    broken.write_text('{"items": [{"code": "bad"}]}', encoding="utf-8")
    result = portal("catalogue", "load", str(broken), env=env)
    assert result.returncode == 2 and "无法读取事项清单文件" in result.stderr


def test_outbox_list_and_requeue(tmp_path, database_url, db):
    import os

    from portal.exchange.models import OutboxMessage
    from portal.exchange.outbox import enqueue_event

    with db.session(write=True) as session, session.begin():
        enqueue_event(
            session, type="case.withdrawn", case_no="WJ20261123000001", data={"reason": "x"}
        )
        dead = enqueue_event(
            session, type="case.withdrawn", case_no="WJ20261123000002", data={"reason": "y"}
        )
        dead.status, dead.last_error = "dead", "HTTP 400: bad"
        session.flush()
        dead_id = dead.id
    env = {
        **os.environ,
        "PORTAL_DATA_DIR": str(tmp_path / "data"),
        "PORTAL_DATABASE_URL": database_url,
    }
    pending = portal("outbox", "list", env=env)
    assert "WJ20261123000001" in pending.stdout and "WJ20261123000002" not in pending.stdout
    parked = portal("outbox", "list", "--dead", env=env)
    assert "WJ20261123000002" in parked.stdout and "HTTP 400" in parked.stdout
    result = portal("outbox", "requeue", str(dead_id), "424242", env=env)
    assert (
        result.returncode == 1 and "已重新排队 1 条" in result.stdout and "424242" in result.stdout
    )
    with db.session() as session:
        assert session.get(OutboxMessage, dead_id).status == "pending"
