//! Runs of frames sealed by one tag: what the writer puts on the wire, and
//! what the reader makes of it, honest or tampered with.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;

use super::run::{KIND_DATA, KIND_SEAL, SEAL_FRAME_LEN, run_limit, seal_frame};
use super::*;
use crate::auth::{CONN_ID_LEN, Key, Role, Session};

const MAX: usize = 1 << 16;

type Msg = (u32, String);

fn msg(n: u32) -> Msg {
    (n, "x".repeat(n as usize % 7 * 5))
}

/// The two ends of one direction of an authenticated connection.
fn ends() -> (Sealer, Opener) {
    let key = Key::from("runs");
    let client = Session::new(&key, Role::Client, &[1; 32], &[2; 32]);
    let server = Session::new(&key, Role::Server, &[1; 32], &[2; 32]);
    (client.split().0, server.split().1)
}

/// Queues `messages` and returns the bytes of the write that follows.
fn write(writer: &mut FrameWriter, messages: &[Msg]) -> Vec<u8> {
    for m in messages {
        writer.push(m).unwrap();
    }
    let mut out = Vec::new();
    let done = writer.try_flush(|bufs| {
        bufs.iter().for_each(|b| out.extend_from_slice(b));
        Ok(bufs.iter().map(|b| b.len()).sum())
    });
    assert!(done.unwrap());
    out
}

/// The frames of `wire`, each with its length prefix.
fn frames(wire: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let (frame, tail) = rest.split_at(4 + len);
        out.push(frame);
        rest = tail;
    }
    out
}

/// What a reader makes of `wire` followed by the end of the stream: the
/// messages it delivers, and the error it stops at.
fn read(opener: Option<Opener>, max: usize, wire: &[u8]) -> (Vec<Msg>, Option<TransportError>) {
    let mut reader = FrameReader::new(max, opener);
    let mut io = wire;
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut delivered = Vec::new();
    loop {
        match reader.poll_frame(Pin::new(&mut io), &mut cx) {
            Poll::Ready(Some(Ok(payload))) => match decode_frame::<Msg>(payload) {
                Ok(m) => delivered.push(m),
                Err(e) => return (delivered, Some(e)),
            },
            Poll::Ready(Some(Err(e))) => return (delivered, Some(e)),
            Poll::Ready(None) => return (delivered, None),
            Poll::Pending => panic!("a byte slice never blocks"),
        }
    }
}

/// As [`read`], for a stream that must read to its end without an error.
fn read_ok(opener: Option<Opener>, max: usize, wire: &[u8]) -> Vec<Msg> {
    let (delivered, error) = read(opener, max, wire);
    assert!(error.is_none(), "{error:?} after {delivered:?}");
    delivered
}

fn auth_error(error: Option<TransportError>) -> AuthError {
    match error {
        Some(TransportError::Auth(e)) => e,
        other => panic!("expected an authentication error, got {other:?}"),
    }
}

#[test]
fn a_run_of_frames_in_one_write_carries_one_seal() {
    let (sealer, opener) = ends();
    let mut writer = FrameWriter::new(MAX, Some(sealer));
    let first: Vec<Msg> = (0..5).map(msg).collect();
    let second: Vec<Msg> = (5..8).map(msg).collect();
    let mut wire = write(&mut writer, &first);
    let kinds: Vec<u8> = frames(&wire).iter().map(|f| f[4]).collect();
    assert_eq!(kinds, [KIND_DATA, KIND_DATA, KIND_DATA, KIND_DATA, KIND_DATA, KIND_SEAL]);
    let seal = frames(&wire)[5];
    assert_eq!(seal.len(), SEAL_FRAME_LEN);
    assert_eq!(&seal[5 + CONN_ID_LEN..5 + CONN_ID_LEN + 8], &0u64.to_be_bytes(), "the first run is run 0");
    let more = write(&mut writer, &second);
    let seal = *frames(&more).last().unwrap();
    assert_eq!(frames(&more).len(), 4);
    assert_eq!(&seal[5 + CONN_ID_LEN..5 + CONN_ID_LEN + 8], &1u64.to_be_bytes(), "the next write is run 1");
    wire.extend_from_slice(&more);
    assert_eq!(read_ok(Some(opener), MAX, &wire), [first, second].concat());
    // Nothing queued: no seal, no write.
    assert!(write(&mut writer, &[]).is_empty());
}

#[test]
fn without_a_key_frames_carry_no_kind_byte_and_no_seal() {
    let mut writer = FrameWriter::new(MAX, None);
    let wire = write(&mut writer, &[msg(3), msg(4)]);
    let envelope = postcard::to_stdvec(&msg(3)).unwrap();
    let mut first = ((4 + envelope.len()) as u32).to_be_bytes().to_vec();
    first.extend_from_slice(&(envelope.len() as u32).to_be_bytes());
    first.extend_from_slice(&envelope);
    assert_eq!(frames(&wire).len(), 2);
    assert_eq!(frames(&wire)[0], &first[..]);
    assert_eq!(read_ok(None, MAX, &wire), [msg(3), msg(4)]);
}

