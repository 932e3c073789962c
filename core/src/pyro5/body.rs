//! What Pyro5's messages carry, in its json serializer: the handshake and
//! its metadata, a call, an exception; and a refusal in any serializer
//! Pyro5 has, so that a client on serpent (Pyro5's default) is told in its
//! own format to switch to json rather than fail to read the answer.
//!
//! Everything here parses with serde_json (bounded: the message limit was
//! checked on the header, serde_json limits nesting to 128 levels) and
//! nothing is evaluated.

use serde_json::{Map, Value, json};

use crate::error::{RemoteError, RemoteErrorKind};
use crate::object::MethodInfo;

/// The name Pyro5 gives a daemon's own object.
pub const DAEMON_OBJECT: &str = "Pyro.Daemon";

/// A CONNECT's payload: the client's handshake data and the object it wants.
#[derive(Debug, Clone, PartialEq)]
pub struct Connect {
    /// The object's id.
    pub object: String,
    /// What the client's `_pyroHandshake` says (`"hello"` unless set).
    pub handshake: Value,
}

/// An INVOKE's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoke {
    /// The object's id.
    pub object: String,
    /// The method's name (`<batch>` for a batch).
    pub method: String,
    /// The positional arguments, a JSON array.
    pub params: Vec<Value>,
    /// The keyword arguments (rmi methods take none; objects served in
    /// Pyro5's terms may).
    pub kwargs: Map<String, Value>,
}

/// A payload that does not say what Pyro5 says it must.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Pyro5 message: {0}")]
pub struct BodyError(pub String);

fn object(payload: &[u8]) -> Result<Map<String, Value>, BodyError> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(value) => as_object(value),
        Err(e) => Err(BodyError(format!("not JSON: {e}"))),
    }
}

fn as_object(value: Value) -> Result<Map<String, Value>, BodyError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(BodyError(format!("expected an object (a dict), got {}", kind_of(&other)))),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string(map: &mut Map<String, Value>, key: &str) -> Result<String, BodyError> {
    match map.remove(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(BodyError(format!("{key:?} is {}, not a string", kind_of(&other)))),
        None => Err(BodyError(format!("no {key:?}"))),
    }
}

impl Connect {
    /// Reads a CONNECT's json payload.
    ///
    /// # Errors
    ///
    /// What is missing or of the wrong type.
    pub fn parse(payload: &[u8]) -> Result<Self, BodyError> {
        Self::from_map(object(payload)?)
    }

    /// As [`Connect::parse`], from the payload already read (any serializer).
    ///
    /// # Errors
    ///
    /// As [`Connect::parse`].
    pub fn from_value(value: Value) -> Result<Self, BodyError> {
        Self::from_map(as_object(value)?)
    }

    fn from_map(mut map: Map<String, Value>) -> Result<Self, BodyError> {
        Ok(Connect {
            object: string(&mut map, "object")?,
            handshake: map.remove("handshake").unwrap_or(Value::Null),
        })
    }
}

impl Invoke {
    /// Reads an INVOKE's json payload.
    ///
    /// # Errors
    ///
    /// What is missing or of the wrong type.
    pub fn parse(payload: &[u8]) -> Result<Self, BodyError> {
        Self::from_map(object(payload)?)
    }

    /// As [`Invoke::parse`], from the payload already read (any serializer).
    ///
    /// # Errors
    ///
    /// As [`Invoke::parse`].
    pub fn from_value(value: Value) -> Result<Self, BodyError> {
        match value {
            // serpent's shape: (object, method, params, kwargs).
            Value::Array(parts) => {
                let mut parts = parts.into_iter();
                let mut map = Map::new();
                for key in ["object", "method", "params", "kwargs"] {
                    map.insert(key.to_owned(), parts.next().unwrap_or(Value::Null));
                }
                if parts.next().is_some() {
                    return Err(BodyError("a call is (object, method, params, kwargs)".into()));
                }
                Self::from_map(map)
            }
            other => Self::from_map(as_object(other)?),
        }
    }

