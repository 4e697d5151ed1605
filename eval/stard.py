"""STARD as an eval dataset: real legal questions from the public, with the statutes judged relevant.

STARD (Su et al., EMNLP 2024 Findings; github oneal2000/STARD; MIT, Copyright (c) 2024 THUIR) gives
each question the articles a legal team judged relevant, by name ("中华人民共和国民法典第五十四条") and
text. This module maps every article to its clause in LawRefBook's texts and writes what the project
ships (run by a maintainer, from a checkout that has the shared data; nothing reads it at run time):

- ``corpus/stard_laws/``: the laws the questions cite, one version each (the version whose articles
  match STARD's texts best), recorded in ``corpus/SOURCES.json``;
- ``eval/datasets/stard.jsonl``: the questions, gold clause ids, and the split.

    python -m eval.stard --laws ../shared/data/laws --queries ../shared/data/stard/train.jsonl

Questions whose articles cannot all be found are left out and counted in the summary.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import re
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from corpus.numerals import normalize_number
from eval.questions import split_of

ROOT = Path(__file__).resolve().parent.parent
LAWS_OUT = ROOT / "corpus" / "stard_laws"
DATASET_OUT = ROOT / "eval" / "datasets" / "stard.jsonl"
BUNDLED_LAWS = ROOT / "corpus" / "laws"
_NAME = re.compile(r"^(?P<law>.+?)(?P<number>第[零〇一二三四五六七八九十百千\d]+条(?:之[一二三四五六七八九十]+)?)$")
_DATE = re.compile(r"[(（]\d{4}-\d{2}-\d{2}[)）]$")
_ARTICLE_LINE = re.compile(r"^第[零〇一二三四五六七八九十百千\d]+\s*条(?:之[一二三四五六七八九十]+)?")
CIVIL_CODE = "民法典"


def law_key(name: str) -> str:
    """A law's name without the state prefix, brackets or spaces: 中华人民共和国民法典 → 民法典."""
    name = _DATE.sub("", name.strip())
    name = name.removeprefix("中华人民共和国")
    return re.sub(r"[\s《》<>〈〉]", "", name).replace("中华人民共和国", "")


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@dataclass(frozen=True)
class LawFile:
    path: Path
    key: str  # law_key of its name

    @property
    def ships_as(self) -> str:
        """The file name in corpus/stard_laws (民法典's books get the code's name in front)."""
        if self.key == CIVIL_CODE:
            return f"{CIVIL_CODE}-{self.path.name}"
        return self.path.name


def index_law_files(laws_dir: Path) -> dict[str, list[LawFile]]:
    """Every LawRefBook file by law key (a law's versions share a key; 民法典's books share one)."""
    found: dict[str, list[LawFile]] = defaultdict(list)
    for path in sorted(laws_dir.rglob("*.md")):
        if path.name == "_index.md" or path.parent.name == "案例" or "案例" in path.relative_to(laws_dir).parts:
            continue  # court cases are not statutes
        key = CIVIL_CODE if path.parent == laws_dir / CIVIL_CODE else law_key(path.stem)
        found[key].append(LawFile(path, key))
    return found


def articles_of(path: Path) -> dict[str, str]:
    """{normalised article number: text} of a LawRefBook file (an article runs to the next one)."""
    out: dict[str, str] = {}
    current, lines = None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _ARTICLE_LINE.match(line)
        if m or line.startswith("#"):
            if current:
                out.setdefault(current, "\n".join(lines))
            current, lines = (normalize_number(m.group(0).replace(" ", "")), [line]) if m else (None, [])
        elif current:
            lines.append(line)
    if current:
        out.setdefault(current, "\n".join(lines))
    return out


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, _squash(a), _squash(b), autojunk=False).ratio()


def choose_versions(queries: list[dict], files: dict[str, list[LawFile]]) -> dict[str, list[LawFile]]:
    """For each cited law, the version (or, for 民法典, the books) whose articles match STARD best."""
    cited: dict[str, list[tuple[str, str]]] = defaultdict(list)  # law key -> [(number, text)]
    for q in queries:
        for a in q["articles"]:
            m = _NAME.match(a["name"])
            if m:
                cited[law_key(m.group("law"))].append((normalize_number(m.group("number")), a["text"]))
    chosen: dict[str, list[LawFile]] = {}
    for key, wanted in cited.items():
        versions = files.get(key, [])
        if key == CIVIL_CODE:
            chosen[key] = versions
            continue
        scored = []
        for version in versions:
            arts = articles_of(version.path)
            scored.append((sum(similarity(arts.get(n, ""), text) for n, text in wanted), version.path.name, version))
        if scored:
            chosen[key] = [max(scored, key=lambda s: s[:2])[2]]
    return chosen


