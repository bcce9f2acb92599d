//! A real tonic server behind `spire_uds::incoming`, called by a raw HTTP/2 client that sends the
//! `:authority` values real gRPC clients send on Unix sockets, with grpc-core's HPACK habits (every
//! field indexed in the dynamic table, so later requests refer back to earlier ones).
//!
//! The control case serves the same socket without the wrapper and sees h2 reset the stream with
//! PROTOCOL_ERROR: the failure users saw with grpcio.

use std::time::Duration;

use spire_proto::grpc::health::v1::health_server::{Health, HealthServer};
use spire_proto::grpc::health::v1::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tonic::{Request, Response, Status};

struct Serving;

#[tonic::async_trait]
impl Health for Serving {
    async fn check(&self, _: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse { status: 1 }))
    }
    async fn list(&self, _: Request<HealthListRequest>) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("list"))
    }
    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;
    async fn watch(&self, _: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// What the server answered to one request.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Trailers with this grpc-status.
    GrpcStatus(String),
    /// RST_STREAM with this HTTP/2 error code.
    Reset(u32),
}

/// A minimal HTTP/2 client speaking like grpc-core: connection preface, SETTINGS, then unary calls
/// to grpc.health.v1.Health/Check, one stream each, HPACK with incremental indexing.
struct RawClient {
    stream: UnixStream,
    encoder: httlib_hpack::Encoder<'static>,
    decoder: httlib_hpack::Decoder<'static>,
    next_stream: u32,
}

impl RawClient {
    async fn connect(path: &std::path::Path) -> Self {
        let mut stream = UnixStream::connect(path).await.expect("connect");
        stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        stream.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
        Self {
            stream,
            encoder: httlib_hpack::Encoder::default(),
            decoder: httlib_hpack::Decoder::default(),
            next_stream: 1,
        }
    }

    async fn check(&mut self, authority: Option<&str>) -> Outcome {
        let id = self.next_stream;
        self.next_stream += 2;
        let mut fields: Vec<(&[u8], &[u8])> =
            vec![(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/grpc.health.v1.Health/Check")];
        if let Some(a) = authority {
            fields.push((b":authority", a.as_bytes()));
        }
        fields.extend([
            (&b"te"[..], &b"trailers"[..]),
            (b"content-type", b"application/grpc"),
            (b"user-agent", b"grpc-python/1.68.1 grpc-c/44.1.0 (linux; chttp2)"),
        ]);
        // Indexed and Huffman-coded, as grpc-core encodes.
        let mut block = Vec::new();
        for (n, v) in fields {
            let flags = httlib_hpack::Encoder::HUFFMAN_VALUE
                | httlib_hpack::Encoder::WITH_INDEXING
                | httlib_hpack::Encoder::BEST_FORMAT;
            self.encoder.encode((n.to_vec(), v.to_vec(), flags), &mut block).unwrap();
        }
        self.stream.write_all(&frame(0x1, 0x4, id, &block)).await.unwrap();
        // An empty HealthCheckRequest: uncompressed, zero length.
        self.stream.write_all(&frame(0x0, 0x1, id, &[0, 0, 0, 0, 0])).await.unwrap();
        self.read_outcome(id).await
    }

    async fn read_outcome(&mut self, id: u32) -> Outcome {
        loop {
            let mut header = [0u8; 9];
            tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut header))
                .await
                .expect("a frame within 10 s")
                .expect("read a frame header");
            let len = (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
            let mut payload = vec![0u8; len];
            self.stream.read_exact(&mut payload).await.expect("read a frame payload");
            let stream_id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            match header[3] {
                // HEADERS: keep the decoder in step; trailers carry grpc-status.
                0x1 => {
                    let mut fields = Vec::new();
                    self.decoder.decode(&mut payload.clone(), &mut fields).expect("decode the server's headers");
                    if stream_id == id
                        && let Some((_, v, _)) = fields.iter().find(|(n, _, _)| n == b"grpc-status")
                    {
                        return Outcome::GrpcStatus(String::from_utf8(v.clone()).unwrap());
                    }
                }
                0x3 if stream_id == id => {
                    return Outcome::Reset(u32::from_be_bytes(payload[..4].try_into().unwrap()));
                }
                // SETTINGS (not an ACK): acknowledge.
                0x4 if header[4] & 0x1 == 0 => self.stream.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap(),
                0x7 => panic!("GOAWAY: {payload:?}"),
                _ => {}
            }
        }
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

async fn serve(wrapped: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let listener = spire_uds::bind(&path, spire_uds::PUBLIC_MODE).expect("bind");
    let router = tonic::transport::Server::builder().add_service(HealthServer::new(Serving));
    if wrapped {
        tokio::spawn(router.serve_with_incoming(spire_uds::incoming(listener, Some)));
    } else {
        tokio::spawn(router.serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)));
    }
    (dir, path)
}

const GRPC_CORE: &str = "tmp%2Fspire-agent%2Fpublic%2Fapi.sock";
const GRPC_JAVA: &str = "/tmp/spire-agent/public/api.sock";

#[tokio::test]
async fn without_the_wrapper_h2_resets_grpc_core_and_grpc_java_requests() {
    let (_dir, path) = serve(false).await;
    let mut client = RawClient::connect(&path).await;
    assert_eq!(client.check(Some(GRPC_CORE)).await, Outcome::Reset(1), "PROTOCOL_ERROR");
    assert_eq!(client.check(Some(GRPC_JAVA)).await, Outcome::Reset(1), "PROTOCOL_ERROR");
    assert_eq!(client.check(Some("localhost")).await, Outcome::GrpcStatus("0".into()));
}

#[tokio::test]
async fn every_authority_a_client_sends_is_served() {
    let (_dir, path) = serve(true).await;
    for authority in [Some(GRPC_CORE), Some(GRPC_JAVA), Some("localhost"), None, Some("")] {
        let mut client = RawClient::connect(&path).await;
        // Three calls on one connection: the later ones use the dynamic table of the first.
        for _ in 0..3 {
            assert_eq!(client.check(authority).await, Outcome::GrpcStatus("0".into()), "{authority:?}");
        }
    }
}

#[tokio::test]
async fn a_connection_switching_authorities_midway_is_served() {
    let (_dir, path) = serve(true).await;
    let mut client = RawClient::connect(&path).await;
    for authority in ["localhost", GRPC_CORE, "localhost", GRPC_JAVA, "example.org"] {
        assert_eq!(client.check(Some(authority)).await, Outcome::GrpcStatus("0".into()), "{authority}");
    }
}
