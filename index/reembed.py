"""Re-embedding an index folder with another embedder, from its own catalog, resumably.

Changing the model used to mean ``ipqa index --rebuild``: every source file read, cleaned and chunked
again, and documents added by upload lost if their files were gone. The catalog already holds every
document and chunk, so only the vectors need to change. Phase one (no lock) embeds each document's
chunk and sentence texts exactly as a build would (``build.text_plan``) and keeps them in shard files
beside the index (``.<name>.reembed-<embedder>``), each shard listing the documents (id and content
hash) it holds: a run that is stopped continues where it was, and a document changed meanwhile is
embedded again. Phase two (under the writers' lock) writes new vector stores into a staging copy,
records the embedder in the manifest and swaps the copy in; the BM25 index and the catalog stay as
they are. The whole law corpus (155,117 chunks, about 490,000 texts) is the case it was made for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from corpus.errors import IndexChanged, IndexMismatch
from index.arrays import load_array
from index.build import BuildReport, Staging, Stores, chunk_vectors, text_plan, timestamp
from index.catalog import Catalog
from index.chunking import ChunkerSettings
from index.embedders import Embedder
from index.folder import locked, recover, require_index
from index.manifest import check_manifest, read_manifest, verify_files
from index.keywords import unlinked

log = logging.getLogger(__name__)

SHARD_TEXTS = 5000  # texts per shard file: a few minutes of embedding on two cores
Progress = Callable[[int, int], None]  # (documents embedded so far, documents)


def work_folder(index_dir: Path, embedder: Embedder) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in embedder.name)
    return index_dir.with_name(f".{index_dir.name}.reembed-{safe}")


def _doc_key(doc_id: str, content_hash: str) -> str:
    return hashlib.sha256(f"{doc_id}\0{content_hash}".encode()).hexdigest()[:24]


def _done(work: Path) -> dict[str, tuple[Path, int, int]]:
    """{document key: (shard file, first row, rows)} of every complete shard (its list written last)."""
    out = {}
    for listing in sorted(work.glob("*.json")):
        rows = 0
        for key, n in json.loads(listing.read_text(encoding="utf-8")):
            out[key] = (listing.with_suffix(".npy"), rows, n)
            rows += n
    return out


def _plan_of(catalog: Catalog, doc_id: str, settings: ChunkerSettings):
    """(chunk ids, the build's text plan) of one document, as its catalog rows hold it."""
    ids = np.sort(catalog.chunk_ids(doc_id))
    chunks = catalog.chunks(ids.tolist())
    doc = catalog.document(doc_id)
    return ids, text_plan([(doc, "", [chunks[int(i)] for i in ids])], settings)


def embed_missing(catalog: Catalog, documents: dict, embedder: Embedder, settings: ChunkerSettings,
                  work: Path, report: BuildReport, on_progress: Progress | None) -> None:
    """Phase one: every document not yet in a shard is embedded, SHARD_TEXTS texts a shard."""
    done = _done(work)
    todo = [d for d, info in sorted(documents.items()) if _doc_key(d, info["content_hash"]) not in done]
    batch: list[tuple[str, list[str]]] = []
    for n, doc_id in enumerate(todo, start=1):
        _, plan = _plan_of(catalog, doc_id, settings)
        batch.append((_doc_key(doc_id, documents[doc_id]["content_hash"]), plan.texts))
        if sum(len(t) for _, t in batch) >= SHARD_TEXTS or n == len(todo):
            _write_shard(work, batch, embedder, report)
            batch = []
        if on_progress:
            on_progress(len(documents) - len(todo) + n, len(documents))


def _write_shard(work: Path, batch: list[tuple[str, list[str]]], embedder: Embedder, report: BuildReport) -> None:
    texts = [t for _, texts in batch for t in texts]
    started = time.perf_counter()
    vectors = embedder.encode_passages(texts) if texts else np.zeros((0, embedder.dim), np.float32)
    report.embed_seconds += time.perf_counter() - started
    report.texts_embedded += len(texts)
    name = hashlib.sha256("".join(k for k, _ in batch).encode()).hexdigest()[:16]
    np.save(unlinked(work / f"{name}.npy"), np.asarray(vectors, dtype=np.float32))
    (work / f"{name}.json").write_text(json.dumps([[k, len(t)] for k, t in batch]), encoding="utf-8")
    log.info("embedded %d texts into %s", len(texts), name)


def vectors_by_document(catalog: Catalog, documents: dict, embedder: Embedder, settings: ChunkerSettings,
                        work: Path, where: str | Path) -> Iterator[tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
    """(chunk ids, their vectors, per chunk its sentence vectors) of every document, read from the shards
    (``where`` names the index in the error raised when a document's texts changed meanwhile)."""
    done = _done(work)
    shards: dict[Path, np.ndarray] = {}
    for doc_id, info in sorted(documents.items()):
        path, first, rows = done[_doc_key(doc_id, info["content_hash"])]
        if path not in shards:
            shards[path] = load_array(path, mmap_mode="r")
        ids, plan = _plan_of(catalog, doc_id, settings)
        if len(plan.texts) != rows:
            raise IndexChanged(where, f"{doc_id}: {rows} texts embedded, {len(plan.texts)} now")
        if len(ids):
            vectors, sentences = chunk_vectors(plan, np.asarray(shards[path][first:first + rows]), 0, len(ids),
                                               embedder.dim)
            yield ids, vectors, sentences


def _new_stores(catalog: Catalog, documents: dict, embedder: Embedder, settings: ChunkerSettings,
                work: Path, report: BuildReport, where: Path) -> Stores:
    """Phase two's stores: every document's chunk and sentence vectors, read from the shards."""
    stores = Stores.new(embedder.dim)
    for ids, vectors, sentences in vectors_by_document(catalog, documents, embedder, settings, work, where):
        stores.vectors.add(ids, vectors)
        stores.sentences.add_chunks(ids, sentences)
        report.chunks_embedded += len(ids)
    return stores


def remove_work(work: Path) -> None:
    for path in work.iterdir():
        path.unlink()
    work.rmdir()


def reembed_index(index_dir: str | Path, embedder: Embedder, *, settings: ChunkerSettings = ChunkerSettings(),
                  on_progress: Progress | None = None) -> BuildReport:
    """Give the index in ``index_dir`` the vectors of ``embedder``, keeping its documents, chunks and
    keyword index. Resumable; the index answers with its old vectors until the swap."""
    index_dir = Path(index_dir)
    started = time.perf_counter()
    report = BuildReport()
    require_index(index_dir)
    manifest = read_manifest(index_dir)
    check_manifest(manifest, index_dir)
    if manifest.get("chunker") != settings.as_dict():
        raise IndexMismatch("索引建立时的切分设置与当前设置不同", index_dir)
    work = work_folder(index_dir, embedder)
    work.mkdir(parents=True, exist_ok=True)
    documents = dict(manifest.get("documents", {}))
    catalog = Catalog(index_dir / "store.sqlite", readonly=True)
    try:
        embed_missing(catalog, documents, embedder, settings, work, report, on_progress)
        fresh = _new_stores(catalog, documents, embedder, settings, work, report, index_dir)
    finally:
        catalog.close()
    for store in (fresh.vectors, fresh.sentences):
        store.refresh_approximate()  # the HNSW graphs are built before the lock, not under it
    with locked(index_dir):
        locked_at = time.perf_counter()
        recover(index_dir)
        now = read_manifest(index_dir)
        if any(now.get(key) != manifest.get(key) for key in ("documents", "counts", "updated_at", "embedder")):
            raise IndexChanged(index_dir, "a write was made meanwhile")
        verify_files(manifest, index_dir, trust_untouched=True)
        report.counts = _swap_vectors(index_dir, fresh, embedder, settings, report)
        report.locked_seconds = time.perf_counter() - locked_at
    remove_work(work)
    report.total_seconds = time.perf_counter() - started
    return report


def _swap_vectors(index_dir: Path, fresh: Stores, embedder: Embedder, settings: ChunkerSettings,
                  report: BuildReport) -> dict[str, int]:
    """Under the lock: a staging copy with the new vector stores and the old keyword index, swapped in."""
    stage = Staging(index_dir, embedder, settings, fresh=False)
    try:
        stage.stores = Stores(fresh.vectors, fresh.sentences, stage.stores.keywords)
        stage.manifest["embedder"] = {"name": embedder.name, "dim": embedder.dim}
        stage.manifest["reembedded_at"] = timestamp()
        return stage.commit(report)
    except BaseException:
        stage.abort()
        raise
