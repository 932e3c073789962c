#!/usr/bin/env bash
# Builds rmi-bench-grpc, the tonic gRPC baseline of rmi-bench: installs
# protoc (Debian's protobuf-compiler) if it is missing, then builds the crate
# in release mode in benches/grpc/target. Prints the binary's path last.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v protoc >/dev/null 2>&1; then
    echo "build.sh: protoc not found; installing protobuf-compiler" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y protobuf-compiler >&2; then
        $sudo apt-get update >&2
        $sudo apt-get install -y protobuf-compiler >&2
    fi
    command -v protoc >/dev/null 2>&1 || { echo "build.sh: protoc still missing" >&2; exit 1; }
fi

# At most 2 jobs unless told otherwise (CARGO_BUILD_JOBS): tonic, hyper, h2
# and prost are heavy on a 2-core machine.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
cargo build --release --manifest-path "$here/Cargo.toml" >&2

bin="$here/target/release/rmi-bench-grpc"
[ -x "$bin" ] || { echo "build.sh: $bin was not built" >&2; exit 1; }
echo "$bin"
