from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from corpus import Document, load_collection, load_document

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "corpus" / "policies"
LAWS = ROOT / "corpus" / "laws"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def policies() -> dict[str, Document]:
    report = load_collection("policies")
    assert not report.failures
    return {d.doc_id: d for d in report.documents}


@pytest.fixture(scope="session")
def laws() -> dict[str, Document]:
    report = load_collection("laws")
    assert not report.failures
    return {d.doc_id: d for d in report.documents}


@pytest.fixture(scope="session")
def patent_law() -> Document:
    return load_document(LAWS / "专利法(2020-10-17).md")


def paths(doc: Document) -> list[tuple[str, ...]]:
    return [c.path for c in doc.clauses]


def top_level(doc: Document) -> list[str]:
    return [c.heading for c in doc.clauses if c.parent_id is None and c.number is not None]


@pytest.fixture(scope="session")
def first_build(tmp_path_factory, request):
    """`ipqa serve` as a first run: no index yet, so it builds one over the bundled knowledge base with
    the real default model; a copy of that index is taken before any test could change it.

    (the run's shared folder, with ``index`` and ``first-run.log``; the first-run server, or None).
    Built once per run: under two workers (pytest-xdist) the first worker to need it builds it while
    the other waits; the other gets no server of its own (``first_run`` starts one if asked)."""
    from tests.servers import serve

    shared = _run_folder(tmp_path_factory, request.config)
    with contextlib.ExitStack() as servers:
        srv = None
        with _locked(shared / "first-run.lock"):
            if not (shared / "first-run.done").exists():
                srv = servers.enter_context(serve(tmp_path_factory.mktemp("serve")))
                shutil.copytree(srv["index"], shared / "index")
                shutil.copyfile(srv["log"], shared / "first-run.log")
                (shared / "first-run.done").touch()
        yield shared, srv


@pytest.fixture(scope="session")
def first_run(first_build, tmp_path_factory):
    """The server of the first run (``first_build``); the browser tests talk to it and change its index.
    In the worker that did not build the index, a server over a copy of it, given the first run's log."""
    from tests.servers import serve

    shared, srv = first_build
    with contextlib.ExitStack() as servers:
        if srv is None:
            own = tmp_path_factory.mktemp("serve-copy")
            shutil.copytree(shared / "index", own / "index")
            srv = servers.enter_context(serve(own, index_dir=own / "index"))
        yield dict(srv, log=shared / "first-run.log")


def _run_folder(tmp_path_factory, config) -> Path:
    """A folder of this test run that every worker sees (one of its own without workers)."""
    if getattr(config, "workerinput", None) is None:
        return tmp_path_factory.mktemp("run")
    folder = tmp_path_factory.getbasetemp().parent / "shared-by-workers"  # the controller's basetemp
    folder.mkdir(exist_ok=True)
    return folder


@contextlib.contextmanager
def _locked(path: Path):
    import fcntl

    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        yield


@pytest.fixture(scope="session")
def real_index(first_build):
    """The bundled knowledge base indexed with the real default model, as the app's first run builds it:
    (its folder, what the server printed while it built it). Read only: tests that change an index
    change a copy of it."""
    shared, _ = first_build
    return shared / "index", (shared / "first-run.log").read_text(errors="replace")


# Two workers (pytest-xdist; pyproject's addopts: -n 2 --dist loadfile): each file runs whole in one
# worker, so its module fixtures are built once; the real index is built once for both (first_build).


# --- STARD over the laws it cites, evaluated in the background ------------------------------------
#
# The STARD eval needs its own index (the IP laws plus the 119 laws STARD's questions cite: 10,664
# chunks and their sentences) and the naive baseline's vectors: about a quarter of an hour of model
# time on two cores. It is not in the default run (pyproject's addopts: -m 'not stard'); with
# `pytest -m stard` (or any selection that keeps a test asking for it) it runs in a process of its own
# at low priority: in one process (-n 0) it starts right after collection, so it runs while other tests
# wait; on two workers, when the worker running its test first asks for it.

STARD_RUN: dict = {}


@pytest.hookimpl(trylast=True)  # after -m has deselected what is not run
def pytest_collection_modifyitems(session, config, items):
    import os

    # Under pytest-xdist every worker collects every test: the worker that runs the STARD tests starts
    # the eval when it first needs it (``stard_eval``), so it is not started twice.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if not STARD_RUN and any("stard_eval" in getattr(item, "fixturenames", ()) for item in items):
        _start_stard_eval()


def _start_stard_eval() -> None:
    import os
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="ipqa-stard-eval-"))
    log = open(folder / "eval.log", "w")
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", OMP_WAIT_POLICY="PASSIVE")
    cmd = [sys.executable, "-m", "cli", "eval", "stard", "--mode", "hybrid", "--index-dir",
           str(folder / "index"), "--out", str(folder / "eval"), "--quiet", "--check"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=lambda: os.nice(10))
    STARD_RUN.update(proc=proc, folder=folder, log=folder / "eval.log")


def pytest_sessionfinish(session, exitstatus):
    import shutil

    proc = STARD_RUN.get("proc")
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    if STARD_RUN.get("folder"):
        shutil.rmtree(STARD_RUN["folder"], ignore_errors=True)  # its index: about 100 MB


@pytest.fixture(scope="session")
def stard_eval():
    """The background STARD eval's outcome: {"returncode", "log", "report"} (waits for it)."""
    import json

    if not STARD_RUN:
        _start_stard_eval()
    code = STARD_RUN["proc"].wait(timeout=3600)
    report = STARD_RUN["folder"] / "eval" / "report.json"
    return {"returncode": code, "log": STARD_RUN["log"].read_text(encoding="utf-8", errors="replace"),
            "report": json.loads(report.read_text(encoding="utf-8")) if report.exists() else None}
