//! Exclusive wakeups for a listening socket that every worker of a vassal waits on.
//!
//! Each worker registers the shared listening socket with its own event loop. An ordinary epoll registration
//! puts every idle worker on the socket's wait queue, so the kernel wakes all of them for each new connection:
//! one `accept` wins, the others cost a wakeup, a failed `accept4` and another `epoll_wait` each. On traffic
//! that opens a connection per request (nginx `uwsgi_pass`, `Connection: close`, health checks) that herd is
//! most of the cost of a request after the app itself. Linux 4.5 added `EPOLLEXCLUSIVE`: the kernel then wakes
//! one waiter that is *blocked in `epoll_wait`* (an idle worker), walking past the epoll instances nobody waits
//! on (workers busy in Python, which find the event when they return). That is the wakeup a prefork server
//! wants, and what nginx uses for its own workers.
//!
//! tokio registers sources through mio, whose interest set has no exclusive flag, so this module swaps tokio's
//! registration of the listener for an exclusive one with the same token: it finds the worker's epoll instance
//! and tokio's token for the listener in `/proc/self/fdinfo` (the kernel's documented view of an epoll
//! instance: one `tfd: <fd> events: <mask> data: <token>` line per registration), then deletes the
//! registration and adds it back with `EPOLLEXCLUSIVE`. tokio keeps owning it: events carry its own token, so
//! they reach the listener's `AsyncFd`; when the `AsyncFd` is dropped tokio deletes the registration by fd.
//!
//! The same swap makes balancing cheap ([`Exclusive::pause`]): a worker that holds more than its share of
//! kept-alive connections deletes its registration, so the kernel never offers it a connection until it adds
//! the registration back. Nothing waits and nothing is woken for nothing.
//!
//! If anything is not as expected (no `/proc`, more than one epoll instance lists the socket, a kernel that
//! refuses the flag) the registration is left as tokio made it: every worker is woken, as before, and the
//! first `accept` still wins. The worker then cannot pause, so kept-alive bursts are not balanced; the debug
//! log says so.

use std::fs;
use std::io;
use std::os::fd::RawFd;

/// The flags of the exclusive registration: readable, edge-triggered (as tokio expects), exclusive.
/// `EPOLLRDHUP`, which tokio adds, is not allowed together with `EPOLLEXCLUSIVE`, and a listening socket never
/// reports it anyway.
const EXCLUSIVE_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLET | libc::EPOLLEXCLUSIVE) as u32;

/// One registration line of an epoll instance's fdinfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Registration {
    fd: RawFd,
    data: u64,
}

/// Parses the registration lines of `/proc/PID/fdinfo/<epoll fd>`:
/// `tfd:        7 events:       19 data:     5583f0b6c2a0  pos:0 ino:1a sdev:8`.
fn registrations(fdinfo: &str) -> impl Iterator<Item = Registration> + '_ {
    fdinfo.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        let (Some("tfd:"), Some(fd)) = (words.next(), words.next()) else { return None };
        let fd = fd.parse().ok()?;
        let mut data = None;
        while let Some(word) = words.next() {
            if word == "data:" {
                data = u64::from_str_radix(words.next()?, 16).ok();
                break;
            }
        }
        Some(Registration { fd, data: data? })
    })
}

/// The epoll instances of this process that list `fd`, with the token each registered it under.
fn registrations_of(fd: RawFd) -> io::Result<Vec<(RawFd, u64)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Ok(link) = fs::read_link(entry.path()) else { continue };
        if link.as_os_str() != "anon_inode:[eventpoll]" {
            continue;
        }
        let Some(epoll) = entry.file_name().to_str().and_then(|name| name.parse::<RawFd>().ok()) else { continue };
        let Ok(info) = fs::read_to_string(format!("/proc/self/fdinfo/{epoll}")) else { continue };
        found.extend(registrations(&info).filter(|reg| reg.fd == fd).map(|reg| (epoll, reg.data)));
    }
    Ok(found)
}

