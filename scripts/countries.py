"""Rebuild corpus/data/countries.tsv: the Chinese names of the world's countries and territories.

The names come from ISO 3166-1 as translated to zh_CN by the Debian iso-codes project, which the
PyPI package ``pycountry`` ships (LGPL-2.1; install it only to run this: ``pip install pycountry``).
That translation is dated in places (柬埔塞, 马尔他, 瓜地马拉), so the names people write today are
added beside it (``ALIASES``), with the regions a question may name (欧盟, 东南亚). China itself is
left out; 香港, 澳门 and 台湾 stay, as places no bundled document covers.

    python scripts/countries.py            # writes corpus/data/countries.tsv
"""

from __future__ import annotations

import gettext
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "corpus" / "data" / "countries.tsv"
ALIASES = {
    "KH": ("柬埔寨",), "MT": ("马耳他",), "GT": ("危地马拉",), "BO": ("玻利维亚",), "KG": ("吉尔吉斯斯坦",),
    "BD": ("孟加拉国",), "AE": ("阿联酋", "阿拉伯联合酋长国"), "KR": ("韩国", "南韩"), "KP": ("北韩",),
    "RU": ("俄罗斯", "俄国"), "US": ("美国",), "GB": ("英国",), "VN": ("越南",), "LA": ("老挝",),
    "IR": ("伊朗",), "SY": ("叙利亚",), "TZ": ("坦桑尼亚",), "VE": ("委内瑞拉",), "MD": ("摩尔多瓦",),
    "CZ": ("捷克",), "NL": ("荷兰",), "NZ": ("新西兰",), "MM": ("缅甸",), "PH": ("菲律宾",),
}
REGIONS = ("欧盟", "欧洲", "东南亚", "非洲", "南美", "拉美", "中东", "北美", "海外国家")
LEFT_OUT = {"CN"}


def names() -> list[tuple[str, str]]:
    import pycountry

    root = Path(pycountry.__file__).parent
    zh = gettext.translation("iso3166-1", localedir=root / "locales", languages=["zh_CN"])
    rows = []
    for country in json.loads((root / "databases" / "iso3166-1.json").read_text(encoding="utf-8"))["3166-1"]:
        code = country["alpha_2"]
        if code in LEFT_OUT:
            continue
        for english in (country["name"], country.get("common_name")):
            chinese = zh.gettext(english) if english else None
            if chinese and chinese != english:
                rows.append((code, chinese.replace(" ", "")))
        rows.extend((code, alias) for alias in ALIASES.get(code, ()))
    rows.extend(("-", region) for region in REGIONS)
    return list(dict.fromkeys(rows))


def main() -> None:
    rows = names()
    header = ("# Chinese names of countries, territories and world regions (scripts/countries.py rebuilds it).\n"
              "# From ISO 3166-1 in the zh_CN translation of Debian's iso-codes (via pycountry, LGPL-2.1),\n"
              "# with today's common names and regions added. code\tname ('-' for a region)\n")
    OUT.write_text(header + "".join(f"{code}\t{name}\n" for code, name in rows), encoding="utf-8")
    print(f"{len(rows)} names → {OUT}")


if __name__ == "__main__":
    main()
