from __future__ import annotations

from pathlib import Path

import pytest

from corpus import Document, load_collection, load_document

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "corpus" / "policies"
LAWS = ROOT / "corpus" / "laws"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def policies() -> dict[str, Document]:
    report = load_collection("policies")
    assert not report.failures
    return {d.doc_id: d for d in report.documents}


@pytest.fixture(scope="session")
def laws() -> dict[str, Document]:
    report = load_collection("laws")
    assert not report.failures
    return {d.doc_id: d for d in report.documents}


@pytest.fixture(scope="session")
def patent_law() -> Document:
    return load_document(LAWS / "专利法(2020-10-17).md")


def paths(doc: Document) -> list[tuple[str, ...]]:
    return [c.path for c in doc.clauses]


def top_level(doc: Document) -> list[str]:
    return [c.heading for c in doc.clauses if c.parent_id is None and c.number is not None]


@pytest.fixture(scope="session")
def real_index(tmp_path_factory):
    """The bundled knowledge base indexed with the real default model (built once per run)."""
    from assistant import index_sources

    index_dir = tmp_path_factory.mktemp("real") / "index"
    report = index_sources(index_dir)
    return index_dir, report
