//! Certificate identities: arbitrary bytes as the DER of a peer's
//! certificate (rustls verifies a chain before rmi reads names from it,
//! but the reader must hold for any bytes).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rmi_core::fuzzing::certificate_target(data));
