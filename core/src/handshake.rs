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
    client_handshake_as(io, key, PROTOCOL_VERSION).await
}

/// The client's handshake claiming `version`; tests use it to play an older
/// or newer peer.
pub(crate) async fn client_handshake_as<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    key: Option<&Key>,
    version: u16,
) -> Result<Option<Session>, TransportError> {
    let client_nonce = random_nonce()?;
    let mut hello = Vec::with_capacity(HELLO_LEN);
    hello.extend_from_slice(&MAGIC);
    hello.extend_from_slice(&version.to_be_bytes());
    hello.push(if key.is_some() { FLAG_KEY } else { 0 });
    hello.extend_from_slice(&client_nonce);
    write_message(io, &hello).await?;

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
    handshake_from(io, key, prefix).await
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
    handshake_from(io, key, prefix).await.map(Greeting::Rmi)
}

async fn handshake_from<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    key: Option<&Key>,
    prefix: [u8; LENGTH_PREFIX_LEN],
) -> Result<Option<Session>, TransportError> {
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
    let client_nonce: [u8; NONCE_LEN] = take_array(&mut rest)?;
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
    let Some(key) = key else { return Ok(None) };
    let finish = read_message(io).await?;
    if !proof_matches(key, Role::Client, &client_nonce, &server_nonce, &finish) {
        return Err(AuthError::WrongKey.into());
    }
    Ok(Some(Session::new(key, Role::Server, &client_nonce, &server_nonce)))
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
