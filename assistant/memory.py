"""Questions asked before, with the clauses that answered them: a nearest-neighbour signal for the ranker.

People ask about the same clauses in many wordings (离婚后孩子归谁 / 离婚时子女抚养权怎么定). A new
question close to one whose answer is known points to that answer's clauses, whatever words either
uses: a learned bridge between everyday words and a statute's, with no word list. The memory holds
real questions from the public, STARD's train split (``eval.train.MEMORY_DATASETS``; never a test
split; the eval sets' own dev questions misled as neighbours, docs/retrieval.md), each with its gold
clauses and its query vector. ``python -m eval.train`` writes it (``asked.jsonl`` + ``asked.npy`` in
assistant/data, with the embedder that made the vectors).

Retrieval adds the clauses of a question's nearest neighbours to its candidates, and the ranker sees
how close the nearest neighbour naming each candidate (or its document) is, and how many name it
(``assistant.ranking.MEMORY_FEATURES``, scored by a second stage of the learned ranker). A question
never sees itself: a neighbour with the same text is skipped, so the tuning questions' figures (and
the ranker's training rows) are leave-one-out, as a new question's are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from index.arrays import load_array

MEMORY_FILE = "asked.jsonl"  # one line per question: {"question", "clauses", "source"}; the first line: {"embedder"}
VECTORS_FILE = "asked.npy"  # float16 query vectors, one row per question, in file order
NEIGHBOURS = 20  # neighbours whose clauses become candidates and vote


def same_text(a: str, b: str) -> bool:
    return _key(a) == _key(b)


def _key(text: str) -> str:
    return re.sub(r"[\s？?。！!，,]", "", text or "")


@dataclass(frozen=True)
class Neighbour:
    similarity: float
    clauses: tuple[str, ...]


class AskedQuestions:
    """Earlier questions, their gold clauses and their vectors (see the module's docstring)."""

    def __init__(self, questions: Sequence[str], clauses: Sequence[Sequence[str]], vectors: np.ndarray,
                 embedder: str, sources: Sequence[str] = ()):
        if len(questions) != len(clauses) or len(questions) != len(vectors):
            raise ValueError("asked questions, clauses and vectors differ in length")
        self.questions = list(questions)
        self.clauses = [tuple(c) for c in clauses]
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.embedder = embedder
        self.sources = list(sources) or [""] * len(self.questions)
        self._keys = [_key(q) for q in self.questions]

    def __len__(self) -> int:
        return len(self.questions)

    def neighbours(self, vector: np.ndarray, question: str, k: int = NEIGHBOURS) -> list[Neighbour]:
        """The ``k`` closest earlier questions (cosine), closest first, the question itself left out."""
        if not len(self):
            return []
        sims = self.vectors @ np.asarray(vector, dtype=np.float32).reshape(-1)
        own = _key(question)
        out: list[Neighbour] = []
        for i in np.argsort(-sims, kind="stable").tolist():
            if self._keys[i] != own:
                out.append(Neighbour(float(sims[i]), self.clauses[i]))
            if len(out) == k:
                break
        return out

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"embedder": self.embedder}, ensure_ascii=False)]
        lines += [json.dumps({"question": q, "clauses": list(c), "source": s}, ensure_ascii=False)
                  for q, c, s in zip(self.questions, self.clauses, self.sources)]
        (folder / MEMORY_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
        np.save(folder / VECTORS_FILE, self.vectors.astype(np.float16))

    @classmethod
    def load(cls, folder: Path) -> "AskedQuestions | None":
        """The memory in ``folder``, or None when it has none."""
        path = folder / MEMORY_FILE
        if not path.exists() or not (folder / VECTORS_FILE).exists():
            return None
        head, *rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return cls([r["question"] for r in rows], [r["clauses"] for r in rows], load_array(folder / VECTORS_FILE),
                   head["embedder"], [r.get("source", "") for r in rows])


@lru_cache(maxsize=4)
def _load(folder: str) -> AskedQuestions | None:
    return AskedQuestions.load(Path(folder))


def forget() -> None:
    """Drop loaded memories (after ``python -m eval.train`` wrote a new one)."""
    _load.cache_clear()
    _REEMBEDDED.clear()


def asked_questions(embedder, folder: Path | None = None) -> AskedQuestions | None:
    """The bundled memory with vectors from ``embedder`` (index.embedders.Embedder): the bundled ones when
    they come from it; else its questions embedded again by it (another model's vectors would not
    compare), once per process and kept in the user's model cache."""
    from assistant.rerank import model_dir

    memory = _load(str(folder or model_dir()))
    if memory is None or memory.embedder == embedder.name:
        return memory
    key = (id(memory), embedder.name)
    if key not in _REEMBEDDED:
        _REEMBEDDED[key] = AskedQuestions(memory.questions, memory.clauses, _vectors_by(embedder, memory.questions),
                                          embedder.name, memory.sources)
    return _REEMBEDDED[key]


_REEMBEDDED: dict[tuple[int, str], AskedQuestions] = {}


def _vectors_by(embedder, questions: Sequence[str]) -> np.ndarray:
    """``questions`` embedded by ``embedder`` as queries, read from the cache when done before."""
    import hashlib

    from index.e5_convert import default_model_dir

    digest = hashlib.sha256("\n".join([embedder.name, *questions]).encode("utf-8")).hexdigest()[:20]
    path = default_model_dir().parent / "asked-vectors" / f"{digest}.npy"
    if path.exists():
        return load_array(path).astype(np.float32)
    vectors = np.asarray(embedder.encode_queries(list(questions)), dtype=np.float16)  # stored as the bundled ones
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path.with_suffix(".tmp.npy"), vectors)
        path.with_suffix(".tmp.npy").replace(path)
    except OSError:  # a read-only cache: embedded again by the next process
        pass
    return vectors.astype(np.float32)
