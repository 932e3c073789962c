//! Message decoding: arbitrary bytes as a frame's envelope (and the
//! attachments after it), as requests, responses and encoded values.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rmi_core::fuzzing::message_target(data));
