#!/bin/bash
# CPU per side of one rmi-bench client run, measured with `perf stat -e task-clock`
# (this VM has no hardware counters; CPU time is what is left to compare).
#
#   benches/cpu-per-side.sh [plain|key|tls] [workload] [rmi-bench binary]
#
# Starts `rmi-bench serve rmi` and `rmi-bench client rmi <workload>` (default:
# payload, 40 calls of a 10 MiB argument) on loopback, both on a current-thread
# runtime, each under perf stat; prints each side's CPU milliseconds and the
# client's wall time. `tls` uses throwaway certificates from `rmi-naming dev-certs`.
set -euo pipefail
mode=${1:-tls}
workload=${2:-payload}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${3:-$root/target/release/rmi-bench}
work=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then pkill -P "$server" 2>/dev/null; kill "$server" 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT
unset RMI_TLS RMI_TLS_CA RMI_TLS_SERVER_CERT RMI_TLS_SERVER_KEY RMI_TLS_REQUIRE_CLIENT_CERT \
    RMI_TLS_CLIENT_CERT RMI_TLS_CLIENT_KEY
key=()
case $mode in
    plain) ;;
    key) key=(--key cpu-per-side-key) ;;
    tls)
        "$root/target/release/rmi-naming" dev-certs "$work/certs" >/dev/null
        export RMI_TLS=on RMI_TLS_CA=$work/certs/ca.pem
        ;;
    *) echo "mode: plain, key or tls" >&2; exit 2 ;;
esac
serve=(perf stat -x, -e task-clock -o "$work/server" "$bin" serve rmi --threads 1 "${key[@]}")
if [ "$mode" = tls ]; then
    serve=(env RMI_TLS_SERVER_CERT="$work/certs/server.pem" RMI_TLS_SERVER_KEY="$work/certs/server.key"
        "${serve[@]}")
fi
coproc SERVER { exec "${serve[@]}"; }
server=$SERVER_PID
read -r -t 30 line <&"${SERVER[0]}"
target=${line#READY }
perf stat -x, -e task-clock -o "$work/client" "$bin" client rmi "$workload" "$target" --threads 1 "${key[@]}" \
    >"$work/result"
pkill -INT -P "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
server=
ms() { awk -F, '/task-clock/ { printf "%.0f", $1 }' "$1"; }
secs=$(grep -o '"secs":[0-9.]*' "$work/result" | cut -d: -f2)
echo "$mode $workload: daemon $(ms "$work/server") ms CPU, client $(ms "$work/client") ms CPU, client wall ${secs} s"
