//! A read buffer beneath a TLS session. rustls reads at most 4 KiB of records per call, each
//! a system call on a bare socket; [`ReadAhead`] reads up to 64 KiB at once and serves those
//! small reads from memory. Its buffer is held only while it has bytes to give or the
//! connection is busy: when the socket has nothing more, an empty buffer is released, so an idle
//! connection costs nothing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes read from the socket at once.
const CHUNK: usize = 64 * 1024;

/// A stream whose small reads are served from one large read (see the module docs); writes
/// pass straight through.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    /// `buf[start..end]` has been read from `inner` and not yet given out.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<S> ReadAhead<S> {
    /// Reads ahead on `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// The stream beneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start == this.end {
            if dst.remaining() >= CHUNK {
                // As large as ours: straight into the caller's buffer.
                return Pin::new(&mut this.inner).poll_read(cx, dst);
            }
            if this.buf.is_empty() {
                this.buf = vec![0; CHUNK];
            }
            let mut into = ReadBuf::new(&mut this.buf);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut into);
            let read = into.filled().len();
            if polled.is_pending() || read == 0 {
                // Nothing more for now (or the end): no buffer kept while waiting.
                this.buf = Vec::new();
            }
            ready!(polled)?;
            (this.start, this.end) = (0, read);
        }
        let n = dst.remaining().min(this.end - this.start);
        dst.put_slice(&this.buf[this.start..this.start + n]);
        this.start += n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
