//! An accepted connection, TCP or unix, behind one type so the protocol code is written once.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use liege_protocol::http_framing::{FramingWatch, HeadFacts};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// An accepted connection.
///
/// A new connection starts [`Stream::Unregistered`]: most connections that carry one request (nginx
/// `uwsgi_pass`, `Connection: close`, health checks) have their request in the socket buffer by the time they
/// are accepted, and their response fits the send buffer, so they are read, answered and closed without ever
/// waiting. Registering them with the event loop would cost an `epoll_ctl` to add and another to delete for
/// nothing. The stream registers itself (becoming `Tcp` or `Unix`) the first time a read or write would block,
/// which is where a kept-alive connection goes after its first request.
pub enum Stream {
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

impl Stream {
    /// A freshly accepted, non-blocking socket, registered with the event loop only when it first has to wait.
    pub fn unregistered(socket: socket2::Socket, unix: bool) -> Self {
        Self::Unregistered(Unregistered { socket: Some(socket), unix })
    }

    /// Registers the connection with the event loop, if it is not yet.
    fn register(&mut self) -> io::Result<()> {
        let Self::Unregistered(lazy) = self else { return Ok(()) };
        let Some(socket) = lazy.socket.take() else {
            return Err(io::Error::other("the connection was lost while registering it"));
        };
        *self = if lazy.unix {
            Self::Unix(UnixStream::from_std(std::os::unix::net::UnixStream::from(socket))?)
        } else {
            Self::Tcp(TcpStream::from_std(std::net::TcpStream::from(socket))?)
        };
        Ok(())
    }

    /// The socket of an unregistered connection.
    fn raw(&self) -> Option<&socket2::Socket> {
        match self {
            Self::Unregistered(lazy) => lazy.socket.as_ref(),
            _ => None,
        }
    }

    pub async fn writable(&mut self) -> io::Result<()> {
        self.register()?;
        match self {
            Self::Tcp(s) => s.writable().await,
            Self::Unix(s) => s.writable().await,
            Self::Unregistered(_) => Ok(()),
        }
    }

    /// Runs a non-blocking write-side syscall, clearing readiness on `WouldBlock` (tokio's `try_io`).
    pub fn try_write_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            Self::Tcp(s) => s.try_io(tokio::io::Interest::WRITABLE, f),
            Self::Unix(s) => s.try_io(tokio::io::Interest::WRITABLE, f),
            // No readiness to clear: a `WouldBlock` leads the caller to `writable`, which registers.
            Self::Unregistered(_) => f(),
        }
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
        match self {
            Self::Tcp(s) => s.as_raw_fd(),
            Self::Unix(s) => s.as_raw_fd(),
            Self::Unregistered(lazy) => lazy.socket.as_ref().map_or(-1, AsRawFd::as_raw_fd),
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
        match this {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unregistered(_) => Poll::Ready(Err(io::Error::other("the connection could not be registered"))),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(done) = this.attempt(|socket| socket.send_with_flags(buf, libc::MSG_NOSIGNAL)) {
            return done;
        }
        match this {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unregistered(_) => Poll::Ready(Err(io::Error::other("the connection could not be registered"))),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(done) = this.attempt(|socket| socket.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)) {
            return done;
        }
        match this {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Unregistered(_) => Poll::Ready(Err(io::Error::other("the connection could not be registered"))),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
            Self::Unregistered(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
            // What tokio's shutdown does: the write side only, so the peer sees the end of the response.
            Self::Unregistered(lazy) => {
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
