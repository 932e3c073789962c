//! Generates the client and server of `proto/bench.proto` with
//! tonic-prost-build (needs `protoc`: see build.sh).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/bench.proto");
    println!("cargo:rerun-if-changed=build.rs");
    tonic_prost_build::configure()
        // `bytes` fields as `bytes::Bytes`, so that the server can hand the
        // same chunk out again and again without copying it.
        .bytes(".")
        .compile_protos(&["proto/bench.proto"], &["proto"])?;
    Ok(())
}
