//! Listening sockets owned by the emperor, and the stable port book.
//!
//! Why the emperor binds: a socket that outlives every vassal process is what makes a reload invisible to
//! clients. The new vassal process accepts from the same queue as the old one, so no connection is refused
//! while one version replaces the other. Each vassal process gets the sockets by fd (`LIEGE_INHERIT`).
//!
//! A vassal whose file names no socket gets an HTTP socket on 127.0.0.1 with a port from
//! `--vassal-port-range`. Ports are remembered per vassal name in `ports.json` in the run directory, so a
//! vassal keeps its port across reloads and emperor restarts (nginx upstreams point at it). A remembered
//! port that something else holds is reported as an error and retried, never silently moved.

use std::collections::BTreeMap;
use std::io;
use std::net::ToSocketAddrs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use liege_config::{Protocol, SocketAddress, SocketSpec};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Socket, Type};

use crate::control::handover::{address_name, protocol_name, InheritedSocket};

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("the vassal port range {low}-{high} is exhausted (every port is taken); widen --vassal-port-range")]
    Exhausted { low: u16, high: u16 },
    #[error("port {port} (assigned to this vassal) is in use by another process")]
    PortInUse { port: u16 },
    #[error("cannot resolve '{address}': {source}")]
    Resolve { address: String, source: io::Error },
    #[error("cannot bind {address}: {source}")]
    Bind { address: String, source: io::Error },
}

impl SocketError {
    /// Whether waiting may fix it (another process may let go of the port), as opposed to a configuration
    /// that must change.
    pub fn is_transient(&self) -> bool {
        match self {
            SocketError::PortInUse { .. } => true,
            SocketError::Bind { source, .. } => source.kind() == io::ErrorKind::AddrInUse,
            _ => false,
        }
    }
}

/// One listening socket, shared by every process of a vassal while it is in use.
#[derive(Debug)]
pub struct Listener {
    pub protocol: Protocol,
    /// The address as the vassal's config writes it (what the master matches inherited sockets by).
    pub name: String,
    pub fd: OwnedFd,
    /// Assigned from the port range (as opposed to named by the vassal file).
    pub auto: bool,
}

impl Listener {
    pub fn proto(&self) -> &'static str {
        protocol_name(self.protocol)
    }

    /// The description passed to a vassal process; the fd number is the emperor's own, kept open across
    /// `exec` in the child only (see `vassal::spawn`).
    pub fn inherited(&self) -> InheritedSocket {
        InheritedSocket { protocol: self.protocol, name: self.name.clone(), fd: self.fd.as_raw_fd() }
    }
}

/// Binds a TCP listening socket (SO_REUSEADDR, close-on-exec, the vassal's `listen` backlog).
pub fn bind_tcp(host: &str, port: u16, backlog: u32) -> Result<OwnedFd, SocketError> {
    let shown = format!("{host}:{port}");
    let unbracketed = host.trim_start_matches('[').trim_end_matches(']');
    let address = (unbracketed, port)
        .to_socket_addrs()
        .map_err(|source| SocketError::Resolve { address: shown.clone(), source })?
        .next()
        .ok_or_else(|| SocketError::Resolve { address: shown.clone(), source: io::ErrorKind::NotFound.into() })?;
    let bind_error = |source| SocketError::Bind { address: shown.clone(), source };
    let socket = Socket::new(Domain::for_address(address), Type::STREAM.cloexec(), None).map_err(bind_error)?;
    socket.set_reuse_address(true).map_err(bind_error)?;
    socket.bind(&address.into()).map_err(bind_error)?;
    socket.listen(backlog.min(i32::MAX as u32) as i32).map_err(bind_error)?;
    Ok(socket.into())
}

