"""Train the scope model (assistant/scope.py): ``python -m eval.train_scope``, about two minutes.

Tuning questions only, never a test split:

- in scope: the answerable questions of the ``dev`` splits of policies_qa and laws_qa, over the app's
  knowledge base; and STARD's ``train`` questions over the laws they cite (``.ipqa/index-stard_laws``);
- out of scope: the same STARD ``train`` questions over the app's knowledge base, which holds none
  of their statutes (a question whose statute it does hold is left out);
- in scope too: the 106 everyday questions written for the bundled IP laws and the 40 short questions
  (``eval/training``), over the app's knowledge base. The tuning sets hold few questions put in a
  layperson's words about IP, and none as short as people type them; without them the threshold could
  not see what it costs such questions.

One feature compares the question with the rest of Chinese law, the law map of ``eval/law_map.py``
(``assistant/data/law_map.npy``); its sha256 is recorded, so a map rebuilt without retraining is caught.

The threshold is chosen on out-of-fold probabilities (five folds by question id): the highest that
refuses at most ``MAX_REFUSED`` of the in-scope questions and none of the app's own dev questions.
Run it again after ``python -m eval.train``: the features come from the ranked hits. Writes
``assistant/data/scope.json`` with the figures and the sha256 of the data (a test checks it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from assistant.scope import LAW_MAP_FILE, SCOPE_FILE, fit, held_whole
from eval.law_map import array_hash
from eval.questions import (DEFAULT_COLLECTIONS, SHORT_WRITTEN, TUNING_SPLITS, WRITTEN, collections_for, load_dataset,
                            training_bytes, training_dir)
from index.core import DEFAULT_INDEX_DIR

SCOPE_DATASETS = ("stard", "policies_qa", "laws_qa", WRITTEN, SHORT_WRITTEN)
MAX_REFUSED = 0.01  # of the in-scope tuning questions, pooled (see choose_threshold and docs/answers.md)
L2 = 1.0
FOLDS = 5
OWN_ROWS = "dev, own knowledge base"  # the rows of the app's own questions, over its own documents
WRITTEN_ROWS = "written, own knowledge base"  # the everyday questions of eval/training, over the same
SHORT_ROWS = "short, own knowledge base"  # the short questions of eval/training, over the same


def data_hash() -> str:
    """sha256 of the datasets the model is trained on."""
    h = hashlib.sha256()
    for name in SCOPE_DATASETS:
        h.update(training_bytes(name))
    return h.hexdigest()


def _assistants(index_dir: Path, progress: bool) -> dict:
    """The assistant over the app's knowledge base ("own") and over STARD's laws ("stard")."""
    from assistant.service import Assistant
    from eval.api import index_dir_for, open_or_build

    public_collections = collections_for("stard")
    return {"own": Assistant(open_or_build(index_dir, DEFAULT_COLLECTIONS, progress)),
            "stard": Assistant(open_or_build(index_dir_for(public_collections, index_dir), public_collections, progress))}


def collect(index_dir: Path, progress: bool = True, cross_fit: Sequence[Path] = ()
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str], str]:
    """(features, in-scope labels, whether the model judges each question, question ids, which set
    each row is from, the embedder's name). ``cross_fit``: as in ``eval.train.collect``, the questions
    the embedder was tuned on are asked over the index of the fold whose delta never saw them."""
    from eval.tune_embedder import DATASETS as EMBEDDER_DATASETS, fold_of

    base = _assistants(index_dir, progress)
    folds = [_assistants(Path(d), progress) for d in cross_fit]
    held = {d.doc_id for d in base["own"].index.documents()}
    dev = [(name, q) for name in ("policies_qa", "laws_qa") for q in load_dataset(name).questions
           if q.split in TUNING_SPLITS and q.gold]
    public = [("stard", q) for q in load_dataset("stard").questions if q.split in TUNING_SPLITS and q.gold]
    outside = [(n, q) for n, q in public if not any(g.clause_id.split(":", 1)[0] in held for g in q.gold)]
    written = [(WRITTEN, q) for q in load_dataset(training_dir() / f"{WRITTEN}.jsonl").questions]
    short = [(SHORT_WRITTEN, q) for q in load_dataset(training_dir() / f"{SHORT_WRITTEN}.jsonl").questions]
    parts = [(OWN_ROWS, "own", dev, 1), ("STARD train, its laws", "stard", public, 1),
             ("STARD train, own knowledge base", "own", outside, 0), (WRITTEN_ROWS, "own", written, 1),
             (SHORT_ROWS, "own", short, 1)]
    x, y, judged, ids, sets = [], [], [], [], []
    for label, which, questions, in_scope in parts:
        if progress:
            print(f"{label}: {len(questions)} questions", file=sys.stderr)
        for name, q in questions:
            tuned_on = folds and name in EMBEDDER_DATASETS
            assistant = folds[fold_of(f"{name}:{q.id}", len(folds))][which] if tuned_on else base[which]
            features, judges = assistant.scope_features(q.question, q.history)
            x.append(features)
            judged.append(judges)
        y += [in_scope] * len(questions)
        ids += [q.id for _, q in questions]
        sets += [label] * len(questions)
    return np.vstack(x), np.array(y, dtype=np.float64), np.array(judged), ids, sets, base["own"].index.embedder.name


def _fold(key: str) -> int:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % FOLDS


def out_of_fold(x: np.ndarray, y: np.ndarray, ids: list[str]) -> np.ndarray:
    """Each row's probability from a model that did not see its question (on either side)."""
    folds = np.array([_fold(i) for i in ids])
    p = np.zeros(len(y))
    for f in range(FOLDS):
        held = folds == f
        model = fit(x[~held], y[~held], L2)
        p[held] = [model.probability(row) for row in x[held]]
    return p


def choose_threshold(p: np.ndarray, y: np.ndarray, judged: np.ndarray, own: np.ndarray) -> float:
    """The highest threshold (in steps of 0.005) refusing at most MAX_REFUSED of the in-scope rows and
    none of the app's own (``own``: the dev questions over its knowledge base). A question the model
    does not judge is never refused by it. The app's own questions are few in the pool (139 of 814), so
    a pooled budget alone may be spent on them: with the law map and a 1.5% budget one policies dev
    question (support for 服务机构) was refused. The budget (1%) is past the knee of the curve, where
    in-scope refusals start to climb (0.3% up to it): measured, the public questions outside the
    knowledge base gained far more refusals than the in-scope ones lost (docs/answers.md)."""
    best = 0.0
    for t in np.arange(0.005, 0.5, 0.005):
        refused = judged & (p < t)
        if refused[y == 1].mean() <= MAX_REFUSED and not refused[own].any():
            best = round(float(t), 3)
    return best


def train(index_dir: Path, out_dir: Path, progress: bool = True, cross_fit: Sequence[Path] = ()) -> dict:
    x, y, judged, ids, sets, embedder = collect(index_dir, progress, cross_fit)
    judged = judged & ~np.array([held_whole(row) for row in x], dtype=bool)  # never refused (ScopeModel.refuses)
    p = out_of_fold(x, y, ids)
    threshold = choose_threshold(p, y, judged, np.array(sets) == OWN_ROWS)
    model = fit(x, y, L2, threshold, embedder)
    sets_, refused_ = np.array(sets), judged & (p < threshold)
    refused = {s: round(float(refused_[sets_ == s].mean()), 4) for s in dict.fromkeys(sets)}
    info = {**model.to_json(), "l2": L2, "max_refused": MAX_REFUSED, "data_hash": data_hash(),
            "law_map_sha256": array_hash(resources.files("assistant") / "data" / LAW_MAP_FILE),
            "rows": {s: int((sets_ == s).sum()) for s in dict.fromkeys(sets)},
            "out_of_fold_refused": refused, "cross_fit_folds": len(cross_fit)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SCOPE_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="训练判断问题是否在知识库范围内的模型（只用调参数据）")
    parser.add_argument("--index-dir", default=str(DEFAULT_INDEX_DIR), help="索引目录（默认 .ipqa/index）")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "assistant" / "data"),
                        help="模型输出目录（默认 assistant/data）")
    parser.add_argument("--quiet", action="store_true", help="不显示进度")
    parser.add_argument("--cross-fit", nargs="+", type=Path, default=(), metavar="DIR",
                        help="每折一个索引目录（同 python -m eval.train --cross-fit）：向量模型调参过的问题从这里取特征")
    args = parser.parse_args(argv)
    info = train(Path(args.index_dir), Path(args.out), progress=not args.quiet, cross_fit=args.cross_fit)
    print(json.dumps({k: info[k] for k in ("features", "weights", "threshold", "rows", "out_of_fold_refused")},
                     ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