    fn from_map(mut map: Map<String, Value>) -> Result<Self, BodyError> {
        let object = string(&mut map, "object")?;
        let method = string(&mut map, "method")?;
        let params = match map.remove("params") {
            Some(Value::Array(params)) => params,
            Some(Value::Null) | None => Vec::new(),
            Some(other) => return Err(BodyError(format!("\"params\" is {}, not an array", kind_of(&other)))),
        };
        let kwargs = match map.remove("kwargs") {
            Some(Value::Object(kwargs)) => kwargs,
            Some(Value::Null) | None => Map::new(),
            Some(other) => {
                return Err(BodyError(format!("\"kwargs\" is {}, not an object", kind_of(&other))));
            }
        };
        Ok(Invoke { object, method, params, kwargs })
    }

    /// Whether keyword arguments were given.
    pub fn has_kwargs(&self) -> bool {
        !self.kwargs.is_empty()
    }

    /// The calls of a batch (`params`: `[[method, args, kwargs], …]`).
    ///
    /// # Errors
    ///
    /// A call that is not a method name with a list of arguments.
    pub fn batch(&self) -> Result<Vec<(String, Vec<Value>, bool)>, BodyError> {
        self.params
            .iter()
            .map(|call| match call {
                Value::Array(parts) => match parts.as_slice() {
                    [Value::String(method), Value::Array(args), rest @ ..] => {
                        let has_kwargs = matches!(rest.first(), Some(Value::Object(k)) if !k.is_empty());
                        Ok((method.clone(), args.clone(), has_kwargs))
                    }
                    _ => Err(BodyError("a batched call is not [method, args, kwargs]".into())),
                },
                other => Err(BodyError(format!("a batched call is {}, not a list", kind_of(other)))),
            })
            .collect()
    }
}

/// A plain json INVOKE read without building a tree of values: the object
/// and method names, and the arguments as the JSON text they came in (a
/// slice of the payload, handed to the method's decoder as it is). Only the
/// common shape is read this way: `params` an array, no keyword arguments;
/// anything else (a batch, keyword arguments, keys Pyro5 does not send, a
/// malformed payload) is left to [`Invoke::parse`], which says precisely
/// what is wrong. The arguments' text is checked as JSON when the method's
/// decoder reads it, not before: arguments JSON reads but cannot carry (a
/// number out of range, a lone surrogate, a key twice in one object) are
/// the method's `TypeError`, not a `ProtocolError` (Pyro5 writes none).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainInvoke<'a> {
    /// The object's id.
    #[serde(borrow)]
    pub object: std::borrow::Cow<'a, str>,
    /// The method's name.
    #[serde(borrow)]
    pub method: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    params: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    kwargs: Option<&'a serde_json::value::RawValue>,
}

impl<'a> PlainInvoke<'a> {
    /// Reads `payload` when it is a plain call (see [`PlainInvoke`]).
    pub fn parse(payload: &'a [u8]) -> Option<Self> {
        let call: PlainInvoke<'a> = serde_json::from_slice(payload).ok()?;
        let plain_params = call.params.is_none_or(|p| p.get().starts_with('['));
        let no_kwargs = call.kwargs.is_none_or(|k| {
            let text = k.get();
            text == "null" || (text.starts_with('{') && text[1..].trim_start().starts_with('}'))
        });
        (plain_params && no_kwargs).then_some(call)
    }

    /// The arguments' JSON text, the array as it came; `None` when there
    /// are none (a method without parameters reads `null`).
    pub fn arguments(&self) -> Option<&'a str> {
        self.params.map(|p| p.get()).filter(|text| !text[1..].trim_start().starts_with(']'))
    }
}

/// An object's metadata as Pyro5 proxies read it: its exposed methods, those
/// that are oneway, and its attributes (rmi objects expose none).
pub fn metadata(methods: &[MethodInfo]) -> Value {
    let names: Vec<&str> = methods.iter().map(|m| m.name).collect();
    let oneway: Vec<&str> = methods.iter().filter(|m| m.oneway).map(|m| m.name).collect();
    json!({ "methods": names, "oneway": oneway, "attrs": [] })
}

