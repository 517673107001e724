#!/usr/bin/env bash
# Integration tests of Faregate against a REAL llama.cpp server (`make test-llama`).
#
# Upstream: llama-cpp-python's OpenAI-compatible server, in its own venv (.venv-llama), serving a
# tiny random-weights model written by scripts/make_tiny_gguf.py.
#
# The first run builds llama.cpp from source (no prebuilt wheel on PyPI): ~14 min on 2 cores.
# pip caches the built wheel (~/.cache/pip/wheels), so later runs on the same machine take
# seconds; in CI, cache that directory to skip the build.
#
# Extra arguments go to pytest, e.g.  bash scripts/test-llama.sh -k stream -x
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

PYTHON=${PYTHON:-python3}
LLAMA_VENV=$ROOT/.venv-llama
LLAMA_PKGS=("llama-cpp-python[server]==0.3.36" "gguf==0.19.0" "numpy==2.4.6")
MODEL=$ROOT/.test-services/llama/tiny.gguf
MAIN_VENV=$ROOT/.venv

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_ROOT_USER_ACTION=ignore

log() { printf '==> %s\n' "$*" >&2; }

# --- 1. the llama venv ---------------------------------------------------------------------
llama_venv_ok() {
    [ -x "$LLAMA_VENV/bin/python" ] && "$LLAMA_VENV/bin/python" - <<'EOF' 2>/dev/null
import importlib.metadata as md
import gguf, llama_cpp.server, numpy  # noqa: F401
assert md.version("llama_cpp_python") == "0.3.36", md.version("llama_cpp_python")
assert md.version("gguf") == "0.19.0", md.version("gguf")
EOF
}

if ! llama_venv_ok; then
    if [ ! -x "$LLAMA_VENV/bin/python" ]; then
        log "creating $LLAMA_VENV"
        "$PYTHON" -m venv "$LLAMA_VENV"
    fi
    if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
        log "warning: no C++ compiler found; building llama-cpp-python needs one" \
            "(apt-get install build-essential) unless pip has the wheel cached"
    fi
    log "installing ${LLAMA_PKGS[*]} into $LLAMA_VENV"
    log "(the first install compiles llama.cpp: ~15 min on 2 cores; pip caches the wheel)"
    start=$SECONDS
    CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
        "$LLAMA_VENV/bin/pip" install "${LLAMA_PKGS[@]}"
    log "llama venv ready in $((SECONDS - start)) s"
    llama_venv_ok || { log "error: $LLAMA_VENV is still not usable"; exit 1; }
fi

# --- 2. the tiny model ---------------------------------------------------------------------
if [ ! -s "$MODEL" ] || [ "$ROOT/scripts/make_tiny_gguf.py" -nt "$MODEL" ]; then
    log "writing the tiny model to $MODEL"
    "$LLAMA_VENV/bin/python" "$ROOT/scripts/make_tiny_gguf.py" "$MODEL"
fi

# --- 3. the main venv ----------------------------------------------------------------------
main_venv_ok() {
    [ -x "$MAIN_VENV/bin/pytest" ] && [ -x "$MAIN_VENV/bin/faregate" ] &&
        "$MAIN_VENV/bin/python" -c 'import faregate, openai' 2>/dev/null
}

if ! main_venv_ok; then
    if [ -f Makefile ] && make -n .venv >/dev/null 2>&1; then
        log "setting up $MAIN_VENV with make .venv"
        make .venv
    fi
    if ! main_venv_ok; then
        log "installing faregate into $MAIN_VENV (pip install -e '.[dev]')"
        [ -x "$MAIN_VENV/bin/python" ] || "$PYTHON" -m venv "$MAIN_VENV"
        "$MAIN_VENV/bin/pip" install -e '.[dev]'
    fi
fi

# --- 4. the tests --------------------------------------------------------------------------
export FAREGATE_LLAMA_PYTHON=$LLAMA_VENV/bin/python
export FAREGATE_LLAMA_MODEL=$MODEL

PYTEST=("$MAIN_VENV/bin/pytest" tests/llama -p no:cacheprovider "$@")
if [ -f "$ROOT/scripts/testenv.py" ]; then
    exec "$MAIN_VENV/bin/python" "$ROOT/scripts/testenv.py" -- "${PYTEST[@]}"
else
    log "scripts/testenv.py not found: running pytest directly (these tests use SQLite)"
    exec "${PYTEST[@]}"
fi
