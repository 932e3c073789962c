//! Streams into a method (an `rmi::Upload<T>` argument), against a real
//! daemon on loopback: a gigabyte in 64 KiB chunks checked by SHA-256 on
//! both ends, a slow reader holding the sender to its window, a method that
//! returns before reading everything, the sender's failure, and the
//! dynamic form.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestDaemon, builder, proxy_builder};
use futures::StreamExt;
use rmi::{Blob, Error, Upload};
use sha2::{Digest, Sha256};

/// Takes uploads.
#[derive(Debug, Default)]
pub struct Store {
    /// Items read so far by `slowly`.
    read: Arc<AtomicU64>,
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[rmi::expose]
impl Store {
    /// Reads every chunk: their count, bytes and SHA-256.
    pub async fn put(&self, data: Upload<Blob>) -> Result<(u64, u64, String), String> {
        let mut data = data;
        let mut hash = Sha256::new();
        let (mut chunks, mut bytes) = (0u64, 0u64);
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            hash.update(&chunk[..]);
            chunks += 1;
            bytes += chunk.len() as u64;
        }
        Ok((chunks, bytes, hex(&hash.finalize())))
    }

    /// Reads `n` numbers, slowly, then returns their sum.
    pub async fn slowly(&self, n: u64, numbers: Upload<u64>) -> u64 {
        let mut numbers = numbers;
        let mut sum = 0;
        for _ in 0..n {
            tokio::time::sleep(Duration::from_millis(1)).await;
            match numbers.next().await {
                Some(Ok(x)) => sum += x,
                _ => break,
            }
            self.read.fetch_add(1, Ordering::SeqCst);
        }
        sum
    }

    /// Adds up what comes, whatever the outcome: the error, if any.
    pub async fn total(&self, label: String, numbers: Upload<u64>) -> Result<String, String> {
        let mut numbers = numbers;
        let mut sum = 0u64;
        while let Some(x) = numbers.next().await {
            sum += x.map_err(|e| format!("{label}: {e}"))?;
        }
        Ok(format!("{label}: {sum}"))
    }
}

async fn store() -> (TestDaemon, StoreProxy, Arc<AtomicU64>) {
    let d = TestDaemon::start(builder()).await;
    let object = Store::default();
    let read = object.read.clone();
    let uri = d.daemon.register(object, Some("store")).unwrap();
    let proxy = StoreProxy::from_proxy(proxy_builder(&uri).build().unwrap()).with_timeout(None);
    (d, proxy, read)
}

#[tokio::test]
async fn a_gigabyte_in_64_kib_chunks_arrives_whole() {
    let (_d, store, _) = store().await;
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: u64 = 16 * 1024; // 1 GiB
    let base: Vec<u8> = (0..CHUNK).map(|i| (i * 7 + 3) as u8).collect();
    let sent = Arc::new(Mutex::new(Sha256::new()));
    let hashing = sent.clone();
    let chunks = (0..CHUNKS).map(move |i| {
        let mut chunk = base.clone();
        chunk[..8].copy_from_slice(&i.to_le_bytes());
        hashing.lock().unwrap().update(&chunk);
        Blob::from(chunk)
    });
    let started = std::time::Instant::now();
    let (count, bytes, digest) = store.put(Upload::iter(chunks)).await.unwrap();
    let took = started.elapsed();
    let expected = hex(&std::mem::take(&mut *sent.lock().unwrap()).finalize());
    println!("1 GiB uploaded in {took:?} ({:.0} MB/s)", bytes as f64 / 1e6 / took.as_secs_f64());
    assert_eq!((count, bytes), (CHUNKS, CHUNKS * CHUNK as u64));
    assert_eq!(digest, expected);
}

