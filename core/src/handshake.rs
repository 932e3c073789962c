//! The handshake at the start of every connection.
//!
//! ```text
//! client → server  hello:  "RMI\0" version:u16 flags:u8 client-nonce:32
//! server → client  reply:  "RMI\0" version:u16 status:u8 flags:u8 server-nonce:32 server-proof:32
//! client → server  finish: client-proof:32                       (with a key only)
//! ```
//!
//! `flags` bit 0 says that the side holds a key. With a key on both sides,
//! each proves it holds the key with HMAC over both nonces (see
//! [`crate::auth`]); the client checks the server's proof before it sends
//! its own, and both derive the session that seals every later run of frames. A
//! server that refuses (another version, a key on one side only) says why
//! in `status` and closes; the client turns that into the matching
//! [`AuthError`]. The messages have fixed layouts, not postcard, so that
//! any later version can still read an older peer's version number.
//!
//! The handshake reads exactly its own bytes, so the client may send its
//! first request right after `finish` without waiting.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::auth::{AuthError, Key, NONCE_LEN, Role, Session, TAG_LEN, proof, proof_matches};
use crate::frame::{LENGTH_PREFIX_LEN, TransportError};

/// The protocol version this build speaks. Both sides must speak the same.
///
/// Version 4 streams a method's results (items and credits, see
/// [`crate::stream`]), and `describe` tells which methods stream.
/// Version 3 makes the messages symmetric: either side calls the other's
/// objects, and releases references (see [`crate::message::Message`]).
/// Version 2 authenticates frames in sealed runs, one tag per run (see
/// [`crate::frame`]); version 1 carried a tag in every frame.
pub const PROTOCOL_VERSION: u16 = 4;
/// First bytes of every rmi greeting.
pub(crate) const MAGIC: [u8; 4] = *b"RMI\0";
/// Longest handshake message accepted: a little more than ours, so that a
/// newer peer's longer hello can still be answered with our version.
const MAX_HANDSHAKE_FRAME: usize = 256;
/// Flag bit: the sender holds a key.
const FLAG_KEY: u8 = 1;
/// Flag bit (client): the connection carries a channel (a tarpc service the
/// daemon serves under a name) instead of rmi's messages; the hello ends
/// with the name (a length byte, then UTF-8).
const FLAG_CHANNEL: u8 = 2;
/// Longest channel name.
pub const MAX_CHANNEL_NAME: usize = 128;

const HELLO_LEN: usize = 4 + 2 + 1 + NONCE_LEN;
const REPLY_LEN: usize = 4 + 2 + 1 + 1 + NONCE_LEN + TAG_LEN;

/// Why a server refused a hello, as sent in the reply's status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok = 0,
    VersionMismatch = 1,
    KeyRequired = 2,
    NoKeyHere = 3,
    /// This server runs TLS, and the client came in plaintext.
    TlsRequired = 4,
    /// This server has no TLS, and the client came with it.
    NoTlsHere = 5,
}

/// The longest TLS record a client's first flight may be (a ClientHello
/// with every extension fits well within it): what a plaintext server
/// reads of it before it answers.
const MAX_TLS_RECORD: usize = 16 * 1024 + 2048;

fn random_nonce() -> Result<[u8; NONCE_LEN], TransportError> {
    let mut nonce = [0; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|e| std::io::Error::other(format!("no randomness for the nonce: {e}")))?;
    Ok(nonce)
}

