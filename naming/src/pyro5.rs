//! `Pyro.NameServer`: the name server in Pyro5's terms, for Python's
//! `Pyro5.api.locate_ns`, `PYRONAME:` and `python -m Pyro5.nsc`.
//!
//! The same registrations as rmi's clients see: a name rmi registered
//! (`RMI:obj@host:port`) is handed to Python as the URI `PYRO:obj@host:port`
//! (its daemon must speak Pyro5: `RMI_PYRO5=on`); a name Python registers
//! (a Pyro5 daemon's `PYRO:` URI) is kept with the tag
//! [`PYRO5_TAG`], which tells rmi's clients to speak Pyro5 to it.
//!
//! Methods and arguments as Pyro5 5.x's name server has them: `lookup(name,
//! return_metadata=False)`, `register(name, uri, safe=False, metadata=None)`,
//! `remove(name=None, prefix=None, regex=None)`, `list(prefix=None,
//! regex=None, return_metadata=False)`, `yplookup(meta_all=None,
//! meta_any=None, return_metadata=True)`, `set_metadata(name, metadata)`,
//! `count()`, `ping()`.

use std::collections::BTreeSet;

use rmi_core::object::MethodInfo;
use rmi_core::{Host, HostPort, Location, ObjectUri};
use rmi_daemon::{Pyro5Exception, Pyro5Future, Pyro5Object};
use rmi_proxy::{MetaMatch, NameFilter, NameServerApi, NamingError, Registration};
use serde_json::{Map, Value, json};

use crate::server::NameServer;

pub use rmi_proxy::PYRO5_NAME_SERVER;

pub use rmi_proxy::PYRO5_TAG;

const fn method(name: &'static str) -> MethodInfo {
    MethodInfo { name, signature: "", oneway: false, stream: false }
}

const METHODS: &[MethodInfo] = &[
    method("count"),
    method("list"),
    method("lookup"),
    method("ping"),
    method("register"),
    method("remove"),
    method("set_metadata"),
    method("yplookup"),
];

/// The name server, served to Pyro5 clients.
#[derive(Debug)]
pub(crate) struct PyroNameServer {
    pub(crate) ns: NameServer,
}

/// The arguments of a call: positional first, then by keyword, each once.
struct Args {
    params: std::vec::IntoIter<Value>,
    kwargs: Map<String, Value>,
}

impl Args {
    /// The next parameter, `name`: positional, or by keyword.
    fn next(&mut self, name: &str) -> Option<Value> {
        match self.params.next() {
            Some(value) => Some(value),
            None => self.kwargs.remove(name),
        }
    }

    /// What is left: an error naming it.
    fn done(mut self, method: &str) -> Result<(), Pyro5Exception> {
        if self.params.next().is_some() {
            return Err(type_error(format!("{method}() got too many positional arguments")));
        }
        match self.kwargs.keys().next() {
            Some(key) => Err(type_error(format!("{method}() got an unexpected keyword argument {key:?}"))),
            None => Ok(()),
        }
    }
}

fn type_error(message: String) -> Pyro5Exception {
    Pyro5Exception::new("builtins.TypeError", message)
}

fn naming_error(e: &NamingError) -> Pyro5Exception {
    let class = match e {
        NamingError::NotFound(_) | NamingError::Taken { .. } => "Pyro5.errors.NamingError",
        _ => "builtins.ValueError",
    };
    Pyro5Exception::new(class, e.to_string())
}

fn string(value: Option<Value>, method: &str, name: &str) -> Result<Option<String>, Pyro5Exception> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(type_error(format!("{method}(): {name} must be a string, not {other}"))),
    }
}

fn required(value: Option<Value>, method: &str, name: &str) -> Result<String, Pyro5Exception> {
    string(value, method, name)?
        .ok_or_else(|| type_error(format!("{method}() missing required argument: {name:?}")))
}

fn flag(value: Option<Value>, default: bool) -> bool {
    match value {
        Some(Value::Bool(b)) => b,
        _ => default,
    }
}

/// Metadata as Pyro5 sends it: a list (a set, serialized) of strings.
fn tags(value: Option<Value>, method: &str) -> Result<Option<BTreeSet<String>>, Pyro5Exception> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                other => Err(type_error(format!("{method}(): metadata must be strings, not {other}"))),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(type_error(format!("{method}(): metadata must be a set of strings, not {other}"))),
    }
}

