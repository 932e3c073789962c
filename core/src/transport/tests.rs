use super::*;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::auth::AuthError;
use crate::blob::Blob;
use crate::encoded::Encoded;
use crate::frame::run::SEAL_FRAME_LEN;
use crate::frame::{FrameReader, FrameWriter, SPECULATIVE_BUDGET};
use crate::handshake::client_handshake_as;

const MAX: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Msg {
    n: u32,
    text: String,
    blob: Blob,
}

fn msg(n: u32) -> Msg {
    Msg { n, text: format!("message {n}"), blob: Blob::from(vec![n as u8; (n as usize % 3) * 5000]) }
}

type T<IO> = Transport<IO, Msg, Msg>;

fn pair(session: bool) -> (T<tokio::io::DuplexStream>, T<tokio::io::DuplexStream>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (sa, sb) = if session {
        let key = Key::from("test key");
        let (c, s) = ([7; 32], [9; 32]);
        (
            Some(Session::new(&key, crate::auth::Role::Client, &c, &s)),
            Some(Session::new(&key, crate::auth::Role::Server, &c, &s)),
        )
    } else {
        (None, None)
    };
    (Transport::new(a, sa, MAX), Transport::new(b, sb, MAX))
}

#[tokio::test]
async fn messages_and_blobs_round_trip_with_and_without_a_key() {
    for keyed in [false, true] {
        let (mut a, b) = pair(keyed);
        let sent: Vec<Msg> = (0..50).map(msg).collect();
        let expect = sent.clone();
        let writer = tokio::spawn(async move {
            for m in sent {
                a.feed(m).await.unwrap();
            }
            a.close().await.unwrap();
        });
        let got: Vec<Msg> = b.map(|r| r.unwrap()).collect().await;
        writer.await.unwrap();
        assert_eq!(got, expect, "keyed={keyed}");
    }
}

