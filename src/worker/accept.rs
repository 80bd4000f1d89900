//! Accepting connections from the listening sockets every worker of a vassal shares, spread over the workers
//! without delaying any of them.
//!
//! All workers wait on the same listening socket, and the kernel wakes every idle one when a connection
//! arrives; whoever calls `accept` first wins. Left alone, that is unfair to kept-alive traffic: a burst of
//! connections (a load balancer's pool, wrk's 10 at start) lands on the first worker to wake, which keeps them
//! for their whole life while its siblings idle, and p99 suffers. Each worker publishes its open connection
//! count and whether it is idle in the scoreboard, so the choice can be made from shared memory:
//!
//! - a worker **defers** a pending connection when another worker is idle *and* holds two connections fewer,
//!   or is busy and holds far fewer (see [`should_defer`]). An idle one was woken by the same connection and takes
//!   it within microseconds; the deferring one waits [`DEFER`] on a precise timer, then looks again;
//! - after [`MAX_DEFERRALS`] looks it accepts anyway, so a connection never waits for a sibling that is
//!   marked idle but does not accept (stopped by a debugger, starved of CPU): at most about 0.3 ms.
//!
//! What this replaced, and why: a 1 ms pause after *every* accept made while a sibling held fewer connections
//! balanced keep-alive bursts, but it paced every worker to ~600 accepts a second on new-connection traffic
//! (nginx `uwsgi_pass`, `Connection: close`, health checks), where counts differ all the time: 5 ms of median
//! latency and a tenth of uWSGI's rate. A deferral only happens when an idle, less-loaded sibling exists, so the
//! connection is taken at once by that sibling; nobody sleeps while a connection waits for nothing.
//!
//! Why not `SO_REUSEPORT` (one listening socket per worker, the kernel hashes connections over them): a
//! connection hashed to a worker busy in Python waits for it while others idle, unix sockets (nginx's
//! `uwsgi_pass unix:`) are not balanced at all, and connections queued on a worker's socket are reset when
//! that worker exits (reloads, `max-requests`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use socket2::Socket;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

use super::stream::Stream;
use crate::python::environ::ConnectionInfo;
use crate::scoreboard::{Scoreboard, WorkerStatus};

/// How long a worker leaves a pending connection to an idle, less-loaded sibling before looking again.
pub const DEFER: Duration = Duration::from_micros(100);

/// Looks after which a deferring worker accepts anyway.
pub const MAX_DEFERRALS: u32 = 3;

/// Whether a worker holding `mine` open connections should leave a pending connection to a sibling:
///
/// - to an **idle** sibling (waiting on its event loop, so woken by the same connection) holding at least two
///   fewer. One apart is balanced enough, and on new-connection traffic (`Connection: close`, health checks)
///   counts one apart are the normal state: deferring there would add a timer and a wakeup per request;
/// - to a **busy** sibling (in a request; it polls the listener again when the request ends) only when this
///   worker holds at least a third more than it, plus two: under overload every worker is busy, and a
///   kept-alive burst would otherwise stay where it landed, its clients waiting behind one worker's queue
///   while others have short ones. The margin keeps new-connection traffic, whose counts stay small and
///   change all the time, from waiting on busy siblings at all.
///
/// Starting and stopping siblings don't count: they would not accept soon.
pub fn should_defer(mine: u32, siblings: impl IntoIterator<Item = (WorkerStatus, u32)>) -> bool {
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
    /// The precise timer behind [`DEFER`] (tokio's timers tick in milliseconds).
    timer: AsyncFd<Timer>,
    /// Whether to balance connections at all (see [`Listener::new`]).
    balance: bool,
}

