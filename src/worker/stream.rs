//! An accepted connection, TCP or unix, behind one type so the protocol code is written once.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use liege_protocol::http_framing::{FramingWatch, HeadFacts};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// An accepted connection, with the watch on its writes (see [`WriteWatch`]).
///
/// A new connection starts unregistered: most connections that carry one request (nginx `uwsgi_pass`,
/// `Connection: close`, health checks) have their request in the socket buffer by the time they are accepted,
/// and their response fits the send buffer, so they are read, answered and closed without ever waiting.
/// Registering them with the event loop would cost an `epoll_ctl` to add and another to delete for nothing.
/// The stream registers itself (becoming `Tcp` or `Unix`) the first time a read or write would block, which is
/// where a kept-alive connection goes after its first request.
pub struct Stream {
    io: Io,
    writes: WriteWatch,
}

enum Io {
    Tcp(TcpStream),
    Unix(UnixStream),
    Unregistered(Unregistered),
}

/// A connection not yet registered with the event loop (see [`Stream`]).
pub struct Unregistered {
    /// `None` only while [`Stream::register`] moves it into its registered form.
    socket: Option<socket2::Socket>,
    unix: bool,
}

/// What happens to writes that fail or wait: uWSGI's write timeout and write-error count.
///
/// A write that cannot go on (the client's receive window and the kernel's send buffer are full) waits, and
/// when it has made no progress for `timeout` it fails with `TimedOut`, which drops the connection: uWSGI's
/// `uwsgi_wait_write_req` waiting `socket-timeout` seconds, and what `so-send-timeout` (SO_SNDTIMEO) asks of
/// a blocking send. The first failed write of a connection is counted in the worker's `write_errors` (the
/// stats' per-core `write_errors`, as uWSGI counts a request's write errors).
#[derive(Default)]
struct WriteWatch {
    timeout: Option<Duration>,
    /// Armed when a write first has to wait; dropped on progress.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    errors: Option<&'static AtomicU64>,
    failed: Cell<bool>,
}

impl WriteWatch {
    /// Counts a failed write (once per connection).
    fn failed(&self) {
        if !self.failed.replace(true) {
            if let Some(errors) = self.errors {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// After a write attempt: progress disarms the stall timer, waiting arms it (and fails the write once it
    /// has run out), an error is counted.
    fn after<T>(&mut self, result: Poll<io::Result<T>>, cx: &mut Context<'_>, io: &Io) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(Ok(done)) => {
                self.stall = None;
                Poll::Ready(Ok(done))
            }
            Poll::Ready(Err(err)) => {
                if err.kind() != io::ErrorKind::WouldBlock {
                    self.failed();
                }
                Poll::Ready(Err(err))
            }
            Poll::Pending => {
                let Some(timeout) = self.timeout else { return Poll::Pending };
                let stall = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.stall = None;
                Poll::Ready(Err(self.timed_out(timeout, io)))
            }
        }
    }

    /// The error (logged, counted) of a write that made no progress for `timeout`.
    fn timed_out(&self, timeout: Duration, io: &Io) -> io::Error {
        self.failed();
        tracing::warn!(
            "response write to {} made no progress for {} s (socket-timeout / so-send-timeout): dropping the connection",
            io.peer(),
            timeout.as_secs()
        );
        io::Error::new(io::ErrorKind::TimedOut, "write timed out")
    }
}

impl Io {
    /// The client's address for the log (read only when something goes wrong).
    fn peer(&self) -> String {
        let tcp = match self {
            Io::Tcp(s) => s.peer_addr().ok(),
            Io::Unregistered(lazy) if !lazy.unix => {
                lazy.socket.as_ref().and_then(|s| s.peer_addr().ok()).and_then(|addr| addr.as_socket())
            }
            _ => None,
        };
        tcp.map_or_else(|| "a unix-socket client".to_owned(), |addr| addr.to_string())
    }
}

impl Stream {
    /// A freshly accepted, non-blocking socket, registered with the event loop only when it first has to wait.
    pub fn unregistered(socket: socket2::Socket, unix: bool) -> Self {
        Self::of(Io::Unregistered(Unregistered { socket: Some(socket), unix }))
    }

    pub fn tcp(stream: TcpStream) -> Self {
        Self::of(Io::Tcp(stream))
    }

    pub fn unix(stream: UnixStream) -> Self {
        Self::of(Io::Unix(stream))
    }

    fn of(io: Io) -> Self {
        Self { io, writes: WriteWatch::default() }
    }

    /// Writes that make no progress for `timeout` fail (and drop the connection); failed writes are counted in
    /// `errors`.
    pub fn watch_writes(&mut self, timeout: Option<Duration>, errors: &'static AtomicU64) {
        self.writes.timeout = timeout;
        self.writes.errors = Some(errors);
    }

    /// Registers the connection with the event loop, if it is not yet.
    fn register(&mut self) -> io::Result<()> {
        let Io::Unregistered(lazy) = &mut self.io else { return Ok(()) };
        let Some(socket) = lazy.socket.take() else {
            return Err(io::Error::other("the connection was lost while registering it"));
        };
        self.io = if lazy.unix {
            Io::Unix(UnixStream::from_std(std::os::unix::net::UnixStream::from(socket))?)
        } else {
            Io::Tcp(TcpStream::from_std(std::net::TcpStream::from(socket))?)
        };
        Ok(())
    }

