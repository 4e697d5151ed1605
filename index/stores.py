"""Search stores keyed by integer chunk ids: dense vectors (FAISS) and keywords (BM25).

Both follow one contract — ``add(ids, items)``, ``delete(ids)``,
``search(query, k, allowed=None)``, ``save(dir)``, ``load(dir)`` — which one
test runs against every store in ``STORES``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from index.arrays import load_array

from index.keywords import BM25Store, unlinked

log = logging.getLogger(__name__)


class Store(Protocol):
    name: str

    def add(self, ids: np.ndarray, items) -> None: ...

    def delete(self, ids: np.ndarray) -> None: ...

    def search(self, query, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]: ...

    def save(self, folder: Path) -> None: ...

    def __len__(self) -> int: ...


APPROX_THRESHOLD = 50_000  # vectors; above it exact search passes ~10 ms per query here (docs/scaling.md)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 128


def members(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in ``sorted_set`` (sorted, unique): ``np.isin`` without sorting both."""
    if len(sorted_set) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


class _Rows:
    """Vectors and their ids appended in parts and joined when read: adding a corpus one document
    at a time must not copy everything added before at each step."""

    def __init__(self, dim: int, ids: np.ndarray | None = None, vectors: np.ndarray | None = None):
        self.dim = dim
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._held: set[int] = set()
        if ids is not None and len(ids):
            self.append(np.asarray(ids, dtype=np.int64), np.asarray(vectors, dtype=np.float32).reshape(-1, dim))

    def __len__(self) -> int:
        return len(self._held)

    def append(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._parts.append((ids, vectors))
        self._held.update(ids.tolist())

    def _joined(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self._parts) != 1:
            joined = (np.concatenate([p[0] for p in self._parts]) if self._parts else np.zeros(0, np.int64),
                      np.concatenate([p[1] for p in self._parts]) if self._parts else np.zeros((0, self.dim), np.float32))
            self._parts = [joined]
        return self._parts[0]

    @property
    def ids(self) -> np.ndarray:
        return self._joined()[0]

    @property
    def vectors(self) -> np.ndarray:
        return self._joined()[1]

    def holds(self, ids: np.ndarray) -> np.ndarray:
        return np.fromiter((int(i) in self._held for i in ids), dtype=bool, count=len(ids))

    def drop(self, ids: np.ndarray) -> np.ndarray:
        """Remove ``ids``; the ids removed."""
        if not len(self._held) or not self.holds(ids).any():
            return np.zeros(0, np.int64)
        held, vectors = self._joined()
        gone = members(held, np.unique(ids))
        self._parts = [(held[~gone], vectors[~gone])]
        self._held.difference_update(held[gone].tolist())
        return held[gone]


class FaissStore:
    """Inner-product search over L2-normalised vectors (cosine similarity).

    The exact index (``IndexIDMap2`` over ``IndexFlatIP``) holds every vector: filtered searches
    and re-scoring use it. Above ``approx_threshold`` vectors an HNSW graph is built beside it
    and answers unfiltered searches; vectors added later are searched exactly beside it, vectors
    deleted later stay in the graph but are skipped, and the graph is rebuilt when those pass a
    fifth of it.

    On disk a change is written as a change: ``FILE`` holds the vectors as they were when it was
    last written (the base, its ids beside it), ``*.delta*.npy`` the vectors added since and
    ``*.deleted.npy`` the base's ids deleted (or given new vectors) since; the graph's file is
    written only when the graph is rebuilt. Once the delta and the deletions pass a fifth of the
    base, the base is written anew. Nothing large is read until a search needs it, so adding one
    document to a large index reads and writes little.
    """

    name = "faiss"
    FILE = "vectors.faiss"
    HNSW_FILE = "vectors.hnsw"
    STALE_FILE = "vectors.hnsw-stale.npy"

    def __init__(self, dim: int, *, approx_threshold: int = APPROX_THRESHOLD):
        self.dim = dim
        self.approx_threshold = approx_threshold
        self._flat = None  # the exact index once read (IndexIDMap2 over IndexFlatIP)
        self._base_file: Path | None = None  # the base on disk, not read yet
        self._base_ids = np.zeros(0, np.int64)  # sorted ids of the base
        self._replaced = np.zeros(0, np.int64)  # sorted base ids deleted or given new vectors since
        self._delta = _Rows(dim)  # added since the base
        self._base_saved = False  # the base is the folder's file
        self._graph = None  # IndexIDMap over IndexHNSWFlat, or None
        self._graph_file: Path | None = None  # the graph on disk, read when a search first needs it
        self._graph_written = False
        self._graph_size = 0
        self._stale: set[int] = set()  # in the graph, but deleted (or replaced) since
        self._outside = _Rows(dim)  # added since the graph was built

    # --- what is held, read lazily ---

    @property
    def index(self):
        """The exact index of every vector, read from disk the first time it is needed."""
        if self._flat is None:
            with _GRAPH_LOADING:
                if self._flat is None:
                    self._flat = self._read_flat()
        return self._flat

    def _read_flat(self):
        import faiss

        if self._base_file is None:
            flat = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        else:
            flat = faiss.read_index(str(self._base_file))
            if len(self._replaced):
                flat.remove_ids(self._replaced)
        if len(self._delta):
            flat.add_with_ids(self._delta.vectors, self._delta.ids)
        return flat

    @property
    def hnsw(self):
        """The HNSW graph, read from disk the first time a search needs it: a writer adding one
        document never reads it (a gigabyte on the whole law corpus)."""
        if self._graph is None and self._graph_file is not None:
            import faiss

            with _GRAPH_LOADING:
                if self._graph is None:
                    self._graph = faiss.read_index(str(self._graph_file))
        return self._graph

    @hnsw.setter
    def hnsw(self, graph) -> None:
        self._graph, self._graph_file = graph, None

    def _has_graph(self) -> bool:
        return self._graph is not None or self._graph_file is not None

    def _file(self, suffix: str) -> str:
        return self.FILE.replace(".faiss", suffix)

    def ids(self) -> np.ndarray:
        """Every id held: the base's not replaced, then those added since."""
        return np.concatenate([self._base_ids[~members(self._base_ids, self._replaced)], self._delta.ids])

    def __len__(self) -> int:
        return len(self._base_ids) - len(self._replaced) + len(self._delta)

    # --- changes ---

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors of shape {vectors.shape} do not fit an index of dimension {self.dim}")
        if len(ids):
            ids = np.asarray(ids, dtype=np.int64)
            again = self._delta.holds(ids) | (members(ids, self._base_ids) & ~members(ids, self._replaced))
            if again.any():
                self.delete(ids[again])  # an id given again replaces its vector
            self._delta.append(ids, vectors)
            if self._flat is not None:
                self._flat.add_with_ids(vectors, ids)
            if self._has_graph():
                self._outside.append(ids, vectors)

    def delete(self, ids: np.ndarray) -> None:
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        in_base = ids[members(ids, self._base_ids) & ~members(ids, self._replaced)]
        from_delta = self._delta.drop(ids)
        if not len(in_base) and not len(from_delta):
            return
        if self._flat is not None:
            self._flat.remove_ids(np.concatenate([in_base, from_delta]))
        self._replaced = np.union1d(self._replaced, in_base)
        if self._has_graph():
            in_graph = ids[~self._outside.holds(ids)]
            self._outside.drop(ids)
            self._stale.update(in_graph.tolist())

    def _build_hnsw(self) -> None:
        import faiss

        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        vectors = self.index.index.reconstruct_n(0, len(ids)) if len(ids) else np.zeros((0, self.dim), np.float32)
        graph = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        self.hnsw = faiss.IndexIDMap(graph)
        self.hnsw.add_with_ids(vectors, ids)
        self._stale, self._graph_written, self._graph_size = set(), False, len(ids)
        self._outside = _Rows(self.dim)

    def refresh_approximate(self) -> None:
        """Build, rebuild or drop the HNSW graph as the size and the share of changes since require."""
        if len(self) < self.approx_threshold:
            self.hnsw, self._stale, self._outside = None, set(), _Rows(self.dim)
        elif not self._has_graph() or len(self._stale) + len(self._outside) > 0.2 * max(1, self._graph_size):
            log.info("building the HNSW graph over %d vectors", len(self))
            self._build_hnsw()

    # --- search ---

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None, *,
               exact: bool = False) -> list[tuple[int, float]]:
        import faiss

        if len(self) == 0 or k <= 0:
            return []
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        if self._has_graph() and allowed is None and not exact:
            fetch = min(k + len(self._stale), int(self.hnsw.ntotal))
            scores, ids = self.hnsw.search(query, fetch, params=faiss.SearchParametersHNSW(efSearch=max(
                HNSW_EF_SEARCH, fetch)))
            hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and int(i) not in self._stale]
            added = self._outside.vectors @ query[0]
            hits += [(int(i), float(s)) for i, s in zip(self._outside.ids, added)]
            return sorted(hits, key=lambda h: (-h[1], h[0]))[:k]
        params = None
        if allowed is not None:
            if len(allowed) == 0:
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        scores, ids = self.index.search(query, min(k, len(self)), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def scores(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The inner product of ``vector`` with the stored vectors of ``ids`` (exact)."""
        return self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64)) @ np.asarray(vector, dtype=np.float32)

    def mean_vector(self, ids: np.ndarray) -> np.ndarray:
        """The mean of the stored vectors of ``ids``."""
        return self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64)).mean(axis=0)

    # --- on disk ---

    def save(self, folder: Path) -> None:
        import faiss

        folder = Path(folder)
        changed = len(self._delta) + len(self._replaced)
        if not self._base_saved or changed > 0.2 * max(1, len(self._base_ids)):
            faiss.write_index(self.index, str(unlinked(folder / self.FILE)))
            self._base_ids = np.sort(faiss.vector_to_array(self.index.id_map).astype(np.int64))
            np.save(unlinked(folder / self._file(".ids.npy")), self._base_ids)
            self._replaced, self._delta = np.zeros(0, np.int64), _Rows(self.dim)
            self._base_file, self._base_saved = folder / self.FILE, True
        elif not (folder / self._file(".ids.npy")).exists():  # a base written before its ids were kept apart
            np.save(folder / self._file(".ids.npy"), self._base_ids)
        for suffix, values in ((".delta-ids.npy", self._delta.ids), (".delta.npy", self._delta.vectors),
                               (".deleted.npy", self._replaced)):
            if len(values):
                np.save(unlinked(folder / self._file(suffix)), values)
            else:
                (folder / self._file(suffix)).unlink(missing_ok=True)
        self.refresh_approximate()
        self._save_graph(folder)

    def _save_graph(self, folder: Path) -> None:
        import faiss

        files = (folder / self.HNSW_FILE, folder / self._file(".hnsw-ids.npy"), folder / self.STALE_FILE)
        if not self._has_graph():
            for path in files:
                path.unlink(missing_ok=True)
            return
        if not self._graph_written or not all(path.exists() for path in files[:2]):
            faiss.write_index(self.hnsw, str(unlinked(files[0])))
            np.save(unlinked(files[1]), np.sort(faiss.vector_to_array(self.hnsw.id_map).astype(np.int64)))
            self._graph_written = True
        np.save(unlinked(files[2]), np.asarray(sorted(self._stale), dtype=np.int64))

    @classmethod
    def load(cls, folder: Path, *, lazy: bool = False) -> "FaissStore":
        """The store in ``folder``; with ``lazy``, its base and graph are read when first needed
        (only for a folder no one else replaces meanwhile: a writer's staging copy)."""
        import faiss

        folder = Path(folder)
        probe = cls(1)
        ids_file = folder / probe._file(".ids.npy")
        if ids_file.exists():  # the dimension from the header alone: the file is read when needed
            store = cls(_flat_dimension(folder / cls.FILE))
            store._base_file, store._base_ids = folder / cls.FILE, load_array(ids_file)
        else:  # written before the ids were kept beside it: read it now
            flat = faiss.read_index(str(folder / cls.FILE))
            store = cls(flat.d)
            store._flat, store._base_file = flat, folder / cls.FILE
            store._base_ids = np.sort(faiss.vector_to_array(flat.id_map).astype(np.int64))
        store._base_saved = True
        if (folder / store._file(".deleted.npy")).exists():
            store._replaced = load_array(folder / store._file(".deleted.npy"))
            if store._flat is not None:
                store._flat.remove_ids(store._replaced)
        if (folder / store._file(".delta-ids.npy")).exists():
            store._delta = _Rows(store.dim, load_array(folder / store._file(".delta-ids.npy")),
                                 load_array(folder / store._file(".delta.npy")))
            if store._flat is not None:
                store._flat.add_with_ids(store._delta.vectors, store._delta.ids)
        if (folder / cls.HNSW_FILE).exists():
            store._load_graph(folder)
        if not lazy:
            store.read_all()
        return store

    def read_all(self) -> None:
        """Read now what would be read when first needed (the base and the graph)."""
        flat = self.index
        graph = self.hnsw
        log.debug("read %d vectors%s", flat.ntotal, f" and a graph of {graph.ntotal}" if graph is not None else "")

    def _load_graph(self, folder: Path) -> None:
        """The graph's file (read later, or now for an index written before its ids were saved
        apart), what was deleted from it and the vectors added since it was built."""
        import faiss

        ids_file = folder / self._file(".hnsw-ids.npy")
        if ids_file.exists():
            self._graph_file, in_graph = folder / self.HNSW_FILE, load_array(ids_file)
        else:
            self.hnsw = faiss.read_index(str(folder / self.HNSW_FILE))
            in_graph = np.sort(faiss.vector_to_array(self.hnsw.id_map).astype(np.int64))
        self._graph_written, self._graph_size = True, len(in_graph)
        self._stale = set(load_array(folder / self.STALE_FILE).tolist())
        ids = self.ids()
        outside = ids[~members(ids, in_graph) | members(ids, np.asarray(sorted(self._stale), dtype=np.int64))]
        if self._delta.holds(outside).all():  # the usual case: what was added since the graph is the delta
            order = {int(i): n for n, i in enumerate(self._delta.ids)}
            vectors = self._delta.vectors[[order[int(i)] for i in outside]]
        else:
            vectors = self.index.reconstruct_batch(outside)
        self._outside = _Rows(self.dim, outside, vectors)


def _flat_dimension(path: Path) -> int:
    """The dimension of a faiss ``IndexIDMap2`` file, from its header: the map's fourcc, then its
    dimension (int32)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] != b"IxM2":
        raise ValueError(f"{path.name}: not a faiss IndexIDMap2")
    return int(np.frombuffer(head[4:8], dtype=np.int32)[0])


_GRAPH_LOADING = threading.Lock()

STORES = {"faiss": FaissStore, "bm25": BM25Store}
