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


def _widths(rows: list[dict], columns: list[tuple[str, str, int | None]]) -> list[tuple[str, str, int]]:
    return [(key, head, w if w is not None else max([_width(head)] + [_width(str(r.get(key, ""))) for r in rows]))
            for key, head, w in columns]


def print_table(rows: list[dict], columns: list[tuple[str, str, int | None]], out=sys.stdout,
                max_width: int | None = None) -> None:
    """Print ``rows`` as an aligned table: columns are (key, Chinese header, width).

    A width of None fits the column to its longest value, so ids are never cut. A table wider than
    ``max_width`` (a terminal's) is printed as records instead: the first column's value on a line of
    its own, the others below it joined by " · ", wrapped at the width (nothing is cut).
    """
    columns = _widths(rows, columns)
    if max_width and sum(w for *_, w in columns) + 2 * (len(columns) - 1) > max_width:
        _print_records(rows, columns, out, max_width)
        return
    print("  ".join(_fit(head, w) for _, head, w in columns).rstrip(), file=out)
    print("  ".join("-" * w for _, _, w in columns), file=out)
    for row in rows:
        print("  ".join(_fit(str(row.get(key, "")), w) for key, _, w in columns).rstrip(), file=out)


def _print_records(rows: list[dict], columns: list[tuple[str, str, int]], out, max_width: int) -> None:
    (first, _, _), rest = columns[0], columns[1:]
    for row in rows:
        print(str(row.get(first, "")), file=out)
        line = "  "
        for value in (str(row.get(key, "")) for key, _, _ in rest):
            if not value:
                continue
            piece = value if line == "  " else f" · {value}"
            if line != "  " and _width(line + piece) > max_width:  # wrap, never cut
                print(line, file=out)
                line, piece = "  ", value
            line += piece
        print(line, file=out)
