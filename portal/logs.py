"""Logging: one line per record (JSON when PORTAL_LOG_JSON), with the request id,
and a last-line filter that masks anything shaped like an ID or a mobile number."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from portal.middleware import request_id_var

# 18-character 身份证 / 统一社会信用代码 (a citizen may type the x in lower case), and
# mainland mobile numbers, also after the country code (+86, 0086), wherever they appear.
_ID_RE = re.compile(
    r"(?<![0-9A-Za-z])([0-9A-HJ-NPQRTUWXY]{4})[0-9A-HJ-NPQRTUWXY]{12}([0-9A-HJ-NPQRTUWXY]{2})(?![0-9A-Za-z])",
    re.IGNORECASE,
)
_PHONE_RE = re.compile(r"(?:(?<!\d)|(?<=86))(1[3-9]\d)\d{4}(\d{4})(?!\d)")
# Structured fields some records carry (JSON lines write them out as they are).
EXTRA_FIELDS = ("method", "path", "status", "duration_ms", "event_id", "case_no", "attempt")


def redact(text: str) -> str:
    text = _ID_RE.sub(lambda m: m.group(1) + "*" * 12 + m.group(2), text)
    return _PHONE_RE.sub(lambda m: m.group(1) + "****" + m.group(2), text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        for key in EXTRA_FIELDS:  # e.g. the access line's path: /cases/<an ID typed as a case no>
            value = getattr(record, key, None)
            if isinstance(value, str):
                setattr(record, key, redact(value))
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    _EXTRA = EXTRA_FIELDS

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        for key in self._EXTRA:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(*, json_lines: bool, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our RequestContext middleware writes the access line, without query strings.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
