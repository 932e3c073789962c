use super::*;

/// The CONNECT header Pyro5 5.17 sent on loopback (PYRO5-PROTOCOL.md):
/// json, no flags, seq 0, a 40-byte payload.
const OBSERVED_CONNECT: &str =
    "5059524f01f601030000000000000028000000000000000000000000000000000000000000004dc5";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

fn header_of(bytes: &[u8]) -> [u8; HEADER_LEN] {
    bytes[..HEADER_LEN].try_into().unwrap()
}

#[test]
fn the_header_pyro5_sends_is_read_and_written_back_the_same() {
    let bytes = hex(OBSERVED_CONNECT);
    let header = Header::parse(&header_of(&bytes), 1 << 20).unwrap();
    assert_eq!(header.kind, MessageType::Connect);
    assert_eq!(Serializer::from_id(header.serializer), Some(Serializer::Json));
    assert_eq!(header.flags, Flags(0));
    assert_eq!(header.seq, 0);
    assert_eq!(header.payload_len, 40);
    assert_eq!(header.annotations_len, 0);
    assert_eq!(header.encode().to_vec(), bytes);
}

#[tokio::test]
async fn a_message_with_annotations_goes_through_and_back() {
    let mut message = Message::new(
        MessageType::Result,
        Serializer::Json,
        Flags::EXCEPTION.with(Flags::ITEMSTREAMRESULT).with(Flags::CORR_ID),
        0xfffe,
        Bytes::from_static(br#"{"__class__": "builtins.ValueError"}"#),
    );
    message.header.correlation = [7; 16];
    message.annotations.push(Annotation { id: *b"STRM", data: Bytes::from_static(b"0123456789abcdef") });
    message.annotations.push(Annotation { id: *b"XYZ1", data: Bytes::new() });
    let bytes = message.encode(1 << 20).unwrap();
    let read = read_message(&mut bytes.as_slice(), 1 << 20).await.unwrap();
    assert_eq!(read.annotations, message.annotations);
    assert_eq!(read.payload, message.payload);
    assert_eq!(read.header.seq, 0xfffe);
    assert!(read.header.flags.contains(Flags::EXCEPTION) && read.header.flags.contains(Flags::CORR_ID));
    assert!(!read.header.flags.contains(Flags::ONEWAY));
    assert_eq!(read.header.correlation, [7; 16]);
    assert_eq!(read.header.annotations_len, 8 + 16 + 8);
}

#[test]
fn each_broken_header_says_what_is_wrong() {
    let good = header_of(&hex(OBSERVED_CONNECT));
    let with = |at: usize, patch: &[u8]| {
        let mut bytes = good;
        bytes[at..at + patch.len()].copy_from_slice(patch);
        Header::parse(&bytes, 1 << 20)
    };
    assert_eq!(with(0, b"RMI\0"), Err(Pyro5Error::NotPyro(*b"RMI\0")));
    assert_eq!(with(4, &48u16.to_be_bytes()), Err(Pyro5Error::Version(48)));
    assert_eq!(with(6, &[9]), Err(Pyro5Error::UnknownType(9)));
    assert_eq!(with(38, &[0, 0]), Err(Pyro5Error::CorruptHeader(0)));
    // Payload and annotations together, each up to 4 GiB, against the limit.
    assert_eq!(
        with(12, &u32::MAX.to_be_bytes()),
        Err(Pyro5Error::TooLarge { len: u64::from(u32::MAX), max: 1 << 20 })
    );
    let both = {
        let mut bytes = good;
        bytes[12..16].copy_from_slice(&(600_000u32).to_be_bytes());
        bytes[16..20].copy_from_slice(&(600_000u32).to_be_bytes());
        Header::parse(&bytes, 1 << 20)
    };
    assert_eq!(both, Err(Pyro5Error::TooLarge { len: 1_200_000, max: 1 << 20 }));
    assert!(Pyro5Error::Version(48).to_string().contains("Pyro5"));
}

#[test]
fn annotations_must_add_up_exactly() {
    let chunk = |id: &[u8; 4], len: u32, data: &[u8]| {
        let mut out = id.to_vec();
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(data);
        out
    };
    let ok = [chunk(b"STRM", 3, b"abc"), chunk(b"BLBI", 0, b"")].concat();
    assert_eq!(parse_annotations(&Bytes::from(ok)).unwrap().len(), 2);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (chunk(b"STRM", 4, b"abc"), "more than are left"),
        (chunk(b"STRM", u32::MAX, b"abc"), "more than are left"),
        (chunk(b"ST\0M", 0, b""), "not four ASCII"),
        ([chunk(b"STRM", 0, b""), b"xx".to_vec()].concat(), "cut short"),
        ((0..=MAX_ANNOTATIONS).flat_map(|_| chunk(b"STRM", 0, b"")).collect(), "more than 16 chunks"),
    ];
    for (bytes, says) in cases {
        let e = parse_annotations(&Bytes::from(bytes)).unwrap_err();
        assert!(e.to_string().contains(says), "{e} should say {says:?}");
    }
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_saying_how_far_it_got() {
    let mut bytes = header_of(&hex(OBSERVED_CONNECT));
    bytes[12..16].copy_from_slice(&(60u32 << 20).to_be_bytes());
    let mut wire = bytes.to_vec();
    wire.extend_from_slice(b"0123456789");
    let e = read_message(&mut wire.as_slice(), 64 << 20).await.unwrap_err();
    assert!(e.to_string().contains("ended 10 bytes into a body of 62914560"), "{e}");
    let mut short = &hex(OBSERVED_CONNECT)[..20];
    assert!(matches!(read_message(&mut short, 1 << 20).await, Err(Pyro5Error::Io(_))));
}

/// A reader over `chunks`, each arriving in a read of its own.
fn in_chunks(chunks: &[&[u8]]) -> tokio_test_reader::Chunks {
    tokio_test_reader::Chunks(chunks.iter().map(|c| c.to_vec()).collect())
}

mod tokio_test_reader {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Hands out one chunk per read (or part of it, when the buffer is
    /// smaller), then the end of the stream.
    pub(super) struct Chunks(pub(super) std::collections::VecDeque<Vec<u8>>);

    impl tokio::io::AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if let Some(mut chunk) = self.0.pop_front() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.0.push_front(chunk.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }
}

#[tokio::test]
async fn a_reader_reads_messages_however_they_arrive() {
    let messages: Vec<Message> = (0..3u16)
        .map(|seq| {
            let mut m = Message::new(
                MessageType::Invoke,
                Serializer::Json,
                Flags::default(),
                seq,
                Bytes::from(format!("{{\"n\": {seq}}}").into_bytes()),
            );
            m.annotations.push(Annotation { id: *b"CORR", data: Bytes::from(vec![seq as u8; 16]) });
            m
        })
        .collect();
    let wire: Vec<u8> = messages.iter().flat_map(|m| m.encode(1 << 20).unwrap()).collect();
    // All in one read; a byte at a time; cut in the header and in the body.
    let cut = HEADER_LEN + 30;
    let whole = [&wire[..]];
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    let split = [&wire[..7], &wire[7..cut], &wire[cut..]];
    for chunks in [&whole[..], &bytes[..], &split[..]] {
        let mut io = in_chunks(chunks);
        let mut reader = MessageReader::new();
        for m in &messages {
            let read = reader.read(&mut io, 1 << 20).await.unwrap();
            assert_eq!(
                (read.header.seq, &read.payload, &read.annotations),
                (m.header.seq, &m.payload, &m.annotations)
            );
        }
        let end = reader.read(&mut io, 1 << 20).await.unwrap_err();
        assert_eq!(end.to_string(), Pyro5Error::Io("the connection closed".into()).to_string());
    }
    // Ended mid-header, and mid-body, saying how far it got.
    let mut io = in_chunks(&[&wire[..10]]);
    let e = MessageReader::new().read(&mut io, 1 << 20).await.unwrap_err();
    assert!(e.to_string().contains("10 bytes into a header"), "{e}");
    let mut io = in_chunks(&[&wire[..cut]]);
    let e = MessageReader::new().read(&mut io, 1 << 20).await.unwrap_err();
    assert!(e.to_string().contains("ended 30 bytes into a body of 32"), "{e}");
    // A large message's buffer is given back once it is read.
    let big = Message::new(
        MessageType::Invoke,
        Serializer::Json,
        Flags::default(),
        7,
        Bytes::from(vec![b' '; 300 << 10]),
    );
    let mut io = in_chunks(&[&big.encode(1 << 20).unwrap()]);
    let mut reader = MessageReader::new();
    assert_eq!(reader.read(&mut io, 1 << 20).await.unwrap().payload.len(), 300 << 10);
    assert!(reader.buf.capacity() <= READ_AHEAD, "{} bytes kept", reader.buf.capacity());
    // A header announcing a large body holds only what arrived of it.
    let mut head = header_of(&big.encode(1 << 20).unwrap());
    head[12..16].copy_from_slice(&(1u32 << 20).to_be_bytes());
    let (mut client, mut server) = tokio::io::duplex(1 << 16);
    tokio::io::AsyncWriteExt::write_all(&mut client, &head).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut client, &[b' '; 1000]).await.unwrap();
    let mut reader = MessageReader::new();
    let waited =
        tokio::time::timeout(std::time::Duration::from_millis(50), reader.read(&mut server, 2 << 20)).await;
    assert!(waited.is_err());
    assert!(reader.buf.capacity() <= 2 * READ_AHEAD, "{} bytes reserved", reader.buf.capacity());
    // A header over the limit is refused before its body is read.
    let mut io = in_chunks(&[&wire[..HEADER_LEN]]);
    let e = MessageReader::new().read(&mut io, 10).await.unwrap_err();
    assert!(matches!(e, Pyro5Error::TooLarge { .. }), "{e}");
}

#[tokio::test]
async fn a_reader_dropped_mid_message_loses_nothing() {
    let m =
        Message::new(MessageType::Ping, Serializer::Json, Flags::default(), 9, Bytes::from_static(b"ping"));
    let wire = m.encode(1 << 20).unwrap();
    let (mut client, mut server) = tokio::io::duplex(64);
    let mut reader = MessageReader::new();
    tokio::io::AsyncWriteExt::write_all(&mut client, &wire[..HEADER_LEN + 2]).await.unwrap();
    // The read waits for the rest: dropped (as a select! does), then made again.
    let waited =
        tokio::time::timeout(std::time::Duration::from_millis(50), reader.read(&mut server, 1 << 20)).await;
    assert!(waited.is_err());
    tokio::io::AsyncWriteExt::write_all(&mut client, &wire[HEADER_LEN + 2..]).await.unwrap();
    let read = reader.read(&mut server, 1 << 20).await.unwrap();
    assert_eq!((read.header.seq, &read.payload[..]), (9, &b"ping"[..]));
}

#[test]
fn a_message_over_the_limit_is_not_encoded() {
    let message =
        Message::new(MessageType::Invoke, Serializer::Json, Flags::default(), 1, Bytes::from(vec![0; 2048]));
    assert!(matches!(message.encode(1024), Err(Pyro5Error::TooLarge { len: 2048, max: 1024 })));
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(4));
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn compressed_payloads_are_inflated_within_the_limit() {
    let json = br#"["shapes", "greet", ["a long argument, a long argument"], {}]"#.repeat(10);
    let message = Message::new(
        MessageType::Invoke,
        Serializer::Json,
        Flags::COMPRESSED.with(Flags::ONEWAY),
        7,
        Bytes::from(zlib(&json)),
    );
    let out = inflated(message, 1 << 20).unwrap();
    assert_eq!(&out.payload[..], &json[..]);
    assert!(!out.header.flags.contains(Flags::COMPRESSED));
    assert!(out.header.flags.contains(Flags::ONEWAY), "other flags stay");
    assert_eq!(out.header.payload_len as usize, json.len());
    // It encodes, and reads back the same.
    let again = out.encode(1 << 20).unwrap();
    let reread = futures::executor::block_on(read_message(&mut again.as_slice(), 1 << 20)).unwrap();
    assert_eq!(reread, out);
    // Uncompressed: as it was.
    let plain =
        Message::new(MessageType::Invoke, Serializer::Json, Flags::default(), 1, Bytes::from_static(b"[]"));
    assert_eq!(&inflated(plain, 16).unwrap().payload[..], b"[]");
    // A bomb: a few KiB that inflate past the limit.
    let bomb = Message::new(
        MessageType::Invoke,
        Serializer::Json,
        Flags::COMPRESSED,
        1,
        Bytes::from(zlib(&[0u8; 1 << 20])),
    );
    assert!(bomb.payload.len() < 4096, "{}", bomb.payload.len());
    let e = inflated(bomb, 64 * 1024).unwrap_err();
    assert!(e.to_string().contains("inflates past the limit"), "{e}");
    // Not zlib at all.
    let garbage = Message::new(
        MessageType::Invoke,
        Serializer::Json,
        Flags::COMPRESSED,
        1,
        Bytes::from_static(b"not zlib"),
    );
    assert!(matches!(inflated(garbage, 1024), Err(Pyro5Error::Compression(_))));
}
