"""``ipqa bench``: how ipqa's cost grows with the corpus, beside the pipeline a user would write
with LangChain defaults (RecursiveCharacterTextSplitter 500/50 + sentence-transformers encode +
faiss IndexFlatIP), on the same slices and questions.

Every figure is measured. Each stage of each size runs in a fresh child process, so its peak
RSS and cold start are its own: build ipqa, serve ipqa (cold start, search and ask latency),
build the baseline, serve the baseline.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

SEED = 13
DEFAULT_SIZES = (50, 200, 800)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2 ** 20


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def corpus_files(corpus: Path) -> list[Path]:
    """Every loadable file of the corpus in a fixed shuffled order, so each slice is a sample of the
    whole corpus and every smaller slice is inside the larger ones."""
    from corpus.documents import list_files
    from corpus.loaders import FORMATS

    files = [p for p in list_files(corpus) if p.suffix.lower() in FORMATS]
    random.Random(SEED).shuffle(files)
    return files


def bench_questions(name: str = "laws_qa") -> list[str]:
    from eval.questions import load_dataset

    return [q.question for q in load_dataset(name).questions if not q.history]


# --- the stages (each runs in its own process) ---------------------------------------------------


class CachedEmbedder:
    """An embedder whose passage vectors are kept in a file by text, so the second store built from
    the same slice (PostgreSQL after the folder) does not embed it again; the bench reports the
    embedding time of the first build and each store's own time beside it."""

    def __init__(self, inner, path: Path):
        import numpy as np

        from index.arrays import load_arrays

        self.inner, self.path, self.name = inner, Path(path), inner.name
        self.cache: dict[str, np.ndarray] = {}
        if self.path.exists():
            data = load_arrays(self.path)
            self.cache = dict(zip(data["keys"].tolist(), data["vectors"]))

    @property
    def dim(self) -> int:
        return self.inner.dim

    def load(self):
        getattr(self.inner, "load", lambda: None)()
        return self

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)

    def encode_passages(self, texts, *, progress: bool = False):
        import hashlib

        import numpy as np

        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in self.cache]
        if missing:
            fresh = self.inner.encode_passages([texts[i] for i in missing], progress=progress)
            self.cache.update({keys[i]: v for i, v in zip(missing, fresh)})
        return np.stack([self.cache[k] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)

    def save(self) -> None:
        import numpy as np

        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, keys=np.asarray(list(self.cache)), vectors=np.stack(list(self.cache.values())))


def stage_build_ipqa(files: list[str], index_dir: str, extra: str, embedder: str | None,
                     embed_cache: str | None = None) -> dict:
    from concurrent.futures import ProcessPoolExecutor

    from corpus.documents import load_one
    from corpus.loaders import DEFAULT_MAX_BYTES
    from corpus.types import Document
    from index.chunking import chunk_document
    from index.core import update_index
    from index.embedders import get_embedder

    from index.core import disk_bytes

    emb = get_embedder(embedder) if embedder else get_embedder()
    if embed_cache:
        emb = CachedEmbedder(emb, Path(embed_cache))
    getattr(emb, "load", lambda: None)()
    started = time.perf_counter()
    jobs = [(Path(f), f"d{i:05d}-{Path(f).stem}", "bench", DEFAULT_MAX_BYTES) for i, f in enumerate(files)]
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        loaded = list(pool.map(load_one, jobs, chunksize=8))
    docs = [d for d in loaded if isinstance(d, Document)]
    chunks = sum(len(chunk_document(d)) for d in docs)
    load_seconds = time.perf_counter() - started
    report = update_index(index_dir, add=[(d, "bench") for d in docs], embedder=emb, rebuild=True)
    size_mb = disk_bytes(index_dir) / 2 ** 20
    # one more document into the finished index: an incremental add, not a rebuild
    from corpus import load_document

    t = time.perf_counter()
    add = update_index(index_dir, add=[(load_document(extra, doc_id="bench-extra"), "bench")], embedder=emb)
    add_seconds = time.perf_counter() - t
    if embed_cache:
        emb.save()
    return {"documents": len(docs), "failures": len(loaded) - len(docs), "clauses": sum(len(d.clauses) for d in docs),
            "chunks": chunks, "load_seconds": load_seconds, "embed_seconds": report.embed_seconds,
            "chunks_per_second": report.chunks_per_second, "bm25_seconds": report.keyword_seconds,
            "build_seconds": load_seconds + report.total_seconds, "index_mb": size_mb,
            "store_seconds": report.total_seconds - report.embed_seconds,
            "add_one_seconds": add_seconds, "add_one_store_seconds": add.total_seconds - add.embed_seconds,
            "add_one_chunks": add.chunks_embedded, "peak_rss_mb": _rss_mb()}