/// A URI as Pyro5 sends it: `PYRO:obj@host:port` text, or its URI object
/// (`{"__class__": "Pyro5.core.URI", "state": [protocol, object, sockname,
/// host, port]}`); whether it is Pyro5's.
fn parse_uri(value: Value) -> Result<(ObjectUri, bool), Pyro5Exception> {
    let bad = |why: String| Pyro5Exception::new("Pyro5.errors.PyroError", format!("invalid uri: {why}"));
    match value {
        Value::String(text) => {
            if let Some(rest) = text.strip_prefix("PYRO:") {
                let uri: ObjectUri =
                    format!("RMI:{rest}").parse().map_err(|e| bad(format!("{text}: {e}")))?;
                Ok((uri, true))
            } else {
                let uri: ObjectUri = text.parse().map_err(|e| bad(format!("{text}: {e}")))?;
                Ok((uri, false))
            }
        }
        Value::Object(mut map) => {
            let state = match map.remove("state") {
                Some(Value::Array(state)) => state,
                _ => return Err(bad("a URI object without its state".into())),
            };
            match state.as_slice() {
                [Value::String(protocol), Value::String(object), sockname, host, port] => {
                    let location = match (sockname, host, port) {
                        (Value::String(path), _, _) if !path.is_empty() => Location::Unix(path.into()),
                        (_, Value::String(host), Value::Number(port)) => {
                            let host: Host = host.parse().map_err(|_| bad(format!("host {host:?}")))?;
                            let port = port
                                .as_u64()
                                .and_then(|p| u16::try_from(p).ok())
                                .ok_or_else(|| bad(format!("port {port}")))?;
                            Location::Tcp(HostPort { host, port })
                        }
                        _ => return Err(bad("neither a host and port nor a socket path".into())),
                    };
                    Ok((ObjectUri { object: object.clone(), location }, protocol == "PYRO"))
                }
                _ => Err(bad("a URI state is [protocol, object, sockname, host, port]".into())),
            }
        }
        other => Err(bad(format!("{other}"))),
    }
}

/// A registration's URI as Pyro5 reads it: its URI object.
fn uri_object(uri: &ObjectUri) -> Value {
    let (sockname, host, port) = match &uri.location {
        Location::Tcp(hp) => {
            (Value::Null, json!(hp.host.to_string().trim_matches(['[', ']'])), json!(hp.port))
        }
        Location::Unix(path) => (json!(path.display().to_string()), Value::Null, json!(0)),
    };
    json!({ "__class__": "Pyro5.core.URI", "state": ["PYRO", uri.object, sockname, host, port] })
}

/// A registration's URI as text, as Pyro5's `list` gives it.
fn uri_text(uri: &ObjectUri) -> String {
    uri.to_string().replacen("RMI:", "PYRO:", 1)
}

/// The tags Python sees: rmi's own protocol tag left out.
fn visible_tags(registration: &Registration) -> Vec<&str> {
    registration.metadata.iter().map(String::as_str).filter(|t| *t != PYRO5_TAG).collect()
}

fn listing(registrations: &[Registration], return_metadata: bool) -> Value {
    let mut out = Map::new();
    for r in registrations {
        let uri = json!(uri_text(&r.uri));
        let value = if return_metadata { json!([uri, visible_tags(r)]) } else { uri };
        out.insert(r.name.clone(), value);
    }
    Value::Object(out)
}

