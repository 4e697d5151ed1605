"""Search and ask parameters, checked once for every caller (CLI, API, web page).

Each check returns the value to use or raises ``InvalidParameter`` with a Chinese reason; nothing
is clamped or dropped silently: ``k=0`` or a place no document covers is an error, not an empty list.
"""

from __future__ import annotations

from collections.abc import Iterable

from corpus.errors import InvalidParameter
from index.catalog import DocInfo
from index.core import Filters

K_MIN, K_MAX = 1, 100
YEAR_MIN, YEAR_MAX = 1949, 2100
# The web page's labels and the API's names for the same modes.
MODES = {"hybrid": "hybrid", "dense": "dense", "bm25": "bm25",
         "混合检索": "hybrid", "混合": "hybrid", "向量检索": "dense", "向量": "dense", "关键词检索": "bm25", "关键词": "bm25"}


def check_k(k) -> int:
    """The number of results asked for: a whole number from 1 to 100."""
    try:
        value = int(k)
        whole = float(k) == value
    except (TypeError, ValueError):
        value, whole = None, False
    if value is None or not whole or not K_MIN <= value <= K_MAX:
        raise InvalidParameter(f"结果数应为 {K_MIN} 到 {K_MAX} 之间的整数，而不是「{k}」")
    return value


def check_mode(mode: str | None) -> str:
    if not mode:
        return "hybrid"
    try:
        return MODES[str(mode).strip()]
    except KeyError:
        raise InvalidParameter(f"检索方式「{mode}」无效，可选：hybrid（混合检索）、dense（向量检索）、bm25（关键词检索）") from None


def parse_year(value) -> int | None:
    """A year from a form field or flag; empty (None, "", 0: an empty number box) is None."""
    if value in (None, "", 0, "0"):
        return None
    try:
        year = int(str(value).strip())
    except ValueError:
        raise InvalidParameter(f"年份应为整数，例如 2021，而不是「{value}」") from None
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise InvalidParameter(f"年份 {year} 不在合理范围（{YEAR_MIN}–{YEAR_MAX}）内")
    return year


def year_range(first, last) -> tuple[int, int] | None:
    """The years from two optional bounds (one alone is open on the other side)."""
    a, b = parse_year(first), parse_year(last)
    if a is None and b is None:
        return None
    a, b = a or YEAR_MIN, b or YEAR_MAX
    if a > b:
        raise InvalidParameter(f"起始年份 {a} 晚于结束年份 {b}")
    return a, b


def parse_years(text: str | None) -> tuple[int, int] | None:
    """``2023`` or ``2021-2025`` (also with – — ～ or 至)."""
    if not text:
        return None
    for sep in ("-", "–", "—", "～", "~", "至"):
        if sep in text:
            first, _, last = text.partition(sep)
            if not first.strip() or not last.strip():
                break
            return year_range(first, last)
    else:
        year = parse_year(text)
        return (year, year) if year is not None else None
    raise InvalidParameter(f"年份应为年份或年份范围，例如 2023 或 2021-2025，而不是「{text}」")


def _listed(names: Iterable[str], limit: int = 12) -> str:
    names = sorted(set(n for n in names if n))
    return "、".join(names[:limit]) + ("等" if len(names) > limit else "")


def check_filters(filters: Filters | None, docs: list[DocInfo]) -> None:
    """Refuse a filter that no document of the index can pass, naming what there is."""
    if filters is None:
        return
    if filters.region and not any(d.matches_region(filters.region) for d in docs):
        places = [r for d in docs for r in d.region]
        raise InvalidParameter(f"收录的文件中没有关于「{filters.region}」的文件；可选的地区：{_listed(places)}")
    unknown = [d for d in filters.doc_ids if d not in {x.doc_id for x in docs}]
    if unknown:
        raise InvalidParameter(f"知识库中没有文档「{'、'.join(unknown)}」；可用 ipqa docs list --index-dir 查看文档ID")
    kinds = {d.kind for d in docs}
    unknown = [k for k in filters.kinds if k not in kinds]
    if unknown:
        raise InvalidParameter(f"没有类型为「{'、'.join(unknown)}」的文件；可选的类型：{_listed(kinds)}")
    collections = {d.collection for d in docs}
    unknown = [c for c in filters.collections if c not in collections]
    if unknown:
        raise InvalidParameter(f"知识库中没有文档集「{'、'.join(unknown)}」；可选：{_listed(collections)}")


def check_history(value) -> list[dict]:
    """Earlier turns as the CLI's batch lines and the API take them: [{"role", "content"}] turns,
    plain strings (user turns), or one string (one user turn); anything else is refused."""
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InvalidParameter('"history" 应为对话列表：[{"role": "user", "content": "…"}, …] 或问题文字的列表')
    turns = []
    for turn in value:
        if isinstance(turn, str):
            turns.append({"role": "user", "content": turn})
        elif isinstance(turn, dict) and turn.get("role") in ("user", "assistant") and isinstance(turn.get("content"), str):
            turns.append({"role": turn["role"], "content": turn["content"]})
        else:
            raise InvalidParameter('"history" 中的每一轮应为 {"role": "user" 或 "assistant", "content": "…"} 或文字')
    return turns
