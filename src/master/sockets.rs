//! The listening sockets: bound by the master before forking (or inherited from an emperor or from the
//! master's previous image across a reload), shared by every worker.

use std::net::ToSocketAddrs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;

use crate::control::handover::{address_name, InheritedSocket};
use liege_config::{Protocol, SocketAddress, SocketSpec};
use socket2::{Domain, SockAddr, Socket, Type};

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot resolve '{address}': {source}")]
    Resolve { address: String, source: std::io::Error },
    #[error("cannot bind {address}: {source}")]
    Bind { address: String, source: std::io::Error },
    #[error("'{0}' exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("fd://{0} is not a listening socket")]
    NotListening(RawFd),
    #[error("no socket configured: give http-socket or socket")]
    NoSockets,
    #[error("chown-socket {owner}: {reason}")]
    Owner { owner: String, reason: String },
    #[error("chown-socket {owner}: cannot chown {path}: {source}")]
    Chown { owner: String, path: PathBuf, source: nix::Error },
}

/// How new unix sockets are made accessible: `chmod-socket` and `chown-socket`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnixSocketAccess<'c> {
    pub chmod: Option<u32>,
    /// `USER` or `USER:GROUP`, names or numbers, as uWSGI's `chown-socket`.
    pub chown: Option<&'c str>,
}

impl<'c> UnixSocketAccess<'c> {
    pub fn of(config: &'c liege_config::VassalConfig) -> Self {
        UnixSocketAccess { chmod: config.chmod_socket, chown: config.chown_socket.as_deref() }
    }
}

/// Resolves `USER[:GROUP]` as uWSGI's `uwsgi_chown` does: a number is an id, anything else a name looked up
/// in the account databases; without `:GROUP` the group is left as it is.
pub fn resolve_owner(owner: &str) -> Result<(nix::unistd::Uid, Option<nix::unistd::Gid>), SocketError> {
    use nix::unistd::{Gid, Group, Uid, User};
    let fail = |reason: String| SocketError::Owner { owner: owner.to_owned(), reason };
    let (user, group) = match owner.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (owner, None),
    };
    let uid = match user.parse::<u32>() {
        Ok(id) => Uid::from_raw(id),
        Err(_) => {
            User::from_name(user)
                .map_err(|err| fail(format!("cannot look up user {user}: {err}")))?
                .ok_or_else(|| fail(format!("no user named {user}")))?
                .uid
        }
    };
    let gid = match group {
        None => None,
        Some(group) => Some(match group.parse::<u32>() {
            Ok(id) => Gid::from_raw(id),
            Err(_) => {
                Group::from_name(group)
                    .map_err(|err| fail(format!("cannot look up group {group}: {err}")))?
                    .ok_or_else(|| fail(format!("no group named {group}")))?
                    .gid
            }
        }),
    };
    Ok((uid, gid))
}

/// One listening socket of this vassal.
#[derive(Debug)]
pub struct BoundSocket {
    pub protocol: Protocol,
    /// The address as shown in logs and stats (`0.0.0.0:9099`, `/tmp/app.sock`).
    pub name: String,
    pub fd: OwnedFd,
    /// Set for unix sockets.
    pub unix_path: Option<PathBuf>,
}

/// Opens every configured socket, reusing inherited ones with the same protocol and address. When the config
/// names no socket, the inherited ones (assigned by an emperor) are used as they are.
pub fn open_all(
    specs: &[SocketSpec],
    backlog: u32,
    access: UnixSocketAccess<'_>,
    inherited: Vec<InheritedSocket>,
) -> Result<Vec<BoundSocket>, SocketError> {
    // Resolved before binding anything, so a wrong name fails before a socket file is left behind.
    let owner = access.chown.map(|owner| resolve_owner(owner).map(|ids| (owner, ids))).transpose()?;
    let mut inherited: Vec<Option<InheritedSocket>> = inherited.into_iter().map(Some).collect();
    let mut sockets = Vec::with_capacity(specs.len());
    for spec in specs {
        let name = address_name(&spec.address);
        let reused = inherited
            .iter_mut()
            .find(|slot| slot.as_ref().is_some_and(|s| s.name == name && s.protocol == spec.protocol));
        if let Some(socket) = reused.and_then(Option::take) {
            sockets.push(adopt(spec.protocol, socket.name, socket.fd)?);
            continue;
        }
        let socket = bind(spec, &name, backlog, access.chmod)?;
        if let (Some(path), Some((owner, (uid, gid)))) = (&socket.unix_path, &owner) {
            nix::unistd::chown(path, Some(*uid), *gid).map_err(|source| SocketError::Chown {
                owner: (*owner).to_owned(),
                path: path.clone(),
                source,
            })?;
        }
        sockets.push(socket);
    }
    if specs.is_empty() {
        for socket in inherited.iter_mut().filter_map(Option::take) {
            sockets.push(adopt(socket.protocol, socket.name, socket.fd)?);
        }
    }
    // Inherited sockets no longer in the config (an edited vassal file) are closed.
    for socket in inherited.into_iter().flatten() {
        // SAFETY: the fd was handed to us for this purpose and nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(socket.fd) });
    }
    if sockets.is_empty() {
        return Err(SocketError::NoSockets);
    }
    Ok(sockets)
}

