//! Shared-key authentication: the key, the per-connection session, and the
//! errors of both.
//!
//! With a key on both sides, the handshake (see [`crate::handshake`]) proves
//! that each side holds it, by HMAC-SHA256 over both sides' nonces, and
//! derives a session key for this connection only. From then on frames
//! travel in *runs* (see [`crate::frame`]): the sender feeds the wire bytes
//! of each data frame it queues (length prefix, kind byte, payload) to a
//! running HMAC, and before the frames are written it closes the run with a
//! seal frame carrying the connection id, the run's sequence number and the
//! tag over `(direction, connection id, sequence number, every data frame
//! of the run)`. The receiver holds a run's frames until its seal verifies,
//! and acts on none of them otherwise:
//!
//! * a changed byte, or a moved frame boundary, fails the tag
//!   ([`AuthError::Tampered`]);
//! * a run sent again fails the sequence check ([`AuthError::Replayed`]);
//! * runs swapped or dropped fail it too ([`AuthError::Reordered`]);
//! * a run lifted from another connection carries that connection's id and
//!   a tag under that connection's key ([`AuthError::Spliced`]);
//! * a frame moved from one run into another fails both runs' tags;
//! * a run reflected back to its sender fails the tag, since the direction
//!   is part of it.
//!
//! The key authenticates; it does not encrypt. See `SECURITY.md`.

use std::fmt;

mod frame_mac;

use frame_mac::FrameKey;
pub(crate) use frame_mac::FrameTag;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 tag, in bytes.
pub const TAG_LEN: usize = 32;
/// Length of a connection id, in bytes: enough to tell connections apart, not
/// a secret.
pub const CONN_ID_LEN: usize = 8;
/// Length of a handshake nonce, in bytes.
pub const NONCE_LEN: usize = 32;
/// Bytes of a seal's fields, after its kind byte: connection id, sequence
/// number, tag.
pub const SEAL_LEN: usize = CONN_ID_LEN + 8 + TAG_LEN;

/// A shared secret. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    /// A key from its bytes. Any length works; HMAC hashes long keys down.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Key(bytes.into())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of every length, so this cannot fail; the
        // fallback keeps the no-panic rule without an unreachable branch.
        HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| HmacSha256::new(&Default::default()))
    }

    /// HMAC(key, label || parts...).
    fn derive(&self, label: &[u8], parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut mac = self.mac();
        mac.update(label);
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(<{} bytes, hidden>)", self.0.len())
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key::new(s.as_bytes().to_vec())
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Key::new(s.into_bytes())
    }
}

impl From<&[u8]> for Key {
    fn from(b: &[u8]) -> Self {
        Key::new(b.to_vec())
    }
}

