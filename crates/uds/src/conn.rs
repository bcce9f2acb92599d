//! A Unix-socket connection whose inbound bytes go through the [`AuthorityRewriter`] before `h2`
//! reads them. Writes go straight to the socket; so do the bodies of frames without a header block
//! (DATA), read directly into `h2`'s buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use crate::authority::AuthorityRewriter;

/// How much is read from the socket at a time when frames must be parsed.
const READ_CHUNK: usize = 8 * 1024;

/// A connection that accepts any `:authority`; see [`crate::authority`].
#[derive(Debug)]
pub struct AnyAuthority<S> {
    inner: S,
    rewriter: AuthorityRewriter,
    /// Read from the socket, not yet parsed (an incomplete frame).
    raw: BytesMut,
    /// Parsed, not yet handed to `h2`.
    ready: BytesMut,
}

impl<S> AnyAuthority<S> {
    /// Wraps a freshly accepted connection.
    pub fn new(inner: S) -> Self {
        Self { inner, rewriter: AuthorityRewriter::new(), raw: BytesMut::new(), ready: BytesMut::new() }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Connected> Connected for AnyAuthority<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AnyAuthority<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            // Frame bodies without header blocks skip the parser and its copy.
            let budget = this.rewriter.passthrough_budget();
            if budget > 0 && this.raw.is_empty() {
                let limit = budget.min(buf.remaining());
                let mut direct = ReadBuf::new(buf.initialize_unfilled_to(limit));
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut direct))?;
                let n = direct.filled().len();
                buf.advance(n);
                this.rewriter.passed_through(n);
                return Poll::Ready(Ok(()));
            }
            this.raw.reserve(READ_CHUNK);
            if ready!(tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.raw))? == 0 {
                // End of stream: an incomplete frame is dropped, as h2 would drop it.
                return Poll::Ready(Ok(()));
            }
            this.rewriter
                .process(&mut this.raw, &mut this.ready)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AnyAuthority<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
