"""Fine-tune the embedder on the tuning questions: ``python -m eval.tune_embedder``.

A low-rank delta (LoRA, rank 8) on the attention projections of e5-small's twelve layers is trained
as a bi-encoder: each tuning question (STARD ``train``, laws_qa ``dev``; never a ``test`` split)
against a chunk of its gold clause, the other questions' chunks and three of its own hard
negatives (the chunks the unchanged model ranks 3rd to 40th that are not gold), softmax at
temperature 0.05. Only the delta is trained (295k numbers against the model's 118M), so the model
keeps what it knew and the file is small enough to ship: ``index/data/e5_delta.npz``, with
``e5_delta.json`` recording the questions, the parameters, the losses and the sha256 of the data.
``index.e5_tuned`` adds it to the converted model when the embedder is first loaded.

A fifth of the questions (by a hash of their ids) is kept out of training; after each epoch the
record gives where their gold ranks among the chunks the unchanged model put in their top 40 (how
the epochs were chosen; the delta is the one trained on the other four fifths).
Training takes about 25 minutes on two cores. Torch's kernels are deterministic on one machine
(fixed seeds); another CPU may give a slightly different delta.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.questions import collections_for, training_bytes

log = logging.getLogger(__name__)

DATASETS = ("stard", "laws_qa")  # policies_qa dev: a learned adapter memorised its five policies
RANK, ALPHA = 8, 16
TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")
LEARNING_RATE, EPOCHS, BATCH, NEGATIVES, TEMPERATURE = 3e-4, 2, 16, 3, 0.05
POOL = 60  # dense candidates read per question; negatives are ranks 3..40 of them that are not gold
QUERY_TOKENS, PASSAGE_TOKENS = 64, 192
SEED = 0


@dataclass
class Pair:
    """One tuning question: its gold chunks (best first) and its hard negatives, as texts."""

    key: str
    question: str
    positives: list[str]
    negatives: list[str]

    @property
    def held_out(self) -> bool:
        return fold_of(self.key, 5) == 0


def fold_of(key: str, folds: int) -> int:
    """The fold of a question ("dataset:id") among ``folds``, fixed by a hash of its key: the held-out
    fifth here, and the cross-fitting folds (``--fold``; ``eval.train --cross-fit``)."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % folds


def _pairs_of(ix, questions, name: str) -> list[Pair]:
    out = []
    for q in questions:
        gold = {g.clause_id for g in q.gold}
        golds = {i for ids in ix.clause_chunk_ids(sorted(gold)).values() for i in ids}
        ranked = [i for i, _ in ix.dense(q.question, POOL)]
        if not golds:
            continue
        positives = [i for i in ranked if i in golds][:3] or sorted(golds)[:3]
        negatives = [i for i in ranked if i not in golds][2:40]
        chunks = ix.chunks(positives + negatives)
        out.append(Pair(f"{name}:{q.id}", q.question, [chunks[i].indexed_text for i in positives],
                        [chunks[i].indexed_text for i in negatives]))
    return out


def tuning_pairs(index_dir: Path, progress: bool = True) -> list[Pair]:
    """Every tuning question with a gold clause in its index, over the unchanged embedder."""
    from eval.api import index_dir_for, open_or_build
    from eval.train import tuning_questions

    out: list[Pair] = []
    for name in DATASETS:
        collections = collections_for(name)
        ix = open_or_build(index_dir_for(collections, index_dir), collections, progress)
        try:
            out += _pairs_of(ix, tuning_questions(name), name)
        finally:
            ix.close()
    return out


def _lora_layer(base):
    import torch

    class Lora(torch.nn.Module):
        """``base(x) + x A^T B^T · alpha/r``; B starts at zero, so training starts from the model itself."""

        def __init__(self):
            super().__init__()
            self.base = base
            self.a = torch.nn.Parameter(torch.randn(RANK, base.in_features) / math.sqrt(base.in_features))
            self.b = torch.nn.Parameter(torch.zeros(base.out_features, RANK))

        def forward(self, x):
            return self.base(x) + (x @ self.a.T @ self.b.T) * (ALPHA / RANK)

    return Lora()


def add_lora(model) -> dict:
    """Wrap every targeted Linear of the encoder; returns {weight name without ".weight": layer}."""
    layers = {}
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}"
            if full.startswith("encoder.layer.") and full.endswith(TARGETS):
                layers[full] = _lora_layer(child)
                setattr(module, child_name, layers[full])
    return layers


def encode(model, tokenizer, texts: list[str], max_tokens: int):
    """Mean-pooled, unit-length vectors, as the exported model computes them."""
    import torch

    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)


def held_out_ranks(model, tokenizer, pairs: list[Pair]) -> dict[str, float]:
    """hit@1 and hit@10 of the held-out questions among their own candidates (gold + hard negatives)."""
    import torch

    model.eval()
    ranks = []
    with torch.no_grad():
        for p in pairs:
            pool = list(dict.fromkeys(p.positives + p.negatives))
            q = encode(model, tokenizer, ["query: " + p.question], QUERY_TOKENS)[0]
            vectors = torch.cat([encode(model, tokenizer, ["passage: " + t for t in pool[i:i + 32]], PASSAGE_TOKENS)
                                 for i in range(0, len(pool), 32)])
            order = torch.argsort(-(vectors @ q)).tolist()
            ranks.append(min(order.index(pool.index(t)) for t in p.positives))
    model.train()
    return {"hit@1": float(np.mean([r == 0 for r in ranks])), "hit@10": float(np.mean([r < 10 for r in ranks])),
            "questions": len(ranks)}