/// Authentication failures, in the handshake and on every later frame.
/// Each has its own variant, so that a log or a test can tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The server requires a key and this client has none.
    #[error("the server requires an HMAC key and this side has none (set RMI_HMAC_KEY or configure a key)")]
    KeyRequired,
    /// This client has a key and the server does not use one.
    #[error(
        "this side has an HMAC key but the server does not use one (give both sides the same key, or neither)"
    )]
    ServerHasNoKey,
    /// (Server side) the client came without a key, and this server requires one.
    #[error("the client has no HMAC key and this server requires one")]
    ClientHasNoKey,
    /// (Server side) the client came with a key, and this server has none.
    #[error("the client has an HMAC key and this server does not use one")]
    ClientHasKey,
    /// The server runs TLS and this side connected without it.
    #[error(
        "the server requires TLS and this side connected without it (set RMI_TLS=on and RMI_TLS_CA, or configure TLS)"
    )]
    TlsRequired,
    /// This side connected with TLS and the server does not use it.
    #[error("this side connected with TLS but the server does not use TLS (give both sides TLS, or neither)")]
    ServerHasNoTls,
    /// (Server side) the client connected without TLS, and this server requires it.
    #[error("the client connected without TLS and this server requires it")]
    ClientHasNoTls,
    /// (Server side) the client connected with TLS, and this server has none.
    #[error("the client connected with TLS and this server does not use TLS")]
    ClientUsesTls,
    /// The peer's proof does not match our key: the keys differ.
    #[error("the peer holds a different HMAC key")]
    WrongKey,
    /// The two sides speak different protocol versions.
    #[error("protocol version mismatch: this side speaks version {ours}, the peer version {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The peer's version.
        theirs: u16,
    },
    /// The peer's greeting is not rmi's.
    #[error("the peer is not speaking the rmi protocol: {0}")]
    NotRmi(String),
    /// A run's tag does not match its frames: a byte or a frame boundary was
    /// altered on the way, or frames were moved between runs.
    #[error("run {seq} failed its authentication tag (tampered with, or reflected back)")]
    Tampered {
        /// The sequence number the run's seal claims.
        seq: u64,
    },
    /// A run arrived again.
    #[error("run {seq} was replayed (expected run {expected})")]
    Replayed {
        /// The sequence number the seal carries.
        seq: u64,
        /// The sequence number that was due.
        expected: u64,
    },
    /// A run arrived before its turn: runs were reordered or dropped.
    #[error("run {seq} arrived out of order (expected run {expected})")]
    Reordered {
        /// The sequence number the seal carries.
        seq: u64,
        /// The sequence number that was due.
        expected: u64,
    },
    /// A run belongs to another connection.
    #[error("a run from another connection was spliced into this one")]
    Spliced,
    /// An authenticated frame has no kind byte.
    #[error("an authenticated frame is empty: it lacks its kind byte")]
    EmptyFrame,
    /// An authenticated frame's kind byte is neither data nor seal.
    #[error("an authenticated frame has kind {kind}, neither data (0) nor seal (1)")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// A seal frame does not have a seal's size.
    #[error("a seal carries {len} bytes after its kind byte, not {SEAL_LEN}")]
    BadSeal {
        /// Bytes after the kind byte.
        len: usize,
    },
    /// A seal came with no data frame before it: the sender never sends one.
    #[error("seal {seq} closes a run without frames")]
    EmptyRun {
        /// The sequence number the seal carries.
        seq: u64,
    },
    /// More bytes arrived without a seal than a run may hold.
    #[error(
        "{len} bytes of frames arrived without a seal, more than the {max} a run may take (RMI_MAX_MESSAGE_SIZE plus framing)"
    )]
    RunTooLarge {
        /// Bytes of the run so far, the frame that passed the bound included.
        len: u64,
        /// The bound.
        max: usize,
    },
    /// The connection ended in the middle of a run.
    #[error("the connection ended after {frames} frames that no seal vouched for")]
    UnsealedAtEnd {
        /// Frames held, waiting for their seal.
        frames: usize,
    },
}

/// Which way a run travels; part of every tag, so a run cannot be sent back
/// to its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that connected.
    Client,
    /// The side that accepted.
    Server,
}

impl Role {
    fn sending_direction(self) -> u8 {
        match self {
            Role::Client => 1,
            Role::Server => 2,
        }
    }

    fn peer(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }
}

/// What both sides prove in the handshake: HMAC over both nonces, with a
/// different label per role so that a proof cannot be echoed back.
pub(crate) fn proof(key: &Key, role: Role, client_nonce: &[u8], server_nonce: &[u8]) -> [u8; TAG_LEN] {
    let label: &[u8] = match role {
        Role::Client => b"rmi-v1 client proof",
        Role::Server => b"rmi-v1 server proof",
    };
    key.derive(label, &[client_nonce, server_nonce])
}

/// Checks a peer's proof in constant time.
pub(crate) fn proof_matches(
    key: &Key,
    role: Role,
    client_nonce: &[u8],
    server_nonce: &[u8],
    claimed: &[u8],
) -> bool {
    let mut mac = key.mac();
    mac.update(match role {
        Role::Client => b"rmi-v1 client proof",
        Role::Server => b"rmi-v1 server proof",
    });
    mac.update(client_nonce);
    mac.update(server_nonce);
    mac.verify_slice(claimed).is_ok()
}

/// One direction of a session: the keyed MAC state (computed once, copied
/// per run) and the next run's sequence number.
#[derive(Clone)]
struct Direction {
    key: FrameKey,
    direction: u8,
    next_seq: u64,
}

impl Direction {
    fn tagger(&self, conn_id: &[u8; CONN_ID_LEN], seq: u64) -> FrameTag {
        // (direction, connection id, sequence number), fed in one piece.
        let mut head = [0u8; 1 + CONN_ID_LEN + 8];
        let (direction, rest) = head.split_at_mut(1);
        let (id, seq_field) = rest.split_at_mut(CONN_ID_LEN);
        direction.copy_from_slice(&[self.direction]);
        id.copy_from_slice(conn_id);
        seq_field.copy_from_slice(&seq.to_be_bytes());
        let mut mac = self.key.start();
        mac.update(&head);
        mac
    }
}

/// The authenticated state of one connection: its id, and a tagger and
/// sequence counter for each direction. [`Session::split`] gives the two
/// directions to the connection's reader and writer.
#[derive(Clone)]
pub struct Session {
    send: Sealer,
    recv: Opener,
}

