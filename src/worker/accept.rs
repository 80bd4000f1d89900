//! Accepting connections from the listening sockets every worker of a vassal shares, spread over the workers
//! without delaying any of them.
//!
//! All workers wait on the same listening socket. Their registrations are **exclusive**
//! ([`super::exclusive`]): for each new connection the kernel wakes one worker that is idle in its event loop,
//! not all of them, so a connection costs one wakeup and one `accept`, whatever the number of workers. Workers
//! busy in Python are passed over and find the connection pending when they return, so the first worker free
//! takes it.
//!
//! Left alone, that is unfair to kept-alive traffic: a burst of connections (a load balancer's pool, wrk's 10
//! at start) lands on the first idle worker, which keeps them for their whole life while its siblings idle, and
//! p99 suffers. Each worker publishes its open connection count and whether it is idle in the scoreboard, and
//! a worker that holds more than its share **pauses**: it deletes its registration, so the kernel offers new
//! connections to its siblings, and adds it back once it no longer holds too many ([`should_pause`]). A paused
//! worker looks again every [`RECHECK`]; no connection ever waits for a pause, because a worker always accepts
//! the connection it was woken for, and a paused one takes a connection that stayed pending for two looks (a
//! sibling marked idle that does not accept: stopped by a debugger, starved of CPU).
//!
//! What this replaced, and why: first a 1 ms pause after *every* accept made while a sibling held fewer
//! connections, which paced each worker to ~600 accepts a second on new-connection traffic (5 ms of median
//! latency, a tenth of uWSGI's rate); then deferrals on a 100 µs timer, which removed the wait but still woke
//! every idle worker for every connection (three failed `accept4` calls and three extra `epoll_wait` returns per
//! request with four workers, measured with strace). uWSGI's `thunder-lock` serialises `accept` with a
//! process-shared mutex instead; an exclusive wakeup needs no lock and no extra syscall.
//!
//! Why not `SO_REUSEPORT` (one listening socket per worker, the kernel hashes connections over them): a
//! connection hashed to a worker busy in Python waits for it while others idle, unix sockets (nginx's
//! `uwsgi_pass unix:`) are not balanced at all, and connections queued on a worker's socket are reset when
//! that worker exits (reloads, `max-requests`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use socket2::Socket;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

use super::exclusive::{self, Exclusive};
use super::stream::Stream;
use crate::python::environ::ConnectionInfo;
use crate::scoreboard::{Scoreboard, WorkerStatus};

/// How often a paused worker looks whether it may take connections again.
pub const RECHECK: Duration = Duration::from_millis(2);

/// Whether a worker holding `mine` open connections should leave new connections to its siblings:
///
/// - to an **idle** sibling (waiting on its event loop, so it would be woken instead) holding at least two
///   fewer. One apart is balanced enough, and on new-connection traffic (`Connection: close`, health checks)
///   counts one apart are the normal state: pausing there would add two `epoll_ctl` calls per request;
/// - to a **busy** sibling (in a request; it looks at the listener again when the request ends) only when this
///   worker holds at least a third more than it, plus two: under overload every worker is busy, and a
///   kept-alive burst would otherwise stay where it landed, its clients waiting behind one worker's queue
///   while others have short ones. The margin keeps new-connection traffic, whose counts stay small and
///   change all the time, from moving to busy siblings at all.
///
/// Starting and stopping siblings don't count: they would not accept soon. The least loaded worker never
/// pauses, so some worker always takes connections.
pub fn should_pause(mine: u32, siblings: impl IntoIterator<Item = (WorkerStatus, u32)>) -> bool {
    mine > 0
        && siblings.into_iter().any(|(status, open)| match status {
            WorkerStatus::Idle => open + 2 <= mine,
            WorkerStatus::Busy => (open + 2) * 4 <= mine * 3,
            _ => false,
        })
}

/// The status and connection count of every worker but `me`, from the scoreboard.
fn siblings(board: &Scoreboard, me: usize) -> impl Iterator<Item = (WorkerStatus, u32)> + '_ {
    (0..board.len())
        .filter(move |&index| index != me)
        .filter_map(|index| board.slot(index))
        .map(|slot| (slot.status(), slot.connections.load(std::sync::atomic::Ordering::Relaxed)))
}

/// What a listening socket is, for the connection info handed to the protocol code.
enum Kind {
    Tcp { local: Option<std::net::SocketAddr> },
    Unix { path: String },
}