#[test]
fn every_changed_byte_of_a_run_fails_it_and_delivers_nothing() {
    let (sealer, opener) = ends();
    let wire = write(&mut FrameWriter::new(MAX, Some(sealer)), &[msg(1), msg(2), msg(3)]);
    let frames = frames(&wire);
    let mut tampered = 0;
    let mut at = 0;
    for frame in &frames {
        for offset in 0..frame.len() {
            for mask in [0x01, 0x80] {
                let mut bad = wire.clone();
                bad[at + offset] ^= mask;
                let (delivered, error) = read(Some(opener.clone()), MAX, &bad);
                assert!(delivered.is_empty(), "byte {} ^ {mask:#x}: {delivered:?}", at + offset);
                let error =
                    error.unwrap_or_else(|| panic!("byte {} ^ {mask:#x} went unnoticed", at + offset));
                // Past the length prefix and kind byte, a data frame's bytes
                // are covered by the tag alone.
                if frame[4] == KIND_DATA && offset > 4 {
                    assert_eq!(
                        auth_error(Some(error)),
                        AuthError::Tampered { seq: 0 },
                        "byte {}",
                        at + offset
                    );
                    tampered += 1;
                }
            }
        }
        at += frame.len();
    }
    assert!(tampered >= 2 * 3 * 5, "{tampered} payload bytes checked");
}

#[test]
fn a_moved_frame_boundary_fails_the_tag() {
    let (sealer, opener) = ends();
    let wire = write(&mut FrameWriter::new(MAX, Some(sealer)), &[msg(1), msg(2)]);
    let frames = frames(&wire);
    let (a, b, seal) = (&frames[0][4..], &frames[1][4..], frames[2]);
    // The same bytes in the same order, the first byte of the second frame
    // (its kind byte, 0) moved to the end of the first: both still parse as
    // data frames.
    let mut moved = ((a.len() + 1) as u32).to_be_bytes().to_vec();
    moved.extend_from_slice(a);
    moved.push(b[0]);
    moved.extend_from_slice(&((b.len() - 1) as u32).to_be_bytes());
    moved.extend_from_slice(&b[1..]);
    assert_eq!(b[1], KIND_DATA, "the second frame still starts with a data kind");
    moved.extend_from_slice(seal);
    let (delivered, error) = read(Some(opener), MAX, &moved);
    assert!(delivered.is_empty());
    assert_eq!(auth_error(error), AuthError::Tampered { seq: 0 });
}

#[test]
fn a_run_without_its_seal_delivers_nothing() {
    let (sealer, opener) = ends();
    let wire = write(&mut FrameWriter::new(MAX, Some(sealer)), &[msg(1), msg(2), msg(3)]);
    let unsealed = &wire[..wire.len() - SEAL_FRAME_LEN];
    // The stream ends: an error, not a clean end.
    let (delivered, error) = read(Some(opener.clone()), MAX, unsealed);
    assert!(delivered.is_empty());
    assert_eq!(auth_error(error), AuthError::UnsealedAtEnd { frames: 3 });
    // The stream stays open: the reader waits, and hands out nothing.
    struct Stalled<'a>(&'a [u8]);
    impl tokio::io::AsyncRead for Stalled<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.0.is_empty() {
                return Poll::Pending;
            }
            buf.put_slice(self.0);
            self.0 = &[];
            Poll::Ready(Ok(()))
        }
    }
    let mut reader = FrameReader::new(MAX, Some(opener));
    let mut io = Stalled(unsealed);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(reader.poll_frame(Pin::new(&mut io), &mut cx).is_pending());
}

#[test]
fn a_run_over_the_unsealed_bound_is_refused_at_the_length_prefix() {
    let (_, opener) = ends();
    let max = 100;
    let limit = run_limit(max);
    // Data frames of 44 bytes on the wire (prefix, kind, envelope length,
    // envelope): each is well within the message limit, four are more than
    // a run may take.
    let mut body = vec![KIND_DATA, 0, 0, 0, 35];
    body.extend_from_slice(&[7; 35]);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    let mut wire = [frame.clone(), frame.clone(), frame.clone()].concat();
    assert!(wire.len() + frame.len() > limit && wire.len() <= limit);
    // The fourth frame's prefix alone: refused before its body arrives.
    wire.extend_from_slice(&frame[..4]);
    let (delivered, error) = read(Some(opener), max, &wire);
    assert!(delivered.is_empty());
    assert_eq!(auth_error(error), AuthError::RunTooLarge { len: 4 * 44, max: limit });
}