async fn write_message<IO: AsyncWrite + Unpin>(io: &mut IO, body: &[u8]) -> Result<(), TransportError> {
    let mut frame = Vec::with_capacity(LENGTH_PREFIX_LEN + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    io.write_all(&frame).await?;
    io.flush().await?;
    Ok(())
}

async fn read_message<IO: AsyncRead + Unpin>(io: &mut IO) -> Result<Vec<u8>, TransportError> {
    let prefix = read_prefix(io).await?;
    read_body(io, prefix).await
}

async fn read_prefix<IO: AsyncRead + Unpin>(io: &mut IO) -> Result<[u8; LENGTH_PREFIX_LEN], TransportError> {
    let mut prefix = [0; LENGTH_PREFIX_LEN];
    io.read_exact(&mut prefix).await?;
    Ok(prefix)
}

async fn read_body<IO: AsyncRead + Unpin>(
    io: &mut IO,
    prefix: [u8; LENGTH_PREFIX_LEN],
) -> Result<Vec<u8>, TransportError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_HANDSHAKE_FRAME {
        return Err(AuthError::NotRmi(format!(
            "its first frame announces {len} bytes (greeting bytes {prefix:02x?}), a handshake takes at most {MAX_HANDSHAKE_FRAME}"
        ))
        .into());
    }
    let mut body = vec![0; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

/// Whether a greeting's first bytes open a TLS handshake record (type 22,
/// version 3.x) rather than an rmi hello.
fn opens_tls(prefix: &[u8; LENGTH_PREFIX_LEN]) -> bool {
    prefix[0] == 0x16 && prefix[1] == 0x03
}

/// Reads the rest of the TLS record a client opened with (so that closing
/// the socket does not reset it before it reads the answer), as far as it
/// is bounded; errors are the caller's to ignore.
async fn skip_tls_record<IO: AsyncRead + Unpin>(
    io: &mut IO,
    prefix: [u8; LENGTH_PREFIX_LEN],
) -> std::io::Result<()> {
    let mut low = [0u8; 1];
    io.read_exact(&mut low).await?;
    let len = usize::from(u16::from_be_bytes([prefix[3], low[0]]));
    let mut rest = vec![0; len.min(MAX_TLS_RECORD)];
    io.read_exact(&mut rest).await?;
    Ok(())
}

/// A TLS server met a plaintext client whose first byte was `first`: reads
/// the rest of its hello when it is rmi's, and answers in plaintext rmi
/// that TLS is required. Errors are ignored: the caller refuses the client
/// either way.
pub(crate) async fn refuse_plaintext<IO: AsyncRead + AsyncWrite + Unpin>(io: &mut IO, first: u8) {
    let mut prefix = [first, 0, 0, 0];
    if let Some(rest) = prefix.get_mut(1..)
        && io.read_exact(rest).await.is_err()
    {
        return;
    }
    if read_body(io, prefix).await.is_ok() {
        refuse(io, Status::TlsRequired).await;
    }
}

/// Splits `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], AuthError> {
    if rest.len() < n {
        return Err(AuthError::NotRmi("its handshake message is too short".into()));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_u16(rest: &mut &[u8]) -> Result<u16, AuthError> {
    let b = take(rest, 2)?;
    Ok(u16::from_be_bytes([b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0)]))
}

fn take_u8(rest: &mut &[u8]) -> Result<u8, AuthError> {
    Ok(take(rest, 1)?.first().copied().unwrap_or(0))
}

fn take_array<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], AuthError> {
    let mut out = [0; N];
    out.copy_from_slice(take(rest, N)?);
    Ok(out)
}

fn check_magic(rest: &mut &[u8]) -> Result<(), AuthError> {
    let magic = take(rest, MAGIC.len())?;
    if magic != MAGIC {
        return Err(AuthError::NotRmi(format!("its greeting starts with {magic:02x?}, not {MAGIC:02x?}")));
    }
    Ok(())
}

/// Runs the client's side of the handshake on a fresh connection.
///
/// Returns the session to authenticate frames with when both sides hold a
/// key, `None` when neither does.
///
/// # Errors
///
/// [`TransportError::Auth`] with the reason (wrong key, key on one side only,
/// version mismatch, not an rmi server), or an I/O error.
pub async fn client_handshake<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    key: Option<&Key>,
) -> Result<Option<Session>, TransportError> {
    client_handshake_as(io, key, PROTOCOL_VERSION, None).await
}

/// As [`client_handshake`], for a connection that carries the channel
/// `name` (a tarpc service a daemon serves, see [`Greeting::Channel`])
/// rather than rmi's messages. With a key, the name is bound into the
/// proofs: a relay cannot point the connection at another channel.
///
/// # Errors
///
/// As [`client_handshake`]; a name longer than [`MAX_CHANNEL_NAME`] bytes.
pub async fn client_handshake_channel<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    key: Option<&Key>,
    name: &str,
) -> Result<Option<Session>, TransportError> {
    if name.is_empty() || name.len() > MAX_CHANNEL_NAME {
        return Err(AuthError::NotRmi(format!("a channel name takes 1 to {MAX_CHANNEL_NAME} bytes")).into());
    }
    client_handshake_as(io, key, PROTOCOL_VERSION, Some(name)).await
}

/// The nonce a channel's proofs and session are made from: the client's,
/// bound to the channel's name.
fn bound_nonce(nonce: [u8; NONCE_LEN], channel: Option<&str>) -> [u8; NONCE_LEN] {
    use sha2::Digest;
    let Some(name) = channel else { return nonce };
    let digest =
        sha2::Sha256::new().chain_update(b"rmi channel\0").chain_update(nonce).chain_update(name).finalize();
    let mut out = [0u8; NONCE_LEN];
    for (o, d) in out.iter_mut().zip(digest.iter()) {
        *o = *d;
    }
    out
}

