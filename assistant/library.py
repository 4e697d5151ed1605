"""The documents the assistant knows: bundled collections and user folders.

A thin layer over ``corpus`` so that the CLI and UI never reach into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from corpus import DEFAULT_COLLECTION, Document, LoadReport, bundled_collections, load_collection, load_folder
from corpus.loaders import max_file_bytes

ALL_BUNDLED = ("policies", "laws")


def load_documents(collections: Sequence[str] = ALL_BUNDLED, folders: Sequence[str | Path] = ()) -> LoadReport:
    """Load bundled collections and folders into one report (documents in the order given)."""
    report = LoadReport()
    for name in collections:
        part = load_collection(name)
        report.documents += part.documents
        report.failures += part.failures
    for folder in folders:
        part = load_folder(folder, collection=Path(folder).name)
        report.documents += part.documents
        report.failures += part.failures
    return report


def describe(doc: Document) -> dict:
    """A document's metadata as plain values, for tables and JSON."""
    return {
        "doc_id": doc.doc_id,
        "title": doc.title,
        "collection": doc.collection,
        "kind": doc.kind,
        "issuer": doc.issuer or "",
        "doc_number": doc.doc_number or "",
        "issued": doc.issued.isoformat() if doc.issued else "",
        "region": " / ".join(doc.region),
        "region_aliases": list(doc.region_aliases),
        "period": doc.period_label,
        "clauses": len(doc.clauses),
        "articles": sum(1 for c in doc.clauses if c.level == "条"),
        "source": Path(doc.source_path).name,
        "format": doc.source_format,
        "notes": list(doc.notes),
    }


def collection_names() -> list[str]:
    return list(bundled_collections())


__all__ = ["ALL_BUNDLED", "DEFAULT_COLLECTION", "collection_names", "describe", "load_documents", "max_file_bytes"]
