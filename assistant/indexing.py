"""Building, updating and opening the index, for the CLI and the UI."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from corpus import Document, load_collection, load_document, load_folder
from corpus.documents import make_doc_id
from corpus.errors import IndexMismatch, UnsupportedDocument
from index.build import Progress
from index.core import DEFAULT_INDEX_DIR, BuildReport, Filters, KnowledgeIndex, document_ids, update_index
from index.embedders import DEFAULT_EMBEDDER, get_embedder
from index.pg import is_database_url, safe_url

ALL_BUNDLED = ("policies", "laws")
log = logging.getLogger(__name__)


def default_index_dir() -> Path | str:
    """Where the knowledge base is unless a command says: IPQA_DATABASE_URL (a shared PostgreSQL
    database), else IPQA_INDEX_DIR, else .ipqa/index."""
    url = os.environ.get("IPQA_DATABASE_URL", "").strip()
    return url if url else Path(os.environ.get("IPQA_INDEX_DIR", DEFAULT_INDEX_DIR))


def location_label(location: str | Path) -> str:
    """A location for people: a folder as it is, a database URL without its password."""
    return safe_url(str(location)) if is_database_url(str(location)) else str(location)


def index_location(value: str | Path | None = None) -> Path | str:
    """A knowledge base's location: a folder (Path) or a ``postgresql://`` URL (str)."""
    if value is None or value == "":
        return default_index_dir()
    return str(value).strip() if is_database_url(str(value)) else Path(value)


def _embedder(name: str | None):
    name = name or os.environ.get("IPQA_EMBEDDER")
    return get_embedder(name) if name else None


def index_sources(index_dir: str | Path | None = None, *, collections: Sequence[str] = ALL_BUNDLED,
                  folders: Sequence[str | Path] = (), embedder: str | None = None, rebuild: bool = False,
                  progress: bool = False) -> BuildReport:
    """Index bundled collections and folders. Only new or changed documents are embedded;
    documents whose file disappeared from a listed folder or collection are removed."""
    index_dir = index_location(index_dir)
    docs, origins, failures = [], [], []
    for name in collections:
        report = load_collection(name)
        origin = f"collection:{name}"
        origins.append(origin)
        docs += [(d, origin) for d in report.documents]
        failures += report.failures
    for folder in folders:
        folder = Path(folder).resolve()
        report = load_folder(folder, collection=folder.name)
        origin = f"folder:{folder}"
        origins.append(origin)
        docs += [(d, origin) for d in report.documents]
        failures += report.failures
    emb = _embedder(embedder)
    if rebuild and emb is None:
        emb = get_embedder(DEFAULT_EMBEDDER)
    result = update_index(index_dir, add=docs, prune_origins=origins, embedder=emb, rebuild=rebuild,
                          progress=progress)
    result.failures = failures + result.failures
    return result


def read_file(path: str | Path, *, stored_as: str | Path | None = None) -> "Document":
    """Load one file the way ``add_files`` will (for previews); raises ``UnsupportedDocument``.
    ``stored_as``: where the file will be kept, whose name gives the document id."""
    return load_document(path, doc_id=make_doc_id(stored_as) if stored_as else None, collection="uploads")


def add_documents(docs: Sequence[Document], index_dir: str | Path | None = None, *, progress: bool = False,
                  on_progress: Progress | None = None) -> BuildReport:
    """Add (or update) documents already read, without a rebuild. Embedding runs before the index's
    writers' lock is taken, so a large document never makes other writers wait for it."""
    if not docs:
        return BuildReport()
    return update_index(index_location(index_dir), add=[(d, "added") for d in docs], progress=progress,
                        on_progress=on_progress)


def add_files(paths: Sequence[str | Path], index_dir: str | Path | None = None, *,
              progress: bool = False) -> BuildReport:
    """Add (or update) single files in an existing index without a rebuild; a file that cannot be
    read is reported in ``failures`` and the others are added."""
    docs, failures = [], []
    for path in paths:
        try:
            docs.append(read_file(path))
        except UnsupportedDocument as exc:
            failures.append(exc)
    result = add_documents(docs, index_dir, progress=progress)
    result.failures = failures + result.failures
    return result


def remove_documents(doc_ids: Sequence[str], index_dir: str | Path | None = None) -> BuildReport:
    return update_index(index_location(index_dir), remove=doc_ids)


def indexed_document_ids(index_dir: str | Path | None = None) -> set[str]:
    """The ids of the documents in the index, without opening its search stores."""
    return document_ids(index_location(index_dir))


def reembed(index_dir: str | Path | None = None, *, embedder: str | None = None,
            on_progress: Progress | None = None) -> BuildReport:
    """Give an existing knowledge base (a folder or a PostgreSQL database) the vectors of another
    embedder, from what it stores: no source file is read, uploaded documents are kept, a stopped run
    continues (``index.reembed``, ``index.pg_reembed``)."""
    index_dir = index_location(index_dir)
    model = get_embedder(embedder or DEFAULT_EMBEDDER)
    if is_database_url(str(index_dir)):
        from index.pg_reembed import reembed_database

        return reembed_database(str(index_dir), model, reembed_work_folder(str(index_dir), model.name),
                                on_progress=on_progress)
    from index.reembed import reembed_index

    return reembed_index(index_dir, model, on_progress=on_progress)


def reembed_work_folder(url: str, embedder_name: str) -> Path:
    """Where a database's re-embedding keeps its shards between runs: beside the local index folder
    (.ipqa/), named by the database (without its password) and the embedder."""
    import hashlib

    key = hashlib.sha256(safe_url(url).encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in embedder_name)
    return Path(os.environ.get("IPQA_INDEX_DIR", DEFAULT_INDEX_DIR)).parent / f".reembed-{key}-{safe}"


def open_index(index_dir: str | Path | None = None, *, embedder=None) -> KnowledgeIndex:
    """Open an index; pass an already loaded ``embedder`` to reuse it (the app does after each change).
    An index re-embedded meanwhile (``ipqa index --reembed``) is opened with its own new model."""
    location = index_location(index_dir)
    if embedder is None:
        return KnowledgeIndex.open(location, embedder=_embedder(None))
    try:
        return KnowledgeIndex.open(location, embedder=embedder)
    except IndexMismatch as exc:
        log.info("%s: %s; opening it with its own embedder", location_label(location), exc)
        return KnowledgeIndex.open(location)


__all__ = ["BuildReport", "Filters", "KnowledgeIndex", "add_documents", "add_files", "default_index_dir", "index_location", "index_sources", "indexed_document_ids", "location_label",
           "open_index", "read_file", "reembed", "remove_documents"]
