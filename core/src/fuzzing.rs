//! Entry points for the fuzz targets in `fuzz/` (and their regression
//! tests): each runs the real decoding code over arbitrary bytes. Not part
//! of the API.

// A broken invariant here is a fuzzing finding: asserting it is the point.
#![allow(clippy::panic)]

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::auth::{Key, Role, Session};
use crate::frame::{Encode, FrameReader, Wire};
use crate::message::Message;

/// The session of every fuzzed authenticated connection: its key and nonces
/// are fixed, so that seeds can carry runs with genuine seals.
fn fuzz_session(role: Role) -> Session {
    Session::new(&Key::from("fuzz"), role, &[1; 32], &[2; 32])
}

/// Feeds `data` to a frame reader as a byte stream (in pieces of
/// `chunk` bytes) and decodes every frame it yields as a request; when
/// `keyed`, the reader checks runs with the server's side of
/// `fuzz_session`. Returns how many frames decoded into requests.
pub fn frames(data: &[u8], chunk: usize, max_message: usize, keyed: bool) -> usize {
    let opener = keyed.then(|| fuzz_session(Role::Server).split().1);
    let mut reader = FrameReader::new(max_message, opener);
    let mut io = Pieces { data, chunk: chunk.max(1) };
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut decoded = 0;
    // Each poll consumes input or ends: bounded by the input's length.
    for _ in 0..=data.len() + 1 {
        match reader.poll_frame(Pin::new(&mut io), &mut cx) {
            Poll::Ready(Some(Ok(payload))) => {
                if crate::frame::decode_wire_frame::<Message>(payload).is_ok() {
                    decoded += 1;
                }
            }
            Poll::Ready(Some(Err(_)) | None) | Poll::Pending => break,
        }
    }
    decoded
}

/// Decodes `envelope` (with `attachments` after it) as a message, with the
/// hand-written codec and with serde, and checks that a message that
/// decodes encodes back to the same bytes.
pub fn messages(envelope: &[u8], attachments: &[u8]) {
    let envelope = Bytes::copy_from_slice(envelope);
    let mut rest = Bytes::copy_from_slice(attachments);
    if let Ok(message) = Message::decode(&envelope, &mut rest) {
        let mut out = Vec::new();
        let mut attached = Vec::new();
        message.encode(&mut out, &mut attached);
        assert!(Message::decode(&Bytes::from(out), &mut Bytes::from(attached.concat())).is_ok());
    }
    let _ = postcard::from_bytes::<Message>(&envelope);
    let _ = crate::encoded::Encoded::decode_wire(&mut crate::wire::Reader::new(&envelope), &mut Bytes::new())
        .map(|e| e.decode::<(u64, String, crate::blob::Blob, Vec<u8>)>());
}

/// Runs the server's and the client's handshake against `data` as what
/// the peer sends, with and without a key.
pub fn handshakes(data: &[u8]) {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(_) => return,
    };
    let key = Key::from("fuzz");
    runtime.block_on(async {
        for key in [None, Some(&key)] {
            let mut io = Pieces { data, chunk: 7 };
            let _ = crate::handshake::server_handshake(&mut io, key).await;
            let mut io = Pieces { data, chunk: 7 };
            let _ = crate::handshake::client_handshake(&mut io, key).await;
        }
        // A TLS server's answer to a client whose first byte was not TLS's.
        if let Some((&first, rest)) = data.split_first() {
            let mut io = Pieces { data: rest, chunk: 7 };
            crate::handshake::refuse_plaintext(&mut io, first).await;
        }
    });
}

/// The `pyro5` target: bytes as what a Pyro5 peer sends, read message by
/// message (a few bytes at a time) until an error; what reads must encode
/// back to the bytes it was read from.
pub fn pyro5_target(data: &[u8]) {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(_) => return,
    };
    runtime.block_on(async {
        let mut io = Pieces { data, chunk: 5 };
        // The daemon's buffered reader reads the same messages, in pieces of
        // another size.
        let mut buffered = Pieces { data, chunk: 7 };
        let mut reader = crate::pyro5::MessageReader::new();
        for _ in 0..64 {
            let read = crate::pyro5::read_message(&mut io, 1 << 16).await;
            let through_buffer = reader.read(&mut buffered, 1 << 16).await;
            match (&read, &through_buffer) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "the buffered reader read another message"),
                (Err(_), Err(_)) => {}
                _ => panic!("one reader read a message, the other not: {read:?} / {through_buffer:?}"),
            }
            let Ok(message) = read else { return };
            let again =
                message.encode(1 << 16).unwrap_or_else(|e| panic!("a message read does not encode: {e}"));
            let reread = crate::pyro5::read_message(&mut again.as_slice(), 1 << 16)
                .await
                .unwrap_or_else(|e| panic!("a message encoded does not read again: {e}"));
            assert_eq!(reread, message);
            pyro5_bodies(&message.payload);
        }
    });
    pyro5_bodies(data);
}

