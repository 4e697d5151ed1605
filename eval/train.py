"""Train the learned reranker: ``python -m eval.train`` (or ``ipqa train-ranker``).

Training questions are STARD's ``train`` split (asked over the laws STARD cites) and the ``dev``
splits of the eval sets (over the app's knowledge base); never a ``test`` split. For every
answerable question the assistant's own retrieval stages give the candidates and their features
(``assistant.ranking``); a candidate is relevant when its clause is gold. LightGBM's LambdaMART
learns to order them. Training is deterministic (one thread, fixed seeds): the same data gives the
same model. The model is written to ``assistant/data/ranker.txt`` (and its second stage, over the
memory of earlier questions, to ``ranker-memory.txt``, with the memory itself) with ``ranker.json``, which records
the features, the parameters, the questions used and the sha256 of the data it was trained on
(``data_hash``: the datasets' trained fields and the corpus' SOURCES.json); a test checks that hash against the
data in the repo, so a dataset changed without retraining is caught.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np

from eval.questions import TUNING_SPLITS, collections_for, load_dataset, training_bytes

log = logging.getLogger(__name__)

TRAIN_DATASETS = ("stard", "policies_qa", "laws_qa")
# STARD has five times the questions of the two dev splits together; each dev question counts this
# many times, so the app's own kinds of question are not drowned.
DEV_WEIGHT = 2.0
# Trees of one split each (stumps): an additive model, one curve per feature. Deeper trees ranked the
# questions they were trained on far better than new ones (grouped 5-fold CV on the training questions:
# 15 leaves reached hit@1 0.97 in-sample against 0.68 out-of-fold on laws_qa dev; stumps 0.68 / 0.60),
# so their dev figures said nothing about test. Chosen by that CV (docs/retrieval.md).
PARAMS = {
    "objective": "lambdarank", "metric": "ndcg", "ndcg_eval_at": [1, 5, 10], "learning_rate": 0.05,
    "num_leaves": 2, "min_data_in_leaf": 100, "feature_fraction": 0.8, "lambda_l2": 1.0,
    "lambdarank_truncation_level": 20, "num_threads": 1, "deterministic": True, "force_row_wise": True,
    "seed": 7, "bagging_seed": 7, "feature_fraction_seed": 7, "data_random_seed": 7, "verbosity": -1,
}
ROUNDS = 600
MEMORY_ROUNDS = 200  # the second stage's stumps
# Whose questions the memory holds (assistant.memory): real questions from the public. With the dev
# questions of policies_qa and laws_qa too, policies test lost three questions at hit@1 (docs/retrieval.md).
MEMORY_DATASETS = ("stard",)
ALL_DOCUMENTS = True  # also train on each place-scoped dev question asked over every document


def data_hash() -> str:
    """sha256 of what the model is trained on: the training datasets and the corpus' sources."""
    h = hashlib.sha256()
    for name in TRAIN_DATASETS:
        h.update(training_bytes(name))
    h.update((Path(str(resources.files("corpus"))) / "SOURCES.json").read_bytes())
    return h.hexdigest()


@dataclass
class TrainingSet:
    rows: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # each group's question id (folds keep a question whole)
    sets: list[str] = field(default_factory=list)  # each group's dataset name
    used: dict[str, int] = field(default_factory=dict)  # dataset -> questions used
    missed: dict[str, int] = field(default_factory=dict)  # dataset -> questions with no gold among candidates

    def add(self, dataset: str, x: np.ndarray, y: np.ndarray, weight: float, key: str = "") -> None:
        if not y.any():
            self.missed[dataset] = self.missed.get(dataset, 0) + 1
            return
        self.rows.append(x)
        self.labels.append(y)
        self.weights.append(weight)
        self.keys.append(key)
        self.sets.append(dataset)
        self.used[dataset] = self.used.get(dataset, 0) + 1

    def subset(self, keep: list[int]) -> "TrainingSet":
        out = TrainingSet()
        for i in keep:
            out.add(self.sets[i], self.rows[i], self.labels[i], self.weights[i], self.keys[i])
        return out


