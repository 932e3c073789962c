//! What travels on a connection once the handshake is done.
//!
//! Either side sends [`Message`]s: a [`Call`] with an id and a deadline, the
//! cancellation of an earlier call, the reply to a call of the other side
//! (same id), the release of references the other side exported to it, and
//! for a method that streams its results, its items and the credit its
//! caller grants as it reads them (see [`crate::stream`]).
//! A daemon answers each call that is not oneway with a reply carrying the
//! same id, so many calls can be in flight on one connection and complete in
//! any order (the shape of tarpc's `ClientMessage` and `Response`); a
//! daemon calls back the objects a client passed it the same way, over the
//! connection the client opened.
//!
//! A call names an object and a method and carries the arguments encoded
//! once ([`Encoded`]); the daemon decodes them only in the method's own
//! dispatch code, straight into its parameter types. Deadlines travel as
//! time *remaining*, so the two clocks need not agree; a daemon that cannot
//! represent a deadline treats it as none, and never panics on one.

use std::time::{Duration, Instant};

pub(crate) mod codec;

use serde::{Deserialize, Serialize};

use crate::blob::Text;
use crate::encoded::Encoded;
use crate::error::RemoteError;

/// One method call on one remote object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Call {
    /// The object's id in the daemon.
    pub object: Text,
    /// The exposed method's name.
    pub method: Text,
    /// The arguments, as a tuple, encoded once.
    pub args: Encoded,
    /// The caller does not wait: the daemon sends no response and runs the
    /// method on its own.
    pub oneway: bool,
    /// The caller reads the results as a stream (see [`crate::stream`]):
    /// only a method that streams them is run for it, and a streaming
    /// method is run only for such a caller.
    pub stream: bool,
    /// The caller's correlation id and annotations, if it sent any (see
    /// [`crate::context`]).
    pub meta: Option<Box<crate::context::CallMeta>>,
}

impl Call {
    /// A call of `method` on `object` with `args` (already encoded).
    pub fn new(object: impl Into<Text>, method: impl Into<Text>, args: Encoded) -> Self {
        Call { object: object.into(), method: method.into(), args, oneway: false, stream: false, meta: None }
    }

    /// The same call, marked oneway.
    #[must_use]
    pub fn oneway(mut self) -> Self {
        self.oneway = true;
        self
    }

    /// The same call, carrying `meta` (a correlation id, annotations).
    #[must_use]
    #[inline]
    pub fn with_meta(mut self, meta: Option<&std::sync::Arc<crate::context::CallMeta>>) -> Self {
        self.attach(meta);
        self
    }

    /// Makes the call carry `meta` (a correlation id, annotations), in place.
    #[inline(always)]
    pub fn attach(&mut self, meta: Option<&std::sync::Arc<crate::context::CallMeta>>) {
        if let Some(meta) = meta {
            self.attach_meta(meta);
        }
    }

    #[cold]
    fn attach_meta(&mut self, meta: &crate::context::CallMeta) {
        self.meta = Some(Box::new(meta.clone()));
    }

    /// The same call, its results read as a stream.
    #[must_use]
    pub fn streaming(mut self) -> Self {
        self.stream = true;
        self
    }
}

/// The outcome of a call: the encoded return value, or what went wrong.
pub type Reply = Result<Encoded, RemoteError>;

