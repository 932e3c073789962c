//! Pyro5's wire protocol (version 502): the framing that a Pyro5 client or
//! daemon speaks, so that rmi can be a second front door to the same
//! objects (and call Pyro5 daemons).
//!
//! Every message is a fixed 40-byte big-endian header, then its annotation
//! chunks, then its payload:
//!
//! ```text
//! 0x00  4s   "PYRO"
//! 0x04  u16  protocol version, 502 exactly
//! 0x06  u8   message type (1 CONNECT … 6 PING)
//! 0x07  u8   serializer id (1 serpent, 2 marshal, 3 json, 4 msgpack)
//! 0x08  u16  flags
//! 0x0a  u16  sequence number (echoed in the reply)
//! 0x0c  u32  payload length
//! 0x10  u32  annotations length
//! 0x14  16s  correlation id
//! 0x24  u16  reserved, 0
//! 0x26  u16  0x4dc5
//! ```
//!
//! An annotation chunk is four ASCII id bytes, a u32 length and the data.
//! [`Header::parse`] checks everything the header says, the lengths against
//! the message limit included, before anything is read or reserved for the
//! body; [`read_message`] then reads exactly the body announced.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

pub mod body;
pub mod serpent;

/// The largest Pyro5 message rmi reads, from a client or from a daemon. A
/// json body is parsed whole into a tree of values (several times its size
/// in memory, where rmi's own frames decode straight into the method's
/// types), so the bound is lower than rmi's message limit.
pub const PYRO5_MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// Every Pyro5 message starts with these bytes.
pub const MAGIC: [u8; 4] = *b"PYRO";
/// The one protocol version Pyro5 5.x speaks (both sides must match).
pub const PROTOCOL_VERSION: u16 = 502;
/// The header's fixed size.
pub const HEADER_LEN: usize = 40;
/// The last two bytes of every header.
const HEADER_MAGIC: u16 = 0x4dc5;
/// The most annotation chunks one message may carry (Pyro uses one or two).
pub const MAX_ANNOTATIONS: usize = 16;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A client's first message: its handshake data and the object it wants.
    Connect = 1,
    /// The daemon accepts the connection (with the object's metadata).
    ConnectOk = 2,
    /// The daemon refuses the connection, saying why.
    ConnectFail = 3,
    /// A call.
    Invoke = 4,
    /// A call's result (or its exception, with [`Flags::EXCEPTION`]).
    Result = 5,
    /// A ping, answered with a ping.
    Ping = 6,
}

impl MessageType {
    fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => MessageType::Connect,
            2 => MessageType::ConnectOk,
            3 => MessageType::ConnectFail,
            4 => MessageType::Invoke,
            5 => MessageType::Result,
            6 => MessageType::Ping,
            _ => return None,
        })
    }
}

/// A message's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// The payload is an exception.
    pub const EXCEPTION: Flags = Flags(1);
    /// The payload is zlib-compressed.
    pub const COMPRESSED: Flags = Flags(2);
    /// A call whose caller waits for no result.
    pub const ONEWAY: Flags = Flags(4);
    /// A batch of calls (and its list of results).
    pub const BATCH: Flags = Flags(8);
    /// The result is a stream, fetched item by item.
    pub const ITEMSTREAMRESULT: Flags = Flags(16);
    /// The daemon keeps the arguments serialized (Pyro's own use).
    pub const KEEPSERIALIZED: Flags = Flags(32);
    /// The correlation id is meaningful.
    pub const CORR_ID: Flags = Flags(64);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags with `other`'s too.
    #[must_use]
    pub fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

/// Serializer ids Pyro5 defines. rmi speaks json (and refuses marshal and
/// pickle-like formats for good: they run code or build arbitrary objects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// serpent: Python literal syntax.
    Serpent = 1,
    /// marshal: never accepted.
    Marshal = 2,
    /// json.
    Json = 3,
    /// msgpack.
    Msgpack = 4,
}