/// `so-send-timeout`: SO_SNDTIMEO on the TCP listening sockets, as uWSGI's `bind_to_tcp` (connections inherit
/// it). liege's sockets never block, so this changes no send of liege's; the workers enforce the timeout on
/// their writes themselves (`worker::Limits::tcp_write_timeout`). Set on inherited sockets too, so a reload
/// with a new value applies it.
pub fn set_send_timeout(sockets: &[BoundSocket], timeout: Option<std::time::Duration>) -> std::io::Result<()> {
    let Some(timeout) = timeout else { return Ok(()) };
    for socket in sockets.iter().filter(|socket| socket.unix_path.is_none()) {
        socket2::SockRef::from(&socket.fd).set_write_timeout(Some(timeout))?;
    }
    Ok(())
}

fn adopt(protocol: Protocol, name: String, fd: RawFd) -> Result<BoundSocket, SocketError> {
    // SAFETY: the fd number was passed to this process to be owned by it.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    if !socket.is_listener().unwrap_or(false) {
        std::mem::forget(socket);
        return Err(SocketError::NotListening(fd));
    }
    let _ = socket.set_cloexec(true);
    let unix_path = socket.local_addr().ok().and_then(|a| a.as_pathname().map(PathBuf::from));
    Ok(BoundSocket { protocol, name, fd: socket.into(), unix_path })
}

/// Binds and listens on one address (also used for the stats server).
pub fn bind_listener(spec: &SocketSpec, backlog: u32, chmod: Option<u32>) -> Result<BoundSocket, SocketError> {
    bind(spec, &address_name(&spec.address), backlog, chmod)
}

fn bind(spec: &SocketSpec, name: &str, backlog: u32, chmod: Option<u32>) -> Result<BoundSocket, SocketError> {
    let bind_err = |source| SocketError::Bind { address: name.to_owned(), source };
    let backlog = backlog.min(i32::MAX as u32) as i32;
    match &spec.address {
        SocketAddress::Tcp { host, port } => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let address = (host, *port)
                .to_socket_addrs()
                .map_err(|source| SocketError::Resolve { address: name.to_owned(), source })?
                .next()
                .ok_or_else(|| SocketError::Resolve {
                    address: name.to_owned(),
                    source: std::io::ErrorKind::NotFound.into(),
                })?;
            let socket = Socket::new(Domain::for_address(address), Type::STREAM, None).map_err(bind_err)?;
            socket.set_reuse_address(true).map_err(bind_err)?;
            socket.bind(&address.into()).map_err(bind_err)?;
            socket.listen(backlog).map_err(bind_err)?;
            Ok(BoundSocket { protocol: spec.protocol, name: address.to_string(), fd: socket.into(), unix_path: None })
        }
        SocketAddress::Unix(path) => {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if !meta.file_type().is_socket() {
                    return Err(SocketError::NotASocket(path.clone()));
                }
                // A stale socket from a previous run (uWSGI's `vacuum` default in liege).
                let _ = std::fs::remove_file(path);
            }
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(bind_err)?;
            socket.bind(&SockAddr::unix(path).map_err(bind_err)?).map_err(bind_err)?;
            if let Some(mode) = chmod {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(bind_err)?;
            }
            socket.listen(backlog).map_err(bind_err)?;
            Ok(BoundSocket {
                protocol: spec.protocol,
                name: name.to_owned(),
                fd: socket.into(),
                unix_path: Some(path.clone()),
            })
        }
        SocketAddress::Fd(fd) => adopt(spec.protocol, name.to_owned(), *fd),
    }
}

impl BoundSocket {
    /// Describes the socket for handing it to the next image of this master (or a vassal) by fd number, and
    /// lets the fd survive `exec`.
    pub fn inherit(&self) -> InheritedSocket {
        let fd = self.fd.as_raw_fd();
        // SAFETY: fcntl on an fd we own.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
        }
        InheritedSocket { protocol: self.protocol, name: self.name.clone(), fd }
    }
}