/// What travels on a connection once the handshake is done, either way:
/// each side may call objects of the other (a client calls the daemon's
/// objects, a daemon calls back the objects a client passed it), so both
/// send calls and answer them.
///
/// Call ids are chosen by the caller, unique among its calls in flight on
/// the connection; a [`Message::Reply`] carries the id of the call it
/// answers, which is always one the receiver made, so the two directions'
/// ids never meet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Message {
    /// Run a call and (unless it is oneway) answer with a [`Message::Reply`]
    /// for `id`.
    Call {
        /// Chosen by the caller; ignored for oneway calls.
        id: u64,
        /// Time left before the caller gives up; `None` if it waits forever.
        remaining: Option<Duration>,
        /// The call.
        call: Call,
    },
    /// The caller gave up on call `id`: stop it if it is still running.
    Cancel {
        /// The call's id.
        id: u64,
    },
    /// The answer to call `id`.
    Reply {
        /// The id of the call answered.
        id: u64,
        /// Its outcome.
        reply: Reply,
    },
    /// The sender dropped `count` references to the object the receiver
    /// exported to it as `export` (one for each time it was sent): the
    /// receiver forgets the export when nobody holds it any more.
    Release {
        /// The export's id, as the receiver gave it.
        export: u64,
        /// How many references the sender received and dropped.
        count: u32,
    },
    /// The next items of the stream that answers call `id` (see
    /// [`crate::stream`]): an encoded `Vec` of them. The stream ends with
    /// the call's [`Message::Reply`]. From the caller, the next items of the
    /// call's upload, which ends with [`Message::ItemsEnd`]. (A daemon's
    /// calls back to a client neither stream nor upload, so the direction
    /// says which.)
    Items {
        /// The id of the call whose results these are.
        id: u64,
        /// The items.
        items: Encoded,
    },
    /// The caller of call `id` has read `bytes` more of its stream's items
    /// (as [`Encoded::wire_len`] counts them): the producer may send that
    /// much more.
    Credit {
        /// The streaming call's id.
        id: u64,
        /// Bytes of items read since the last credit.
        bytes: u64,
    },
    /// The sender closes the connection, and says why (a daemon refusing a
    /// connection its hooks did not validate): the receiver's calls on it
    /// fail with the reason.
    Close {
        /// Why.
        reason: Text,
    },
    /// The caller of call `id` has sent every item of the call's upload
    /// (see [`crate::stream::Upload`]), or its stream failed (`failure`).
    ItemsEnd {
        /// The call's id.
        id: u64,
        /// Why the caller's stream failed, if it did.
        failure: Option<Text>,
    },
}

/// A message as a client reads it: a reply (what nearly every message to a
/// client is) as it is, anything else boxed, so that what moves on the path
/// every call takes stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inbound {
    /// As [`Message::Reply`].
    Reply {
        /// The id of the call answered.
        id: u64,
        /// Its outcome.
        reply: Reply,
    },
    /// Any other message.
    Other(Box<Message>),
}

/// A [`Message::Call`] to send, from borrowed parts: it encodes as that
/// message does, and the call stays where it lies (a call is large; moving
/// it into a message and back costs more than encoding it), kept for a
/// retry if it could not be sent.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingCall<'a> {
    /// As [`Message::Call`]'s.
    pub id: u64,
    /// As [`Message::Call`]'s.
    pub remaining: Option<Duration>,
    /// The call.
    pub call: &'a Call,
}

/// A [`Message::Reply`] to send, from borrowed parts (see
/// [`OutgoingCall`]).
#[derive(Debug, Clone, Copy)]
pub struct OutgoingReply<'a> {
    /// The id of the call answered.
    pub id: u64,
    /// Its outcome.
    pub reply: &'a Reply,
}

impl Message {
    /// A call whose deadline is `deadline` (`None`: no deadline).
    pub fn call(id: u64, deadline: Option<Instant>, call: Call) -> Self {
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        Message::Call { id, remaining, call }
    }
}

/// Turns a `remaining` received at `now` into a local deadline; a duration
/// too large to add to the clock means no deadline.
pub fn deadline_from(now: Instant, remaining: Option<Duration>) -> Option<Instant> {
    remaining.and_then(|r| now.checked_add(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_deadline_is_no_deadline_not_a_panic() {
        let now = Instant::now();
        assert_eq!(deadline_from(now, Some(Duration::MAX)), None);
        assert_eq!(deadline_from(now, None), None);
        let soon = deadline_from(now, Some(Duration::from_secs(1))).unwrap();
        assert!(soon > Instant::now());
    }

    #[test]
    fn calls_round_trip() {
        let call = Call::new("obj", "m", Encoded::encode(&(1u8, "x")).unwrap()).oneway();
        let r = Message::call(7, Some(Instant::now() + Duration::from_secs(5)), call.clone());
        let back: Message = postcard::from_bytes(&postcard::to_allocvec(&r).unwrap()).unwrap();
        match back {
            Message::Call { id: 7, remaining: Some(left), call: c } => {
                assert!(left <= Duration::from_secs(5));
                assert_eq!(c, call);
                assert!(c.oneway);
            }
            other => panic!("{other:?}"),
        }
    }
}