/// Binds a socket the vassal file names itself, if the emperor can own it: TCP only. Unix sockets stay with
/// the vassal (its master unlinks the path when it stops, which would break a socket shared across
/// processes), as do `fd://` ones.
pub fn bind_own(spec: &SocketSpec, backlog: u32) -> Option<Result<Listener, SocketError>> {
    let SocketAddress::Tcp { host, port } = &spec.address else {
        return None;
    };
    let name = address_name(&spec.address);
    Some(bind_tcp(host, *port, backlog).map(|fd| Listener { protocol: spec.protocol, name, fd, auto: false }))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PortFile {
    #[serde(default)]
    ports: BTreeMap<String, u16>,
}

/// Which port each vassal name owns, persisted in the run directory.
#[derive(Debug)]
pub struct PortBook {
    path: PathBuf,
    low: u16,
    high: u16,
    ports: BTreeMap<String, u16>,
}

/// The host every automatically assigned socket listens on.
pub const AUTO_HOST: &str = "127.0.0.1";

impl PortBook {
    /// Reads `path` if it exists; an unreadable or corrupt file is reported and replaced.
    pub fn load(path: PathBuf, (low, high): (u16, u16)) -> Self {
        let ports = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<PortFile>(&bytes) {
                Ok(file) => file.ports,
                Err(err) => {
                    tracing::warn!("{}: not a valid port file ({err}); starting a new one", path.display());
                    BTreeMap::new()
                }
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(err) => {
                tracing::warn!("cannot read {}: {err}; starting a new port file", path.display());
                BTreeMap::new()
            }
        };
        PortBook { path, low, high, ports }
    }

    pub fn port_of(&self, name: &str) -> Option<u16> {
        self.ports.get(name).copied().filter(|port| (self.low..=self.high).contains(port))
    }

    /// Binds the port of vassal `name`, assigning one if it has none. `is_live(other)` says whether another
    /// name is still a vassal; ports of names gone from the directory are reused only when no never-used
    /// port is left.
    pub fn bind(&mut self, name: &str, backlog: u32, is_live: &dyn Fn(&str) -> bool) -> Result<Listener, SocketError> {
        let listener = |port: u16, fd: OwnedFd| Listener {
            protocol: Protocol::Http,
            name: format!("{AUTO_HOST}:{port}"),
            fd,
            auto: true,
        };
        if let Some(port) = self.port_of(name) {
            return match bind_tcp(AUTO_HOST, port, backlog) {
                Ok(fd) => Ok(listener(port, fd)),
                Err(SocketError::Bind { source, .. }) if source.kind() == io::ErrorKind::AddrInUse => {
                    Err(SocketError::PortInUse { port })
                }
                Err(err) => Err(err),
            };
        }
        let taken: BTreeMap<u16, &str> = self.ports.iter().map(|(owner, port)| (*port, owner.as_str())).collect();
        let never_used = (self.low..=self.high).filter(|port| !taken.contains_key(port));
        let abandoned: Vec<u16> = (self.low..=self.high)
            .filter(|port| taken.get(port).is_some_and(|owner| *owner != name && !is_live(owner)))
            .collect();
        for port in never_used.chain(abandoned) {
            match bind_tcp(AUTO_HOST, port, backlog) {
                Ok(fd) => {
                    self.ports.retain(|_, owned| *owned != port);
                    self.ports.insert(name.to_owned(), port);
                    self.save();
                    return Ok(listener(port, fd));
                }
                Err(SocketError::Bind { source, .. }) if source.kind() == io::ErrorKind::AddrInUse => continue,
                Err(err) => return Err(err),
            }
        }
        Err(SocketError::Exhausted { low: self.low, high: self.high })
    }

    /// Writes the book atomically (temporary file, then rename); failures are logged, not fatal: the ports
    /// stay right for this emperor's life.
    fn save(&self) {
        let file = PortFile { ports: self.ports.clone() };
        let result = serde_json::to_vec_pretty(&file).map_err(io::Error::other).and_then(|bytes| {
            let tmp = self.path.with_extension("json.tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &self.path)
        });
        if let Err(err) = result {
            tracing::warn!("cannot save {}: {err}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_range(width: u16) -> (u16, u16) {
        // Find `width` consecutive free ports above an ephemeral one; good enough for a unit test.
        for _ in 0..50 {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let low = probe.local_addr().expect("addr").port().saturating_add(1);
            drop(probe);
            let Some(high) = low.checked_add(width - 1) else {
                continue;
            };
            if (low..=high).all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()) {
                return (low, high);
            }
        }
        panic!("no free port range");
    }

    #[test]
    fn ports_are_stable_and_persisted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ports.json");
        let range = free_range(3);
        let mut book = PortBook::load(path.clone(), range);
        let a = book.bind("a", 16, &|_| true).expect("a");
        let b = book.bind("b", 16, &|_| true).expect("b");
        assert_ne!(a.name, b.name);
        let port_a = book.port_of("a").expect("remembered");
        drop(a);
        let again = book.bind("a", 16, &|_| true).expect("a again");
        assert_eq!(again.name, format!("127.0.0.1:{port_a}"));
        drop(again);
        let reloaded = PortBook::load(path, range);
        assert_eq!(reloaded.port_of("a"), Some(port_a));
        drop(b);
    }

    #[test]
    fn a_full_range_is_an_error_unless_a_port_is_abandoned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let range = free_range(1);
        let mut book = PortBook::load(dir.path().join("ports.json"), range);
        let a = book.bind("a", 16, &|_| true).expect("a");
        drop(a);
        assert!(matches!(book.bind("b", 16, &|_| true), Err(SocketError::Exhausted { .. })));
        let b = book.bind("b", 16, &|name| name != "a").expect("a's port reused");
        assert_eq!(book.port_of("a"), None);
        drop(b);
    }
}
