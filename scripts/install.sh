#!/usr/bin/env bash
# Create .venv and install ipqa with its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, pinned: this machine has its CPU build on disk; an unpinned torch
# (asked for by sentence-transformers) would pull the CUDA build instead.
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e ".[test]"
