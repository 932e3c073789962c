//! The hand-written codec of [`Message`]: the bytes are exactly the ones
//! postcard writes for it (a test holds the two together), without serde's
//! generic machinery on the path every call takes.
//!
//! Decoding takes names and small arguments as slices of the frame, and
//! large blobs as slices of the attachments that follow it; it checks every
//! length against what is left, so a hostile frame can only fail to decode.

use bytes::Bytes;

use crate::context::CallMeta;
use crate::encoded::Encoded;
use crate::error::{RemoteError, RemoteErrorKind};
use crate::frame::{Encode, Wire};
use crate::message::{Call, Inbound, Message, OutgoingCall, OutgoingReply, Reply};
use crate::wire::{Reader, put_bytes, put_str, put_varint};

/// The kinds of [`Message`], as postcard numbers its variants.
const CALL: u64 = 0;
const CANCEL: u64 = 1;
const REPLY: u64 = 2;
const RELEASE: u64 = 3;
const ITEMS: u64 = 4;
const CREDIT: u64 = 5;
const CLOSE: u64 = 6;
const ITEMS_END: u64 = 7;

impl Encode for OutgoingCall<'_> {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>, attachments: &mut Vec<Bytes>) {
        let OutgoingCall { id, remaining, call } = *self;
        out.reserve(
            24 + call.object.as_bytes().len() + call.method.as_bytes().len() + call.args.inline_len(),
        );
        put_varint(out, CALL);
        put_varint(out, id);
        match remaining {
            None => out.push(0),
            Some(d) => {
                out.push(1);
                put_varint(out, d.as_secs());
                put_varint(out, u64::from(d.subsec_nanos()));
            }
        }
        put_bytes(out, call.object.as_bytes());
        put_bytes(out, call.method.as_bytes());
        call.args.encode_wire(out, attachments);
        out.push(u8::from(call.oneway));
        out.push(u8::from(call.stream));
        encode_meta(call.meta.as_deref(), out);
    }
}

impl Encode for OutgoingReply<'_> {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>, attachments: &mut Vec<Bytes>) {
        // Room for the kind, the id and a small value, at once.
        out.reserve(16 + self.reply.as_ref().map_or(64, Encoded::inline_len));
        put_varint(out, REPLY);
        put_varint(out, self.id);
        encode_reply(self.reply, out, attachments);
    }
}

impl Encode for Message {
    fn encode(&self, out: &mut Vec<u8>, attachments: &mut Vec<Bytes>) {
        match self {
            Message::Call { id, remaining, call } => {
                OutgoingCall { id: *id, remaining: *remaining, call }.encode(out, attachments);
            }
            Message::Cancel { id } => {
                put_varint(out, CANCEL);
                put_varint(out, *id);
            }
            Message::Reply { id, reply } => OutgoingReply { id: *id, reply }.encode(out, attachments),
            Message::Release { export, count } => {
                put_varint(out, RELEASE);
                put_varint(out, *export);
                put_varint(out, u64::from(*count));
            }
            Message::Items { id, items } => {
                out.reserve(12 + items.inline_len());
                put_varint(out, ITEMS);
                put_varint(out, *id);
                items.encode_wire(out, attachments);
            }
            Message::Credit { id, bytes } => {
                put_varint(out, CREDIT);
                put_varint(out, *id);
                put_varint(out, *bytes);
            }
            Message::Close { reason } => {
                put_varint(out, CLOSE);
                put_str(out, reason.as_str());
            }
            Message::ItemsEnd { id, failure } => {
                put_varint(out, ITEMS_END);
                put_varint(out, *id);
                match failure {
                    None => out.push(0),
                    Some(why) => {
                        out.push(1);
                        put_str(out, why.as_str());
                    }
                }
            }
        }
    }
}

impl Wire for Message {
    fn decode(envelope: &Bytes, attachments: &mut Bytes) -> Result<Self, String> {
        let mut message = None;
        Self::decode_into(envelope, attachments, &mut message)?;
        message.ok_or_else(|| "no message decoded".into())
    }