impl Serializer {
    /// The serializer of id `id`, if Pyro5 defines one.
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            1 => Serializer::Serpent,
            2 => Serializer::Marshal,
            3 => Serializer::Json,
            4 => Serializer::Msgpack,
            _ => return None,
        })
    }
}

/// A Pyro5 message that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Pyro5Error {
    /// The first bytes are not Pyro's.
    #[error("not a Pyro message: it starts with {0:02x?}, not \"PYRO\"")]
    NotPyro([u8; 4]),
    /// Another protocol version (Pyro4 speaks 48, Pyro5 502).
    #[error("Pyro protocol version {0}, but only {PROTOCOL_VERSION} (Pyro5) is spoken here")]
    Version(u16),
    /// A message type Pyro5 does not define.
    #[error("unknown Pyro message type {0}")]
    UnknownType(u8),
    /// The header's last bytes are not its magic: a corrupt header.
    #[error("corrupt Pyro header: it ends with {0:#06x}, not 0x4dc5")]
    CorruptHeader(u16),
    /// The announced body is larger than the limit.
    #[error("Pyro message of {len} bytes (payload and annotations) exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced size.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The annotation chunks do not add up to their announced length.
    #[error("malformed Pyro annotations: {0}")]
    Annotations(String),
    /// The connection ended in the middle of a message, or failed.
    #[error("reading a Pyro message: {0}")]
    Io(String),
    /// A compressed payload that is not zlib, or inflates past the limit.
    #[error("a compressed Pyro payload that cannot be read: {0}")]
    Compression(String),
}

/// A message's fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the message is.
    pub kind: MessageType,
    /// The serializer id of its payload (see [`Serializer::from_id`]).
    pub serializer: u8,
    /// Its flags.
    pub flags: Flags,
    /// Its sequence number.
    pub seq: u16,
    /// The payload's length.
    pub payload_len: u32,
    /// The annotation chunks' total length.
    pub annotations_len: u32,
    /// The correlation id (meaningful with [`Flags::CORR_ID`]).
    pub correlation: [u8; 16],
}

fn be16(bytes: &[u8; HEADER_LEN], at: usize) -> u16 {
    u16::from_be_bytes([bytes.get(at).copied().unwrap_or(0), bytes.get(at + 1).copied().unwrap_or(0)])
}

fn be32(bytes: &[u8; HEADER_LEN], at: usize) -> u32 {
    let mut out = [0u8; 4];
    if let Some(part) = bytes.get(at..at + 4) {
        out.copy_from_slice(part);
    }
    u32::from_be_bytes(out)
}

impl Header {
    /// Reads a header, checking its magic, version, type and closing magic,
    /// and that its payload and annotations together fit in `max_message`
    /// bytes.
    ///
    /// # Errors
    ///
    /// The [`Pyro5Error`] saying what is wrong, first the magic (so that
    /// another protocol is told as such).
    pub fn parse(bytes: &[u8; HEADER_LEN], max_message: usize) -> Result<Header, Pyro5Error> {
        let mut magic = [0u8; 4];
        magic.copy_from_slice(bytes.get(..4).unwrap_or(&[0; 4]));
        if magic != MAGIC {
            return Err(Pyro5Error::NotPyro(magic));
        }
        let version = be16(bytes, 4);
        if version != PROTOCOL_VERSION {
            return Err(Pyro5Error::Version(version));
        }
        let closing = be16(bytes, 38);
        if closing != HEADER_MAGIC {
            return Err(Pyro5Error::CorruptHeader(closing));
        }
        let kind_byte = bytes.get(6).copied().unwrap_or(0);
        let kind = MessageType::from_u8(kind_byte).ok_or(Pyro5Error::UnknownType(kind_byte))?;
        let payload_len = be32(bytes, 12);
        let annotations_len = be32(bytes, 16);
        let len = u64::from(payload_len) + u64::from(annotations_len);
        if len > max_message as u64 {
            return Err(Pyro5Error::TooLarge { len, max: max_message });
        }
        let mut correlation = [0u8; 16];
        correlation.copy_from_slice(bytes.get(20..36).unwrap_or(&[0; 16]));
        Ok(Header {
            kind,
            serializer: bytes.get(7).copied().unwrap_or(0),
            flags: Flags(be16(bytes, 8)),
            seq: be16(bytes, 10),
            payload_len,
            annotations_len,
            correlation,
        })
    }

