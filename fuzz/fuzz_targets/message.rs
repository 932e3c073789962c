//! Message decoding: arbitrary bytes as a frame's envelope (and the
//! attachments after it), as requests, responses and encoded values.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else { return };
    let at = usize::from(split).min(data.len());
    let (attachments, envelope) = data.split_at(at);
    rmi_core::fuzzing::messages(envelope, attachments);
});
