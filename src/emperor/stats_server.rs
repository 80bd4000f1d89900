//! uWSGI's emperor stats server (`emperor-stats = ADDR`): every connection gets the emperor document
//! ([`crate::stats::uwsgi::EmperorDocument`]) and is closed, so `uwsgitop ADDR` shows the vassals as it does
//! for a uWSGI emperor. The API (`/api/...`) has far more; this is for the tools people already have.
//!
//! A client gets [`WRITE_TIMEOUT`] to take its document, and at most [`MAX_CLIENTS`] are served at once, so a
//! client that connects and never reads costs one task for a few seconds and nothing else.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use liege_config::SocketAddress;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;

use super::registry::{Registry, State};
use crate::stats::uwsgi::{EmperorDocument, EmperorVassal};

pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_CLIENTS: usize = 32;

pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, PathBuf),
}

/// A stats socket bound before the runtime starts (the emperor binds everything that may need root, then
/// drops privileges while it is still single-threaded; see `emperor::drop_privileges`).
pub enum Bound {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

impl Bound {
    pub fn bind(address: &SocketAddress) -> std::io::Result<Bound> {
        match address {
            SocketAddress::Tcp { host, port } => {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let listener = std::net::TcpListener::bind((host, *port))?;
                listener.set_nonblocking(true)?;
                Ok(Bound::Tcp(listener))
            }
            SocketAddress::Unix(path) => {
                // A stale socket from an earlier run; anything else at that path is not ours to remove.
                if std::fs::symlink_metadata(path)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    let _ = std::fs::remove_file(path);
                }
                let listener = std::os::unix::net::UnixListener::bind(path)?;
                listener.set_nonblocking(true)?;
                Ok(Bound::Unix(listener, path.clone()))
            }
            SocketAddress::Fd(fd) => Err(std::io::Error::other(format!("emperor-stats cannot use fd://{fd}"))),
        }
    }
}

impl Listener {
    /// Registers a bound socket with the running tokio runtime.
    pub fn from_bound(bound: Bound) -> std::io::Result<Listener> {
        match bound {
            Bound::Tcp(listener) => Ok(Listener::Tcp(tokio::net::TcpListener::from_std(listener)?)),
            Bound::Unix(listener, path) => Ok(Listener::Unix(tokio::net::UnixListener::from_std(listener)?, path)),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Listener::Tcp(listener) => listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
            Listener::Unix(_, path) => path.display().to_string(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Serves until the task is dropped (aborted at emperor exit).
pub async fn serve(listener: Listener, registry: Arc<Registry>) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let accepted: std::io::Result<Box<dyn AsyncWrite + Unpin + Send>> = match &listener {
            Listener::Tcp(l) => l.accept().await.map(|(s, _)| Box::new(s) as _),
            Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Box::new(s) as _),
        };
        let mut stream = match accepted {
            Ok(stream) => stream,
            Err(err) => {
                tracing::debug!("emperor stats: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // too many slow readers: this one is closed unanswered
        };
        let body = document(&registry);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
                stream.write_all(&body).await?;
                stream.shutdown().await
            })
            .await;
            drop(permit);
        });
    }
}

/// The document as of now.
pub fn document(registry: &Registry) -> Vec<u8> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let monitor = registry.dir.display().to_string();
    let entries = registry.entries();
    let mut vassals = Vec::with_capacity(entries.len());
    let mut throttled = 0;
    for entry in entries {
        let status = entry.shared.status();
        let serving = matches!(status.state, State::Running | State::Reloading);
        let started = status.started_at.unwrap_or(0);
        let cursed = matches!(status.state, State::Throttled | State::Error);
        throttled += u64::from(status.state == State::Throttled);
        vassals.push(EmperorVassal {
            id: entry.shared.path.file_name().map_or_else(|| status.name.clone(), |n| n.to_string_lossy().into_owned()),
            pid: status.pid.unwrap_or(0),
            born: started,
            last_mod: std::fs::metadata(&entry.shared.path).map_or(0, |m| m.mtime().max(0) as u64),
            last_heartbeat: status.last_heartbeat.map_or(0, |t| t as u64),
            loyal: u8::from(serving),
            ready: u8::from(serving),
            accepting: u8::from(serving),
            last_loyal: started,
            last_ready: started,
            last_accepting: started,
            first_run: status.first_started_at.unwrap_or(0),
            last_run: started,
            cursed: u8::from(cursed),
            zerg: 0,
            on_demand: String::new(),
            uid,
            gid,
            monitor: monitor.clone(),
            respawns: status.respawns,
        });
    }
    let document = EmperorDocument {
        version: format!("liege-{}", env!("CARGO_PKG_VERSION")),
        pid: std::process::id() as i32,
        uid,
        gid,
        cwd: std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        emperor: vec![monitor],
        emperor_tyrant: 0,
        throttle_level: throttled,
        vassals,
        blacklist: Vec::new(),
    };
    serde_json::to_vec_pretty(&document).unwrap_or_default()
}