    /// The header's 40 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let fields: [&[u8]; 10] = [
            &MAGIC,
            &PROTOCOL_VERSION.to_be_bytes(),
            &[self.kind as u8, self.serializer],
            &self.flags.0.to_be_bytes(),
            &self.seq.to_be_bytes(),
            &self.payload_len.to_be_bytes(),
            &self.annotations_len.to_be_bytes(),
            &self.correlation,
            &0u16.to_be_bytes(),
            &HEADER_MAGIC.to_be_bytes(),
        ];
        let mut at = 0;
        for field in fields {
            if let Some(slot) = out.get_mut(at..at + field.len()) {
                slot.copy_from_slice(field);
            }
            at += field.len();
        }
        out
    }
}

/// One annotation chunk: its id (`STRM`, `BLBI`, …) and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Four ASCII bytes.
    pub id: [u8; 4],
    /// Its data.
    pub data: Bytes,
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its header (lengths as they were on the wire, but for an inflated
    /// payload's: see [`inflated`]).
    pub header: Header,
    /// Its annotation chunks, in order.
    pub annotations: Vec<Annotation>,
    /// Its payload, serialized (and compressed, with [`Flags::COMPRESSED`]).
    pub payload: Bytes,
}

impl Message {
    /// A message of `kind` with `payload`, no annotations; the lengths are
    /// set from what it carries.
    pub fn new(kind: MessageType, serializer: Serializer, flags: Flags, seq: u16, payload: Bytes) -> Self {
        Message {
            header: Header {
                kind,
                serializer: serializer as u8,
                flags,
                seq,
                payload_len: 0,
                annotations_len: 0,
                correlation: [0; 16],
            },
            annotations: Vec::new(),
            payload,
        }
    }

    /// The message's bytes: its header (lengths from what it carries), its
    /// annotations, its payload.
    ///
    /// # Errors
    ///
    /// [`Pyro5Error::TooLarge`] when a length does not fit the header's
    /// 32 bits, or the message passes `max_message`.
    pub fn encode(&self, max_message: usize) -> Result<Vec<u8>, Pyro5Error> {
        let annotations_len: usize = self.annotations.iter().map(|a| 8 + a.data.len()).sum();
        let total = annotations_len + self.payload.len();
        let too_large = || Pyro5Error::TooLarge { len: total as u64, max: max_message };
        if total > max_message {
            return Err(too_large());
        }
        let mut header = self.header;
        header.payload_len = u32::try_from(self.payload.len()).map_err(|_| too_large())?;
        header.annotations_len = u32::try_from(annotations_len).map_err(|_| too_large())?;
        let mut out = Vec::with_capacity(HEADER_LEN + total);
        out.extend_from_slice(&header.encode());
        for annotation in &self.annotations {
            out.extend_from_slice(&annotation.id);
            let len = u32::try_from(annotation.data.len()).map_err(|_| too_large())?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&annotation.data);
        }
        out.extend_from_slice(&self.payload);
        Ok(out)
    }
}