/// What the daemon reads out of a Pyro5 message's json payload: the
/// handshake, a call, a batch's calls, and the arguments as a method would
/// decode them.
fn pyro5_bodies(payload: &[u8]) {
    use crate::pyro5::body::{Connect, Invoke, PlainInvoke};
    // serpent, read as a literal subset: what reads writes back and reads the same.
    if let Ok(value) = crate::pyro5::serpent::parse(payload) {
        let again = crate::pyro5::serpent::parse(&crate::pyro5::serpent::write(&value))
            .unwrap_or_else(|e| panic!("serpent written from {value} does not read again: {e}"));
        assert_eq!(again, value);
        let _ = Invoke::from_value(value);
    }
    let _ = Connect::parse(payload);
    // A plain call, read without a tree of values, is the call the general
    // reader reads, its arguments decoding the same; or, when the general
    // reader refuses the payload (the raw arguments are not checked for
    // escapes such as a lone surrogate), its arguments do not decode.
    if let Some(plain) = PlainInvoke::parse(payload) {
        let text = plain.arguments().unwrap_or("null");
        let fast = crate::Encoded::from_json(bytes::Bytes::copy_from_slice(text.as_bytes()));
        // As the daemon reads a json call the general way.
        let general = serde_json::from_slice(payload)
            .map_err(|e| e.to_string())
            .and_then(|value| Invoke::from_value(value).map_err(|e| e.to_string()));
        match general {
            Ok(call) => {
                assert_eq!(
                    (plain.object.as_ref(), plain.method.as_ref()),
                    (call.object.as_str(), call.method.as_str())
                );
                assert!(!call.has_kwargs(), "a plain call with keyword arguments");
                let general = crate::json::arguments(call.params.clone());
                assert_eq!(
                    fast.decode::<Vec<serde_json::Value>>().ok(),
                    general.decode::<Vec<serde_json::Value>>().ok(),
                    "a plain call's arguments read otherwise"
                );
                assert_eq!(fast.decode::<()>().is_ok(), general.decode::<()>().is_ok());
            }
            Err(e) => assert!(
                fast.decode::<Vec<serde_json::Value>>().is_err(),
                "the general reader refuses a plain call whose arguments read: {e}"
            ),
        }
    }
    if let Ok(call) = Invoke::parse(payload) {
        let _ = call.batch();
        let args = crate::json::arguments(call.params);
        let _ = args.decode::<(String, u64, Vec<bool>)>();
        let _ = args.decode::<()>();
    }
}

/// The `certificate` target: a peer's certificate, read for its identity.
pub fn certificate_target(data: &[u8]) {
    let identity = crate::tls::PeerIdentity::from_der(data);
    let _ = (identity.common_name(), identity.fingerprint_hex(), identity.to_string());
}

/// Parses `text` as every kind of URI, and checks that what parses prints
/// back to text that parses to the same URI.
pub fn uris(text: &str) {
    if let Ok(uri) = text.parse::<crate::uri::Uri>() {
        let again: crate::uri::Uri =
            uri.to_string().parse().unwrap_or_else(|e| panic!("{uri} does not parse again: {e}"));
        assert_eq!(again, uri);
    }
    let _ = crate::uri::parse_bind_address(text);
    let _ = text.parse::<crate::uri::Host>();
}

/// The `frame` target: the first byte chooses the piece size, whether the
/// connection is authenticated, and the size limit.
pub fn frame_target(data: &[u8]) {
    let Some((&control, data)) = data.split_first() else { return };
    let chunk = usize::from(control & 0x3f) + 1;
    let keyed = control & 0x40 != 0;
    let max_message = if control & 0x80 != 0 { 1 << 10 } else { 1 << 20 };
    frames(data, chunk, max_message, keyed);
}