#[tokio::test]
async fn a_slow_reader_holds_the_sender_to_its_window() {
    let (_d, store, read) = store().await;
    let produced = Arc::new(AtomicU64::new(0));
    let counting = produced.clone();
    let numbers = (0..u64::MAX).inspect(move |_| {
        counting.fetch_add(1, Ordering::SeqCst);
    });
    let call = tokio::spawn({
        let store = store.clone();
        async move { store.slowly(300, Upload::iter(numbers)).await }
    });
    let mut ahead_most = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let ahead = produced.load(Ordering::SeqCst).saturating_sub(read.load(Ordering::SeqCst));
        ahead_most = ahead_most.max(ahead);
    }
    // 1 MiB of window in u64s (one to nine bytes each), a chunk being
    // gathered, one the reader holds, and the channel's slack.
    assert!(ahead_most < 1_300_000, "the sender ran {ahead_most} items ahead");
    let sum = call.await.unwrap().unwrap();
    assert_eq!(sum, (0..300).sum::<u64>(), "the method read the first 300, in order");
    println!("the sender ran at most {ahead_most} items ahead of a reader of 1,000 a second");
    // The method returned before the items ran out: the call is over, and
    // the connection serves on.
    let again = store.total("again".into(), Upload::iter([1u64, 2, 3])).await.unwrap();
    assert_eq!(again, "again: 6");
}

#[tokio::test]
async fn the_senders_failure_reaches_the_method_and_the_dynamic_form_works() {
    let (d, store, _) = store().await;
    let failing = rmi::Stream::try_new(futures::stream::iter([Ok(1u64), Ok(2), Err("the disk went away")]));
    let err = store.total("first".into(), Upload::from(failing)).await.unwrap_err();
    let Error::Remote(e) = &err else { panic!("expected the method's error: {err:?}") };
    assert!(e.message().starts_with("first: ") && e.message().contains("the disk went away"), "{e}");
    // Dynamic: the upload among the arguments.
    let proxy = proxy_builder(&d.daemon.uri_for("store")).build().unwrap();
    let total: String = proxy.call_upload("total", ("dynamic", Upload::iter(0..1000u64))).await.unwrap();
    assert_eq!(total, format!("dynamic: {}", (0..1000u64).sum::<u64>()));
    // An upload where none can go: a clear error, nothing sent.
    let err = proxy.call::<String>("total", ("plain", Upload::iter([1u64]))).await.unwrap_err();
    assert!(err.to_string().contains("travels only as an argument of a call"), "{err}");
    // And a method that expects one, called without: refused.
    let err = proxy.call::<String>("total", ("none", ())).await.unwrap_err();
    assert!(matches!(err, Error::BadArguments(_)), "{err}");
}

#[tokio::test]
async fn a_client_that_uploads_past_its_window_is_cut_off_and_others_are_served() {
    use rmi::__private::Encoded;
    use rmi_core::link;
    use rmi_core::message::Message;
    use rmi_core::net::Connection;

    let (d, store, _) = store().await;
    let uri = d.daemon.uri_for("store");
    let mut connection = Connection::connect(&uri.location).await.unwrap();
    let session = rmi_core::handshake::client_handshake(&mut connection, None).await.unwrap();
    let (mut reader, writer) = link::split(connection, session, 64 << 20);
    // A call that carries an upload, then up to 32 MiB of items with no
    // credit, 32 times the window. The method reads one number a
    // millisecond, so the window fills whatever the scheduling (a method
    // that kept up with the sender, as `total` may when the socket hands
    // the daemon little at a time, would grant credit as fast as it came).
    let args = Encoded::encode(&(1_000_000u64, ())).unwrap();
    let mut call = rmi_core::Call::new("store", "slowly", args);
    call.meta = Some(Box::new(rmi_core::context::CallMeta { upload: true, ..Default::default() }));
    writer.send(&Message::Call { id: 1, remaining: None, call }).unwrap();
    let items = Encoded::encode(&vec![7u64; 64 * 1024]).unwrap();
    for _ in 0..64 {
        if writer.send(&Message::Items { id: 1, items: items.clone() }).is_err() {
            break;
        }
    }
    // The daemon closes the connection.
    let closed = tokio::time::timeout(common::PATIENCE, async {
        loop {
            match reader.recv::<Message>().await {
                Some(Ok(_)) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the daemon kept the greedy connection");
    // Items for calls that have none are dropped; everyone else is served.
    let served = store.total("fine".into(), Upload::iter([4u64, 5])).await.unwrap();
    assert_eq!(served, "fine: 9");
}