def question_rows(ix, reader, question, settings) -> tuple[np.ndarray, np.ndarray]:
    """Features and relevance labels of one question's candidates."""
    from assistant.ranking import features
    from assistant.retrieval import allowed_chunks, find_candidates, scope_docs

    u = reader.read(question.question, question.history)
    found = find_candidates(ix, u, allowed_chunks(ix, scope_docs(u, settings, ix), None), settings)
    gold = {g.clause_id for g in question.gold}
    labels = np.asarray([found.chunks[c].clause_id in gold for c in found.ids.tolist()], dtype=np.float32)
    return features(ix, u, found), labels


def tuning_questions(name: str) -> list:
    return [q for q in load_dataset(name).questions if q.split in TUNING_SPLITS and q.gold]


def build_memory(embedder_name: str | None = None):
    """The earlier questions the ranker may use (assistant.memory): every tuning-split question of
    ``MEMORY_DATASETS`` that stands alone (no chat history), its gold clauses and its query vector."""
    from assistant.memory import AskedQuestions
    from index.embedders import get_embedder

    embedder = get_embedder(embedder_name) if embedder_name else get_embedder()
    rows = [(q, name) for name in MEMORY_DATASETS for q in tuning_questions(name) if not q.history]
    vectors = embedder.encode_queries([q.question for q, _ in rows]) if rows else np.zeros((0, embedder.dim))
    return AskedQuestions([q.question for q, _ in rows], [sorted({g.clause_id for g in q.gold}) for q, _ in rows],
                          vectors, embedder.name, [f"{name}:{q.id}" for q, name in rows])


def _add_questions(out: TrainingSet, ix, name: str, questions: list, settings) -> None:
    from assistant.retrieval import scope_docs
    from assistant.understanding import QuestionReader

    reader = QuestionReader.for_index(ix)
    started = time.perf_counter()
    for q in questions:
        x, y = question_rows(ix, reader, q, settings)
        out.add(name, x, y, 1.0 if name == "stard" else DEV_WEIGHT, f"{name}:{q.id}")
        if name != "stard" and ALL_DOCUMENTS and scope_docs(reader.read(q.question, q.history), settings, ix):
            # The same question over every document: a question that names a place is searched
            # within that place's documents, so without this the ranker would never see a law
            # compete with a policy, nor learn what a named place is worth.
            x, y = question_rows(ix, reader, q, replace(settings, scope_by_place=False))
            out.add(f"{name} (all documents)", x, y, DEV_WEIGHT, f"{name}:{q.id}")
    log.info("%s: %d questions in %.1fs", name, len(questions), time.perf_counter() - started)


def collect(index_dir: Path, progress: bool = True, settings=None, cross_fit: Sequence[Path] = ()) -> TrainingSet:
    """Features of every tuning-split question, over the index each dataset is asked over.

    ``cross_fit``: one index folder per fold, each embedded with the delta trained without that
    fold's questions (``python -m eval.tune_embedder --folds N --fold K``). The questions the embedder
    is tuned on then take their features from the index whose embedder never saw them, as new
    questions will; the others (policies_qa) from ``index_dir``."""
    from assistant.retrieval import DEFAULT_SETTINGS
    from eval.api import open_or_build, index_dir_for
    from eval.tune_embedder import DATASETS as EMBEDDER_DATASETS, fold_of

    settings = settings or DEFAULT_SETTINGS
    out = TrainingSet()
    for name in TRAIN_DATASETS:
        questions = tuning_questions(name)
        collections = collections_for(name)
        folds = list(cross_fit) if cross_fit and name in EMBEDDER_DATASETS else [index_dir]
        for k, folder in enumerate(folds):
            ix = open_or_build(index_dir_for(collections, folder), collections, progress)
            try:
                _add_questions(out, ix, name, [q for q in questions if len(folds) == 1
                                               or fold_of(f"{name}:{q.id}", len(folds)) == k], settings)
            finally:
                ix.close()
    return out


