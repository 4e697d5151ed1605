"""Aligned plain-text tables for terminals (CJK characters take two columns)."""

from __future__ import annotations

import sys
import unicodedata


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _fit(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` display columns (CJK counts 2) and pad it."""
    out, used = "", 0
    for ch in text:
        w = _width(ch)
        if used + w > width - (1 if _width(text) > width else 0):
            out += "…"
            used += 1
            break
        out += ch
        used += w
    return out + " " * max(0, width - used)


def print_table(rows: list[dict], columns: list[tuple[str, str, int | None]], out=sys.stdout) -> None:
    """Print ``rows`` as an aligned table: columns are (key, Chinese header, width).

    A width of None fits the column to its longest value, so ids are never cut.
    """
    columns = [(key, head, w if w is not None else max([_width(head)] + [_width(str(r.get(key, ""))) for r in rows]))
               for key, head, w in columns]
    print("  ".join(_fit(head, w) for _, head, w in columns).rstrip(), file=out)
    print("  ".join("-" * w for _, _, w in columns), file=out)
    for row in rows:
        print("  ".join(_fit(str(row.get(key, "")), w) for key, _, w in columns).rstrip(), file=out)