def _gold(article: dict, versions: list[LawFile], shipped: dict[Path, str]) -> tuple[str, str] | None:
    """(doc file as shipped, normalised article number) of one STARD article, or None."""
    m = _NAME.match(article["name"])
    if not m:
        return None
    number = normalize_number(m.group("number"))
    for version in versions:
        if number in articles_of(version.path):
            return shipped[version.path], number
    return None


def _record_sources(sources: list[dict]) -> None:
    """The collection's entry in corpus/SOURCES.json: where each shipped file came from."""
    path = ROOT / "corpus" / "SOURCES.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest[LAWS_OUT.name] = {
        "description": "STARD 问题引用的法律、行政法规和司法解释（每部一个版本：与 STARD 所给条文最接近的版本），用于 stard 评测",
        "origin": "LawRefBook (texts of the national law database), chosen by eval/stard.py for the STARD questions "
                  "(Su et al., EMNLP 2024 Findings; MIT)",
        "files": {s["file"]: {"original_name": s["original_name"], "sha256": s["sha256"]}
                  for s in sorted(sources, key=lambda s: s["file"])}}
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def build(laws_dir: Path, queries_path: Path, laws_out: Path = LAWS_OUT, dataset_out: Path = DATASET_OUT) -> dict:
    from corpus import load_document

    queries = [json.loads(line) for line in queries_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    files = index_law_files(laws_dir)
    chosen = choose_versions(queries, files)
    bundled = {p.name for p in BUNDLED_LAWS.glob("*.md")}
    if laws_out.exists():
        shutil.rmtree(laws_out)
    laws_out.mkdir(parents=True)
    shipped: dict[Path, str] = {}  # source path -> file name in the project (bundled laws stay where they are)
    sources = []
    for versions in chosen.values():
        for version in versions:
            shipped[version.path] = version.ships_as
            if version.path.name in bundled:
                continue
            shutil.copyfile(version.path, laws_out / version.ships_as)
            sources.append({"file": version.ships_as, "original_name": str(version.path.relative_to(laws_dir)),
                            "sha256": hashlib.sha256(version.path.read_bytes()).hexdigest()})
    _record_sources(sources)
    clause_ids: dict[str, dict[str, str]] = {}  # shipped file -> {number: clause id}
    for name in sorted(set(shipped.values())):
        path = BUNDLED_LAWS / name if name in bundled else laws_out / name
        doc = load_document(path)
        clause_ids[name] = {c.number: c.clause_id for c in doc.clauses if c.level == "条" and c.number}
    rows, missing = [], 0
    for q in queries:
        gold = []
        for article in q["articles"]:
            m = _NAME.match(article["name"])
            where = _gold(article, chosen.get(law_key(m.group("law")), []) if m else [], shipped)
            clause = clause_ids.get(where[0], {}).get(where[1]) if where else None
            if clause is None:
                break
            if clause not in gold:
                gold.append(clause)
        else:
            rows.append({"id": f"stard-{q['query_id']}", "question": q["question"].strip(), "type": "stard",
                         "history": [], "gold": [{"clause_id": c, "span": ""} for c in gold],
                         "answer_keywords": [], "split": split_of(f"stard-{q['query_id']}", "stard")})
            continue
        missing += 1
    dataset_out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return {"queries": len(queries), "kept": len(rows), "left_out": missing, "laws": len(chosen),
            "files_shipped": len(sources), "bytes_shipped": sum((laws_out / s["file"]).stat().st_size for s in sources),
            "test": sum(r["split"] == "test" for r in rows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="把 STARD 问题映射到法律条款，写出 corpus/stard_laws 与 eval/datasets/stard.jsonl")
    parser.add_argument("--laws", required=True, type=Path, help="LawRefBook 法律文件夹（如 ../shared/data/laws）")
    parser.add_argument("--queries", required=True, type=Path, help="STARD 问题文件（train.jsonl）")
    args = parser.parse_args(argv)
    print(json.dumps(build(args.laws, args.queries), ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