/// The CONNECTOK payload: the handshake's answer and the object's metadata.
pub fn connect_ok(methods: &[MethodInfo]) -> Value {
    json!({ "handshake": "hello", "meta": metadata(methods) })
}

/// The Python exception class a remote error arrives as: one a Pyro5 client
/// rebuilds (builtins, or `Pyro5.errors`; it refuses any other class).
pub fn python_class(kind: RemoteErrorKind) -> &'static str {
    match kind {
        RemoteErrorKind::ObjectNotFound => "Pyro5.errors.DaemonError",
        RemoteErrorKind::MethodNotFound => "builtins.AttributeError",
        RemoteErrorKind::BadArguments => "builtins.TypeError",
        RemoteErrorKind::DeadlineExceeded => "builtins.TimeoutError",
        RemoteErrorKind::Refused => "Pyro5.errors.SecurityError",
        RemoteErrorKind::Busy | RemoteErrorKind::ShuttingDown => "Pyro5.errors.CommunicationError",
        _ => "builtins.RuntimeError",
    }
}

/// An exception as Pyro5's json serializer writes it: the class, its
/// message as its one argument, and the remote side's account of it as
/// `_pyroTraceback` (what `Pyro5.errors.get_pyro_traceback` prints).
pub fn exception(class: &str, message: &str, traceback: &[String]) -> Value {
    json!({
        "__class__": class,
        "__exception__": true,
        "args": [message],
        "attributes": { "_pyroTraceback": traceback },
    })
}

/// A remote error as a Pyro5 exception: the message, and the chain of
/// causes as the traceback text, under `where_` (the object and method).
pub fn remote_exception(error: &RemoteError, where_: &str) -> Value {
    let mut traceback = vec![format!("Remote rmi error in {where_} ({:?}):\n", error.kind())];
    traceback.push(format!("  {}\n", error.message()));
    for cause in error.chain() {
        traceback.push(format!("caused by: {cause}\n"));
    }
    exception(python_class(error.kind()), error.message(), &traceback)
}

/// A batch's item for a call that failed (the batch stops there, as in
/// Pyro5).
pub fn batch_failure(exception: Value) -> Value {
    json!({ "__class__": "Pyro5.core._ExceptionWrapper", "exception": exception })
}