impl PyroNameServer {
    async fn run(&self, method: &str, mut args: Args) -> Result<Value, Pyro5Exception> {
        let ns = &self.ns;
        let naming = |e: NamingError| naming_error(&e);
        match method {
            "ping" => {
                args.done(method)?;
                Ok(Value::Null)
            }
            "count" => {
                args.done(method)?;
                Ok(json!(ns.count()))
            }
            "lookup" => {
                let name = required(args.next("name"), method, "name")?;
                let return_metadata = flag(args.next("return_metadata"), false);
                args.done(method)?;
                let found = ns.lookup(name).map_err(naming)?;
                let uri = uri_object(&found.uri);
                Ok(if return_metadata { json!([uri, visible_tags(&found)]) } else { uri })
            }
            "register" => {
                let name = required(args.next("name"), method, "name")?;
                let uri = args
                    .next("uri")
                    .ok_or_else(|| type_error("register() missing required argument: \"uri\"".into()))?;
                let safe = flag(args.next("safe"), false);
                let mut metadata = tags(args.next("metadata"), method)?.unwrap_or_default();
                args.done(method)?;
                let (uri, pyro5) = parse_uri(uri)?;
                metadata.remove(PYRO5_TAG);
                if pyro5 {
                    metadata.insert(PYRO5_TAG.to_owned());
                }
                ns.register(Registration { name, uri, metadata }, safe).await.map_err(naming)?;
                Ok(Value::Null)
            }
            "remove" => {
                let name = string(args.next("name"), method, "name")?;
                let prefix = string(args.next("prefix"), method, "prefix")?;
                let regex = string(args.next("regex"), method, "regex")?;
                args.done(method)?;
                let filter = match (name, prefix, regex) {
                    (Some(name), _, _) => NameFilter::Exact(name),
                    (_, Some(prefix), _) => NameFilter::Prefix(prefix),
                    (_, _, Some(regex)) => NameFilter::Regex(regex),
                    // As Pyro5: no criterion removes nothing.
                    _ => return Ok(json!(0)),
                };
                Ok(json!(ns.remove(filter).await.map_err(naming)?))
            }
            "list" => {
                let prefix = string(args.next("prefix"), method, "prefix")?;
                let regex = string(args.next("regex"), method, "regex")?;
                let return_metadata = flag(args.next("return_metadata"), false);
                args.done(method)?;
                let filter = match (prefix, regex) {
                    (Some(prefix), _) => NameFilter::Prefix(prefix),
                    (_, Some(regex)) => NameFilter::Regex(regex),
                    _ => NameFilter::All,
                };
                Ok(listing(&ns.list(filter).map_err(naming)?, return_metadata))
            }
            "yplookup" => {
                let all = tags(args.next("meta_all"), method)?;
                let any = tags(args.next("meta_any"), method)?;
                let return_metadata = flag(args.next("return_metadata"), true);
                args.done(method)?;
                let (tags, mode) = match (all, any) {
                    (Some(all), _) if !all.is_empty() => (all, MetaMatch::All),
                    (_, Some(any)) if !any.is_empty() => (any, MetaMatch::Any),
                    _ => return Ok(json!({})),
                };
                Ok(listing(&ns.yplookup(tags, mode).map_err(naming)?, return_metadata))
            }
            "set_metadata" => {
                let name = required(args.next("name"), method, "name")?;
                let mut metadata = tags(args.next("metadata"), method)?.unwrap_or_default();
                args.done(method)?;
                // The protocol tag stays what it was: Python sets only its own tags.
                let was = ns.lookup(name.clone()).map_err(naming)?;
                metadata.remove(PYRO5_TAG);
                if was.metadata.contains(PYRO5_TAG) {
                    metadata.insert(PYRO5_TAG.to_owned());
                }
                ns.set_metadata(name, metadata).await.map_err(naming)?;
                Ok(Value::Null)
            }
            other => Err(Pyro5Exception::new(
                "builtins.AttributeError",
                format!("{PYRO5_NAME_SERVER} has no method {other:?}"),
            )),
        }
    }
}

impl Pyro5Object for PyroNameServer {
    fn methods(&self) -> &'static [MethodInfo] {
        METHODS
    }

    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Pyro5Future<'a> {
        Box::pin(self.run(method, Args { params: params.into_iter(), kwargs }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_read_as_pyro5_writes_them() {
        let (uri, pyro5) = parse_uri(json!("PYRO:thing@127.0.0.1:4000")).unwrap();
        assert!(pyro5);
        assert_eq!(uri.to_string(), "RMI:thing@127.0.0.1:4000");
        let (uri, pyro5) = parse_uri(json!("RMI:calc@[::1]:9")).unwrap();
        assert!(!pyro5);
        assert_eq!(uri_object(&uri)["state"], json!(["PYRO", "calc", null, "::1", 9]));
        let object =
            json!({"__class__": "Pyro5.core.URI", "state": ["PYRO", "obj", null, "localhost", 9091]});
        let (uri, pyro5) = parse_uri(object).unwrap();
        assert!(pyro5);
        assert_eq!(uri.to_string(), "RMI:obj@localhost:9091");
        for bad in [json!(3), json!("nonsense"), json!({"state": ["PYRO", "o", null, "h", 99999]}), json!({})]
        {
            assert!(parse_uri(bad.clone()).is_err(), "{bad}");
        }
    }
}
