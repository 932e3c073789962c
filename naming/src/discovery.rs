//! The discovery responder: answers `GET_NSURI` on the UDP broadcast port
//! with the name server's URI, as Pyro's broadcast server does (its Pyro5
//! URI when it also serves Pyro5's tools).

use std::net::SocketAddr;

use rmi_core::{Location, ObjectUri};
use rmi_proxy::DISCOVERY_QUERY;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Answers discovery queries until `stop` changes.
///
/// With `pyro5`, the answer is the Pyro5 name server's URI
/// (`PYRO:Pyro.NameServer@…`, the same daemon and port): Pyro5's
/// `locate_ns()` asks the same question and reads only `PYRO:` URIs, and
/// rmi's clients read it as rmi's name server.
pub(crate) async fn respond(socket: UdpSocket, uri: ObjectUri, pyro5: bool, mut stop: watch::Receiver<bool>) {
    let answer = if pyro5 {
        format!("PYRO:{}@{}", rmi_proxy::PYRO5_NAME_SERVER, uri.location)
    } else {
        uri.to_string()
    };
    // A name server that only listens on loopback answers only local
    // queries: its URI would point other machines at themselves.
    let local_only = match &uri.location {
        Location::Tcp(hp) => hp.host.is_loopback(),
        Location::Unix(_) => true,
    };
    let mut buf = [0u8; 64];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stop.changed() => return,
        };
        let (n, from): (usize, SocketAddr) = match received {
            Ok(r) => r,
            Err(e) => {
                // An ICMP error for an earlier answer, and the like: keep going.
                tracing::debug!("discovery socket: {e}");
                continue;
            }
        };
        if buf.get(..n).map(|q| q.trim_ascii()) != Some(DISCOVERY_QUERY) {
            continue;
        }
        if local_only && !from.ip().is_loopback() {
            tracing::debug!(%from, "discovery query from another machine ignored: this name server is loopback-only");
            continue;
        }
        if let Err(e) = socket.send_to(answer.as_bytes(), from).await {
            tracing::debug!(%from, "discovery answer not sent: {e}");
        }
    }
}