/// A string in the serializer `serializer_id` (json, serpent, marshal or
/// msgpack): how a refusal reaches a client whatever it speaks. `None` for
/// an id Pyro5 does not define.
pub fn string_in(serializer_id: u8, text: &str) -> Option<Vec<u8>> {
    Some(match serializer_id {
        // serpent: a header line, then a Python string literal.
        1 => super::serpent::write(&Value::String(text.to_owned())),
        // marshal: TYPE_UNICODE, its length (little-endian), UTF-8.
        2 => {
            let mut out = vec![b'u'];
            out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
            out
        }
        3 => Value::String(text.to_owned()).to_string().into_bytes(),
        // msgpack: str 32, its length (big-endian), UTF-8.
        4 => {
            let mut out = vec![0xdb];
            out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
            out
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_call_is_read_without_a_tree_and_anything_else_left_to_invoke() {
        let payload = br#"{"object": "calc", "method": "add", "params": [2, {"x": [3]}], "kwargs": {}}"#;
        let call = PlainInvoke::parse(payload).unwrap();
        assert_eq!((call.object.as_ref(), call.method.as_ref()), ("calc", "add"));
        assert_eq!(call.arguments(), Some(r#"[2, {"x": [3]}]"#));
        // Escaped names, no arguments (given as [ ], as null, or absent).
        for payload in [
            &br#"{"object": "c\u0061lc", "method": "m", "params": [ ], "kwargs": { }}"#[..],
            br#"{"kwargs": null, "method": "m", "object": "calc"}"#,
            br#"{"object": "calc", "method": "m", "params": null}"#,
            // serpent's shape, which Invoke::from_value reads too.
            br#"["calc", "m", [], {}]"#,
        ] {
            let call = PlainInvoke::parse(payload).unwrap();
            assert_eq!((call.object.as_ref(), call.arguments()), ("calc", None));
        }
        // Left to Invoke::parse, which says what is wrong or reads it all.
        for other in [
            &br#"{"object": "c", "method": "m", "params": [], "kwargs": {"a": 1}}"#[..],
            br#"{"object": "c", "method": "m", "params": 3}"#,
            br#"{"object": "c", "method": "m", "kwargs": []}"#,
            br#"{"object": 1, "method": "m"}"#,
            br#"{"object": "c", "object": "d", "method": "m"}"#,
            br#"{"object": "c", "method": "m", "extra": 1}"#,
            br#"["c", "m", [], {}, 5]"#,
            b"{\"object\": \"o\"",
            b"{\"object\": \"\xff\", \"method\": \"m\"}",
        ] {
            assert!(PlainInvoke::parse(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn a_call_reads_as_pyro5_writes_it() {
        let call =
            Invoke::parse(br#"{"object": "calc", "method": "add", "params": [2, 3], "kwargs": {}}"#).unwrap();
        assert_eq!(call.object, "calc");
        assert_eq!(call.method, "add");
        assert_eq!(call.params, vec![json!(2), json!(3)]);
        assert!(!call.has_kwargs());
        let kw =
            Invoke::parse(br#"{"object": "c", "method": "m", "params": [], "kwargs": {"a": 1}}"#).unwrap();
        assert!(kw.has_kwargs());
        for bad in [
            &br#"[1]"#[..],
            br#"{"method": "m"}"#,
            br#"{"object": 1, "method": "m"}"#,
            br#"{"object": "o", "method": "m", "params": 3}"#,
            b"{\"object\": \"o\"",
        ] {
            assert!(Invoke::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_batch_lists_its_calls() {
        let call = Invoke::parse(
            br#"{"object": "o", "method": "<batch>", "params": [["a", [1], {}], ["b", [], {"k": 2}]], "kwargs": {}}"#,
        )
        .unwrap();
        let calls = call.batch().unwrap();
        assert_eq!(calls, vec![("a".into(), vec![json!(1)], false), ("b".into(), vec![], true)]);
        let bad = Invoke::parse(br#"{"object": "o", "method": "<batch>", "params": [[1, []]]}"#).unwrap();
        assert!(bad.batch().is_err());
    }

    #[test]
    fn refusals_are_written_in_each_serializer() {
        assert_eq!(string_in(3, "a\"b").unwrap(), br#""a\"b""#);
        assert_eq!(string_in(1, "it's\n").unwrap(), b"# serpent utf-8 python3.2\n'it\\'s\\n'");
        assert_eq!(string_in(2, "hé").unwrap(), [b'u', 3, 0, 0, 0, b'h', 0xc3, 0xa9]);
        assert_eq!(string_in(4, "ok").unwrap(), [0xdb, 0, 0, 0, 2, b'o', b'k']);
        assert_eq!(string_in(9, "x"), None);
    }

    #[test]
    fn an_error_becomes_a_class_python_rebuilds() {
        let e = RemoteError::with_chain(RemoteErrorKind::Application, "no such user", vec!["db down".into()]);
        let value = remote_exception(&e, "Users.find");
        assert_eq!(value["__class__"], "builtins.RuntimeError");
        assert_eq!(value["args"], json!(["no such user"]));
        let traceback = value["attributes"]["_pyroTraceback"].as_array().unwrap();
        assert!(traceback.iter().any(|line| line.as_str().unwrap().contains("db down")));
        let missing = RemoteError::new(RemoteErrorKind::MethodNotFound, "no method");
        assert_eq!(remote_exception(&missing, "x")["__class__"], "builtins.AttributeError");
    }
}