/// Splits annotation chunks out of `data` (exactly: a chunk that overruns,
/// or bytes left over, is an error).
///
/// # Errors
///
/// [`Pyro5Error::Annotations`] saying what does not add up.
pub fn parse_annotations(data: &Bytes) -> Result<Vec<Annotation>, Pyro5Error> {
    let mut annotations = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        if annotations.len() == MAX_ANNOTATIONS {
            return Err(Pyro5Error::Annotations(format!("more than {MAX_ANNOTATIONS} chunks")));
        }
        let head = data
            .get(at..at + 8)
            .ok_or_else(|| Pyro5Error::Annotations(format!("a chunk header cut short at byte {at}")))?;
        let mut id = [0u8; 4];
        id.copy_from_slice(head.get(..4).unwrap_or(&[0; 4]));
        if !id.iter().all(u8::is_ascii_alphanumeric) {
            return Err(Pyro5Error::Annotations(format!(
                "chunk id {id:02x?} is not four ASCII letters or digits"
            )));
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(head.get(4..8).unwrap_or(&[0; 4]));
        let len = u32::from_be_bytes(len) as usize;
        let start = at + 8;
        let end = start.checked_add(len).filter(|&end| end <= data.len()).ok_or_else(|| {
            Pyro5Error::Annotations(format!(
                "chunk {:?} announces {len} bytes, more than are left",
                String::from_utf8_lossy(&id)
            ))
        })?;
        annotations.push(Annotation { id, data: data.slice(start..end) });
        at = end;
    }
    Ok(annotations)
}

/// Reads one message: the header, checked before anything is reserved for
/// the body, then exactly the body it announces.
///
/// # Errors
///
/// The header's [`Pyro5Error`], malformed annotations, or
/// [`Pyro5Error::Io`] when the connection ends or fails mid-message.
pub async fn read_message<IO: AsyncRead + Unpin>(
    io: &mut IO,
    max_message: usize,
) -> Result<Message, Pyro5Error> {
    let mut head = [0u8; HEADER_LEN];
    io.read_exact(&mut head).await.map_err(|e| Pyro5Error::Io(e.to_string()))?;
    let header = Header::parse(&head, max_message)?;
    inflated(read_body(io, header).await?, max_message)
}

/// As [`read_message`], for a first message whose four magic bytes were
/// read already (to tell the protocol apart).
///
/// # Errors
///
/// As [`read_message`].
pub async fn read_message_after_magic<IO: AsyncRead + Unpin>(
    io: &mut IO,
    max_message: usize,
) -> Result<Message, Pyro5Error> {
    let mut head = [0u8; HEADER_LEN];
    let (magic, rest) = head.split_at_mut(MAGIC.len());
    magic.copy_from_slice(&MAGIC);
    io.read_exact(rest).await.map_err(|e| Pyro5Error::Io(e.to_string()))?;
    let header = Header::parse(&head, max_message)?;
    inflated(read_body(io, header).await?, max_message)
}

/// `message` with its payload inflated when it came compressed (Pyro5's
/// `COMPRESSION=True`: zlib, the payload only), and the flag cleared; the
/// inflated payload is bounded by `max` as the wire's is, so a small
/// message cannot inflate past the limit.
///
/// # Errors
///
/// [`Pyro5Error::Compression`] for a payload that is not zlib or inflates
/// past `max`.
pub fn inflated(mut message: Message, max: usize) -> Result<Message, Pyro5Error> {
    if !message.header.flags.contains(Flags::COMPRESSED) {
        return Ok(message);
    }
    let mut out = Vec::with_capacity(message.payload.len().saturating_mul(4).min(READ_AHEAD));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(flate2::read::ZlibDecoder::new(&message.payload[..]), limit),
        &mut out,
    )
    .map_err(|e| Pyro5Error::Compression(e.to_string()))?;
    if out.len() > max {
        return Err(Pyro5Error::Compression(format!("it inflates past the limit of {max} bytes")));
    }
    // The header now describes the payload it carries (as `encode` would).
    message.header.payload_len =
        u32::try_from(out.len()).map_err(|_| Pyro5Error::Compression("it inflates past 4 GiB".into()))?;
    message.payload = Bytes::from(out);
    message.header.flags = Flags(message.header.flags.0 & !Flags::COMPRESSED.0);
    Ok(message)
}

