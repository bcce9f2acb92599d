//! A TLS connection that tells tonic who is on the other end, so the auth layer sees the verified
//! client identity of every request.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::api::caller::PeerInfo;

/// A server-side TLS stream plus what its handshake established.
#[derive(Debug)]
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    peer: PeerInfo,
}

impl TlsConn {
    /// Wraps a completed handshake, reading the client's (already verified) SVID, if any.
    pub fn new(stream: TlsStream<TcpStream>) -> Self {
        let (tcp, session) = stream.get_ref();
        let mut peer = PeerInfo { addr: tcp.peer_addr().ok(), ..PeerInfo::default() };
        if let Some(leaf) = session.peer_certificates().and_then(|c| c.first())
            && let Ok((_, cert)) = X509Certificate::from_der(leaf.as_ref())
        {
            peer.cert_serial = cert.serial.to_string();
            peer.cert_expires_at = cert.validity().not_after.timestamp();
            if let Ok(Some(san)) = cert.subject_alternative_name() {
                peer.id = san.value.general_names.iter().find_map(|n| match n {
                    GeneralName::URI(u) => spire_identity::SpiffeId::parse(u).ok(),
                    _ => None,
                });
            }
        }
        Self { stream, peer }
    }
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
