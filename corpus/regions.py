"""Places: which region a document is about, and every name that region goes by.

A gazetteer of China's province-, prefecture- and county-level divisions
(``data/regions.tsv``) gives each place its parents; ``data/region_aliases.json``
adds names the gazetteer cannot know (a development zone and the district it
is run with, e.g. 荆门高新区 = 掇刀区).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

NATIONWIDE = "全国"
_SUFFIXES = ("特别行政区", "维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "自治州", "自治县",
             "省", "市", "地区", "盟", "区", "县", "旗")
_ZONE = re.compile(r"^(?:市)?(高新技术产业开发区|高新技术开发区|高新区|经济技术开发区|经济开发区|经开区|开发区|经济特区|新区|自贸区|保税区|工业园区)")
_NATIONAL_ISSUERS = ("国务院", "全国人民代表大会", "最高人民法院", "最高人民检察院", "国家知识产权局",
                     "国家市场监督管理总局", "国家版权局", "中共中央")


@dataclass(frozen=True)
class Place:
    code: str  # 6-digit division code
    name: str

    @property
    def level(self) -> int:
        """0 province, 1 prefecture, 2 county."""
        if self.code.endswith("0000"):
            return 0
        return 1 if self.code.endswith("00") else 2

    @property
    def parent_codes(self) -> list[str]:
        return [self.code[:2] + "0000", self.code[:4] + "00"][: self.level]


def short_name(name: str) -> str:
    """湖南省 → 湖南, 长沙市 → 长沙, 内蒙古自治区 → 内蒙古; names of two characters stay."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


class Gazetteer:
    def __init__(self, places: list[Place], aliases: dict[str, list[str]]):
        self.by_code = {p.code: p for p in places}
        self.by_name: dict[str, list[Place]] = {}
        for p in places:
            self.by_name.setdefault(p.name, []).append(p)
        # Short names only for provinces and prefectures: county short names
        # (芙蓉, 朝阳…) are ordinary words far too often.
        self.by_short: dict[str, list[Place]] = {}
        for p in places:
            if p.level < 2:
                s = short_name(p.name)
                if s != p.name:
                    self.by_short.setdefault(s, []).append(p)
        self.aliases = aliases
        self._max_len = max(len(n) for n in self.by_name)

    def chain(self, place: Place) -> list[str]:
        return [self.by_code[c].name for c in place.parent_codes if c in self.by_code] + [place.name]

    def _match_at(self, text: str, pos: int, parent: Place | None) -> tuple[Place, int, bool] | None:
        """Longest place name starting at ``pos``; (place, end, is_short)."""
        for length in range(min(self._max_len, len(text) - pos), 1, -1):
            word = text[pos:pos + length]
            for table, is_short in ((self.by_name, False), (self.by_short, True)):
                candidates = table.get(word)
                if not candidates:
                    continue
                if parent is not None:
                    candidates = [c for c in candidates if parent.code in c.parent_codes] or []
                if candidates:
                    # Prefer the highest level when a name is ambiguous (吉林省 vs 吉林市).
                    best = min(candidates, key=lambda c: c.level)
                    return best, pos + length, is_short
        return None

    def leading_region(self, text: str) -> tuple[list[str], str] | None:
        """Region named at the start of ``text``: (chain from province down, leaf name).

        "长沙市芙蓉区推进…" → (["湖南省", "长沙市", "芙蓉区"], "芙蓉区");
        "荆门高新区创建…" → (["湖北省", "荆门市", "荆门高新区"], "荆门高新区").
        """
        text = re.sub(r"^(?:\d{4}年度?|关于印发|关于|《)", "", text.strip())
        pos, last, last_short = 0, None, False
        while True:
            m = self._match_at(text, pos, last)
            if m is None:
                break
            place, end, is_short = m
            # A short name ("荆门", "上海") counts at the very start of a title, or
            # later only when a zone or another place follows it.
            if is_short and pos > 0 and not (_ZONE.match(text[end:]) or self._match_at(text, end, place)):
                break
            last, last_short, pos = place, is_short, end
        if last is None:
            return None
        chain = self.chain(last)
        zone = _ZONE.match(text[pos:])
        if zone:
            zone_name = short_name(last.name) + zone.group(1)
            return chain + [zone_name], zone_name
        return chain, last.name

    def names_for(self, chain: list[str]) -> list[str]:
        """Every name the most specific region of ``chain`` goes by."""
        if not chain:
            return []
        leaf = chain[-1]
        names = [leaf]
        if leaf in self.by_name:
            names.append(short_name(leaf))
        if len(chain) >= 2:
            parent, parent_short = chain[-2], short_name(chain[-2])
            if leaf.startswith(parent_short):  # a zone named after its city: 荆门高新区 → 荆门市高新区
                names.append(parent + leaf[len(parent_short):])
            else:
                names += [parent + leaf, parent_short + leaf]
        for alias in self.aliases.get(leaf, []):
            names.append(alias)
        seen: list[str] = []
        for n in names:
            if n and n not in seen:
                seen.append(n)
        return seen


@lru_cache(maxsize=1)
def countries() -> frozenset[str]:
    """The Chinese names of the world's other countries and territories, and of world regions
    (``data/countries.tsv``, rebuilt by ``scripts/countries.py``)."""
    text = (resources.files("corpus") / "data" / "countries.tsv").read_text(encoding="utf-8")
    return frozenset(line.split("\t")[1] for line in text.splitlines() if line and not line.startswith("#"))


def country_in(text: str, words_of: Callable[[str], set[str]]) -> str | None:
    """The first country or world region ``text`` names: a name of two characters only as a whole word
    (``words_of(text)``, asked only when such a name is in the text: 内蒙古 is no 蒙古), a longer one anywhere."""
    found = [n for n in countries() if n in text]
    if any(len(n) < 3 for n in found):
        words = words_of(text)
        found = [n for n in found if len(n) >= 3 or n in words]
    return min(found, key=lambda n: (text.find(n), -len(n))) if found else None


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    data = resources.files("corpus") / "data"
    places = []
    for line in (data / "regions.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, name = line.split("\t")
            places.append(Place(code, name))
    aliases = json.loads((data / "region_aliases.json").read_text(encoding="utf-8"))
    return Gazetteer(places, {k: v for k, v in aliases.items() if not k.startswith("_")})


def detect_region(title: str, issuer: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(region chain, aliases of its leaf) for a document, from its title then its issuer."""
    g = gazetteer()
    if title.startswith(("中华人民共和国",) + _NATIONAL_ISSUERS) or (issuer and issuer.startswith(_NATIONAL_ISSUERS)):
        return (NATIONWIDE,), (NATIONWIDE, "国家", "全国性")
    for source in (title, issuer or ""):
        found = g.leading_region(source)
        if found:
            chain, _leaf = found
            return tuple(chain), tuple(g.names_for(chain))
    return (), ()