/// Reads the body `header` announces (its header already read and checked).
/// Memory grows as the bytes arrive, not as announced: a peer that
/// announces a large body and sends none of it holds next to nothing.
///
/// # Errors
///
/// As [`read_message`].
pub async fn read_body<IO: AsyncRead + Unpin>(io: &mut IO, header: Header) -> Result<Message, Pyro5Error> {
    let annotations = read_exactly(io, header.annotations_len).await?;
    let annotations = parse_annotations(&annotations)?;
    let payload = read_exactly(io, header.payload_len).await?;
    Ok(Message { header, annotations, payload })
}

/// What is reserved ahead of the bytes of a body, at most.
const READ_AHEAD: usize = 64 * 1024;

async fn read_exactly<IO: AsyncRead + Unpin>(io: &mut IO, len: u32) -> Result<Bytes, Pyro5Error> {
    let len = len as usize;
    let mut out = Vec::with_capacity(len.min(READ_AHEAD));
    let read =
        (&mut *io).take(len as u64).read_to_end(&mut out).await.map_err(|e| Pyro5Error::Io(e.to_string()))?;
    if read != len {
        return Err(Pyro5Error::Io(format!("the connection ended {read} bytes into a body of {len}")));
    }
    Ok(Bytes::from(out))
}

/// Reads messages one after another from a connection through a buffer of
/// its own: a message that arrived whole (as a Pyro5 client sends one, in a
/// single write) takes one read, where [`read_message`] takes three; the
/// annotations and the payload are slices of what was read, not copies.
///
/// Memory grows as the bytes arrive (to at most twice what arrived, as a
/// `Vec` grows), never as a header announces, and a buffer grown past
/// 64 KiB for a large message is given back once it is read.
/// [`MessageReader::read`] may be dropped before it finishes (by a
/// `select!`) and called again: what was read stays in the buffer. After
/// an error the reader is not to be used again (the connection is to
/// close): what it read stays where the error was.
#[derive(Debug, Default)]
pub struct MessageReader {
    buf: bytes::BytesMut,
}

impl MessageReader {
    /// A reader with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the next message, as [`read_message`] does.
    ///
    /// # Errors
    ///
    /// As [`read_message`].
    pub async fn read<IO: AsyncRead + Unpin>(
        &mut self,
        io: &mut IO,
        max_message: usize,
    ) -> Result<Message, Pyro5Error> {
        self.fill(io, HEADER_LEN, None).await?;
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(self.buf.get(..HEADER_LEN).unwrap_or(&[0; HEADER_LEN]));
        let header = Header::parse(&head, max_message)?;
        let (annotations_len, payload_len) = (header.annotations_len as usize, header.payload_len as usize);
        let total = HEADER_LEN + annotations_len + payload_len;
        self.fill(io, total, Some(total - HEADER_LEN)).await?;
        let mut body = self.buf.split_to(total).freeze().split_off(HEADER_LEN);
        if self.buf.is_empty() && self.buf.capacity() > READ_AHEAD {
            // A large message's memory goes with it, not with the reader.
            self.buf = bytes::BytesMut::new();
        }
        let payload = body.split_off(annotations_len);
        let annotations = parse_annotations(&body)?;
        inflated(Message { header, annotations, payload }, max_message)
    }

    /// Reads until the buffer holds `want` bytes; `body` is the length of
    /// the body being read, for the error when the connection ends.
    async fn fill<IO: AsyncRead + Unpin>(
        &mut self,
        io: &mut IO,
        want: usize,
        body: Option<usize>,
    ) -> Result<(), Pyro5Error> {
        while self.buf.len() < want {
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve((want - self.buf.len()).clamp(4096, READ_AHEAD));
            }
            let read = io.read_buf(&mut self.buf).await.map_err(|e| Pyro5Error::Io(e.to_string()))?;
            if read == 0 {
                let had = self.buf.len();
                return Err(Pyro5Error::Io(match body {
                    Some(len) => format!(
                        "the connection ended {} bytes into a body of {len}",
                        had.saturating_sub(HEADER_LEN)
                    ),
                    None if had == 0 => "the connection closed".to_owned(),
                    None => format!("the connection ended {had} bytes into a header"),
                }));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