def _batch_loss(model, tokenizer, batch: list[Pair], rng: random.Random):
    import torch

    texts, targets = [], []
    for p in batch:
        targets.append(len(texts))
        texts.append("passage: " + rng.choice(p.positives))
        texts += ["passage: " + t for t in rng.sample(p.negatives, min(NEGATIVES, len(p.negatives)))]
    q = encode(model, tokenizer, ["query: " + p.question for p in batch], QUERY_TOKENS)
    logits = q @ encode(model, tokenizer, texts, PASSAGE_TOKENS).T / TEMPERATURE
    return torch.nn.functional.cross_entropy(logits, torch.tensor(targets))


def train_delta(pairs: list[Pair], held: list[Pair], model_dir: Path) -> tuple[dict, list[dict]]:
    """Train the delta; returns {name.a / name.b: array} (B carries alpha/r) and one record per epoch."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    rng = random.Random(SEED)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="eager")
    model.requires_grad_(False)
    layers = add_lora(model)
    params = [p for layer in layers.values() for p in (layer.a, layer.b)]
    steps = EPOCHS * math.ceil(len(pairs) / BATCH)
    opt = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * max(0.0, 1 - s / steps))
    model.train()
    epochs = []
    order = list(pairs)
    for epoch in range(EPOCHS):
        rng.shuffle(order)
        started, losses = time.perf_counter(), []
        for start in range(0, len(order), BATCH):
            loss = _batch_loss(model, tokenizer, order[start:start + BATCH], rng)
            loss.backward()
            opt.step(), sched.step(), opt.zero_grad()
            losses.append(loss.item())
            log.info("epoch %d, batch %d/%d: loss %.3f", epoch + 1, len(losses), math.ceil(len(order) / BATCH),
                     float(np.mean(losses)))
        record = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4),
                  "seconds": round(time.perf_counter() - started, 1)}
        last = epoch == EPOCHS - 1  # ranking the held-out fifth takes five minutes: once, at the end
        epochs.append({**record, **(held_out_ranks(model, tokenizer, held) if held and last else {})})
        log.info("%s", epochs[-1])
    delta = {}
    for name, layer in layers.items():
        delta[f"{name}.a"] = layer.a.detach().numpy().astype(np.float32)
        delta[f"{name}.b"] = (layer.b.detach() * (ALPHA / RANK)).numpy().astype(np.float32)
    return delta, epochs


def data_hash() -> str:
    digest = hashlib.sha256()
    for name in DATASETS:
        digest.update(training_bytes(name))
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    from assistant.indexing import default_index_dir
    from index.e5_convert import ensure_e5_model
    from index.e5_tuned import DELTA_FILE, DELTA_INFO_FILE, save_delta

    parser = argparse.ArgumentParser(prog="python -m eval.tune_embedder",
                                     description="用调参问题（STARD train、laws_qa dev）微调向量模型（低秩增量），写出 index/data/e5_delta.npz")
    parser.add_argument("--index-dir", type=Path, help="知识库索引目录（默认 .ipqa/index；STARD 用其旁边的索引）；须用未微调的向量模型建立")
    parser.add_argument("--out", type=Path, help="输出目录（默认 index/data）")
    parser.add_argument("--folds", type=int, default=0, metavar="N",
                        help="交叉拟合：把调参问题按编号哈希分成 N 折（与 --fold 同用）")
    parser.add_argument("--fold", type=int, default=0, metavar="K",
                        help="只用第 K 折以外的问题训练（0 起），不留出检验；供 eval.train --cross-fit 生成折外特征")
    args = parser.parse_args(argv)
    if args.folds and not 0 <= args.fold < args.folds:
        parser.error("--fold 须在 0 与 --folds−1 之间")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pairs = tuning_pairs(args.index_dir or default_index_dir())
    if args.folds:  # cross-fitting: train on the other folds; the ranker's features of fold K use it
        held, train = [], [p for p in pairs if fold_of(p.key, args.folds) != args.fold]
    else:
        held, train = [p for p in pairs if p.held_out], [p for p in pairs if not p.held_out]
    log.info("%d questions, %d for training", len(pairs), len(train))
    delta, epochs = train_delta(train, held, ensure_e5_model())
    info = {"datasets": list(DATASETS), "questions": len(train), "held_out": len(held), "data_hash": data_hash(),
            **({"folds": args.folds, "fold": args.fold} if args.folds else {}), "rank": RANK,
            "alpha": ALPHA, "targets": list(TARGETS), "learning_rate": LEARNING_RATE, "epochs": epochs,
            "batch": BATCH, "negatives": NEGATIVES, "temperature": TEMPERATURE, "seed": SEED}
    out = save_delta(delta, info, args.out)
    print(f"已写出 {out / DELTA_FILE} 与 {out / DELTA_INFO_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