def stage_serve_ipqa(index_dir: str, questions: list[str]) -> dict:
    t = time.perf_counter()
    from assistant.service import Assistant

    assistant = Assistant.open(index_dir, llm=None)
    assistant.index.load_embedder()
    assistant.search("专利权的期限")
    cold = time.perf_counter() - t
    search_ms, ask_ms = [], []
    for q in questions:
        assistant.index.clear_query_cache()
        t = time.perf_counter()
        assistant.search(q, k=10)
        search_ms.append((time.perf_counter() - t) * 1000)
        assistant.index.clear_query_cache()
        t = time.perf_counter()
        assistant.ask(q)
        ask_ms.append((time.perf_counter() - t) * 1000)
    figures = {"cold_start_seconds": cold, "search_p50_ms": _pct(search_ms, .5),
               "search_p95_ms": _pct(search_ms, .95), "ask_p50_ms": _pct(ask_ms, .5), "ask_p95_ms": _pct(ask_ms, .95),
               "serve_rss_mb": _rss_mb()}
    if assistant.index.shared:  # the database's HNSW is pgvector's own: not compared here
        return figures
    return figures | _approximate(assistant.index, questions)


def _approximate(index, questions: list[str]) -> dict:
    """HNSW against exact search on this index's real embeddings: recall@10 and time per query."""
    import numpy as np

    from index.stores import FaissStore

    exact = index.vectors
    graph = FaissStore(exact.dim, approx_threshold=0)
    ids = exact.ids()
    graph.add(ids, exact.index.reconstruct_batch(ids))
    t = time.perf_counter()
    graph._build_hnsw()
    build = time.perf_counter() - t
    recall, exact_ms, hnsw_ms = [], [], []
    for q in questions:
        v = index.query_vector(q)
        t = time.perf_counter()
        want = {i for i, _ in exact.search(v, 10, exact=True)}
        exact_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        got = {i for i, _ in graph.search(v, 10)}
        hnsw_ms.append((time.perf_counter() - t) * 1000)
        recall.append(len(want & got) / max(1, len(want)))
    return {"hnsw_recall_at_10": float(np.mean(recall)), "hnsw_build_seconds": build,
            "exact_vector_p50_ms": _pct(exact_ms, .5), "hnsw_vector_p50_ms": _pct(hnsw_ms, .5)}