/// The `message` target: the first byte says how many of the rest are
/// attachments, which come first; the envelope follows.
pub fn message_target(data: &[u8]) {
    let Some((&split, data)) = data.split_first() else { return };
    let at = usize::from(split).min(data.len());
    let (attachments, envelope) = data.split_at(at);
    messages(envelope, attachments);
}

/// The `handshake` target.
pub fn handshake_target(data: &[u8]) {
    handshakes(data);
}

/// The `uri` target: UTF-8 text only.
pub fn uri_target(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        uris(text);
    }
}

/// A byte stream that yields `data` a few bytes at a time and swallows
/// writes.
struct Pieces<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (head, tail) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = tail;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Pieces<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod regressions {
    //! Every seed of the fuzz corpora, and every input that once crashed a
    //! target (`fuzz/regressions/<target>/`), through the same entry points.

    use std::path::Path;

    fn run(target: &str, check: fn(&[u8])) -> usize {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut count = 0;
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                check(&std::fs::read(&path).unwrap());
                count += 1;
            }
        }
        count
    }

    #[test]
    fn seeds_and_past_crashes_decode_without_panicking() {
        assert!(run("frame", super::frame_target) >= 3);
        assert!(run("message", super::message_target) >= 5);
        assert!(run("handshake", super::handshake_target) >= 3);
        assert!(run("uri", super::uri_target) >= 8);
    }

    #[test]
    fn the_seeds_are_what_they_say() {
        // The message seeds decode: they are real wire bytes, not noise.
        let seed =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/message/call")).unwrap();
        let envelope = bytes::Bytes::copy_from_slice(&seed[1..]);
        let message =
            <crate::message::Message as crate::frame::Wire>::decode(&envelope, &mut bytes::Bytes::new())
                .unwrap();
        assert!(matches!(message, crate::message::Message::Call { id: 5, .. }));
        let frame =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/frame/two_calls"))
                .unwrap();
        assert_eq!(super::frames(&frame[1..], 2, 1 << 20, false), 2);
        // The handshake seeds speak this protocol version.
        let hello =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/handshake/hello"))
                .unwrap();
        assert_eq!(&hello[8..10], &crate::handshake::PROTOCOL_VERSION.to_be_bytes());
    }

    /// The `keyed` frame seed: the requests of `two_calls` as one run,
    /// sealed by the client's side of the fuzz session.
    fn keyed_seed() -> Vec<u8> {
        use crate::frame::{FrameReader, FrameWriter, decode_wire_frame};
        use crate::message::Message;

        let plain =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/frame/two_calls"))
                .unwrap();
        let mut reader = FrameReader::new(1 << 20, None);
        let mut io = super::Pieces { data: &plain[1..], chunk: plain.len() };
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let sealer = super::fuzz_session(super::Role::Client).split().0;
        let mut writer = FrameWriter::new(1 << 20, Some(sealer));
        while let std::task::Poll::Ready(Some(payload)) =
            reader.poll_frame(std::pin::Pin::new(&mut io), &mut cx)
        {
            writer.push_wire(&decode_wire_frame::<Message>(payload.unwrap()).unwrap()).unwrap();
        }
        // The control byte: pieces of 2 bytes, keyed, a 1 MiB limit.
        let mut seed = vec![0x41];
        let flushed = writer.try_flush(|bufs| {
            bufs.iter().for_each(|b| seed.extend_from_slice(b));
            Ok(bufs.iter().map(|b| b.len()).sum())
        });
        assert!(flushed.unwrap());
        seed
    }

    #[test]
    fn the_keyed_seed_is_a_sealed_run_of_two_calls() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/frame/keyed");
        let expected = keyed_seed();
        if std::env::var_os("RMI_WRITE_SEEDS").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let seed = std::fs::read(&path).unwrap();
        assert_eq!(seed, expected, "stale seed: rerun this test with RMI_WRITE_SEEDS=1");
        assert_eq!(seed[0] & 0x40, 0x40, "the control byte says keyed");
        assert_eq!(super::frames(&seed[1..], 2, 1 << 20, true), 2);
        // One byte changed anywhere in the run: nothing decodes.
        for at in 1..seed.len() {
            let mut bad = seed.clone();
            bad[at] ^= 0x20;
            assert_eq!(super::frames(&bad[1..], 2, 1 << 20, true), 0, "byte {at}");
        }
    }
}