/// The sending half of a [`Session`]: tags outgoing runs of frames.
#[derive(Clone)]
pub struct Sealer {
    conn_id: [u8; CONN_ID_LEN],
    direction: Direction,
    /// The tag of the run being queued, from its first frame to its seal.
    run: Option<FrameTag>,
}

/// The receiving half of a [`Session`]: checks incoming runs of frames.
#[derive(Clone)]
pub struct Opener {
    conn_id: [u8; CONN_ID_LEN],
    direction: Direction,
    /// The tag of the run being received, started under the sequence number
    /// that is due.
    run: Option<FrameTag>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("send", &self.send).field("recv", &self.recv).finish()
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("conn_id", &self.conn_id)
            .field("next_seq", &self.direction.next_seq)
            .finish()
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("conn_id", &self.conn_id)
            .field("next_seq", &self.direction.next_seq)
            .finish()
    }
}

impl Session {
    /// Derives the session of one connection from the shared key and both
    /// nonces, for the side playing `role`.
    pub fn new(key: &Key, role: Role, client_nonce: &[u8], server_nonce: &[u8]) -> Self {
        let session_key = key.derive(b"rmi-v1 session", &[client_nonce, server_nonce]);
        let session = Key::new(session_key.to_vec());
        let mut conn_id = [0; CONN_ID_LEN];
        let id = session.derive(b"rmi-v1 connection id", &[]);
        conn_id.copy_from_slice(id.get(..CONN_ID_LEN).unwrap_or(&[0; CONN_ID_LEN]));
        let key = FrameKey::new(&session_key);
        Session {
            send: Sealer {
                conn_id,
                direction: Direction { key: key.clone(), direction: role.sending_direction(), next_seq: 0 },
                run: None,
            },
            recv: Opener {
                conn_id,
                direction: Direction { key, direction: role.peer().sending_direction(), next_seq: 0 },
                run: None,
            },
        }
    }

    /// The two directions, for a connection's writer and reader.
    pub fn split(self) -> (Sealer, Opener) {
        (self.send, self.recv)
    }
}

impl Sealer {
    /// Feeds the next piece of a queued data frame's wire bytes to the tag
    /// of the run being queued, starting a run if none is.
    pub(crate) fn feed(&mut self, piece: &[u8]) {
        let Self { conn_id, direction, run } = self;
        run.get_or_insert_with(|| direction.tagger(conn_id, direction.next_seq)).update(piece);
    }

    /// Closes the run being queued: returns the connection id, the run's
    /// sequence number and its tag, for the seal frame; the sequence number
    /// advances. `None` when nothing was fed since the last seal.
    pub(crate) fn seal(&mut self) -> Option<([u8; CONN_ID_LEN], u64, [u8; TAG_LEN])> {
        let tag = self.run.take()?.finish();
        let seq = self.direction.next_seq;
        self.direction.next_seq = seq.wrapping_add(1);
        Some((self.conn_id, seq, tag))
    }
}

impl Opener {
    /// Feeds the next piece of an arriving data frame's wire bytes to the tag
    /// of the run being received, starting a run if none is.
    pub(crate) fn feed(&mut self, piece: &[u8]) {
        let Self { conn_id, direction, run } = self;
        run.get_or_insert_with(|| direction.tagger(conn_id, direction.next_seq)).update(piece);
    }

