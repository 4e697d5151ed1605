"""Eval datasets: sample questions with the clauses and exact spans that answer them.

One JSON object per line::

    {"id": "p001", "question": "…", "type": "subsidy",
     "history": [{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}],
     "gold": [{"clause_id": "jingmen-hitech-2023:四、/(四)/15.", "span": "…exact words…"}],
     "answer_keywords": ["12家以上"]}

``gold`` is empty for unanswerable questions. ``span`` is copied verbatim from
the clause (the figure or sentence that answers); ``answer_keywords`` are what
a correct answer must contain, written as the source writes them.

Near-miss unanswerable questions (issue 17) also say what the documents lack, ``missing``: one of
``subject`` (the thing asked about, with all its modifiers: 高价值发明专利, not 发明专利), ``figure``
(the kind of value asked for: a score, a count of applications), ``period`` (the year or plan period)
or ``place``; and ``note``, what was searched to be sure. ``yesno`` questions ("…有没有资助") and
``noplace`` questions (a policy question naming no place, answered by several documents) give gold
per document.

``split`` is fixed once, by a hash of the id (``split_of``): ``dev`` (or ``train`` for STARD) is
for tuning and reading failures, ``test`` is only reported. Every dataset is split the same way,
half and half; the validator refuses a question whose recorded split is not its hash's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

TYPES = ("goal", "subsidy", "procedure", "fact", "definition", "multi", "unanswerable", "followup", "stard", "yesno",
         "noplace")
MISSING = ("subject", "figure", "period", "place")  # what a near-miss question asks that no document states
TUNING_SPLITS = ("dev", "train")  # the splits whose failures may be read and tuned on
TRAIN_SPLIT = {"stard": "train"}  # datasets whose tuning half is called train (the ranker learns on it)


# The bundled collections each dataset is asked over (the default: the app's knowledge base). STARD is
# asked over the IP laws and every law its questions cite.
DEFAULT_COLLECTIONS = ("policies", "laws")
DATASET_COLLECTIONS = {"stard": ("laws", "stard_laws")}


def collections_for(dataset: str) -> tuple[str, ...]:
    return DATASET_COLLECTIONS.get(dataset, DEFAULT_COLLECTIONS)


def split_of(question_id: str, dataset: str = "") -> str:
    """The fixed split of a question: ``test`` for half the ids (by a hash), ``dev`` (``train``) for the rest."""
    if int(hashlib.sha256(str(question_id).encode("utf-8")).hexdigest(), 16) % 2:
        return "test"
    return TRAIN_SPLIT.get(dataset, "dev")


@dataclass(frozen=True)
class Gold:
    clause_id: str
    span: str

    @property
    def doc_id(self) -> str:
        return self.clause_id.split(":", 1)[0]


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    type: str
    history: tuple[dict, ...] = ()
    gold: tuple[Gold, ...] = ()
    answer_keywords: tuple[str, ...] = ()
    dataset: str = ""
    split: str = "dev"
    missing: str = ""  # near-miss unanswerable questions: the part no document states (MISSING)
    note: str = ""  # what was searched to be sure of it
    yes_no: str = ""  # a yes/no question: the answer its gold clauses give ("yes" or "no")

    @property
    def answerable(self) -> bool:
        return bool(self.gold)

    @property
    def label(self) -> str:
        """Where the question's figures are reported: dataset/split (policies_qa/test)."""
        return f"{self.dataset}/{self.split}"


@dataclass
class Dataset:
    name: str
    questions: list[Question] = field(default_factory=list)

    @property
    def scores_answers(self) -> bool:
        """Whether answers are scored too (the dataset says what an answer must contain, or holds
        questions to refuse); STARD gives only the relevant articles."""
        return any(q.answer_keywords or not q.gold for q in self.questions)


def dataset_dir() -> Path:
    return Path(str(resources.files("eval") / "datasets"))


