//! Frame decoding: arbitrary bytes as what a peer sends after the handshake,
//! read in pieces of every size, with and without authentication.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rmi_core::fuzzing::frame_target(data));
