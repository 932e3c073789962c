#!/usr/bin/env bash
# Instructions per call of rmi's daemon serving a Python Pyro5 client (json,
# `echo(i)`), counted by callgrind: the daemon (`rmi-bench serve rmi` with
# RMI_PYRO5=on) runs under callgrind twice, for 1,000 and then 6,000 calls of
# the same client; the difference of the counts over 5,000 is the cost per
# call (start-up, the handshake and the warm-up cancel out).
#
#   bash benches/pyro5/count-instructions.sh [rmi-bench binary]
#
# Needs valgrind (apt-get install valgrind) and the venv run.sh makes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin=${1:-$here/../../target/release/rmi-bench}
python="$here/.venv/bin/python"
[ -x "$python" ] || bash "$here/run.sh" --help >/dev/null
work=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
count() {
    local calls=$1 out=$work/callgrind.$1 line
    coproc DAEMON { RMI_PYRO5=on exec valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$bin" serve rmi --threads 1 2>/dev/null; }
    server=$DAEMON_PID
    read -r -t 60 line <&"${DAEMON[0]}"
    "$python" - "PYRO:${line#READY RMI:}" "$calls" <<'PY'
import sys
import Pyro5.api
p = Pyro5.api.Proxy(sys.argv[1])
p._pyroSerializer = "json"
for i in range(int(sys.argv[2])):
    p.echo(i)
PY
    # SIGTERM: callgrind writes its counts as the process ends.
    kill -TERM "$server"
    wait "$server" 2>/dev/null || true
    server=
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}
short=$(count 1000)
long=$(count 6000)
echo "daemon instructions per Pyro5 json call: $(( (long - short) / 5000 ))"