# What a model is trained on from a dataset row; the labels only eval reads (answer keywords, yes_no,
# missing, note) are left out, so adding one does not call for retraining.
TRAINED_FIELDS = ("id", "question", "type", "history", "gold", "split")


def training_dir() -> Path:
    """Questions kept for training only, never evaluated on: ``ip_laws_written.jsonl``, 106 everyday
    questions written for the bundled IP laws (docs/retrieval.md, "Questions written for the bundled
    IP laws"), and ``short_written.jsonl``, 40 short ones (at most 17 characters, as people type them:
    20 over the policies, 20 over the IP laws; docs/answers.md), each with its gold clause and every row
    split ``train``."""
    return Path(str(resources.files("eval") / "training"))


WRITTEN = "ip_laws_written"  # in training_dir()
SHORT_WRITTEN = "short_written"  # in training_dir(): 40 short questions (the scope model's in-scope rows)


def training_bytes(name: str) -> bytes:
    """The rows of bundled dataset ``name`` (or of training-only set ``name`` in training_dir()) as the
    trainers read them, for the hash their models record."""
    path = dataset_dir() / f"{name}.jsonl"
    if not path.exists():
        path = training_dir() / f"{name}.jsonl"
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append(json.dumps({k: row.get(k) for k in TRAINED_FIELDS}, ensure_ascii=False, sort_keys=True))
    return "\n".join(rows).encode("utf-8")


def bundled_datasets() -> list[str]:
    return sorted(p.stem for p in dataset_dir().glob("*.jsonl"))


# Datasets made from another one's questions asked where their answers are not: STARD's public
# questions over the app's knowledge base, which holds none of their statutes (they are civil and
# criminal law; the bundled laws are IP law). Every one should be refused: the honest "not found"
# figure for real questions outside the documents, written by nobody on this project.
OUTSIDE_DATASETS = {"stard_outside": "stard"}


def outside_dataset(name: str) -> Dataset:
    """``name``'s source questions with their gold taken away (each one to refuse), same splits."""
    source = load_dataset(OUTSIDE_DATASETS[name])
    held = {d for c in DEFAULT_COLLECTIONS for d in _collection_doc_ids(c)}
    return Dataset(name, [replace(q, gold=(), answer_keywords=(), type="outside", dataset=name)
                          for q in source.questions if not any(g.doc_id in held for g in q.gold)])


def _collection_doc_ids(name: str) -> set[str]:
    from corpus import load_collection

    return {d.doc_id for d in load_collection(name).documents}


SPLITS = ("dev", "train", "test")


def load_dataset(name_or_path: str | Path) -> Dataset:
    """A dataset by bundled name ("policies_qa"), an outside set's name ("stard_outside") or path to a
    .jsonl file; "name/test" (or /dev, /train) keeps one split of it, as the report names it."""
    from corpus.errors import InvalidParameter

    base, _, split = str(name_or_path).rpartition("/")
    if split in SPLITS and base and not Path(name_or_path).exists():
        whole = load_dataset(base)
        kept = [q for q in whole.questions if q.split == split]
        if not kept:
            held = sorted({q.split for q in whole.questions})
            raise InvalidParameter(f"评测集「{whole.name}」没有 {split} 部分的问题（它分为：{'、'.join(held)}）")
        return Dataset(whole.name, kept)
    if str(name_or_path) in OUTSIDE_DATASETS:
        return outside_dataset(str(name_or_path))
    path = Path(name_or_path)
    if not path.suffix:
        path = dataset_dir() / f"{name_or_path}.jsonl"
    if not path.exists():
        raise InvalidParameter(f"没有评测集「{name_or_path}」。内置的有："
                               f"{'、'.join(bundled_datasets() + list(OUTSIDE_DATASETS))}；也可以给出 .jsonl 文件的路径，"
                               "或在名称后加 /dev、/train、/test 只评测其中一部分")
    return Dataset(path.stem, _read_questions(path))