def _fit_stage(data: TrainingSet, columns: slice, rounds: int, params: dict, init_score=None):
    import lightgbm

    x, y = np.concatenate(data.rows)[:, columns], np.concatenate(data.labels)
    groups = [len(r) for r in data.rows]
    weights = np.concatenate([np.full(len(r), w, dtype=np.float32) for r, w in zip(data.rows, data.weights)])
    train = lightgbm.Dataset(x, y, group=groups, weight=weights, init_score=init_score, free_raw_data=False)
    return lightgbm.train(params, train, num_boost_round=rounds)


def fit(data: TrainingSet, rounds: int = ROUNDS, params: dict | None = None, memory_rounds: int = MEMORY_ROUNDS):
    """The two stages (assistant.rerank.learned_scores): the first over the base features; the second
    over the memory's, boosted from the first's scores, so it learns only what the memory adds."""
    from assistant.ranking import BASE_FEATURES

    n = len(BASE_FEATURES)
    first = _fit_stage(data, slice(0, n), rounds, params or PARAMS)
    init = np.concatenate([first.predict(r[:, :n], num_threads=1) for r in data.rows])
    second = _fit_stage(data, slice(n, None), memory_rounds, params or PARAMS, init)
    return first, second


def predict(models, x: np.ndarray) -> np.ndarray:
    from assistant.rerank import learned_scores

    return learned_scores(x, *models)


# What --cv compares: (name, rounds, parameter changes). Each is trained on four folds of the tuning
# questions and scored on the fifth; a question and its all-documents copy stay in one fold.
CV_GRID = (
    ("chosen", ROUNDS, {}),
    ("300 rounds", 300, {}),
    ("1200 rounds", 1200, {}),
    ("4 leaves", ROUNDS, {"num_leaves": 4}),
    ("min 300 per leaf", ROUNDS, {"min_data_in_leaf": 300}),
    ("no feature sampling", ROUNDS, {"feature_fraction": 1.0}),
    ("dev weight 1", ROUNDS, {"dev_weight": 1.0}),
    ("dev weight 4", ROUNDS, {"dev_weight": 4.0}),
    ("second stage 100 rounds", ROUNDS, {"memory_rounds": 100}),
    ("second stage 400 rounds", ROUNDS, {"memory_rounds": 400}),
    ("second stage 800 rounds", ROUNDS, {"memory_rounds": 800}),
)
CV_FOLDS = 5


def _fold(key: str) -> int:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % CV_FOLDS


def out_of_fold(data: TrainingSet, rounds: int, params: dict,
                memory_rounds: int = MEMORY_ROUNDS) -> dict[str, tuple[float, ...]]:
    """hit@1, hit@5 and hit@10 of each dataset's held-out questions (the ranker alone, before the kept
    rules)."""
    hits: dict[str, list[tuple[bool, ...]]] = {}
    folds = [_fold(k) for k in data.keys]
    for fold in range(CV_FOLDS):
        models = fit(data.subset([i for i, f in enumerate(folds) if f != fold]), rounds, params, memory_rounds)
        for i in (i for i, f in enumerate(folds) if f == fold):
            order = np.argsort(-predict(models, data.rows[i]), kind="stable")
            ranked = data.labels[i][order]
            hits.setdefault(data.sets[i], []).append((bool(ranked[0]), bool(ranked[:5].any()),
                                                      bool(ranked[:10].any())))
    return {name: tuple(float(np.mean(column)) for column in zip(*hs)) for name, hs in sorted(hits.items())}


