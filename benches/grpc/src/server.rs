//! The gRPC server: the `Bench` service of `proto/bench.proto`, served by
//! tonic with its default settings, but for the message size limits.

use std::pin::Pin;

use bytes::Bytes;
use tokio_stream::Stream;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::measure::CHUNK;
use crate::pb::bench_server::{Bench, BenchServer};
use crate::pb::{Blob, Count, Length, Number};

/// The largest message either side sends or takes: room for the 10 MiB
/// payload (tonic takes at most 4 MiB by default).
pub(crate) const MAX_MESSAGE: usize = 2 * crate::measure::PAYLOAD;

/// A stream of replies, as the generated trait wants it.
type ReplyStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The work: echo a number, count a payload, stream numbers or chunks.
#[derive(Debug)]
struct Service {
    /// The 64 KiB chunk every chunk stream hands out.
    chunk: Bytes,
}

#[tonic::async_trait]
impl Bench for Service {
    async fn echo(&self, request: Request<Number>) -> Result<Response<Number>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    async fn blob_len(&self, request: Request<Blob>) -> Result<Response<Length>, Status> {
        Ok(Response::new(Length { len: request.into_inner().data.len() as u64 }))
    }

    type NumbersStream = ReplyStream<Number>;

    async fn numbers(&self, request: Request<Count>) -> Result<Response<Self::NumbersStream>, Status> {
        let n = request.into_inner().n;
        let numbers = tokio_stream::iter((0..n).map(|value| Ok(Number { value })));
        Ok(Response::new(Box::pin(numbers)))
    }

    type ChunksStream = ReplyStream<Blob>;

    async fn chunks(&self, request: Request<Count>) -> Result<Response<Self::ChunksStream>, Status> {
        let n = request.into_inner().n;
        let chunk = self.chunk.clone();
        let chunks = tokio_stream::iter((0..n).map(move |_| Ok(Blob { data: chunk.clone() })));
        Ok(Response::new(Box::pin(chunks)))
    }
}

/// Serves `Bench` on `addr` (port 0: any free one) until killed; reports the
/// address it listens on through `ready`.
pub(crate) async fn serve(addr: &str, ready: impl FnOnce(std::net::SocketAddr)) -> anyhow::Result<()> {
    let incoming = TcpIncoming::bind(addr.parse()?)?.with_nodelay(Some(true));
    ready(incoming.local_addr()?);
    let service = BenchServer::new(Service { chunk: Bytes::from(vec![3u8; CHUNK]) })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    Server::builder().add_service(service).serve_with_incoming(incoming).await?;
    Ok(())
}
