//! Values in JSON, for the front doors that speak it: Pyro5's json
//! serializer, and calls from the command line.
//!
//! An exposed method decodes its arguments with serde into its parameter
//! types, whatever the encoding: an [`Encoded`] made with
//! [`Encoded::from_json`] holds a JSON array of the arguments, and decodes
//! with `serde_json` into the method's parameter tuple (so `[2, 3]` becomes
//! `(i32, i32)`, `{"name": "x"}` a struct). What the method returns is
//! encoded in JSON when the call runs in a JSON scope
//! ([`JsonReplies`] around the call's future, or [`with_json_replies`]
//! around a synchronous call): the generated code asks [`replying_in_json`]
//! once per reply.
//!
//! Nothing here is on the path of rmi's own calls but that one question,
//! a thread-local flag read.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use serde::Serialize;

use crate::encoded::Encoded;
use crate::error::{RemoteError, RemoteErrorKind};
use crate::message::Reply;

thread_local! {
    static JSON_REPLIES: Cell<bool> = const { Cell::new(false) };
}

/// Whether a reply made now is to be encoded in JSON.
#[inline]
pub fn replying_in_json() -> bool {
    JSON_REPLIES.with(Cell::get)
}

/// Runs `f` with replies encoded in JSON.
pub fn with_json_replies<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            JSON_REPLIES.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(JSON_REPLIES.with(|c| c.replace(true)));
    f()
}

/// A future whose polls make replies in JSON (an `async` method's call,
/// which encodes its reply in one of them).
#[derive(Debug)]
pub struct JsonReplies<F>(pub F);

impl<F: Future + Unpin> Future for JsonReplies<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        with_json_replies(|| Pin::new(&mut self.0).poll(cx))
    }
}

/// A call started inside [`with_json_replies`], made to go on replying in
/// JSON wherever it runs on: its future polled in the scope, its blocking
/// part run in it. A streaming method is refused: its items would not be
/// JSON.
pub fn json_started(started: crate::invoke::Started) -> crate::invoke::Started {
    use crate::invoke::Started;
    match started {
        Started::Running(future) => Started::Running(Box::pin(JsonReplies(future))),
        Started::Blocking(call) => Started::Blocking(Box::new(move || with_json_replies(call))),
        Started::Stream(_) => Started::Done(Err(RemoteError::new(
            RemoteErrorKind::BadArguments,
            "a method that streams its results cannot be called with JSON arguments",
        ))),
        done @ Started::Done(_) => done,
    }
}

/// A call's positional arguments as JSON, ready to decode into the method's
/// parameter tuple: no arguments are `null` (what `()` reads from JSON), any
/// others the array.
pub fn arguments(params: Vec<serde_json::Value>) -> Encoded {
    let text = if params.is_empty() {
        b"null".to_vec()
    } else {
        serde_json::Value::Array(params).to_string().into_bytes()
    };
    Encoded::from_json(Bytes::from(text))
}

/// Encodes a method's return value in JSON (out of rmi's own call path).
#[cold]
#[inline(never)]
pub fn encode_json_reply<T: Serialize + ?Sized>(value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(bytes) => Ok(Encoded::from_json(Bytes::from(bytes))),
        Err(e) => Err(RemoteError::new(
            RemoteErrorKind::Internal,
            format!("the return value cannot be written as JSON: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i32,
        label: String,
    }

    #[test]
    fn json_arguments_decode_into_the_parameter_tuple() {
        let args = Encoded::from_json(Bytes::from_static(br#"[2, "three", {"x": -4, "label": "p"}]"#));
        let (a, b, c): (u8, String, Point) = args.decode().unwrap();
        assert_eq!((a, b.as_str(), c), (2, "three", Point { x: -4, label: "p".into() }));
        assert!(args.is_json());
        // Too few, too many, or of the wrong type: refused, never guessed.
        assert!(args.decode::<(u8, String)>().is_err());
        assert!(args.decode::<(u8, String, Point, u8)>().is_err());
        assert!(args.decode::<(String, String, Point)>().is_err());
        let not_json = Encoded::from_json(Bytes::from_static(b"[1, 2"));
        assert!(not_json.decode::<(u8, u8)>().is_err());
    }

    #[test]
    fn no_arguments_are_the_unit_tuple() {
        arguments(Vec::new()).decode::<()>().unwrap();
        let (x,): (u8,) = arguments(vec![serde_json::json!(7)]).decode().unwrap();
        assert_eq!(x, 7);
        assert!(arguments(Vec::new()).decode::<(u8,)>().is_err());
        assert!(arguments(vec![serde_json::json!(7)]).decode::<()>().is_err());
    }

    #[test]
    fn replies_are_json_only_inside_the_scope() {
        assert!(!replying_in_json());
        let reply = with_json_replies(|| {
            assert!(replying_in_json());
            crate::object::encode_return(&Point { x: 1, label: "a".into() })
        });
        assert!(!replying_in_json());
        let value = reply.unwrap();
        assert_eq!(value.json_bytes(), Some(&br#"{"x":1,"label":"a"}"#[..]));
        let plain = crate::object::encode_return(&7u32).unwrap();
        assert_eq!(plain.json_bytes(), None);
        assert_eq!(plain.decode::<u32>().unwrap(), 7);
    }

    #[test]
    fn a_panic_inside_the_scope_leaves_it() {
        let caught = std::panic::catch_unwind(|| with_json_replies(|| panic!("boom")));
        assert!(caught.is_err());
        assert!(!replying_in_json());
    }
}
