//! Frame decoding: arbitrary bytes as what a peer sends after the handshake,
//! read in pieces of every size, with and without authentication.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else { return };
    let chunk = usize::from(control & 0x3f) + 1;
    let keyed = control & 0x40 != 0;
    let max_message = if control & 0x80 != 0 { 1 << 10 } else { 1 << 20 };
    rmi_core::fuzzing::frames(data, chunk, max_message, keyed);
});