    /// The socket of an unregistered connection.
    fn raw(&self) -> Option<&socket2::Socket> {
        match &self.io {
            Io::Unregistered(lazy) => lazy.socket.as_ref(),
            _ => None,
        }
    }

    /// Waits until the socket takes more bytes; fails like a write after the write timeout.
    pub async fn writable(&mut self) -> io::Result<()> {
        self.register()?;
        let ready = async {
            match &self.io {
                Io::Tcp(s) => s.writable().await,
                Io::Unix(s) => s.writable().await,
                Io::Unregistered(_) => Ok(()),
            }
        };
        let result = match self.writes.timeout {
            Some(timeout) => match tokio::time::timeout(timeout, ready).await {
                Ok(result) => result,
                Err(_) => Err(self.writes.timed_out(timeout, &self.io)),
            },
            None => ready.await,
        };
        if let Err(err) = &result {
            if err.kind() != io::ErrorKind::TimedOut {
                self.writes.failed();
            }
        }
        result
    }

    /// Runs a non-blocking write-side syscall, clearing readiness on `WouldBlock` (tokio's `try_io`).
    pub fn try_write_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        let result = match &self.io {
            Io::Tcp(s) => s.try_io(tokio::io::Interest::WRITABLE, f),
            Io::Unix(s) => s.try_io(tokio::io::Interest::WRITABLE, f),
            // No readiness to clear: a `WouldBlock` leads the caller to `writable`, which registers.
            Io::Unregistered(_) => f(),
        };
        if let Err(err) = &result {
            if err.kind() != io::ErrorKind::WouldBlock {
                self.writes.failed();
            }
        }
        result
    }

    /// Runs one attempt on the unregistered socket; on `WouldBlock` registers, so the caller polls the
    /// registered stream (whose first poll finds the readiness epoll reports for a newly added socket).
    fn attempt<R>(&mut self, mut f: impl FnMut(&socket2::Socket) -> io::Result<R>) -> Option<Poll<io::Result<R>>> {
        loop {
            let socket = self.raw()?;
            return match f(socket) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => match self.register() {
                    Ok(()) => None,
                    Err(err) => Some(Poll::Ready(Err(err))),
                },
                done => Some(Poll::Ready(done)),
            };
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match &self.io {
            Io::Tcp(s) => s.as_raw_fd(),
            Io::Unix(s) => s.as_raw_fd(),
            Io::Unregistered(lazy) => lazy.socket.as_ref().map_or(-1, AsRawFd::as_raw_fd),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let attempt = this.attempt(|socket| {
            // SAFETY: recv writes at most `unfilled.len()` bytes into the uninitialised tail and reports how
            // many; exactly those are then marked initialised and filled.
            let unfilled = unsafe { buf.unfilled_mut() };
            socket.recv(unfilled)
        });
        if let Some(done) = attempt {
            return done.map_ok(|read| {
                // SAFETY: `recv` initialised the first `read` bytes of the unfilled part (see above).
                unsafe { buf.assume_init(read) };
                buf.advance(read);
            });
        }
        match &mut this.io {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Io::Unregistered(_) => Poll::Ready(Err(io::Error::other("the connection could not be registered"))),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = match this.attempt(|socket| socket.send_with_flags(buf, libc::MSG_NOSIGNAL)) {
            Some(done) => done,
            None => match &mut this.io {
                Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
                Io::Unix(s) => Pin::new(s).poll_write(cx, buf),
                Io::Unregistered(_) => Poll::Ready(Err(io::Error::other("the connection could not be registered"))),
            },
        };
        this.writes.after(result, cx, &this.io)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = match this.attempt(|socket| socket.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)) {
            Some(done) => done,
            None => match &mut this.io {
                Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                Io::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                Io::Unregistered(_) => Poll::Ready(Err(io::Error::other("the connection could not be registered"))),
            },
        };
        this.writes.after(result, cx, &this.io)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Unix(s) => Pin::new(s).poll_flush(cx),
            Io::Unregistered(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Unix(s) => Pin::new(s).poll_shutdown(cx),
            // What tokio's shutdown does: the write side only, so the peer sees the end of the response.
            Io::Unregistered(lazy) => {
                Poll::Ready(lazy.socket.as_ref().map_or(Ok(()), |socket| socket.shutdown(std::net::Shutdown::Write)))
            }
        }
    }
}

/// An HTTP connection's stream whose incoming bytes are shown to a [`FramingWatch`] before hyper parses them,
/// so liege learns which framing headers each request head really carried (see `liege_protocol::http_framing`).
pub struct WatchedStream {
    stream: Stream,
    watch: FramingWatch,
    heads: Rc<HeadQueue>,
}

/// The facts of the heads read so far and not yet claimed by their request, oldest first.
#[derive(Default)]
pub struct HeadQueue(RefCell<VecDeque<HeadFacts>>);

impl HeadQueue {
    /// The facts of the next request hyper hands over (`None` once the watch stopped following the stream).
    pub fn next_request(&self) -> Option<HeadFacts> {
        self.0.borrow_mut().pop_front()
    }
}

impl WatchedStream {
    pub fn new(stream: Stream) -> (Self, Rc<HeadQueue>) {
        let heads = Rc::new(HeadQueue::default());
        (Self { stream, watch: FramingWatch::new(), heads: Rc::clone(&heads) }, heads)
    }
}

impl AsyncRead for WatchedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && this.watch.is_following() {
            let heads = &this.heads;
            this.watch.feed(&buf.filled()[before..], &mut |facts| heads.0.borrow_mut().push_back(facts));
        }
        result
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