def stage_vector_scaling(index_dir: str, sizes: list[int]) -> dict:
    """Time of one exact and one HNSW vector search as the store grows, on this index's real vectors
    tiled (with a little noise) up to each size. Only times: recall is measured on real data above."""
    import faiss
    import numpy as np

    from index.stores import FaissStore

    base = FaissStore.load(Path(index_dir)).index
    real = base.index.reconstruct_n(0, base.ntotal)
    rng = np.random.default_rng(SEED)
    queries = real[rng.choice(len(real), 50, replace=False)]
    out = {}
    for n in sizes:
        reps = -(-n // len(real))
        vecs = np.tile(real, (reps, 1))[:n] + rng.normal(0, 0.01, (n, real.shape[1])).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        flat = faiss.IndexFlatIP(real.shape[1])
        flat.add(vecs)
        t = time.perf_counter()
        graph = faiss.IndexHNSWFlat(real.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = 80
        graph.add(vecs)
        build = time.perf_counter() - t
        graph.hnsw.efSearch = 128
        times = {"exact": [], "hnsw": []}
        for q in queries:
            for name, ix in (("exact", flat), ("hnsw", graph)):
                t = time.perf_counter()
                ix.search(q.reshape(1, -1), 10)
                times[name].append((time.perf_counter() - t) * 1000)
        out[str(n)] = {"exact_p50_ms": _pct(times["exact"], .5), "exact_p95_ms": _pct(times["exact"], .95),
                       "hnsw_p50_ms": _pct(times["hnsw"], .5), "hnsw_p95_ms": _pct(times["hnsw"], .95),
                       "hnsw_build_seconds": build}
    return out


def _plain_model():
    """sentence-transformers as a user loads it: fp32 torch, default settings."""
    from sentence_transformers import SentenceTransformer

    from index.e5_convert import ensure_e5_model

    return SentenceTransformer(str(ensure_e5_model()), device="cpu")


def stage_build_baseline(files: list[str], out_dir: str) -> dict:
    import faiss
    import numpy as np
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    model = _plain_model()
    started = time.perf_counter()
    texts = []
    for f in files:
        try:
            texts.append(Path(f).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)
    chunks = [c for t in texts for c in splitter.split_text(t)]
    load_seconds = time.perf_counter() - started
    t = time.perf_counter()
    vectors = model.encode(["passage: " + c for c in chunks], normalize_embeddings=True)
    embed_seconds = time.perf_counter() - t
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(out / "index.faiss"))
    (out / "chunks.json").write_text(json.dumps(chunks, ensure_ascii=False), encoding="utf-8")
    return {"documents": len(texts), "chunks": len(chunks), "load_seconds": load_seconds,
            "embed_seconds": embed_seconds, "chunks_per_second": len(chunks) / embed_seconds if embed_seconds else 0,
            "build_seconds": time.perf_counter() - started, "index_mb": _du_mb(out), "peak_rss_mb": _rss_mb()}


def stage_serve_baseline(out_dir: str, questions: list[str]) -> dict:
    t = time.perf_counter()
    import faiss

    model = _plain_model()
    index = faiss.read_index(str(Path(out_dir) / "index.faiss"))
    chunks = json.loads((Path(out_dir) / "chunks.json").read_text(encoding="utf-8"))
    model.encode(["query: 专利权的期限"], normalize_embeddings=True)
    cold = time.perf_counter() - t
    search_ms = []
    for q in questions:
        t = time.perf_counter()
        _, ids = index.search(model.encode(["query: " + q], normalize_embeddings=True), 10)
        [chunks[i] for i in ids[0] if i >= 0]
        search_ms.append((time.perf_counter() - t) * 1000)
    return {"cold_start_seconds": cold, "search_p50_ms": _pct(search_ms, .5), "search_p95_ms": _pct(search_ms, .95),
            "serve_rss_mb": _rss_mb()}


def stage_embed_compare(index_dir: str, embedder: str | None, n: int = 2000) -> dict:
    """ipqa's embedder against plain sentence-transformers fp32 (batch 32, as a user calls it) on the
    same passages, alternated twice so both see the same machine load."""
    import numpy as np

    from index.catalog import Catalog
    from index.embedders import get_embedder

    catalog = Catalog(Path(index_dir) / "store.sqlite", readonly=True)
    ids = [int(i) for i in np.concatenate(list(catalog.chunk_ids_by_doc().values()))]
    rng = np.random.default_rng(SEED)
    chosen = sorted(rng.choice(ids, min(n, len(ids)), replace=False).tolist())
    texts = [c.indexed_text for c in catalog.chunks(chosen).values()]
    ours = get_embedder(embedder) if embedder else get_embedder()
    getattr(ours, "load", lambda: None)()
    plain = _plain_model()
    seconds = {"ipqa": 0.0, "plain": 0.0}
    for _ in range(2):
        t = time.perf_counter()
        a = ours.encode_passages(texts)
        seconds["ipqa"] += time.perf_counter() - t
        t = time.perf_counter()
        b = plain.encode(["passage: " + x for x in texts], normalize_embeddings=True)
        seconds["plain"] += time.perf_counter() - t
    cos = np.sum(np.asarray(a) * np.asarray(b), axis=1)
    return {"texts": len(texts), "embedder": getattr(ours, "name", str(embedder)),
            "ipqa_chunks_per_second": 2 * len(texts) / seconds["ipqa"],
            "plain_chunks_per_second": 2 * len(texts) / seconds["plain"],
            "ratio": seconds["plain"] / seconds["ipqa"], "cosine_mean": float(cos.mean()),
            "cosine_min": float(cos.min())}


STAGES = {"embed-compare": stage_embed_compare, "build-ipqa": stage_build_ipqa, "serve-ipqa": stage_serve_ipqa, "build-baseline": stage_build_baseline,
          "serve-baseline": stage_serve_baseline, "vector-scaling": stage_vector_scaling}
VECTOR_SIZES = [10_000, 50_000, 100_000, 200_000]


def _child(stage: str, **kwargs) -> dict:
    """Run one stage in a fresh Python process and return its figures (its arguments go through
    stdin: the whole corpus's file list is longer than a command line may be)."""
    # IPQA_VECTOR_CACHE off: a build embeds every text, so its embedding time is the model's
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               IPQA_VECTOR_CACHE="off")
    proc = subprocess.run([sys.executable, "-m", "eval.bench", stage, "-"], input=json.dumps(kwargs, ensure_ascii=False),
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"bench stage {stage} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the run --------------------------------------------------------------------------------------


ROWS = [  # (key, label, which side has it)
    ("documents", "documents", 2), ("clauses", "clauses", 1), ("chunks", "chunks", 2),
    ("load_seconds", "load+clean+chunk s", 2), ("chunks_per_second", "embedding chunks/s", 2),
    ("embed_seconds", "embedding s", 2), ("bm25_seconds", "BM25 build s", 1), ("build_seconds", "build total s", 2),
    ("index_mb", "index on disk MB", 2), ("peak_rss_mb", "peak RSS building MB", 2),
    ("cold_start_seconds", "cold start s", 2), ("serve_rss_mb", "peak RSS serving MB", 2),
    ("search_p50_ms", "search p50 ms", 2), ("search_p95_ms", "search p95 ms", 2),
    ("ask_p50_ms", "ask p50 ms", 1), ("ask_p95_ms", "ask p95 ms", 1), ("add_one_seconds", "add 1 document s", 1),
    ("store_seconds", "build without embedding s", 1), ("add_one_store_seconds", "add 1 document without embedding s", 1),
    ("hnsw_recall_at_10", "HNSW recall@10 vs exact", 1), ("exact_vector_p50_ms", "exact vector search p50 ms", 1),
    ("hnsw_vector_p50_ms", "HNSW vector search p50 ms", 1),
]


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, int):
        return str(v)
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def table(result: dict) -> str:
    """One markdown table per size: ipqa, baseline, ratio."""
    parts = []
    for size in result["sizes"]:
        ip, base = size["ipqa"], size.get("baseline") or {}
        parts.append(f"### {size['documents']} documents\n")
        parts.append("| figure | ipqa | LangChain defaults | ipqa / baseline |\n|---|---|---|---|")
        for key, label, sides in ROWS:
            a = ip.get(key)
            b = base.get(key) if sides == 2 else None
            ratio = f"{a / b:.2f}×" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "—"
            parts.append(f"| {label} | {_fmt(a)} | {_fmt(b)} | {ratio} |")
        parts.append("")
        if size.get("postgresql"):
            parts.append(_stores_table(size))
    if result.get("embedding_same_texts"):
        e = result["embedding_same_texts"]
        parts.append(f"### Embedding throughput on the same {e['texts']} chunks\n")
        parts.append("| embedder | chunks/s | vs plain sentence-transformers fp32 | cosine to fp32 (mean / min) |\n"
                     "|---|---|---|---|")
        parts.append(f"| ipqa: {e['embedder']} | {_fmt(e['ipqa_chunks_per_second'])} | {e['ratio']:.2f}× | "
                     f"{e['cosine_mean']:.4f} / {e['cosine_min']:.4f} |")
        parts.append(f"| plain sentence-transformers fp32, batch 32 | {_fmt(e['plain_chunks_per_second'])} | 1.00× | — |")
        parts.append("")
    if result.get("vector_scaling"):
        parts.append("### Vector search time as the store grows (real vectors tiled; times only)\n")
        parts.append("| vectors | exact p50 ms | exact p95 ms | HNSW p50 ms | HNSW p95 ms | HNSW build s |\n"
                     "|---|---|---|---|---|---|")
        for n, f in result["vector_scaling"].items():
            parts.append(f"| {n} | {_fmt(f['exact_p50_ms'])} | {_fmt(f['exact_p95_ms'])} | {_fmt(f['hnsw_p50_ms'])} "
                         f"| {_fmt(f['hnsw_p95_ms'])} | {_fmt(f['hnsw_build_seconds'])} |")
        parts.append("")
    if result.get("fit"):
        parts.append("### Growth (least-squares fit of log cost on log chunks)\n")
        parts.append("| figure | exponent | predicted at full corpus |\n|---|---|---|")
        for key, f in result["fit"].items():
            parts.append(f"| {key} | {f['exponent']:.2f} | {_fmt(f['predicted'])} |")
        parts.append(f"\nFull corpus: {result['full']['documents']} documents, {result['full']['chunks']} chunks "
                     "(loaded and chunked, not embedded).")
    return "\n".join(parts) + "\n"


