//! URI parsing: arbitrary text as any URI, bind address or host; what
//! parses must print back to text that parses the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rmi_core::fuzzing::uri_target(data));
