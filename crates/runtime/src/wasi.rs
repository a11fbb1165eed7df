//! The WASI a module sees: WASI 0.2 interfaces exist, so components built for wasm32-wasip1 and
//! turned into components with the preview1 adapter (Rust std, C with wasi-libc) link, but the
//! context grants nothing: no arguments, no environment, no preopened directories, stdin closed,
//! no sockets and no name lookups. Clocks and randomness behave as on the host (the same the
//! teemesh `now-nanos` and `random-bytes` imports give). Standard output and error go to the
//! node's log, line by line, tagged with the module's name.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

/// Longest console line logged; the rest of a longer line is dropped.
const MAX_LINE: usize = 4096;

/// A WASI context that grants nothing but a clock, randomness and a console into the log.
pub(crate) fn deny_all_context(module: &Arc<str>) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(GuestConsole::new(module.clone(), ConsoleStream::Stdout))
        .stderr(GuestConsole::new(module.clone(), ConsoleStream::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// Per-instance WASI state.
pub(crate) struct WasiState {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
}

#[derive(Debug, Clone, Copy)]
enum ConsoleStream {
    Stdout,
    Stderr,
}

/// A guest's stdout or stderr: complete lines go to `tracing`, control characters replaced.
#[derive(Clone)]
struct GuestConsole {
    module: Arc<str>,
    stream: ConsoleStream,
    line: Arc<Mutex<Vec<u8>>>,
}

impl GuestConsole {
    fn new(module: Arc<str>, stream: ConsoleStream) -> Self {
        Self {
            module,
            stream,
            line: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        for complete in split_lines(&mut line, bytes) {
            self.emit(&complete);
        }
    }

    fn emit(&self, line: &[u8]) {
        let text: String = String::from_utf8_lossy(line)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let module = &*self.module;
        match self.stream {
            ConsoleStream::Stdout => tracing::info!(module, stream = "stdout", "{text}"),
            ConsoleStream::Stderr => tracing::warn!(module, stream = "stderr", "{text}"),
        }
    }
}

/// Appends `bytes` to the pending `line` and returns the lines they complete; a line longer than
/// [`MAX_LINE`] keeps its first [`MAX_LINE`] bytes.
fn split_lines(line: &mut Vec<u8>, bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut complete = Vec::new();
    for &b in bytes {
        if b == b'\n' {
            complete.push(std::mem::take(line));
        } else if line.len() < MAX_LINE {
            line.push(b);
        }
    }
    complete
}

impl Drop for GuestConsole {
    fn drop(&mut self) {
        // The last clone flushes a final line without a newline.
        if Arc::strong_count(&self.line) == 1 {
            let line = std::mem::take(&mut *self.line.lock().unwrap_or_else(|e| e.into_inner()));
            if !line.is_empty() {
                self.emit(&line);
            }
        }
    }
}

impl IsTerminal for GuestConsole {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestConsole {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestConsole {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestConsole {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestConsole {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_output_is_split_into_bounded_lines() {
        let mut line = Vec::new();
        assert!(split_lines(&mut line, b"partial").is_empty());
        assert_eq!(
            split_lines(&mut line, b" line\nnext\n\ntail"),
            [b"partial line".to_vec(), b"next".to_vec(), Vec::new()]
        );
        assert_eq!(line, b"tail");
        let mut long = Vec::new();
        let lines = split_lines(&mut long, &[b'x'; MAX_LINE + 100]);
        assert!(lines.is_empty());
        assert_eq!(long.len(), MAX_LINE);
    }
}