def _read_questions(path: Path) -> list[Question]:
    from corpus.errors import InvalidParameter

    questions = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(Question(
                id=row["id"], question=row["question"], type=row["type"],
                history=tuple(row.get("history") or ()),
                gold=tuple(Gold(g["clause_id"], g["span"]) for g in row.get("gold") or ()),
                answer_keywords=tuple(row.get("answer_keywords") or ()), dataset=path.stem,
                missing=row.get("missing") or "", note=row.get("note") or "", yes_no=row.get("yes_no") or "",
                split=row.get("split") or split_of(row["id"], path.stem)))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidParameter(f"评测集 {path.name} 第 {n} 行无法读取（{type(exc).__name__}: {exc}）；"
                                   "每行应是一个 JSON 对象，至少有 id、question、type") from exc
    return questions


def validate(dataset: Dataset, documents: dict) -> list[str]:
    """Problems with a dataset against loaded documents ({doc_id: Document}); empty when sound.

    Every gold clause must exist and contain its span verbatim; every answer
    keyword must appear in some gold span's clause; ids unique; types known;
    unanswerable questions have no gold, answerable ones have some.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for q in dataset.questions:
        where = f"{dataset.name}:{q.id}"
        if q.id in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(q.id)
        if q.type not in TYPES:
            problems.append(f"{where}: unknown type {q.type!r}")
        if q.split != split_of(q.id, dataset.name):
            problems.append(f"{where}: split {q.split!r}, but its id's hash gives {split_of(q.id, dataset.name)!r}")
        if (q.type == "unanswerable") != (not q.gold):
            problems.append(f"{where}: unanswerable questions (and only they) have no gold")
        if q.yes_no and (q.yes_no not in ("yes", "no") or not q.gold):
            problems.append(f"{where}: yes_no is 'yes' or 'no', on an answerable question")
        if q.missing and (q.missing not in MISSING or q.gold or not q.note):
            problems.append(f"{where}: missing must be one of {MISSING}, on an unanswerable question with a note")
        if q.type == "noplace" and len({g.doc_id for g in q.gold}) < 2:
            problems.append(f"{where}: a no-place question needs gold clauses from two documents or more")
        if q.type == "followup" and not q.history:
            problems.append(f"{where}: a follow-up needs history")
        if q.type == "multi" and len({g.doc_id for g in q.gold}) < 2:
            problems.append(f"{where}: a multi question needs gold clauses from two documents or more")
        texts = []
        for g in q.gold:
            doc = documents.get(g.doc_id)
            if doc is None:
                problems.append(f"{where}: unknown document {g.doc_id}")
                continue
            try:
                clause = doc.clause(g.clause_id)
            except KeyError:
                problems.append(f"{where}: unknown clause {g.clause_id}")
                continue
            if g.span not in clause.text:
                problems.append(f"{where}: span not verbatim in {g.clause_id}: {g.span!r}")
            texts.append(clause.text)
        for kw in q.answer_keywords:
            if texts and not any(kw in t for t in texts):
                problems.append(f"{where}: keyword {kw!r} not in any gold clause")
    return problems


def main() -> int:
    """Validate the bundled datasets: ``python -m eval.questions``."""
    import sys

    from corpus import load_collection

    docs = {d.doc_id: d for name in ("policies", "laws", "stard_laws") for d in load_collection(name).documents}
    total = 0
    for name in bundled_datasets():
        ds = load_dataset(name)
        problems = validate(ds, docs)
        counts: dict[str, int] = {}
        for q in ds.questions:
            counts[q.type] = counts.get(q.type, 0) + 1
        splits = {sp: sum(q.split == sp for q in ds.questions) for sp in dict.fromkeys(q.split for q in ds.questions)}
        print(f"{ds.name}: {len(ds.questions)} questions {counts}, splits {splits}; {len(problems)} problems")
        for p in problems:
            print("  " + p)
        total += len(problems)
    return 1 if total else 0


if __name__ == "__main__":
    raise SystemExit(main())
