# Sourced by scripts/demo and scripts/test: a virtualenv in .venv with this package built and
# installed (the Rust extension needs cargo; without it the pure-Python core serves).
# Usage: . scripts/_venv.sh [EXTRAS [WHEEL]]
# With WHEEL (a wheel scripts/build_wheels made), that is installed instead of the editable
# source tree: scripts/test's full run builds the native core once, for its wheel.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setting up .venv (first run: a minute or two while the native core compiles) ..." >&2
    "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install --quiet --disable-pip-version-check --upgrade pip
spec="."
if [ -n "${1:-}" ]; then spec=".[$1]"; fi
if [ -n "${2:-}" ]; then
    echo "installing $2 ..." >&2
    python -m pip install --quiet --disable-pip-version-check "$2${1:+[$1]}"
    # The same version may be installed editable: replace it, and only it.
    python -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$2"
elif command -v cargo >/dev/null 2>&1; then
    # Editable: tests and the demo run the source tree as it is (maturin builds the native core
    # into python/durable_streams/ on every install, so Rust changes are picked up too).
    echo "installing durable_streams and building its native core with cargo ..." >&2
    python -m pip install --quiet --disable-pip-version-check --editable "$spec"
    echo "... installed" >&2
else
    echo "no cargo here: installing the pure-Python build (the native core needs Rust)" >&2
    python scripts/build_pure_wheel.py --out dist/pure >/dev/null
    wheel=$(ls dist/pure/durable_streams_rs-*-py3-none-any.whl)
    if [ -n "${1:-}" ]; then wheel="$wheel[$1]"; fi
    python -m pip install --quiet --disable-pip-version-check --force-reinstall "$wheel"
fi