#[test]
fn the_writer_seals_before_a_run_would_pass_its_bound() {
    assert_eq!(run_limit(0), 62, "the bound the module documentation states");
    let (sealer, opener) = ends();
    let max = 100;
    let mut writer = FrameWriter::new(max, Some(sealer));
    // Ten frames of 51 bytes queued before one write, then a message of the
    // largest size allowed: the writer seals in between, never past the bound.
    let mut messages: Vec<Msg> = (0..10).map(|n| (n, "y".repeat(40))).collect();
    let envelope = |m: &Msg| postcard::to_stdvec(m).unwrap().len();
    let largest = (99, "z".repeat(98));
    assert_eq!(envelope(&largest), max);
    messages.push(largest);
    let wire = write(&mut writer, &messages);
    let mut runs = vec![0];
    for frame in frames(&wire) {
        *runs.last_mut().unwrap() += frame.len();
        if frame[4] == KIND_SEAL {
            runs.push(0);
        }
    }
    assert_eq!(runs.pop(), Some(0), "the write ends with a seal");
    assert!(runs.len() >= 4, "{runs:?}");
    assert!(runs.iter().all(|&len| len <= run_limit(max)), "{runs:?} over {}", run_limit(max));
    assert_eq!(read_ok(Some(opener), max, &wire), messages);
}

#[test]
fn replayed_and_reordered_runs_fail() {
    let (sealer, opener) = ends();
    let mut writer = FrameWriter::new(MAX, Some(sealer));
    let runs: Vec<Vec<u8>> = (0..3).map(|n| write(&mut writer, &[msg(2 * n), msg(2 * n + 1)])).collect();
    let cases = [
        (vec![0, 1, 0], 4, AuthError::Replayed { seq: 0, expected: 2 }),
        (vec![0, 1, 1], 4, AuthError::Replayed { seq: 1, expected: 2 }),
        (vec![1, 0], 0, AuthError::Reordered { seq: 1, expected: 0 }),
        (vec![0, 2], 2, AuthError::Reordered { seq: 2, expected: 1 }),
    ];
    for (order, good, expected) in cases {
        let wire: Vec<u8> = order.iter().flat_map(|&n| runs[n].clone()).collect();
        let (delivered, error) = read(Some(opener.clone()), MAX, &wire);
        assert_eq!(delivered, (0..good as u32).map(msg).collect::<Vec<_>>(), "{order:?}");
        assert_eq!(auth_error(error), expected, "{order:?}");
    }
}

#[test]
fn a_frame_moved_into_another_run_fails_that_run() {
    let (sealer, opener) = ends();
    let mut writer = FrameWriter::new(MAX, Some(sealer));
    let r0 = write(&mut writer, &[msg(0)]);
    let r1 = write(&mut writer, &[msg(1)]);
    let r2 = write(&mut writer, &[msg(2), msg(3)]);
    let (b, c) = (frames(&r1), frames(&r2));
    // The first frame of run 2 moved into run 1, before run 1's seal.
    let wire = [&r0[..], b[0], c[0], b[1], c[1], c[2]].concat();
    let (delivered, error) = read(Some(opener.clone()), MAX, &wire);
    assert_eq!(delivered, [msg(0)]);
    assert_eq!(auth_error(error), AuthError::Tampered { seq: 1 });
    // And a frame of run 1 moved back into run 0.
    let a = frames(&r0);
    let wire = [a[0], b[0], a[1], b[1]].concat();
    let (delivered, error) = read(Some(opener), MAX, &wire);
    assert!(delivered.is_empty());
    assert_eq!(auth_error(error), AuthError::Tampered { seq: 0 });
}

#[test]
fn a_seal_with_no_frames_before_it_is_refused() {
    let (sealer, opener) = ends();
    let lone = seal_frame(&[0; CONN_ID_LEN], 0, &[0; 32]);
    let (delivered, error) = read(Some(opener.clone()), MAX, &lone);
    assert!(delivered.is_empty());
    assert_eq!(auth_error(error), AuthError::EmptyRun { seq: 0 });
    // A genuine seal sent twice: the run goes through, the copy is refused.
    let wire = write(&mut FrameWriter::new(MAX, Some(sealer)), &[msg(1)]);
    let seal = *frames(&wire).last().unwrap();
    let (delivered, error) = read(Some(opener), MAX, &[&wire[..], seal].concat());
    assert_eq!(delivered, [msg(1)]);
    assert_eq!(auth_error(error), AuthError::EmptyRun { seq: 0 });
}