/// A timerfd that tokio can register (nix's `TimerFd` implements `AsFd` only).
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Listener {
    /// Takes over an inherited listening socket (`unix_path` set for unix sockets).
    ///
    /// `balance`: whether connections on this socket may live long enough for their spread to matter. HTTP
    /// connections may be kept alive; a uwsgi-protocol connection carries one request and closes, so its
    /// socket is never balanced: a deferral would only add a timer and a wakeup to every request.
    pub fn new(fd: OwnedFd, unix_path: Option<String>, balance: bool) -> io::Result<Self> {
        let socket = Socket::from(fd);
        socket.set_nonblocking(true)?;
        let kind = match unix_path {
            Some(path) => Kind::Unix { path },
            None => Kind::Tcp { local: socket.local_addr().ok().and_then(|addr| addr.as_socket()) },
        };
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)
            .map_err(io::Error::from)?;
        // SAFETY: both objects own their descriptor, which stays open and the same until the `AsyncFd` that took
        // them is dropped (`Socket` and `Timer` never replace or close their fd while alive).
        let (socket, timer) = unsafe {
            (
                AsyncFd::register_with_interest(socket, Interest::READABLE).map_err(|err| err.into_parts().1)?,
                AsyncFd::register_with_interest(Timer(timer), Interest::READABLE).map_err(|err| err.into_parts().1)?,
            )
        };
        Ok(Self { socket, kind, timer, balance })
    }

    /// Waits until a connection is pending and this worker should take it, then accepts it.
    ///
    /// `slot_index` is this worker's scoreboard slot and `open` its open connection count.
    pub async fn accept(&self, slot_index: usize, open: impl Fn() -> u32) -> io::Result<(Stream, ConnectionInfo)> {
        let mut deferrals = 0;
        loop {
            let mut ready = self.socket.readable().await?;
            let defer = self.balance
                && deferrals < MAX_DEFERRALS
                && Scoreboard::global().is_some_and(|board| should_defer(open(), siblings(board, slot_index)));
            if defer {
                deferrals += 1;
                drop(ready);
                self.pause(DEFER).await?;
                continue;
            }
            match ready.try_io(|socket| socket.get_ref().accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)) {
                Ok(Ok((socket, peer))) => return self.connection(socket, &peer),
                Ok(Err(err)) => return Err(err),
                // Someone else took it (the readiness is cleared: wait for the next connection).
                Err(_would_block) => deferrals = 0,
            }
        }
    }

    /// Sleeps `duration` on the timerfd, with the precision tokio's millisecond timer wheel lacks.
    async fn pause(&self, duration: Duration) -> io::Result<()> {
        let expiration = Expiration::OneShot(TimeSpec::from_duration(duration));
        self.timer.get_ref().0.set(expiration, TimerSetTimeFlags::empty()).map_err(io::Error::from)?;
        loop {
            let mut ready = self.timer.readable().await?;
            // Reading the expiration count rearms the readiness; `WouldBlock` means not expired yet.
            match ready.try_io(|timer| read_expirations(&timer.get_ref().0)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    fn connection(&self, socket: Socket, peer: &socket2::SockAddr) -> io::Result<(Stream, ConnectionInfo)> {
        let id = super::next_connection_id();
        match &self.kind {
            Kind::Tcp { local } => {
                // Small writes (streamed chunks) must not wait for Nagle's delayed ACK dance.
                let _ = socket.set_tcp_nodelay(true);
                let stream = TcpStream::from_std(socket.into())?;
                let peer = peer.as_socket();
                let info = ConnectionInfo {
                    id,
                    remote_addr: peer.map(|p| p.ip().to_canonical().to_string()).unwrap_or_default(),
                    remote_port: peer.map(|p| p.port().to_string()).unwrap_or_default(),
                    server_name: local.map(|l| l.ip().to_string()).unwrap_or_default(),
                    server_port: local.map(|l| l.port().to_string()).unwrap_or_default(),
                };
                Ok((Stream::Tcp(stream), info))
            }
            Kind::Unix { path } => {
                let stream = UnixStream::from_std(socket.into())?;
                Ok((
                    Stream::Unix(stream),
                    ConnectionInfo { id, server_name: path.clone(), ..ConnectionInfo::default() },
                ))
            }
        }
    }
}

/// Reads a timerfd's expiration counter (8 bytes); `WouldBlock` until it expired.
fn read_expirations(timer: &TimerFd) -> io::Result<()> {
    let mut count = [0u8; 8];
    nix::unistd::read(timer.as_fd(), &mut count).map(|_| ()).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkerStatus::{Busy, Idle, Starting, Stopping};

    #[test]
    fn a_worker_without_connections_never_defers() {
        assert!(!should_defer(0, [(Idle, 0), (Idle, 0)]));
    }

    #[test]
    fn defers_to_an_idle_sibling_with_two_fewer_connections() {
        assert!(should_defer(2, [(Idle, 0)]));
        assert!(should_defer(4, [(Busy, 3), (Idle, 2)]));
    }

    #[test]
    fn one_apart_and_ties_accept_so_new_connections_never_wait() {
        assert!(!should_defer(1, [(Idle, 0)]));
        assert!(!should_defer(3, [(Idle, 2), (Idle, 3)]));
        assert!(!should_defer(2, [(Idle, 2), (Idle, 3)]));
    }

    #[test]
    fn starting_and_stopping_siblings_would_not_accept_soon() {
        assert!(!should_defer(50, [(Starting, 0), (Stopping, 0), (WorkerStatus::Free, 0)]));
    }

    #[test]
    fn busy_siblings_take_over_only_a_gross_imbalance() {
        // New-connection traffic: a few connections each, never worth waiting for a busy sibling.
        assert!(!should_defer(2, [(Busy, 1)]));
        assert!(!should_defer(3, [(Busy, 1)]));
        // A kept-alive burst that landed on one worker while the others were busy.
        assert!(should_defer(3, [(Busy, 0)]));
        assert!(should_defer(20, [(Busy, 12)]));
        assert!(!should_defer(64, [(Busy, 60)]));
    }

    #[test]
    fn a_lone_worker_accepts() {
        assert!(!should_defer(100, []));
    }

    /// The precise pause is what keeps a deferral cheap: it must not round up to tokio's millisecond tick.
    #[test]
    fn pause_is_sub_millisecond() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let listener = Listener::new(OwnedFd::from(listener), None, true).expect("listener");
            let mut fastest = Duration::MAX;
            for _ in 0..20 {
                let started = std::time::Instant::now();
                listener.pause(DEFER).await.expect("pause");
                let took = started.elapsed();
                assert!(took >= DEFER, "woke early: {took:?}");
                fastest = fastest.min(took);
            }
            assert!(fastest < Duration::from_millis(1), "the fastest of 20 pauses took {fastest:?}");
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