/// Adds or deletes the registration of `fd` in `epoll` under `data` with `events`.
fn control(epoll: RawFd, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events, u64: data };
    // SAFETY: epoll_ctl only reads `event` (a valid, initialised struct on this stack frame) and acts on two
    // descriptors by number; a wrong number is reported as EBADF/ENOENT, never undefined behaviour.
    let result = unsafe { libc::epoll_ctl(epoll, op, fd, &mut event) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A listener's registration with its worker's event loop, swapped for an exclusive one.
#[derive(Debug)]
pub struct Exclusive {
    epoll: RawFd,
    fd: RawFd,
    /// tokio's token for the listener (the `data` its own registration carried).
    data: u64,
    paused: std::cell::Cell<bool>,
}

impl Exclusive {
    /// Swaps tokio's registration of `fd` (just made by `AsyncFd::register_with_interest`) for an exclusive one.
    ///
    /// Fails, leaving tokio's registration in place, when the registration cannot be found unambiguously or
    /// the kernel refuses the flag.
    pub fn swap(fd: RawFd) -> io::Result<Self> {
        let mut found = registrations_of(fd)?;
        // tokio keeps two descriptors of its one epoll instance (mio's `Poll` and a `try_clone`d `Registry`), so
        // the same registration shows twice; its token, the address of tokio's state for this socket, is unique.
        found.sort_by_key(|(_, data)| *data);
        found.dedup_by_key(|(_, data)| *data);
        let [(epoll, data)] = found[..] else {
            return Err(io::Error::other(format!("{} registrations of fd {fd} found, expected one", found.len())));
        };
        control(epoll, libc::EPOLL_CTL_DEL, fd, EXCLUSIVE_EVENTS, data)?;
        if let Err(err) = control(epoll, libc::EPOLL_CTL_ADD, fd, EXCLUSIVE_EVENTS, data) {
            // Put back what tokio had, so the listener keeps working (woken with everyone, as before).
            let tokios = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
            let _ = control(epoll, libc::EPOLL_CTL_ADD, fd, tokios, data);
            return Err(err);
        }
        Ok(Self { epoll, fd, data, paused: std::cell::Cell::new(false) })
    }

    /// Whether the registration is deleted (see [`Exclusive::pause`]).
    pub fn is_paused(&self) -> bool {
        self.paused.get()
    }

    /// Deletes the registration: the kernel offers this worker no new connection until [`Exclusive::resume`].
    pub fn pause(&self) -> io::Result<()> {
        if !self.paused.get() {
            control(self.epoll, libc::EPOLL_CTL_DEL, self.fd, EXCLUSIVE_EVENTS, self.data)?;
            self.paused.set(true);
        }
        Ok(())
    }

    /// Adds the registration back. A connection already pending is reported at once (epoll checks the
    /// socket's state when a registration is added).
    pub fn resume(&self) -> io::Result<()> {
        if self.paused.get() {
            control(self.epoll, libc::EPOLL_CTL_ADD, self.fd, EXCLUSIVE_EVENTS, self.data)?;
            self.paused.set(false);
        }
        Ok(())
    }
}

/// Whether a connection is waiting in `fd`'s accept queue, without taking it.
pub fn pending(fd: RawFd) -> bool {
    let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: poll reads and writes exactly one pollfd, which lives on this stack frame.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0 && poll.revents & libc::POLLIN != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn parses_the_kernels_fdinfo_lines() {
        let info = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n\
                    tfd:        9 events:       19 data:     55d1c3a0e9f0  pos:0 ino:4a1 sdev:8\n\
                    tfd:       12 events: 80002019 data:                2  pos:0 ino:4b0 sdev:8\n";
        let found: Vec<_> = registrations(info).collect();
        assert_eq!(found, [Registration { fd: 9, data: 0x55d1_c3a0_e9f0 }, Registration { fd: 12, data: 2 }],);
        assert_eq!(registrations("tfd: x events: 1 data: 2").count(), 0, "a malformed line is skipped");
    }

    /// tokio's registration is found, swapped and still delivers readiness to the `AsyncFd`; pausing stops it
    /// and resuming reports a connection that arrived meanwhile.
    #[test]
    fn a_swapped_listener_still_wakes_its_asyncfd_and_can_pause() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.set_nonblocking(true).expect("nonblocking");
            let port = listener.local_addr().expect("addr").port();
            // SAFETY: the listener owns its fd and keeps it open and unchanged while the AsyncFd lives.
            let async_fd =
                unsafe { tokio::io::unix::AsyncFd::register_with_interest(listener, tokio::io::Interest::READABLE) }
                    .expect("register");
            let exclusive = Exclusive::swap(async_fd.as_raw_fd()).expect("swap");
            let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", exclusive.epoll)).expect("fdinfo");
            let line =
                info.lines().find(|line| line.split_whitespace().nth(1) == Some(&async_fd.as_raw_fd().to_string()));
            let events = line.and_then(|line| line.split_whitespace().nth(3)).expect("registration line");
            // The kernel always adds EPOLLERR and EPOLLHUP to a registration's mask.
            let always = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
            assert_eq!(u32::from_str_radix(events, 16).ok(), Some(EXCLUSIVE_EVENTS | always), "{info}");

            let _first = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let mut ready = tokio::time::timeout(std::time::Duration::from_secs(5), async_fd.readable())
                .await
                .expect("readable in time")
                .expect("readable");
            assert!(ready.try_io(|l| l.get_ref().accept()).is_ok());
            assert!(ready.try_io(|l| l.get_ref().accept()).is_err(), "drained: readiness cleared");

            exclusive.pause().expect("pause");
            assert!(exclusive.is_paused());
            let _second = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let quiet = tokio::time::timeout(std::time::Duration::from_millis(50), async_fd.readable()).await;
            assert!(quiet.is_err(), "a paused listener must not be woken");
            assert!(pending(async_fd.as_raw_fd()), "the connection waits in the queue");
            exclusive.resume().expect("resume");
            let ready = tokio::time::timeout(std::time::Duration::from_secs(5), async_fd.readable()).await;
            assert!(ready.is_ok(), "resuming reports the pending connection");
        });
    }
}