/// A listening socket registered with the worker's event loop.
pub struct Listener {
    socket: AsyncFd<Socket>,
    kind: Kind,
    /// The exclusive registration, if the swap worked (see [`super::exclusive`]); without it every idle worker
    /// is woken for each connection and this worker cannot pause.
    exclusive: Option<Exclusive>,
    /// Whether connections may be kept alive (HTTP): they are balanced and registered with the event loop at
    /// once; uwsgi-protocol connections are neither (see [`Listener::new`]).
    keep_alive: bool,
    /// Consecutive looks of a paused worker that found a connection pending.
    stuck: std::cell::Cell<u32>,
}

impl Listener {
    /// Takes over an inherited listening socket (`unix_path` set for unix sockets).
    ///
    /// `keep_alive`: whether connections on this socket may live long enough for their spread to matter. HTTP
    /// connections may be kept alive; a uwsgi-protocol connection carries one request and closes, so its
    /// socket is never balanced (a pause would only add two `epoll_ctl` calls to every request) and its
    /// connections start unregistered ([`Stream::unregistered`]): nginx has usually sent the whole request by the
    /// time it is accepted. HTTP connections are registered at once: hyper reads again after each request
    /// (to see a pipelined one or the client's close), which would register them anyway.
    pub fn new(fd: OwnedFd, unix_path: Option<String>, keep_alive: bool) -> io::Result<Self> {
        let socket = Socket::from(fd);
        socket.set_nonblocking(true)?;
        let kind = match unix_path {
            Some(path) => Kind::Unix { path },
            None => Kind::Tcp { local: socket.local_addr().ok().and_then(|addr| addr.as_socket()) },
        };
        // SAFETY: the `Socket` owns its descriptor, which stays open and the same until the `AsyncFd` that took
        // it is dropped (a `Socket` never replaces or closes its fd while alive).
        let socket =
            unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE).map_err(|err| err.into_parts().1)? };
        let exclusive = match Exclusive::swap(socket.as_raw_fd()) {
            Ok(exclusive) => Some(exclusive),
            Err(err) => {
                tracing::debug!("listener keeps a shared registration (every idle worker is woken): {err}");
                None
            }
        };
        Ok(Self { socket, kind, exclusive, keep_alive, stuck: std::cell::Cell::new(0) })
    }

    /// Waits until a connection is pending and this worker may take it, then accepts it.
    ///
    /// `slot_index` is this worker's scoreboard slot and `open` its open connection count.
    pub async fn accept(&self, slot_index: usize, open: impl Fn() -> u32) -> io::Result<(Stream, ConnectionInfo)> {
        loop {
            if let Some(exclusive) = self.exclusive.as_ref().filter(|exclusive| exclusive.is_paused()) {
                // Connections that reached this worker before it paused, or that nobody else takes, are
                // accepted here; everything else goes to siblings until the balance allows taking more.
                if let Some(connection) = self.take_pending_while_paused()? {
                    return Ok(connection);
                }
                tokio::time::sleep(RECHECK).await;
                if !self.too_many(slot_index, open()) {
                    exclusive.resume()?;
                }
                continue;
            }
            let mut ready = self.socket.readable().await?;
            match ready.try_io(|socket| socket.get_ref().accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)) {
                Ok(Ok((socket, peer))) => {
                    // The connection this worker was woken for is always taken; whether it takes the next
                    // ones depends on the count with this one included.
                    if self.too_many(slot_index, open() + 1) {
                        if let Some(exclusive) = &self.exclusive {
                            exclusive.pause()?;
                            self.stuck.set(1); // one look: whatever is pending now reached this worker
                        }
                    }
                    return self.connection(socket, &peer);
                }
                Ok(Err(err)) => return Err(err),
                // Someone else took it (the readiness is cleared: wait for the next connection).
                Err(_would_block) => {}
            }
        }
    }

    /// Stops offering this worker new connections (at its connection cap), until [`Listener::resume`].
    pub fn pause(&self) -> io::Result<()> {
        self.exclusive.as_ref().map_or(Ok(()), Exclusive::pause)
    }

    /// Offers this worker new connections again.
    pub fn resume(&self) -> io::Result<()> {
        self.exclusive.as_ref().map_or(Ok(()), Exclusive::resume)
    }

    /// Whether this worker, holding `mine` connections, should leave new ones to its siblings.
    fn too_many(&self, slot_index: usize, mine: u32) -> bool {
        self.keep_alive && Scoreboard::global().is_some_and(|board| should_pause(mine, siblings(board, slot_index)))
    }

    /// A paused worker's look at the queue: a connection pending at two looks in a row (or at the first look
    /// after pausing, when it may have been offered to this worker alone) is taken here.
    fn take_pending_while_paused(&self) -> io::Result<Option<(Stream, ConnectionInfo)>> {
        if !exclusive::pending(self.socket.as_raw_fd()) {
            self.stuck.set(0);
            return Ok(None);
        }
        let looks = self.stuck.get() + 1;
        if looks < 2 {
            self.stuck.set(looks);
            return Ok(None);
        }
        self.stuck.set(0);
        match self.socket.get_ref().accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) {
            Ok((socket, peer)) => self.connection(socket, &peer).map(Some),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The accepted socket as a stream: registered with the event loop now, or when it first has to wait.
    fn stream(&self, socket: Socket, unix: bool) -> io::Result<Stream> {
        if !self.keep_alive {
            return Ok(Stream::unregistered(socket, unix));
        }
        Ok(if unix {
            Stream::unix(UnixStream::from_std(socket.into())?)
        } else {
            Stream::tcp(TcpStream::from_std(socket.into())?)
        })
    }

    fn connection(&self, socket: Socket, peer: &socket2::SockAddr) -> io::Result<(Stream, ConnectionInfo)> {
        let id = super::next_connection_id();
        match &self.kind {
            Kind::Tcp { local } => {
                // Small writes (streamed chunks) must not wait for Nagle's delayed ACK dance.
                let _ = socket.set_tcp_nodelay(true);
                let peer = peer.as_socket();
                let info = ConnectionInfo {
                    id,
                    remote_addr: peer.map(|p| p.ip().to_canonical().to_string()).unwrap_or_default(),
                    remote_port: peer.map(|p| p.port().to_string()).unwrap_or_default(),
                    server_name: local.map(|l| l.ip().to_string()).unwrap_or_default(),
                    server_port: local.map(|l| l.port().to_string()).unwrap_or_default(),
                };
                Ok((self.stream(socket, false)?, info))
            }
            Kind::Unix { path } => Ok((
                Stream::unregistered(socket, true),
                ConnectionInfo { id, server_name: path.clone(), ..ConnectionInfo::default() },
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkerStatus::{Busy, Idle, Starting, Stopping};

    #[test]
    fn a_worker_without_connections_never_defers() {
        assert!(!should_pause(0, [(Idle, 0), (Idle, 0)]));
    }

    #[test]
    fn defers_to_an_idle_sibling_with_two_fewer_connections() {
        assert!(should_pause(2, [(Idle, 0)]));
        assert!(should_pause(4, [(Busy, 3), (Idle, 2)]));
    }

    #[test]
    fn one_apart_and_ties_accept_so_new_connections_never_wait() {
        assert!(!should_pause(1, [(Idle, 0)]));
        assert!(!should_pause(3, [(Idle, 2), (Idle, 3)]));
        assert!(!should_pause(2, [(Idle, 2), (Idle, 3)]));
    }

    #[test]
    fn starting_and_stopping_siblings_would_not_accept_soon() {
        assert!(!should_pause(50, [(Starting, 0), (Stopping, 0), (WorkerStatus::Free, 0)]));
    }

    #[test]
    fn busy_siblings_take_over_only_a_gross_imbalance() {
        // New-connection traffic: a few connections each, never worth waiting for a busy sibling.
        assert!(!should_pause(2, [(Busy, 1)]));
        assert!(!should_pause(3, [(Busy, 1)]));
        // A kept-alive burst that landed on one worker while the others were busy.
        assert!(should_pause(3, [(Busy, 0)]));
        assert!(should_pause(20, [(Busy, 12)]));
        assert!(!should_pause(64, [(Busy, 60)]));
    }

    #[test]
    fn a_lone_worker_accepts() {
        assert!(!should_pause(100, []));
    }

    /// A worker paused at its connection cap, or for balance, still gets a connection once it resumes, and a
    /// paused one takes a connection that stays pending (no scoreboard here: nothing says it holds too many).
    #[test]
    fn a_paused_listener_takes_what_nobody_else_takes() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = std_listener.local_addr().expect("addr").port();
            let listener = Listener::new(OwnedFd::from(std_listener), None, true).expect("listener");
            assert!(listener.exclusive.is_some(), "the exclusive registration is in place");
            listener.pause().expect("pause");
            let _client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept(0, || 0)).await;
            assert!(matches!(accepted, Ok(Ok(_))), "the pending connection was not taken");
        });
    }

    #[test]
    fn accepts_tcp_connections_with_their_addresses() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = std_listener.local_addr().expect("addr").port();
            let listener = Listener::new(OwnedFd::from(std_listener), None, true).expect("listener");
            let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let (_stream, info) = listener.accept(0, || 0).await.expect("accept");
            assert_eq!(info.remote_addr, "127.0.0.1");
            assert_eq!(info.remote_port, client.local_addr().expect("local").port().to_string());
            assert_eq!(info.server_port, port.to_string());
        });
    }
}