def cross_validate(index_dir: Path, progress: bool = True, only: Sequence[str] = ()) -> str:
    """Out-of-fold figures of the CV_GRID settings (those named in ``only``, or all), as a table."""
    data = collect(index_dir, progress)
    lines = ["数据集（只含候选中有正确条款的问题）  设置  hit@1  hit@5  hit@10"]
    for name, rounds, changes in CV_GRID:
        if only and name not in only:
            continue
        started = time.perf_counter()
        params = {**PARAMS, **changes}
        weight = params.pop("dev_weight", DEV_WEIGHT)
        memory_rounds = params.pop("memory_rounds", MEMORY_ROUNDS)
        data.weights = [1.0 if s == "stard" else weight for s in data.sets]
        figures = out_of_fold(data, rounds, params, memory_rounds)
        log.info("%s: %.0fs", name, time.perf_counter() - started)
        lines += [f"{dataset}  {name}  " + "  ".join(f"{h:.3f}" for h in hs) for dataset, hs in figures.items()]
    return "\n".join(lines)


def train(index_dir: Path, out_dir: Path, progress: bool = True, cross_fit: Sequence[Path] = ()) -> dict:
    from assistant.memory import forget
    from assistant.ranking import FEATURES
    from assistant.rerank import MEMORY_MODEL_FILE, MODEL_FILE, MODEL_INFO
    from assistant.retrieval import DEFAULT_SETTINGS

    memory = build_memory()
    memory.save(out_dir)
    forget()
    log.info("memory: %d earlier questions", len(memory))
    data = collect(index_dir, progress, replace(DEFAULT_SETTINGS, memory_dir=str(out_dir)), cross_fit)
    first, second = fit(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    first.save_model(str(out_dir / MODEL_FILE))
    second.save_model(str(out_dir / MEMORY_MODEL_FILE))
    gains = np.concatenate([first.feature_importance("gain"), second.feature_importance("gain")])
    info = {"features": list(FEATURES), "data_hash": data_hash(), "params": PARAMS, "rounds": ROUNDS,
            "memory_rounds": MEMORY_ROUNDS, "cross_fit_folds": len(cross_fit),
            "dev_weight": DEV_WEIGHT, "questions": data.used, "memory": len(memory), "no_gold_among_candidates": data.missed,
            "candidates": int(sum(len(r) for r in data.rows)),
            "gain": {f: round(float(g), 1) for f, g in sorted(zip(FEATURES, gains), key=lambda fg: -fg[1])}}
    (out_dir / MODEL_INFO).write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return info


def main(argv: list[str] | None = None) -> int:
    from assistant.indexing import default_index_dir
    from assistant.rerank import model_dir

    parser = argparse.ArgumentParser(prog="python -m eval.train",
                                     description="训练检索重排序模型（LambdaMART），只用 STARD 的 train 部分和评测集的 dev 部分")
    parser.add_argument("--index-dir", type=Path, default=None, help="知识库索引目录（默认 .ipqa/index；STARD 用其旁边的索引）")
    parser.add_argument("--out", type=Path, default=None, help="模型输出目录（默认 assistant/data）")
    parser.add_argument("--cv", action="store_true",
                        help="不写模型：按问题分 5 折交叉验证，比较几组训练参数的折外 hit@1 / hit@5 / hit@10")
    parser.add_argument("--only", nargs="+", default=(), metavar="NAME", help="--cv 只比较这几组设置（按名称）")
    parser.add_argument("--cross-fit", nargs="+", type=Path, default=(), metavar="DIR",
                        help="每折一个索引目录，各用不含该折问题训练的微调增量建立（eval.tune_embedder --folds N --fold K）："
                             "向量模型调参过的问题从这里取折外特征")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cv:
        print(cross_validate(args.index_dir or default_index_dir(), only=args.only))
        return 0
    info = train(args.index_dir or default_index_dir(), args.out or model_dir(), cross_fit=args.cross_fit)
    print(json.dumps({k: info[k] for k in ("questions", "no_gold_among_candidates", "candidates", "data_hash")},
                     ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
