"""Chinese numerals and the normalised numbers of headings (第七十一条 = 第71条)."""

from __future__ import annotations

import re

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
           "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"
CN_NUMERAL_CHARS = "零〇一二三四五六七八九十百千两"


def cn_to_int(text: str) -> int:
    """Convert a Chinese (or Arabic) numeral below 10 000 to an int.

    >>> cn_to_int("七十一"), cn_to_int("十二"), cn_to_int("一百零五"), cn_to_int("42")
    (71, 12, 105, 42)
    """
    text = text.strip()
    if not text:
        raise ValueError("empty numeral")
    if text.isdigit():
        return int(text)
    if text in _CIRCLED:
        return _CIRCLED.index(text) + 1
    total, digit = 0, None
    for ch in text:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
        elif ch in _UNITS:
            total += (digit if digit is not None else 1) * _UNITS[ch]
            digit = None
        else:
            raise ValueError(f"not a Chinese numeral: {text!r}")
    if digit is not None:
        # "一百零五" ends in a digit; positional strings like "一〇" do not occur in headings.
        total += digit
    return total


def int_to_cn(n: int) -> str:
    """Write an int below 10 000 the way Chinese legal texts number articles.

    >>> int_to_cn(71), int_to_cn(12), int_to_cn(105), int_to_cn(110)
    ('七十一', '十二', '一百零五', '一百一十')
    """
    if n <= 0 or n >= 10000:
        raise ValueError(n)
    names = "零一二三四五六七八九"
    parts: list[str] = []
    units = [(1000, "千"), (100, "百"), (10, "十"), (1, "")]
    zero_pending = False
    for value, unit in units:
        d = n // value % 10
        if d == 0:
            if parts:
                zero_pending = True
            continue
        if zero_pending:
            parts.append("零")
            zero_pending = False
        parts.append(names[d] + unit)
    out = "".join(parts)
    return out[1:] if out.startswith("一十") else out


_ARTICLE_RE = re.compile(
    rf"^\s*第?\s*([{CN_NUMERAL_CHARS}\d]+)\s*(编|章|节|条|款|项|部分)(?:之([{CN_NUMERAL_CHARS}\d]+))?\s*$"
)


def normalize_number(text: str) -> str | None:
    """Canonical form of a structural number typed by a user or read from a heading.

    ``第七十一条``, ``第71条`` and ``71条`` all give ``第71条``; ``第十条之一`` gives
    ``第10条之1``. Returns None when the text is not such a number.
    """
    m = _ARTICLE_RE.match(text)
    if not m:
        return None
    try:
        n = cn_to_int(m.group(1))
    except ValueError:
        return None
    suffix = ""
    if m.group(3):
        try:
            suffix = f"之{cn_to_int(m.group(3))}"
        except ValueError:
            return None
    return f"第{n}{m.group(2)}{suffix}"


_FIGURE = re.compile(r"\d+(?:\.\d+)?%?|[零〇一二三四五六七八九十百千万亿两]{2,}(?=[年日月件家个项名倍元%])")


def numbers_in(text: str) -> list[str]:
    """Figures written in ``text``: Arabic numbers (with %), and Chinese numerals before a unit.
    Citation markers like [1] are not figures (an answer's figures must be in the clauses it cites)."""
    return _FIGURE.findall(re.sub(r"\[\d+\]", "", text))