    /// Each message is built where it is kept: a `Message` is large, and a
    /// daemon reads one per call.
    #[inline]
    fn decode_into(envelope: &Bytes, attachments: &mut Bytes, out: &mut Option<Self>) -> Result<(), String> {
        *out = None;
        let mut r = Reader::new(envelope);
        match r.varint(32)? {
            CALL => {
                let id = r.u64()?;
                let remaining = match r.byte()? {
                    0 => None,
                    1 => {
                        let secs = r.u64()?;
                        let nanos = r.u32()?;
                        let extra = u64::from(nanos / 1_000_000_000);
                        let secs = secs.checked_add(extra).ok_or("a deadline overflows")?;
                        Some(std::time::Duration::new(secs, nanos % 1_000_000_000))
                    }
                    _ => return Err("a deadline is neither absent nor present".into()),
                };
                let (object, method) = r.two_texts()?;
                let args = Encoded::decode_wire(&mut r, attachments)?;
                let oneway = r.bool()?;
                let stream = r.bool()?;
                // Most calls carry no meta: one byte, read here.
                let meta = if r.peek() == Some(0) {
                    r.byte()?;
                    None
                } else {
                    decode_meta(&mut r)?
                };
                *out = Some(Message::Call {
                    id,
                    remaining,
                    call: Call { object, method, args, oneway, stream, meta },
                });
            }
            CANCEL => *out = Some(Message::Cancel { id: r.u64()? }),
            REPLY => {
                let id = r.u64()?;
                *out = Some(Message::Reply { id, reply: decode_reply(&mut r, attachments)? });
            }
            RELEASE => *out = Some(Message::Release { export: r.u64()?, count: r.u32()? }),
            ITEMS => {
                let id = r.u64()?;
                *out = Some(Message::Items { id, items: Encoded::decode_wire(&mut r, attachments)? });
            }
            CREDIT => *out = Some(Message::Credit { id: r.u64()?, bytes: r.u64()? }),
            CLOSE => *out = Some(Message::Close { reason: r.text()? }),
            ITEMS_END => {
                let id = r.u64()?;
                let failure = match r.byte()? {
                    0 => None,
                    1 => Some(r.text()?),
                    _ => return Err("an upload's end is neither clean nor failed".into()),
                };
                *out = Some(Message::ItemsEnd { id, failure });
            }
            other => return Err(format!("unknown message kind {other}")),
        }
        if r.remaining() != 0 {
            *out = None;
            return Err(format!("{} bytes left over after the message", r.remaining()));
        }
        Ok(())
    }
}

impl Encode for Inbound {
    fn encode(&self, out: &mut Vec<u8>, attachments: &mut Vec<Bytes>) {
        match self {
            Inbound::Reply { id, reply } => OutgoingReply { id: *id, reply }.encode(out, attachments),
            Inbound::Other(message) => message.encode(out, attachments),
        }
    }
}

impl Wire for Inbound {
    fn decode(envelope: &Bytes, attachments: &mut Bytes) -> Result<Self, String> {
        let mut r = Reader::new(envelope);
        if r.varint(32)? != REPLY {
            return Message::decode(envelope, attachments).map(|m| Inbound::Other(Box::new(m)));
        }
        let id = r.u64()?;
        let reply = decode_reply(&mut r, attachments)?;
        if r.remaining() != 0 {
            return Err(format!("{} bytes left over after the message", r.remaining()));
        }
        Ok(Inbound::Reply { id, reply })
    }
}

#[inline(always)]
fn encode_meta(meta: Option<&CallMeta>, out: &mut Vec<u8>) {
    match meta {
        None => out.push(0),
        Some(meta) => encode_some_meta(meta, out),
    }
}

#[cold]
fn encode_some_meta(meta: &CallMeta, out: &mut Vec<u8>) {
    out.push(1);
    match &meta.correlation {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            put_str(out, id.as_str());
        }
    }
    put_varint(out, meta.annotations.len() as u64);
    for (key, value) in &meta.annotations {
        put_str(out, key.as_str());
        put_str(out, value.as_str());
    }
    out.push(u8::from(meta.upload));
}