    /// Checks the seal that closes the run fed so far, and advances the
    /// expected sequence number.
    ///
    /// The running tag assumed the sequence number that was due; a seal
    /// claiming another has its tag recomputed under the claimed number by
    /// `refeed`, which feeds the run's frames again, so that a genuine run
    /// replayed or reordered is told apart from a forged one.
    ///
    /// # Errors
    ///
    /// [`AuthError::Spliced`], [`AuthError::Tampered`],
    /// [`AuthError::Replayed`] or [`AuthError::Reordered`], in that order of
    /// checking.
    pub(crate) fn open(
        &mut self,
        conn_id: &[u8],
        seq: u64,
        tag: &[u8],
        refeed: impl FnOnce(&mut FrameTag),
    ) -> Result<(), AuthError> {
        let streamed = self.run.take();
        if conn_id != self.conn_id {
            return Err(AuthError::Spliced);
        }
        let expected = self.direction.next_seq;
        let tagger = match streamed {
            Some(tagger) if seq == expected => tagger,
            _ => {
                let mut tagger = self.direction.tagger(&self.conn_id, seq);
                refeed(&mut tagger);
                tagger
            }
        };
        if !tagger.verify(tag) {
            return Err(AuthError::Tampered { seq });
        }
        if seq < expected {
            return Err(AuthError::Replayed { seq, expected });
        }
        if seq > expected {
            return Err(AuthError::Reordered { seq, expected });
        }
        self.direction.next_seq = expected.wrapping_add(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Sealed = ([u8; CONN_ID_LEN], u64, [u8; TAG_LEN]);

    fn pair() -> (Session, Session) {
        let key = Key::from("k");
        let (c, s) = ([1u8; NONCE_LEN], [2u8; NONCE_LEN]);
        (Session::new(&key, Role::Client, &c, &s), Session::new(&key, Role::Server, &c, &s))
    }

    /// Seals a run of `frames` as the sender does.
    fn seal(session: &mut Session, frames: &[&[u8]]) -> Sealed {
        for f in frames {
            session.send.feed(f);
        }
        session.send.seal().unwrap()
    }

    /// Receives a run of `frames` and its seal as the receiver does.
    fn open(session: &mut Session, (id, seq, tag): &Sealed, frames: &[&[u8]]) -> Result<(), AuthError> {
        for f in frames {
            session.recv.feed(f);
        }
        session.recv.open(id, *seq, tag, |t| frames.iter().for_each(|f| t.update(f)))
    }

    #[test]
    fn runs_open_in_order_and_only_once() {
        let (mut client, mut server) = pair();
        let r0 = seal(&mut client, &[b"zero", b"nil"]);
        let r1 = seal(&mut client, &[b"one"]);
        assert_eq!((r0.1, r1.1), (0, 1));
        assert_eq!(open(&mut server, &r0, &[b"zero", b"nil"]), Ok(()));
        assert_eq!(
            open(&mut server, &r0, &[b"zero", b"nil"]),
            Err(AuthError::Replayed { seq: 0, expected: 1 })
        );
        // The tag covers the bytes, whatever the pieces they are fed in.
        assert_eq!(open(&mut server, &r1, &[b"on", b"e"]), Ok(()));
    }

    #[test]
    fn nothing_fed_means_nothing_to_seal() {
        let (mut client, _) = pair();
        assert!(client.send.seal().is_none());
        seal(&mut client, &[b"x"]);
        assert!(client.send.seal().is_none(), "a seal closes its run");
    }

    #[test]
    fn each_attack_has_its_own_error() {
        let (mut client, mut server) = pair();
        let r0 = seal(&mut client, &[b"zero"]);
        let r1 = seal(&mut client, &[b"one"]);
        assert_eq!(open(&mut server, &r1, &[b"one"]), Err(AuthError::Reordered { seq: 1, expected: 0 }));
        assert_eq!(open(&mut server, &r0, &[b"zerO"]), Err(AuthError::Tampered { seq: 0 }));
        // Frames moved between runs break both tags.
        assert_eq!(open(&mut server, &r0, &[b"zero", b"one"]), Err(AuthError::Tampered { seq: 0 }));
        // Claiming another sequence number breaks the tag too.
        assert_eq!(open(&mut server, &(r1.0, 0, r1.2), &[b"one"]), Err(AuthError::Tampered { seq: 0 }));
        assert_eq!(open(&mut server, &(r0.0, 1, r0.2), &[b"zero"]), Err(AuthError::Tampered { seq: 1 }));
        let (mut other_client, _) = {
            let key = Key::from("k");
            let (c, s) = ([3u8; NONCE_LEN], [2u8; NONCE_LEN]);
            (Session::new(&key, Role::Client, &c, &s), ())
        };
        let g0 = seal(&mut other_client, &[b"zero"]);
        assert_eq!(open(&mut server, &g0, &[b"zero"]), Err(AuthError::Spliced));
        // A server's run reflected back to the server fails: direction is tagged.
        let h0 = seal(&mut server, &[b"zero"]);
        assert_eq!(open(&mut server, &h0, &[b"zero"]), Err(AuthError::Tampered { seq: 0 }));
        // The genuine run still opens after all that.
        assert_eq!(open(&mut server, &r0, &[b"zero"]), Ok(()));
        assert_eq!(open(&mut server, &r1, &[b"one"]), Ok(()));
    }

    #[test]
    fn proofs_depend_on_key_role_and_nonces() {
        let k = Key::from("k");
        let p = proof(&k, Role::Client, b"a", b"b");
        assert!(proof_matches(&k, Role::Client, b"a", b"b", &p));
        assert!(!proof_matches(&k, Role::Server, b"a", b"b", &p));
        assert!(!proof_matches(&Key::from("K"), Role::Client, b"a", b"b", &p));
        assert!(!proof_matches(&k, Role::Client, b"a", b"c", &p));
        assert!(!format!("{:?}", Key::from("zqx-secret")).contains("zqx"));
    }
}
