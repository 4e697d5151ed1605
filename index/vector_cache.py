"""Vectors of texts a model has already embedded, kept across builds.

Embedding is nearly all of a build's time (the bundled knowledge base: about a minute on two cores;
every law in ``../shared/data/laws``: hours). A text's vector depends only on the model and the text
(``OnnxEmbedder`` runs one text at a time), so a build looks each text up here first and embeds only
the rest. What that buys:

- a build stopped midway (Ctrl+C, a reboot, ``kill -9``) resumes: what it embedded is kept, a shard
  of ``SHARD_TEXTS`` texts at a time;
- the same documents indexed into another store (a folder, then a PostgreSQL database) or rebuilt
  (``ipqa index --rebuild``) embed only what changed.

Where: ``~/.cache/ipqa/vectors/<model>/`` beside the models (``index.e5_convert``), or in the folder
``IPQA_VECTOR_CACHE`` names; ``IPQA_VECTOR_CACHE=off`` turns it off (``ipqa bench`` turns it off to time the model). Each
shard is two files: its vectors (``<id>.npy``), then its keys (``<id>.keys.npy``, a BLAKE2b digest of
each text), written under temporary names and renamed, keys last: a shard without keys is ignored.
Past ``IPQA_VECTOR_CACHE_MB`` (2048 by default) the oldest shards are deleted. Only models worth it
are cached (``cache_vectors`` on the embedder): not the instant hash embedders.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.arrays import load_array

log = logging.getLogger(__name__)

CACHE_ENV = "IPQA_VECTOR_CACHE"
LIMIT_ENV = "IPQA_VECTOR_CACHE_MB"
DEFAULT_LIMIT_MB = 2048
SHARD_TEXTS = 2000  # texts per shard: about a minute of the default model on two cores
_KEYS = ".keys.npy"


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _vectors_file(keys_file: Path) -> Path:
    return keys_file.with_name(keys_file.name[:-len(_KEYS)] + ".npy")


def _key_rows(texts: Sequence[str]) -> np.ndarray:
    """One row of 16 bytes per text (as uint8: numpy's bytes type would drop a digest's trailing zeros)."""
    return np.frombuffer(b"".join(text_key(t) for t in texts), dtype=np.uint8).reshape(len(texts), 16)


class VectorCache:
    """The cached vectors of one model (``folder`` is that model's own folder)."""

    def __init__(self, folder: Path, dim: int, limit_bytes: int = DEFAULT_LIMIT_MB << 20):
        self.folder, self.dim, self.limit_bytes = Path(folder), dim, limit_bytes

    @classmethod
    def for_embedder(cls, embedder) -> "VectorCache | None":
        """The cache of ``embedder``'s model, or None (turned off, or a model not worth caching)."""
        where = os.environ.get(CACHE_ENV, "").strip()
        if where.lower() in ("off", "0", "no", "false") or not getattr(embedder, "cache_vectors", False):
            return None
        limit = int(os.environ.get(LIMIT_ENV) or DEFAULT_LIMIT_MB) << 20
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in embedder.name)
        folder = Path(where).expanduser() if where else Path.home() / ".cache" / "ipqa" / "vectors"
        return cls(folder / safe, embedder.dim, limit)

    def _shards(self) -> list[Path]:
        """Complete shards (their keys written), oldest first."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if p.name.endswith(_KEYS) and not p.name.startswith(".")]
        return sorted(found, key=lambda p: p.name)  # named by the time they were written

    def lookup(self, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """(vectors, missing): a row for every text, filled where cached; the positions not cached."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        wanted: dict[bytes, list[int]] = {}
        for i, text in enumerate(texts):
            wanted.setdefault(text_key(text), []).append(i)
        for keys_file in reversed(self._shards()):  # the newest first
            if not wanted:
                break
            try:
                keys = load_array(keys_file)
                vectors = load_array(_vectors_file(keys_file), mmap_mode="r")
            except (OSError, ValueError) as exc:  # deleted meanwhile, or damaged: embed again
                log.warning("vector cache: skipping %s (%s)", keys_file.name, exc)
                continue
            if keys.ndim != 2 or keys.shape[1] != 16 or vectors.shape != (len(keys), self.dim):
                continue
            raw = keys.tobytes()
            for row in range(len(keys)):
                key = raw[16 * row:16 * row + 16]
                for i in wanted.pop(key, ()):
                    out[i] = vectors[row]
        missing = sorted(i for rows in wanted.values() for i in rows)
        return out, missing

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Keep ``vectors`` (one row per text) as one shard; then drop the oldest shards past the limit.
        A cache that cannot be written (a read-only folder, a full disk) only costs the next build time."""
        if not len(texts):
            return
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for final, array in ((self.folder / f"{name}.npy", np.asarray(vectors, dtype=np.float32)),
                                 (self.folder / f"{name}{_KEYS}", _key_rows(texts))):
                temporary = self.folder / f".{final.name}.tmp"
                with open(temporary, "wb") as f:
                    np.save(f, array)
                os.replace(temporary, final)
            self._prune()
        except OSError as exc:
            log.warning("vector cache: could not write to %s (%s)", self.folder, exc)

    def _prune(self) -> None:
        shards = self._shards()
        sizes = [self._size(k) for k in shards]
        total = sum(sizes)
        for keys_file, size in zip(shards[:-1], sizes):  # the newest shard always stays
            if total <= self.limit_bytes:
                break
            keys_file.unlink(missing_ok=True)  # keys first: the shard stops counting at once
            _vectors_file(keys_file).unlink(missing_ok=True)
            total -= size

    @staticmethod
    def _size(keys_file: Path) -> int:
        try:
            return keys_file.stat().st_size + _vectors_file(keys_file).stat().st_size
        except OSError:
            return 0


def passage_vectors(embedder, texts: Sequence[str]) -> np.ndarray:
    """``texts`` embedded as passages by ``embedder``: from its model's cache where it embedded them
    before (in any build or eval), the rest from the model, then kept. Without a cache (turned off, or a
    model not worth it) every text goes to the model."""
    cache = VectorCache.for_embedder(embedder) if len(texts) else None
    if cache is None:
        return embedder.encode_passages(list(texts))
    vectors, missing = cache.lookup(texts)
    for start in range(0, len(missing), SHARD_TEXTS):
        rows = missing[start:start + SHARD_TEXTS]
        part = [texts[i] for i in rows]
        got = embedder.encode_passages(part)
        cache.add(part, got)
        vectors[rows] = got
    return vectors
