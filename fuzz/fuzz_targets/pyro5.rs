//! Pyro5's framing and json bodies: arbitrary bytes as what a Pyro5 peer sends, read
//! message by message; what reads must encode back and read the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rmi_core::fuzzing::pyro5_target(data));