/// Reads a call's meta, refusing one over the bounds (see
/// [`CallMeta::check`]).
#[cold]
fn decode_meta(r: &mut Reader<'_>) -> Result<Option<Box<CallMeta>>, String> {
    match r.byte()? {
        0 => Ok(None),
        1 => {
            let correlation = match r.byte()? {
                0 => None,
                1 => Some(r.text()?),
                _ => return Err("a correlation id is neither absent nor present".into()),
            };
            let count = r.u64()?;
            if count > crate::context::MAX_ANNOTATIONS as u64 {
                return Err(format!("a call carries {count} annotations, more than the allowed"));
            }
            let mut annotations = Vec::with_capacity(count as usize);
            for _ in 0..count {
                annotations.push((r.text()?, r.text()?));
            }
            let upload = r.bool()?;
            let meta = CallMeta { correlation, annotations, upload };
            meta.check()?;
            Ok(Some(Box::new(meta)))
        }
        _ => Err("a call's meta is neither absent nor present".into()),
    }
}

#[inline(always)]
fn encode_reply(reply: &Reply, out: &mut Vec<u8>, attachments: &mut Vec<Bytes>) {
    match reply {
        Ok(value) => {
            put_varint(out, 0);
            value.encode_wire(out, attachments);
        }
        Err(error) => {
            put_varint(out, 1);
            put_varint(out, u64::from(error.kind().wire_index()));
            put_str(out, error.message());
            let chain: Vec<&str> = error.chain().collect();
            put_varint(out, chain.len() as u64);
            for cause in chain {
                put_str(out, cause);
            }
        }
    }
}

