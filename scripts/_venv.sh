# Sourced by scripts/demo and scripts/test: a virtualenv in .venv with this package built and
# installed (the Rust extension needs cargo; without it the pure-Python core serves).
# Usage: . scripts/_venv.sh [EXTRAS]
set -euo pipefail
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install --quiet --disable-pip-version-check --upgrade pip
spec="."
if [ -n "${1:-}" ]; then spec=".[$1]"; fi
# Editable: tests and the demo run the source tree as it is (maturin builds the native core
# into python/durable_streams/ on every install, so Rust changes are picked up too).
python -m pip install --quiet --disable-pip-version-check --editable "$spec"