/// The client's handshake claiming `version`; tests use it to play an older
/// or newer peer.
pub(crate) async fn client_handshake_as<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    key: Option<&Key>,
    version: u16,
    channel: Option<&str>,
) -> Result<Option<Session>, TransportError> {
    let sent_nonce = random_nonce()?;
    let mut hello = Vec::with_capacity(HELLO_LEN + channel.map_or(0, |c| 1 + c.len()));
    hello.extend_from_slice(&MAGIC);
    hello.extend_from_slice(&version.to_be_bytes());
    let flags = if key.is_some() { FLAG_KEY } else { 0 } | if channel.is_some() { FLAG_CHANNEL } else { 0 };
    hello.push(flags);
    hello.extend_from_slice(&sent_nonce);
    if let Some(name) = channel {
        hello.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        hello.extend_from_slice(name.as_bytes());
    }
    write_message(io, &hello).await?;
    let client_nonce = bound_nonce(sent_nonce, channel);

    let reply = read_message(io).await?;
    let mut rest = reply.as_slice();
    check_magic(&mut rest)?;
    let theirs = take_u16(&mut rest)?;
    let status = take_u8(&mut rest)?;
    if status == Status::VersionMismatch as u8 || theirs != version {
        return Err(AuthError::VersionMismatch { ours: version, theirs }.into());
    }
    if status == Status::KeyRequired as u8 {
        return Err(AuthError::KeyRequired.into());
    }
    if status == Status::NoKeyHere as u8 {
        return Err(AuthError::ServerHasNoKey.into());
    }
    if status == Status::TlsRequired as u8 {
        return Err(AuthError::TlsRequired.into());
    }
    if status == Status::NoTlsHere as u8 {
        return Err(AuthError::ServerHasNoTls.into());
    }
    if status != Status::Ok as u8 {
        return Err(AuthError::NotRmi(format!("unknown handshake status {status}")).into());
    }
    let flags = take_u8(&mut rest)?;
    let server_nonce: [u8; NONCE_LEN] = take_array(&mut rest)?;
    let server_proof: [u8; TAG_LEN] = take_array(&mut rest)?;
    match (key, flags & FLAG_KEY != 0) {
        (None, false) => Ok(None),
        (None, true) => Err(AuthError::KeyRequired.into()),
        (Some(_), false) => Err(AuthError::ServerHasNoKey.into()),
        (Some(key), true) => {
            if !proof_matches(key, Role::Server, &client_nonce, &server_nonce, &server_proof) {
                return Err(AuthError::WrongKey.into());
            }
            let finish = proof(key, Role::Client, &client_nonce, &server_nonce);
            write_message(io, &finish).await?;
            Ok(Some(Session::new(key, Role::Client, &client_nonce, &server_nonce)))
        }
    }
}

/// Runs the server's side of the handshake on an accepted connection.
///
/// # Errors
///
/// [`TransportError::Auth`] with the reason the client was refused (it was
/// told too, where the protocol allows), or an I/O error.
pub async fn server_handshake<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    key: Option<&Key>,
) -> Result<Option<Session>, TransportError> {
    let prefix = read_prefix(io).await?;
    handshake_from(io, key, prefix).await.map(|(session, _)| session)
}

/// What a new connection opened with, on a daemon that also speaks Pyro5.
#[derive(Debug)]
// Made and taken apart once per connection: boxing the session would cost
// an allocation for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Greeting {
    /// rmi's handshake, done (with the session when keyed).
    Rmi(Option<Session>),
    /// Pyro5's magic: its first four bytes were read, the rest of its first
    /// message is for [`crate::pyro5::read_message_after_magic`].
    Pyro5,
    /// rmi's handshake, done, for a connection that carries the channel
    /// `name` (see [`client_handshake_channel`]): its bytes are the
    /// channel's from here on.
    Channel {
        /// The session, when keyed.
        session: Option<Session>,
        /// The channel's name.
        name: String,
    },
}

/// As [`server_handshake`], but a connection that opens with Pyro5's magic
/// (`PYRO`) is handed back at once, when `pyro5` is on.
///
/// # Errors
///
/// As [`server_handshake`].
pub async fn server_greeting<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    key: Option<&Key>,
    pyro5: bool,
) -> Result<Greeting, TransportError> {
    let prefix = read_prefix(io).await?;
    if pyro5 && prefix == crate::pyro5::MAGIC {
        return Ok(Greeting::Pyro5);
    }
    let (session, channel) = handshake_from(io, key, prefix).await?;
    Ok(match channel {
        Some(name) => Greeting::Channel { session, name },
        None => Greeting::Rmi(session),
    })
}