#[inline]
fn decode_reply(r: &mut Reader<'_>, attachments: &mut Bytes) -> Result<Reply, String> {
    match r.u32()? {
        0 => Ok(Ok(Encoded::decode_wire(r, attachments)?)),
        1 => {
            let index = r.u32()?;
            let kind =
                RemoteErrorKind::from_wire_index(index).ok_or(format!("unknown error kind {index}"))?;
            let message = r.string()?;
            let count = r.u64()?;
            // Each cause takes at least one byte: a count larger than what is
            // left is a lie.
            if count > r.remaining() as u64 {
                return Err("an error chain is longer than the message".into());
            }
            let mut chain = Vec::with_capacity((count as usize).min(crate::error::MAX_REMOTE_CHAIN + 1));
            for _ in 0..count {
                let cause = r.string()?;
                if chain.len() <= crate::error::MAX_REMOTE_CHAIN {
                    chain.push(cause);
                }
            }
            Ok(Err(RemoteError::with_chain(kind, message, chain)))
        }
        other => Err(format!("unknown reply kind {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::Blob;
    use crate::blob::Text;
    use proptest::prelude::*;
    use std::time::Duration;

    /// What postcard writes for a message, with its attachments.
    fn postcard_bytes<T: serde::Serialize>(value: &T) -> (Vec<u8>, Vec<Bytes>) {
        let (bytes, attachments) = crate::blob::collect_attachments(|| postcard::to_allocvec(value).unwrap());
        (bytes, attachments)
    }

    fn hand_bytes<T: Wire>(value: &T) -> (Vec<u8>, Vec<Bytes>) {
        let mut out = Vec::new();
        let mut attachments = Vec::new();
        value.encode(&mut out, &mut attachments);
        (out, attachments)
    }

    fn check<T>(value: &T)
    where
        T: Wire + serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let (hand, hand_att) = hand_bytes(value);
        let (post, post_att) = postcard_bytes(value);
        assert_eq!(hand, post, "the same bytes as postcard for {value:?}");
        assert_eq!(hand_att, post_att);
        let envelope = Bytes::from(hand);
        let mut attachments = Bytes::from(hand_att.concat());
        let back = T::decode(&envelope, &mut attachments).unwrap();
        assert!(attachments.is_empty());
        assert_eq!(&back, value);
        // Decoded in place, the same.
        let mut attachments = Bytes::from(hand_att.concat());
        let mut into = None;
        T::decode_into(&envelope, &mut attachments, &mut into).unwrap();
        assert!(attachments.is_empty());
        assert_eq!(into.as_ref(), Some(value));
    }

    #[test]
    fn json_arguments_and_results_cross_the_wire_as_json() {
        let args = crate::json::arguments(vec![serde_json::json!("Ada"), serde_json::json!([1, 2])]);
        let call =
            Message::Call { id: 7, remaining: None, call: Call::new("greeter", "hello", args.clone()) };
        let (hand, _) = hand_bytes(&call);
        let back = Message::decode(&Bytes::from(hand), &mut Bytes::new()).unwrap();
        let Message::Call { call: back, .. } = back else { panic!("not a call: {back:?}") };
        assert!(back.args.is_json());
        assert_eq!(back.args.json_bytes(), args.json_bytes());
        let (name, list): (String, Vec<u8>) = back.args.decode().unwrap();
        assert_eq!((name.as_str(), list), ("Ada", vec![1, 2]));
        let reply = Message::Reply { id: 7, reply: Ok(Encoded::from_json(Bytes::from_static(b"{\"x\":1}"))) };
        let (hand, _) = hand_bytes(&reply);
        let Message::Reply { reply: Ok(value), .. } =
            Message::decode(&Bytes::from(hand), &mut Bytes::new()).unwrap()
        else {
            panic!("not a reply")
        };
        assert_eq!(value.json_bytes(), Some(&b"{\"x\":1}"[..]));
    }

    fn args() -> impl Strategy<Value = Encoded> {
        (any::<u64>(), ".{0,80}", prop::collection::vec(any::<u8>(), 0..6000), any::<bool>()).prop_map(
            |(n, s, bytes, blob)| {
                if blob {
                    Encoded::encode(&(n, s, Blob::from(bytes))).unwrap()
                } else {
                    Encoded::encode(&(n, s)).unwrap()
                }
            },
        )
    }

    proptest! {
        #[test]
        fn calls_match_postcard(id in any::<u64>(), secs in proptest::option::of(any::<u64>()), nanos in 0u32..1_000_000_000,
                                object in ".{0,40}", method in "[a-z_]{0,20}", args in args(), oneway in any::<bool>(), stream in any::<bool>(),
                                meta in proptest::option::of((proptest::option::of(".{0,30}"), prop::collection::vec(("[a-z]{1,8}", ".{0,20}"), 0..4)))) {
            let meta = meta.map(|(correlation, annotations)| Box::new(crate::context::CallMeta {
                correlation: correlation.map(|c| Text::from(c.as_str())),
                annotations: annotations.into_iter().map(|(k, v)| (Text::from(k.as_str()), Text::from(v.as_str()))).collect(),
                upload: stream,
            }));
            let call = Call { object: Text::from(object.as_str()), method: Text::from(method.as_str()), args, oneway, stream, meta };
            check(&Message::Call { id, remaining: secs.map(|s| Duration::new(s, nanos)), call });
            check(&Message::Cancel { id });
        }

        #[test]
        fn replies_match_postcard(id in any::<u64>(), args in args(), message in ".{0,60}",
                                  chain in prop::collection::vec(".{0,20}", 0..5), kind in 0u32..10) {
            check(&Message::Reply { id, reply: Ok(args) });
            let kind = RemoteErrorKind::from_wire_index(kind).unwrap();
            check(&Message::Reply { id, reply: Err(RemoteError::with_chain(kind, message, chain)) });
        }

        #[test]
        fn releases_match_postcard(export in any::<u64>(), count in any::<u32>()) {
            check(&Message::Release { export, count });
        }

        #[test]
        fn items_and_credits_match_postcard(id in any::<u64>(), items in args(), bytes in any::<u64>()) {
            check(&Message::Items { id, items });
            check(&Message::Credit { id, bytes });
            check(&Message::Close { reason: Text::from(format!("refused {id}").as_str()) });
            check(&Message::ItemsEnd { id, failure: None });
            check(&Message::ItemsEnd { id, failure: Some(Text::from("disk full")) });
        }

        #[test]
        fn inbound_reads_what_message_writes(id in any::<u64>(), args in args(), export in any::<u64>()) {
            for message in [Message::Reply { id, reply: Ok(args.clone()) }, Message::Release { export, count: 1 }, Message::Cancel { id }] {
                let (bytes, attached) = hand_bytes(&message);
                let inbound = Inbound::decode(&Bytes::from(bytes.clone()), &mut Bytes::from(attached.concat())).unwrap();
                match (&message, &inbound) {
                    (Message::Reply { id: a, reply: x }, Inbound::Reply { id: b, reply: y }) => prop_assert!(a == b && x == y),
                    (m, Inbound::Other(o)) => prop_assert_eq!(m, &**o),
                    _ => prop_assert!(false, "{:?} read as {:?}", message, inbound),
                }
                let (again, _) = hand_bytes(&inbound);
                prop_assert_eq!(again, bytes);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), extra in prop::collection::vec(any::<u8>(), 0..50)) {
            let envelope = Bytes::from(bytes);
            let decoded = Message::decode(&envelope, &mut Bytes::from(extra.clone()));
            // In place, the same outcome; nothing kept from a failure, not
            // even what the slot held before.
            let mut into = Some(Message::Cancel { id: 99 });
            let outcome = Message::decode_into(&envelope, &mut Bytes::from(extra), &mut into);
            match decoded {
                Ok(message) => {
                    prop_assert!(outcome.is_ok());
                    prop_assert_eq!(into, Some(message));
                }
                Err(e) => {
                    prop_assert_eq!(outcome, Err(e));
                    prop_assert!(into.is_none(), "a failed decode left {:?}", into);
                }
            }
        }
    }

    #[test]
    fn error_kinds_have_postcard_indices() {
        for index in 0..10 {
            let kind = RemoteErrorKind::from_wire_index(index).unwrap();
            assert_eq!(postcard::to_allocvec(&kind).unwrap(), [index as u8]);
            assert_eq!(kind.wire_index(), index);
        }
        assert_eq!(RemoteErrorKind::from_wire_index(10), None);
    }

    #[test]
    fn lying_lengths_fail_cleanly() {
        // A call whose object name claims a huge length.
        let mut out = Vec::new();
        put_varint(&mut out, 0);
        put_varint(&mut out, 1);
        out.push(0);
        put_varint(&mut out, u64::MAX);
        let err = Message::decode(&Bytes::from(out), &mut Bytes::new()).unwrap_err();
        assert!(err.contains("length"), "{err}");
        // An error chain claiming more causes than bytes.
        let mut out = Vec::new();
        put_varint(&mut out, REPLY);
        put_varint(&mut out, 1);
        put_varint(&mut out, 1);
        put_varint(&mut out, 4);
        put_str(&mut out, "m");
        put_varint(&mut out, 1 << 40);
        let err = Message::decode(&Bytes::from(out), &mut Bytes::new()).unwrap_err();
        assert!(err.contains("longer than the message"), "{err}");
        // Too many varint bytes.
        let out = vec![0x80u8; 12];
        assert!(Message::decode(&Bytes::from(out), &mut Bytes::new()).is_err());
        // A kind nobody knows.
        let err = Message::decode(&Bytes::from(vec![9u8, 0]), &mut Bytes::new()).unwrap_err();
        assert!(err.contains("unknown message kind 9"), "{err}");
        // Items whose attachment is not there.
        let mut out = Vec::new();
        put_varint(&mut out, ITEMS);
        put_varint(&mut out, 1);
        put_varint(&mut out, 1);
        put_varint(&mut out, 5000);
        put_varint(&mut out, 0);
        let err = Message::decode(&Bytes::from(out), &mut Bytes::new()).unwrap_err();
        assert!(err.contains("past the end"), "{err}");
    }
}