STORE_ROWS = ("chunks", "store_seconds", "index_mb", "peak_rss_mb", "cold_start_seconds", "serve_rss_mb",
              "search_p50_ms", "search_p95_ms", "ask_p50_ms", "ask_p95_ms", "add_one_store_seconds")


def _stores_table(size: dict) -> str:
    """The local folder beside the PostgreSQL knowledge base, same slice, same run."""
    labels = {key: label for key, label, _ in ROWS}
    lines = [f"The same {size['documents']} documents in both stores (vectors embedded once, in the folder's build):\n",
             "| figure | local folder | PostgreSQL | PostgreSQL / folder |", "|---|---|---|---|"]
    for key in STORE_ROWS:
        a, b = size["ipqa"].get(key), size["postgresql"].get(key)
        ratio = f"{b / a:.2f}×" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else "—"
        lines.append(f"| {labels.get(key, key)} | {_fmt(a)} | {_fmt(b)} | {ratio} |")
    return "\n".join(lines) + "\n"


def fit(sizes: list[dict], full_chunks: int) -> dict:
    """Power-law fit cost = a * chunks^b for the costs that grow, extrapolated to the full corpus."""
    import numpy as np

    out = {}
    for key in ("embed_seconds", "build_seconds", "index_mb", "bm25_seconds", "search_p95_ms", "ask_p95_ms",
                "add_one_seconds"):
        pts = [(s["ipqa"]["chunks"], s["ipqa"].get(key)) for s in sizes if s["ipqa"].get(key)]
        if len(pts) < 2:
            continue
        x = np.log([p[0] for p in pts])
        y = np.log([p[1] for p in pts])
        b, a = np.polyfit(x, y, 1)
        out[key] = {"exponent": float(b), "predicted": float(math.exp(a) * full_chunks ** b)}
    return out