#[tokio::test]
async fn a_4gib_length_prefix_is_refused_at_once() {
    let (mut a, b) = tokio::io::duplex(1024);
    let mut t: T<_> = Transport::new(b, None, MAX);
    a.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    // No body follows, yet the error comes at once.
    let r = tokio::time::timeout(Duration::from_secs(5), t.next()).await.expect("refused without waiting");
    match r {
        Some(Err(TransportError::FrameTooLarge { len, max })) => {
            assert_eq!(len, u32::MAX as u64);
            assert_eq!(max, MAX);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    let text = TransportError::FrameTooLarge { len: 1 << 32, max: MAX }.to_string();
    assert!(text.contains("exceeds the limit") && text.contains("RMI_MAX_MESSAGE_SIZE"), "{text}");
    // The stream is finished after the error.
    assert!(t.next().await.is_none());
}

#[test]
fn announced_frames_reserve_bounded_memory() {
    // Many peers announce frames just under the limit and send nothing: the
    // memory reserved for them stays within the process budget plus a small
    // amount per connection.
    let max = 60 << 20;
    let readers = 20;
    let mut total = 0;
    let mut held = Vec::new();
    for _ in 0..readers {
        let mut r = FrameReader::new(max, None);
        let prefix = (max as u32).to_be_bytes();
        let mut io = &prefix[..];
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let _ = r.poll_fill(std::pin::Pin::new(&mut io), &mut cx);
        assert!(matches!(r.decode(), Ok(None)));
        total += r.buffered_capacity();
        held.push(r);
    }
    let per_connection = 256 * 1024;
    assert!(
        total <= SPECULATIVE_BUDGET + readers * per_connection,
        "{total} bytes reserved for {readers} empty frames"
    );
    assert!(total < readers * max, "not every announced frame got its memory");
}

#[tokio::test]
async fn end_of_stream_between_frames_is_clean_and_inside_one_is_an_error() {
    let (a, mut b) = pair(false);
    drop(a);
    assert!(b.next().await.is_none());

    let (mut raw, other) = tokio::io::duplex(1024);
    let mut t: T<_> = Transport::new(other, None, MAX);
    raw.write_all(&[0, 0, 0, 10, 1, 2]).await.unwrap();
    drop(raw);
    assert!(matches!(t.next().await, Some(Err(TransportError::ClosedMidFrame))));
}

#[tokio::test]
async fn garbage_in_a_frame_is_a_malformed_message() {
    for body in [&b""[..], &[0, 0, 0, 9, 1][..], &[0, 0, 0, 1, 0xff][..], &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0][..]]
    {
        let (mut raw, other) = tokio::io::duplex(1024);
        let mut t: T<_> = Transport::new(other, None, MAX);
        raw.write_all(&(body.len() as u32).to_be_bytes()).await.unwrap();
        raw.write_all(body).await.unwrap();
        match t.next().await {
            Some(Err(TransportError::Malformed(_))) => {}
            other => panic!("{body:?}: expected Malformed, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn oversized_messages_are_refused_before_sending() {
    let (mut a, mut b) = pair(false);
    // The message limit is exact: framing does not count against it.
    let fits = |len: usize| Msg { n: 0, text: String::new(), blob: Blob::from(vec![0; len]) };
    // Envelope of an attached blob near 1 MiB: n (1) + empty text (1) +
    // blob variant (1) + its length as a varint (3).
    let envelope = 6;
    let huge = fits(MAX - envelope + 1);
    match a.send(huge).await {
        Err(TransportError::FrameTooLarge { .. }) => {}
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    // Nothing was queued, and the connection still works.
    a.send(msg(1)).await.unwrap();
    assert_eq!(b.next().await.unwrap().unwrap(), msg(1));
}

#[test]
fn large_blobs_are_written_from_the_callers_buffer() {
    // With a key too: the tag is fed the caller's buffer, not a copy of it.
    for keyed in [false, true] {
        let payload = Bytes::from(vec![3u8; 10 << 20]);
        let call =
            crate::message::Call::new("o", "m", Encoded::encode(&(Blob::from(payload.clone()),)).unwrap());
        let sealer = keyed.then(|| {
            let session = Session::new(&Key::from("k"), crate::auth::Role::Client, &[1; 32], &[2; 32]);
            session.split().0
        });
        let mut w = FrameWriter::new(64 << 20, sealer);
        let mut sink = Vec::new();
        w.push(&call).unwrap();
        let mut rec = Recorder(&mut sink);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(w.poll_flush(std::pin::Pin::new(&mut rec), &mut cx).is_ready());
        assert!(
            sink.contains(&(payload.as_ptr() as usize, payload.len())),
            "keyed={keyed}: the 10 MiB argument went to the socket straight from the caller's buffer: {sink:?}"
        );
        let total: usize = sink.iter().map(|(_, n)| n).sum();
        assert!(total < payload.len() + 200, "keyed={keyed}: only a small header around it: {total}");
    }
}

/// Records the address and length of every slice written to it.
struct Recorder<'a>(&'a mut Vec<(usize, usize)>);

impl tokio::io::AsyncWrite for Recorder<'_> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.get_mut().0.push((buf.as_ptr() as usize, buf.len()));
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        let mut n = 0;
        for b in bufs {
            me.0.push((b.as_ptr() as usize, b.len()));
            n += b.len();
        }
        std::task::Poll::Ready(Ok(n))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn received_blobs_are_slices_of_the_receive_buffer() {
    let (mut a, mut b) = pair(true);
    let big = Blob::from(vec![5u8; MAX / 2]);
    let sent = Msg { n: 1, text: "big".into(), blob: big.clone() };
    let writer = tokio::spawn(async move { a.send(sent).await.unwrap() });
    let got = b.next().await.unwrap().unwrap();
    writer.await.unwrap();
    assert_eq!(got.blob, big);
    assert_ne!(got.blob.as_ptr(), big.as_ptr());
}

// ---- Authentication over real loopback connections ----

/// A listener that runs the server handshake on every connection with
/// `key`, echoes messages, and reports each connection's outcome.
async fn echo_server(key: Option<Key>) -> (SocketAddr, mpsc::UnboundedReceiver<Result<(), TransportError>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (tx, key) = (tx.clone(), key.clone());
            tokio::spawn(async move {
                let outcome = async {
                    let mut t: T<TcpStream> = accept(stream, key.as_ref(), MAX).await?;
                    while let Some(m) = t.next().await {
                        t.send(m?).await?;
                    }
                    Ok(())
                }
                .await;
                let _ = tx.send(outcome);
            });
        }
    });
    (addr, rx)
}

async fn next_outcome(
    rx: &mut mpsc::UnboundedReceiver<Result<(), TransportError>>,
) -> Result<(), TransportError> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("server reported")
        .expect("server alive")
}

/// A well-behaved client's round trip, showing the listener still serves.
async fn good_client(addr: SocketAddr, key: Option<&Key>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut t: T<TcpStream> = connect(stream, key, MAX).await.unwrap();
    for n in 0..3 {
        t.send(msg(n)).await.unwrap();
        assert_eq!(t.next().await.unwrap().unwrap(), msg(n));
    }
}

async fn client_error(addr: SocketAddr, key: Option<&Key>) -> AuthError {
    let stream = TcpStream::connect(addr).await.unwrap();
    match connect::<_, Msg, Msg>(stream, key, MAX).await {
        Err(TransportError::Auth(e)) => e,
        other => panic!("expected an authentication error, got {other:?}"),
    }
}

