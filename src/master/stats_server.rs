//! The master's uWSGI-compatible stats server (`stats = ADDR`, `stats-http`): each connection gets the current
//! stats document and is closed, exactly what `uwsgitop ADDR` and `uwsgi_exporter` expect.
//!
//! It runs inside the master's single-threaded poll loop, so it must never block it: the listener and every
//! client are non-blocking; a document that does not fit in the socket buffer is finished as the client reads;
//! a client that connects and never reads is dropped after [`CLIENT_DEADLINE`], and at most [`MAX_CLIENTS`]
//! are kept at once.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use liege_config::{Protocol, SocketAddress, SocketSpec};
use nix::sys::socket::{MsgFlags, Shutdown};

use super::sockets::{self, BoundSocket, SocketError};

/// How long a stats client may take to read its document.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(5);
/// Clients kept at once (see [`StatsServer::serve`] for who makes room).
pub const MAX_CLIENTS: usize = 32;

struct Client {
    fd: OwnedFd,
    out: Vec<u8>,
    written: usize,
    deadline: Instant,
}

pub struct StatsServer {
    listener: BoundSocket,
    http: bool,
    clients: Vec<Client>,
}

impl StatsServer {
    pub fn bind(address: &SocketAddress, http: bool) -> Result<StatsServer, SocketError> {
        let spec = SocketSpec { protocol: Protocol::Http, address: address.clone() };
        let listener = sockets::bind_listener(&spec, 64, None)?;
        set_nonblocking(listener.fd.as_fd());
        Ok(StatsServer { listener, http, clients: Vec::new() })
    }

    pub fn name(&self) -> &str {
        &self.listener.name
    }

    /// What the poll loop waits on: new connections, and clients with output still to write.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, nix::poll::PollFlags)> {
        let mut fds = vec![(self.listener.fd.as_fd(), nix::poll::PollFlags::POLLIN)];
        for client in &self.clients {
            let flags = if client.written < client.out.len() {
                nix::poll::PollFlags::POLLOUT
            } else {
                nix::poll::PollFlags::POLLIN
            };
            fds.push((client.fd.as_fd(), flags));
        }
        fds
    }

    /// The earliest client deadline (so the loop wakes to drop a client that never reads).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().map(|c| c.deadline).min()
    }

    /// Accepts waiting connections, gives each the document `document()` builds, and moves pending writes on.
    /// Never blocks.
    pub fn serve(&mut self, document: impl Fn() -> Vec<u8>) {
        loop {
            let accepted = nix::sys::socket::accept4(
                self.listener.fd.as_raw_fd(),
                nix::sys::socket::SockFlag::SOCK_NONBLOCK | nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            );
            let fd = match accepted {
                // SAFETY: accept4 returned a new descriptor that nothing else owns.
                Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::ECONNABORTED) => continue,
                Err(_) => break,
            };
            if self.clients.len() >= MAX_CLIENTS {
                let now = Instant::now();
                self.clients.retain_mut(|client| client.advance(now));
            }
            if self.clients.len() >= MAX_CLIENTS {
                // Make room by dropping the oldest client that already has its whole document (it only waits
                // for the peer to close); if every client still has output pending, refuse the newcomer.
                match self.clients.iter().position(|c| c.written == c.out.len()) {
                    Some(done) => drop(self.clients.remove(done)),
                    None => continue,
                }
            }
            let body = document();
            let out = if self.http {
                let mut out = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                out.extend_from_slice(&body);
                out
            } else {
                body
            };
            self.clients.push(Client { fd, out, written: 0, deadline: Instant::now() + CLIENT_DEADLINE });
        }
        let now = Instant::now();
        self.clients.retain_mut(|client| client.advance(now));
    }

    /// Workers must not keep the stats socket open: after a reload the new master image binds it again.
    pub fn close_in_child(&self) {
        // SAFETY: called in a freshly forked child that never uses the server; closing its copies is all.
        unsafe {
            libc::close(self.listener.fd.as_raw_fd());
            for client in &self.clients {
                libc::close(client.fd.as_raw_fd());
            }
        }
    }

    pub fn cleanup(&self) {
        if let Some(path) = &self.listener.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Client {
    /// Writes what the socket takes; once everything is written, half-closes and then discards whatever the
    /// client sent (an HTTP request) until it closes, so closing never resets the connection before the client
    /// has read the document. Returns false when the client is done with.
    fn advance(&mut self, now: Instant) -> bool {
        if now >= self.deadline {
            return false;
        }
        let fd = self.fd.as_raw_fd();
        while self.written < self.out.len() {
            match nix::sys::socket::send(fd, &self.out[self.written..], MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL)
            {
                Ok(n) => {
                    self.written += n;
                    if self.written == self.out.len() {
                        let _ = nix::sys::socket::shutdown(fd, Shutdown::Write);
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(_) => return false,
            }
        }
        let mut scratch = [0u8; 1024];
        loop {
            match nix::unistd::read(self.fd.as_fd(), &mut scratch) {
                Ok(0) => return false,
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(_) => return false,
            }
        }
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn server(http: bool) -> StatsServer {
        StatsServer::bind(&SocketAddress::Tcp { host: "127.0.0.1".into(), port: 0 }, http).expect("bind")
    }

    fn local_port(server: &StatsServer) -> u16 {
        let socket = socket2::SockRef::from(&server.listener.fd);
        socket.local_addr().ok().and_then(|a| a.as_socket()).map_or(0, |a| a.port())
    }

    #[test]
    fn each_client_gets_the_document_and_eof() {
        let mut server = server(false);
        let port = local_port(&server);
        let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.clients.is_empty() && Instant::now() < deadline {
            server.serve(|| b"{\"ok\":1}".to_vec());
        }
        let mut text = String::new();
        client.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut buffer = [0u8; 64];
        while !text.ends_with('}') {
            let n = client.read(&mut buffer).expect("read");
            assert!(n > 0);
            text.push_str(std::str::from_utf8(&buffer[..n]).expect("utf8"));
        }
        assert_eq!(text, "{\"ok\":1}");
        drop(client);
        while !server.clients.is_empty() && Instant::now() < deadline {
            server.serve(Vec::new);
        }
        assert!(server.clients.is_empty(), "the closed client is forgotten");
    }

    #[test]
    fn a_client_that_never_reads_cannot_block_the_server() {
        let mut server = server(true);
        let port = local_port(&server);
        let big = vec![b'x'; 8 << 20];
        let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        silent.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
        let started = Instant::now();
        while server.clients.is_empty() && started.elapsed() < Duration::from_secs(5) {
            server.serve(|| big.clone());
        }
        for _ in 0..10 {
            server.serve(|| big.clone());
        }
        assert!(started.elapsed() < Duration::from_secs(2), "serve() blocked");
        assert_eq!(server.clients.len(), 1, "the silent client waits with its output pending");
        assert!(server.clients[0].written < server.clients[0].out.len());
        server.clients[0].deadline = Instant::now();
        server.serve(Vec::new);
        assert!(server.clients.is_empty(), "dropped at its deadline");
    }
}