def plot(result: dict, path: Path) -> None:
    from eval.report import pyplot

    plt = pyplot()

    sizes = result["sizes"]
    docs = [s["documents"] for s in sizes]
    panels = [("build_seconds", "建索引耗时（秒）"), ("index_mb", "索引占用磁盘（MB）"),
              ("search_p95_ms", "检索 p95（毫秒）"), ("serve_rss_mb", "服务进程内存峰值（MB）")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (key, label) in zip(axes, panels):
        for side, style in (("ipqa", "o-"), ("baseline", "s--")):
            ys = [(s.get(side) or {}).get(key) for s in sizes]
            if all(isinstance(v, (int, float)) for v in ys):
                ax.plot(docs, ys, style, label="ipqa" if side == "ipqa" else "LangChain 默认做法")
        ax.set_xscale("log")
        ax.set_xlabel("文件数")
        ax.set_title(label)
        ax.grid(alpha=.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bench_store(url: str, part: list[str], extra: str, embedder: str | None, cache: Path, qs: list[str],
                 log) -> dict:
    """The same slice in the PostgreSQL knowledge base at ``url`` (rebuilt), its vectors from ``cache``."""
    log("  the same documents into PostgreSQL …")
    pg = _child("build-ipqa", files=part, index_dir=url, extra=extra, embedder=embedder, embed_cache=str(cache))
    pg |= _child("serve-ipqa", index_dir=url, questions=qs)
    log(f"  PostgreSQL: stored in {pg['store_seconds']:.1f}s, ask p95 {pg['ask_p95_ms']:.1f} ms, "
        f"add one {pg['add_one_store_seconds']:.2f}s")
    return pg


def run(corpus: Path, sizes: list[int], out_dir: Path, *, embedder: str | None = None, baseline: bool = True,
        questions: str = "laws_qa", store: str | None = None, log=print) -> dict:
    corpus, out_dir = Path(corpus), Path(out_dir)
    files = corpus_files(corpus)
    qs = bench_questions(questions)
    extra = str(files[-1])  # never inside a slice below the full size
    result = {"corpus": str(corpus), "files": len(files), "questions": len(qs), "embedder": embedder or "default",
              "started_at": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu_count": os.cpu_count(), "sizes": []}
    for n in sizes:
        n = min(n, len(files) - 1)
        part = [str(p) for p in files[:n]]
        work = out_dir / "work" / str(n)
        log(f"[{n} documents] building ipqa …")
        cache = work / "embeddings.npz"
        ip = _child("build-ipqa", files=part, index_dir=str(work / "ipqa"), extra=extra, embedder=embedder,
                    embed_cache=str(cache) if store else None)
        log(f"  {ip['chunks']} chunks, {ip['chunks_per_second']:.1f} chunks/s, build {ip['build_seconds']:.1f}s")
        ip |= _child("serve-ipqa", index_dir=str(work / "ipqa"), questions=qs)
        log(f"  cold start {ip['cold_start_seconds']:.2f}s, search p95 {ip['search_p95_ms']:.1f} ms, "
            f"ask p95 {ip['ask_p95_ms']:.1f} ms")
        row = {"documents": n, "ipqa": ip}
        if store:
            row["postgresql"] = _bench_store(store, part, extra, embedder, cache, qs, log)
        if baseline:
            log(f"[{n} documents] building the LangChain-defaults baseline …")
            base = _child("build-baseline", files=part, out_dir=str(work / "baseline"))
            base |= _child("serve-baseline", out_dir=str(work / "baseline"), questions=qs)
            log(f"  {base['chunks']} chunks, {base['chunks_per_second']:.1f} chunks/s, "
                f"search p95 {base['search_p95_ms']:.1f} ms")
            row["baseline"] = base
        result["sizes"].append(row)
        _write(result, out_dir)
    return finish(result, out_dir, corpus=corpus, embedder=embedder, log=log)


def finish(result: dict, out_dir: Path, *, corpus: Path, embedder: str | None = None, log=print) -> dict:
    """The figures measured once per run: embedding throughput on the same texts, vector search
    time by store size, and the fitted growth extrapolated to the whole corpus."""
    out_dir = Path(out_dir)
    if result["sizes"]:
        largest = out_dir / "work" / str(result["sizes"][-1]["documents"]) / "ipqa"
        log("embedding the same chunks with ipqa's embedder and with plain sentence-transformers fp32 …")
        result["embedding_same_texts"] = _child("embed-compare", index_dir=str(largest), embedder=embedder)
        log("timing exact and HNSW vector search on up to 200,000 vectors …")
        result["vector_scaling"] = _child("vector-scaling", index_dir=str(largest), sizes=VECTOR_SIZES)
    # the whole corpus, loaded and chunked (not embedded), to extrapolate the fitted growth
    from corpus import load_folder
    from index.chunking import chunk_document

    full = load_folder(corpus, workers=2)
    result["full"] = {"documents": len(full.documents), "chunks": sum(len(chunk_document(d)) for d in full.documents)}
    result["fit"] = fit(result["sizes"], result["full"]["chunks"])
    _write(result, out_dir)
    return result


def _write(result: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    (out_dir / "bench.md").write_text(table(result), encoding="utf-8")
    plot(result, out_dir / "bench.png")


if __name__ == "__main__":
    stage, kwargs = sys.argv[1], json.loads(sys.stdin.read() if sys.argv[2] == "-" else sys.argv[2])
    print(json.dumps(STAGES[stage](**kwargs), ensure_ascii=False))