async fn handshake_from<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    key: Option<&Key>,
    prefix: [u8; LENGTH_PREFIX_LEN],
) -> Result<(Option<Session>, Option<String>), TransportError> {
    if opens_tls(&prefix) {
        if skip_tls_record(io, prefix).await.is_ok() {
            refuse(io, Status::NoTlsHere).await;
        }
        return Err(AuthError::ClientUsesTls.into());
    }
    let hello = read_body(io, prefix).await?;
    let mut rest = hello.as_slice();
    check_magic(&mut rest)?;
    let theirs = take_u16(&mut rest)?;
    if theirs != PROTOCOL_VERSION {
        refuse(io, Status::VersionMismatch).await;
        return Err(AuthError::VersionMismatch { ours: PROTOCOL_VERSION, theirs }.into());
    }
    let flags = take_u8(&mut rest)?;
    let sent_nonce: [u8; NONCE_LEN] = take_array(&mut rest)?;
    let channel = if flags & FLAG_CHANNEL != 0 {
        let len = usize::from(take_u8(&mut rest)?);
        let name = take(&mut rest, len)?;
        match std::str::from_utf8(name) {
            Ok(name) if !name.is_empty() => Some(name.to_owned()),
            _ => return Err(AuthError::NotRmi("a channel name that is empty or not UTF-8".into()).into()),
        }
    } else {
        None
    };
    let client_nonce = bound_nonce(sent_nonce, channel.as_deref());
    let client_has_key = flags & FLAG_KEY != 0;
    match (key, client_has_key) {
        (Some(_), false) => {
            refuse(io, Status::KeyRequired).await;
            return Err(AuthError::ClientHasNoKey.into());
        }
        (None, true) => {
            refuse(io, Status::NoKeyHere).await;
            return Err(AuthError::ClientHasKey.into());
        }
        _ => {}
    }
    let server_nonce = random_nonce()?;
    let server_proof = match key {
        Some(key) => proof(key, Role::Server, &client_nonce, &server_nonce),
        None => [0; TAG_LEN],
    };
    write_message(io, &reply(Status::Ok, key.is_some(), &server_nonce, &server_proof)).await?;
    let Some(key) = key else { return Ok((None, channel)) };
    let finish = read_message(io).await?;
    if !proof_matches(key, Role::Client, &client_nonce, &server_nonce, &finish) {
        return Err(AuthError::WrongKey.into());
    }
    Ok((Some(Session::new(key, Role::Server, &client_nonce, &server_nonce)), channel))
}

fn reply(status: Status, has_key: bool, nonce: &[u8; NONCE_LEN], proof: &[u8; TAG_LEN]) -> Vec<u8> {
    let mut reply = Vec::with_capacity(REPLY_LEN);
    reply.extend_from_slice(&MAGIC);
    reply.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    reply.push(status as u8);
    reply.push(if has_key { FLAG_KEY } else { 0 });
    reply.extend_from_slice(nonce);
    reply.extend_from_slice(proof);
    reply
}

/// Tells the client why it is refused; it may be gone already, so errors
/// are ignored: the caller reports the refusal itself.
async fn refuse<IO: AsyncWrite + Unpin>(io: &mut IO, status: Status) {
    let _ = write_message(io, &reply(status, false, &[0; NONCE_LEN], &[0; TAG_LEN])).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn channel(
        client_key: Option<&Key>,
        server_key: Option<&Key>,
        name: &str,
    ) -> (Result<Option<Session>, TransportError>, Result<Greeting, TransportError>) {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let client = client_handshake_channel(&mut a, client_key, name);
        let server = server_greeting(&mut b, server_key, false);
        tokio::join!(client, server)
    }

    #[tokio::test]
    async fn a_channel_is_named_in_the_handshake_and_keyed_like_any_connection() {
        let key = Key::from("channel key");
        let (client, server) = channel(Some(&key), Some(&key), "example.world").await;
        assert!(client.unwrap().is_some());
        match server.unwrap() {
            Greeting::Channel { session, name } => {
                assert!(session.is_some());
                assert_eq!(name, "example.world");
            }
            other => panic!("not a channel: {other:?}"),
        }
        let (client, _) = channel(None, Some(&key), "example.world").await;
        assert!(matches!(client, Err(TransportError::Auth(AuthError::KeyRequired))), "{client:?}");
        let (client, server) = channel(None, None, "plain").await;
        assert!(client.unwrap().is_none());
        assert!(matches!(server.unwrap(), Greeting::Channel { session: None, .. }));
        let long = "x".repeat(MAX_CHANNEL_NAME + 1);
        let mut sink = tokio::io::sink();
        let mut io = tokio::io::join(tokio::io::empty(), &mut sink);
        assert!(client_handshake_channel(&mut io, None, &long).await.is_err());
    }

    #[test]
    fn the_name_is_bound_into_the_proofs() {
        let nonce = [7u8; NONCE_LEN];
        assert_eq!(bound_nonce(nonce, None), nonce);
        assert_ne!(bound_nonce(nonce, Some("a")), nonce);
        assert_ne!(bound_nonce(nonce, Some("a")), bound_nonce(nonce, Some("b")));
    }
}
