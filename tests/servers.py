"""Start a real ``ipqa serve`` subprocess on 127.0.0.1 for the web-app tests (test_ui.py, test_access.py)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    """Wait until ``url`` answers (any HTTP status counts: a login page may answer 401)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ipqa serve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"ipqa serve did not start in {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def serve(work: Path, *, index_dir: Path | str | None = None, args: Sequence[str] = (),
          env: dict[str, str] | None = None) -> Iterator[dict]:
    """Run ``ipqa serve`` with its data in ``work`` (and its index there unless ``index_dir``, a folder
    or a PostgreSQL URL, is given).

    Yields ``{"url", "port", "data", "index", "log", "proc"}``; the log holds stdout and stderr together.
    """
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = work / "serve.log"
    full_env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
                    OMP_WAIT_POLICY="PASSIVE")
    full_env.pop("IPQA_LLM_BASE_URL", None)
    full_env.pop("IPQA_AUTH", None)
    full_env.update(env or {})
    where = str(index_dir or work / "index")
    cmd = [sys.executable, "-m", "cli", "serve", "--store" if where.startswith("postgresql://") else "--index-dir", where,
           "--data-dir", str(work / "data"), "--port", str(port), *args]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url + "/", proc, log)
        yield {"url": url, "port": port, "data": work / "data", "index": where, "log": log, "proc": proc}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
