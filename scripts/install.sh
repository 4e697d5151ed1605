#!/usr/bin/env bash
# Create .venv and install ipqa with its test tools. Safe to run again.
#   --browser  also install Debian's chromium and a Chinese font (fonts-wqy-zenhei) for the browser tests,
#              and valgrind (a test runs the embedder under it to get another CPU's kernels)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ "${1:-}" = "--browser" ] && ! dpkg -s chromium fonts-wqy-zenhei valgrind >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "正在安装浏览器测试所需的 chromium、中文字体和 valgrind（Debian 软件包）……"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-wqy-zenhei valgrind >/dev/null
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, pinned: this machine has its CPU build on disk; an unpinned torch
# (asked for by sentence-transformers) would pull the CUDA build instead.
echo "正在安装 torch（CPU 版）……"
.venv/bin/pip install -q torch==2.13.0
echo "正在安装 ipqa 及其依赖（首次约需两分钟）……"
.venv/bin/pip install -q -c constraints.txt -e ".[test]"
echo "安装完成：.venv/bin/ipqa"
