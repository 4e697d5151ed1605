"""Reading numpy files, one thread at a time in the whole process.

numpy reads a ``.npy`` header with ``ast.literal_eval``, and CPython 3.11's AST builder keeps its
recursion depth in interpreter-wide state: two threads parsing at once can raise
``SystemError: AST constructor recursion depth mismatch``. It happened in CI while a reader opened
the index during a write, inside the lock that then covered only the store loads; the writer reads
``.npy`` files of its own (the vector cache, the BM25 deletions), the likely other parser. Every
``np.load`` in the project goes through here (the lock is reentrant: a store load holds it while it
reads its files)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

NPY_LOCK = threading.RLock()


def load_array(path: Path | str, *, mmap_mode: str | None = None) -> np.ndarray:
    """The array in the ``.npy`` file at ``path`` (memory-mapped with ``mmap_mode``)."""
    with NPY_LOCK:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)


def load_arrays(path: Path | str) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file at ``path``, read now."""
    with NPY_LOCK, np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