#[test]
fn frames_that_are_neither_data_nor_seals_are_refused() {
    let (_, opener) = ends();
    let frame = |body: &[u8]| [&(body.len() as u32).to_be_bytes()[..], body].concat();
    let cases = [
        (frame(&[]), AuthError::EmptyFrame),
        (frame(&[2, 0, 0, 0, 0]), AuthError::UnknownKind { kind: 2 }),
        (frame(&[0xff]), AuthError::UnknownKind { kind: 0xff }),
        (frame(&[KIND_SEAL; 11]), AuthError::BadSeal { len: 10 }),
        (frame(&[KIND_SEAL; 50]), AuthError::BadSeal { len: 49 }),
    ];
    for (wire, expected) in cases {
        let (delivered, error) = read(Some(opener.clone()), MAX, &wire);
        assert!(delivered.is_empty());
        assert_eq!(auth_error(error), expected);
    }
}

#[test]
fn a_seal_without_a_key_is_a_malformed_frame() {
    // Without a key there is no kind byte: a seal frame's bytes are read as
    // a payload, whose envelope length runs past its end.
    let (sealer, _) = ends();
    let wire = write(&mut FrameWriter::new(MAX, Some(sealer)), &[msg(1)]);
    let seal = *frames(&wire).last().unwrap();
    match read(None, MAX, seal) {
        (delivered, Some(TransportError::Malformed(_))) => assert!(delivered.is_empty()),
        other => panic!("expected a malformed frame, got {other:?}"),
    }
}

#[test]
fn a_tiny_message_limit_still_lets_seals_through() {
    let (sealer, opener) = ends();
    let max = 12;
    let wire = write(&mut FrameWriter::new(max, Some(sealer)), &[msg(1), (2, "ab".into())]);
    assert_eq!(read_ok(Some(opener), max, &wire), [msg(1), (2, "ab".into())]);
}

#[test]
fn each_run_error_says_something_different() {
    let errors = [
        AuthError::Tampered { seq: 1 },
        AuthError::Replayed { seq: 1, expected: 2 },
        AuthError::Reordered { seq: 2, expected: 1 },
        AuthError::Spliced,
        AuthError::EmptyFrame,
        AuthError::UnknownKind { kind: 2 },
        AuthError::BadSeal { len: 3 },
        AuthError::EmptyRun { seq: 1 },
        AuthError::RunTooLarge { len: 200, max: 162 },
        AuthError::UnsealedAtEnd { frames: 3 },
    ];
    let texts: std::collections::HashSet<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), errors.len(), "{texts:?}");
    assert!(texts.iter().all(|t| !t.is_empty() && !t.ends_with('.')), "{texts:?}");
}

#[test]
fn a_frame_decoded_in_place_keeps_nothing_when_it_has_bytes_left_over() {
    // A cancel of call 5, its envelope alone...
    let payload = |extra: &[u8]| {
        let mut p = vec![0, 0, 0, 2, 1, 5];
        p.extend_from_slice(extra);
        Bytes::from(p)
    };
    let mut out = None;
    assert!(decode_wire_frame_into::<crate::Message>(payload(&[]), &mut out).is_ok());
    assert_eq!(out, Some(crate::Message::Cancel { id: 5 }));
    // ... then with a byte no message took: refused, and `out` emptied.
    let e = decode_wire_frame_into::<crate::Message>(payload(&[0xAA]), &mut out).unwrap_err();
    assert!(matches!(e, TransportError::Malformed(_)), "{e:?}");
    assert_eq!(out, None);
}

/// Hands out its bytes one at a time, every other poll `Pending` (having
/// woken the task), as a socket that delivers a frame in pieces.
struct Trickle<'a> {
    bytes: &'a [u8],
    ready: bool,
}

impl tokio::io::AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        if let Some((&first, rest)) = self.bytes.split_first() {
            buf.put_slice(&[first]);
            self.bytes = rest;
        }
        Poll::Ready(Ok(()))
    }
}

#[test]
fn frames_arriving_a_byte_at_a_time_are_read_whole_with_and_without_a_key() {
    let messages: Vec<Msg> = (0..12).map(msg).collect();
    for keyed in [false, true] {
        let (sealer, opener) = ends();
        let mut writer = FrameWriter::new(MAX, keyed.then_some(sealer));
        let wire = write(&mut writer, &messages);
        let mut reader = FrameReader::new(MAX, keyed.then_some(opener));
        let mut io = Trickle { bytes: &wire, ready: false };
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut delivered = Vec::new();
        // Two polls a byte, and a few more: bounded.
        for _ in 0..4 * wire.len() + 16 {
            match reader.poll_frame(Pin::new(&mut io), &mut cx) {
                Poll::Ready(Some(Ok(payload))) => delivered.push(decode_frame::<Msg>(payload).unwrap()),
                Poll::Ready(Some(Err(e))) => panic!("keyed {keyed}: {e:?} after {delivered:?}"),
                Poll::Ready(None) => break,
                Poll::Pending => {}
            }
        }
        assert_eq!(delivered, messages, "keyed {keyed}");
    }
}
