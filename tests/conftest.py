from __future__ import annotations

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
def first_run(tmp_path_factory):
    """`ipqa serve` as a first run: no index yet, so it builds one over the bundled knowledge base with
    the real default model. Started once per run; the browser tests talk to it (and change its index),
    and ``real_index`` is a copy of the index it built, taken before any test could change it."""
    from tests.servers import serve

    with serve(tmp_path_factory.mktemp("serve")) as srv:
        pristine = tmp_path_factory.mktemp("real") / "index"
        shutil.copytree(srv["index"], pristine)
        yield dict(srv, pristine=pristine)


@pytest.fixture(scope="session")
def real_index(first_run):
    """The bundled knowledge base indexed with the real default model, as the app's first run builds it:
    (its folder, what the server printed while it built it)."""
    return first_run["pristine"], first_run["log"].read_text(errors="replace")


# --- Two workers (pytest-xdist, pyproject's addopts: -n 2 --dist loadgroup) ----------------------------
#
# Each worker runs whole groups. The tests on the real index (``first_run``: one ``ipqa serve`` that
# builds it, about two minutes) form one group, so it is built once; every other test runs with the
# rest of its file, so a file's module fixtures are built once too.

SHARED_FIXTURES = {"first_run": "real-index", "stard_eval": "stard"}


def pytest_itemcollected(item):  # before xdist reads the groups (in pytest_collection_modifyitems)
    names = getattr(item, "fixturenames", ())
    group = next((g for f, g in SHARED_FIXTURES.items() if f in names), item.nodeid.split("::")[0])
    item.add_marker(pytest.mark.xdist_group(group))


# --- STARD over the laws it cites, evaluated in the background ------------------------------------
#
# The STARD eval needs its own index (the IP laws plus the 119 laws STARD's questions cite: 10,664
# chunks and their sentences) and the naive baseline's vectors: about a quarter of an hour of model
# time on two cores. It is not in the default run (pytest.ini's addopts: -m 'not stard'); with
# `pytest -m stard` (or any selection that keeps a test asking for it) it starts right after
# collection, in a process of its own at low priority, so it runs while other tests wait.

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
