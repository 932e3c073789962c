//! The handshake: arbitrary bytes as what the peer sends, to a server and to
//! a client, with and without a key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rmi_core::fuzzing::handshake_target(data));