fn server_auth_error(outcome: Result<(), TransportError>) -> AuthError {
    match outcome {
        Err(TransportError::Auth(e)) => e,
        other => panic!("expected the server to report an authentication error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_right_key_works() {
    let key = Key::from("shared");
    let (addr, mut rx) = echo_server(Some(key.clone())).await;
    good_client(addr, Some(&key)).await;
    assert!(next_outcome(&mut rx).await.is_ok());
}

#[tokio::test]
async fn a_wrong_key_is_refused() {
    let (addr, mut rx) = echo_server(Some(Key::from("right"))).await;
    assert_eq!(client_error(addr, Some(&Key::from("wrong"))).await, AuthError::WrongKey);
    assert!(next_outcome(&mut rx).await.is_err());
    good_client(addr, Some(&Key::from("right"))).await;
}

#[tokio::test]
async fn a_client_proving_the_wrong_key_is_refused_by_the_server() {
    // A client that ignores the server's proof and answers with its own.
    let (addr, mut rx) = echo_server(Some(Key::from("right"))).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut hello = b"RMI\0".to_vec();
    hello.extend_from_slice(&crate::handshake::PROTOCOL_VERSION.to_be_bytes());
    hello.push(1);
    hello.extend_from_slice(&[1; 32]);
    stream.write_all(&(hello.len() as u32).to_be_bytes()).await.unwrap();
    stream.write_all(&hello).await.unwrap();
    let mut reply = [0; 4 + 72];
    stream.read_exact(&mut reply).await.unwrap();
    stream.write_all(&[0, 0, 0, 32]).await.unwrap();
    stream.write_all(&[0xab; 32]).await.unwrap();
    assert_eq!(server_auth_error(next_outcome(&mut rx).await), AuthError::WrongKey);
    good_client(addr, Some(&Key::from("right"))).await;
}

#[tokio::test]
async fn a_key_on_the_client_only_is_refused() {
    let (addr, mut rx) = echo_server(None).await;
    assert_eq!(client_error(addr, Some(&Key::from("k"))).await, AuthError::ServerHasNoKey);
    assert_eq!(server_auth_error(next_outcome(&mut rx).await), AuthError::ClientHasKey);
    good_client(addr, None).await;
}

#[tokio::test]
async fn a_key_on_the_server_only_is_refused() {
    let key = Key::from("k");
    let (addr, mut rx) = echo_server(Some(key.clone())).await;
    let err = client_error(addr, None).await;
    assert_eq!(err, AuthError::KeyRequired);
    assert!(err.to_string().contains("RMI_HMAC_KEY"), "{err}");
    assert_eq!(server_auth_error(next_outcome(&mut rx).await), AuthError::ClientHasNoKey);
    good_client(addr, Some(&key)).await;
}

#[tokio::test]
async fn a_version_mismatch_is_refused() {
    // A version 2 peer (one-way messages) meets this version 4 one
    // (symmetric messages, streams), with and without a key.
    assert_eq!(crate::handshake::PROTOCOL_VERSION, 4);
    for key in [None, Some(Key::from("k"))] {
        let (addr, mut rx) = echo_server(key.clone()).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        match client_handshake_as(&mut stream, key.as_ref(), 2, None).await {
            Err(TransportError::Auth(AuthError::VersionMismatch { ours: 2, theirs: 4 })) => {}
            other => panic!("expected a version mismatch, got {other:?}"),
        }
        assert_eq!(
            server_auth_error(next_outcome(&mut rx).await),
            AuthError::VersionMismatch { ours: 4, theirs: 2 }
        );
        good_client(addr, key.as_ref()).await;
    }
}

#[tokio::test]
async fn a_stranger_is_told_apart() {
    let (addr, mut rx) = echo_server(None).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(matches!(server_auth_error(next_outcome(&mut rx).await), AuthError::NotRmi(_)));
    good_client(addr, None).await;
}

/// What a man in the middle does to the client's runs after the handshake.
#[derive(Clone, Copy, Debug)]
enum Attack {
    Record,
    Tamper,
    Replay,
    Reorder,
    Splice,
}

/// A man in the middle that attacks the client's first runs after the
/// handshake (each message the client sends is one run: a data frame and
/// its seal).
async fn man_in_the_middle(
    server: SocketAddr,
    attack: Attack,
    recorded: Arc<Mutex<Option<Vec<u8>>>>,
) -> SocketAddr {
    let mut seen: Vec<Vec<u8>> = Vec::new();
    crate::testing::man_in_the_middle_runs(server, move |index, run| {
        seen.push(run.clone());
        match (index, attack) {
            (0, Attack::Record) => {
                *recorded.lock().unwrap() = Some(run.clone());
                vec![run]
            }
            (0, Attack::Tamper) => {
                // The last byte of the data frame, just before the seal.
                let mut run = run;
                let last = run.len() - SEAL_FRAME_LEN - 1;
                run[last] ^= 0x01;
                vec![run]
            }
            (1, Attack::Replay) => vec![run, seen[0].clone()],
            (0, Attack::Reorder) => vec![],
            (1, Attack::Reorder) => vec![run, seen[0].clone()],
            (0, Attack::Splice) => vec![recorded.lock().unwrap().clone().unwrap()],
            _ => vec![run],
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn tampered_replayed_reordered_and_spliced_runs_each_get_their_error() {
    let key = Key::from("shared");
    let (server, mut rx) = echo_server(Some(key.clone())).await;
    let recorded = Arc::new(Mutex::new(None));
    let cases = [
        (Attack::Record, None),
        (Attack::Tamper, Some(AuthError::Tampered { seq: 0 })),
        (Attack::Replay, Some(AuthError::Replayed { seq: 0, expected: 2 })),
        (Attack::Reorder, Some(AuthError::Reordered { seq: 1, expected: 0 })),
        (Attack::Splice, Some(AuthError::Spliced)),
    ];
    for (attack, expected) in cases {
        let relay = man_in_the_middle(server, attack, recorded.clone()).await;
        let stream = TcpStream::connect(relay).await.unwrap();
        let mut t: T<TcpStream> = connect(stream, Some(&key), MAX).await.unwrap();
        for n in 0..3 {
            // Frames the server refuses close the connection; later sends may fail.
            if t.send(msg(n)).await.is_err() {
                break;
            }
        }
        if expected.is_none() {
            for n in 0..3 {
                assert_eq!(t.next().await.unwrap().unwrap(), msg(n));
            }
            drop(t);
            let outcome = next_outcome(&mut rx).await;
            assert!(outcome.is_ok(), "{attack:?}: {outcome:?}");
            continue;
        }
        let outcome = next_outcome(&mut rx).await;
        match expected {
            None => unreachable!(),
            Some(expected) => {
                assert_eq!(server_auth_error(outcome), expected, "{attack:?}");
                // The client sees its connection closed, not a hang.
                let end = tokio::time::timeout(Duration::from_secs(10), async {
                    while let Some(Ok(_)) = t.next().await {}
                })
                .await;
                assert!(end.is_ok(), "{attack:?}: client not told");
            }
        }
        good_client(server, Some(&key)).await;
        assert!(next_outcome(&mut rx).await.is_ok());
    }
}

// ---- tarpc over this transport ----

/// rmi's transport has tarpc's transport shape: a tarpc service runs over it
/// unchanged, authenticated, carrying rmi's zero-copy blobs.
#[tokio::test]
async fn tarpc_calls_travel_over_the_authenticated_transport() {
    use crate::message::Call;
    use tarpc::server::Channel;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Req(Call);
    impl tarpc::RequestName for Req {
        fn name(&self) -> &str {
            &self.0.method
        }
    }
    type ClientMessage = tarpc::ClientMessage<Req>;
    type Response = tarpc::Response<Encoded>;

    let key = Key::from("tarpc key");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_key = key.clone();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let transport: Transport<TcpStream, ClientMessage, Response> =
            accept(stream, Some(&server_key), 64 << 20).await.unwrap();
        let serve = tarpc::server::serve(|_ctx, Req(call): Req| async move {
            let (blob, n): (Blob, u64) = call.args.decode().unwrap();
            Ok(Encoded::encode(&(blob.len() as u64 + n, call.method)).unwrap())
        });
        tarpc::server::BaseChannel::with_defaults(transport)
            .execute(serve)
            .for_each(|response| async move {
                tokio::spawn(response);
            })
            .await;
    });

    let stream = TcpStream::connect(addr).await.unwrap();
    let transport: Transport<TcpStream, Response, ClientMessage> =
        connect(stream, Some(&key), 64 << 20).await.unwrap();
    let client = tarpc::client::new(tarpc::client::Config::default(), transport).spawn();
    let big = Blob::from(vec![1u8; 10 << 20]);
    let calls = (0..20u64).map(|n| {
        let client = client.clone();
        let blob = if n == 0 { big.clone() } else { Blob::default() };
        async move {
            let call = Call::new("obj", format!("m{n}"), Encoded::encode(&(blob, n)).unwrap());
            let reply = client.call(tarpc::context::current(), Req(call)).await.unwrap();
            reply.decode::<(u64, String)>().unwrap()
        }
    });
    let results = futures::future::join_all(calls).await;
    for (n, (len, method)) in results.into_iter().enumerate() {
        let expected_len = if n == 0 { 10 << 20 } else { 0 };
        assert_eq!(len, expected_len + n as u64);
        assert_eq!(method, format!("m{n}"));
    }
}
