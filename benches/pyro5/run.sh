#!/usr/bin/env bash
# Runs the Pyro5 side of rmi's benchmarks (see benches/README.md).
# On first use it makes benches/pyro5/.venv and installs Pyro5 and msgpack from PyPI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import Pyro5, msgpack" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet "Pyro5==5.17" "msgpack>=1.0" >&2
fi
exec "$venv/bin/python" "$here/bench.py" "$@"
