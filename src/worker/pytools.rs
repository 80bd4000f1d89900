//! uWSGI's Python plugin tools that live in each worker, next to the app (plugins/python/python_plugin.c
//! `uwsgi_python_post_fork` starts them after the app is loaded):
//!
//! - `py-autoreload`: a thread checks the files of the modules in `sys.modules` every N seconds and, when one
//!   changed, asks the master for a graceful reload with SIGHUP, as uWSGI's `uwsgi_python_autoreloader_thread`
//!   does. Every worker watches (with lazy-apps each may have imported different modules), and the master
//!   decides: a request from a worker that a reload is already replacing is not another reload
//!   (`master::core::Core::reload_asked_by`), so one change makes one reload.
//! - `py-tracebacker`: a thread answers on the unix socket `PREFIX<worker id>` with the Python stack of every
//!   thread of this worker.
//! - `reload-on-exception*`: a hook told of each exception the app raises (`python::response`); a matching
//!   one recycles this worker like `max-requests` does: the exit cause goes in the scoreboard, then SIGTERM
//!   to itself, so the requests in flight (the failing one's 500 included) finish before it exits and the
//!   master respawns it.
//!
//! None of this touches the request path: the threads take the GIL only when they run, and the hook is
//! called only on the error path.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use liege_config::python::{PythonFeatures, ReloadOnException};
use liege_config::VassalConfig;
use nix::sys::signal::Signal;
use pyo3::prelude::*;

use crate::scoreboard::{ExitCause, Scoreboard, WorkerSlot};

/// What lives as long as the worker: the tracebacker's socket, removed when the worker ends.
pub struct PyTools {
    tracebacker: Option<TracebackerSocket>,
}

/// Starts what the config asks for; called once the app is loaded (as uWSGI does after `post_fork`).
pub fn start(config: &VassalConfig, worker_id: u32, slot: &'static WorkerSlot) -> PyTools {
    let features: &PythonFeatures = &config.python_features;
    if let Some(interval) = features.autoreload {
        start_autoreloader(interval, features.autoreload_ignore.clone(), worker_id);
    }
    if features.reload_on_exception.is_set() {
        install_exception_hook(features.reload_on_exception.clone(), slot);
    }
    let tracebacker =
        features.tracebacker.as_deref().and_then(|prefix| start_tracebacker(prefix, worker_id, config.chmod_socket));
    PyTools { tracebacker }
}

impl Drop for PyTools {
    fn drop(&mut self) {
        if let Some(socket) = &self.tracebacker {
            socket.remove_if_ours();
        }
    }
}

// -------------------------------------------------------------------------------------------------------------
// py-autoreload

/// The modification time of each file seen so far (uWSGI's `times_dict`).
#[derive(Debug, Default)]
struct Mtimes(HashMap<PathBuf, SystemTime>);

impl Mtimes {
    /// Records the time of each file the first time it is seen and returns the files whose time differs
    /// from the one recorded; the record takes the new time, so a change is reported once. A file whose
    /// time cannot be read (removed, unreadable) is skipped and keeps its record, as in uWSGI.
    fn changed(&mut self, files: impl IntoIterator<Item = (PathBuf, Option<SystemTime>)>) -> Vec<PathBuf> {
        let mut changed = Vec::new();
        for (path, mtime) in files {
            let Some(mtime) = mtime else { continue };
            match self.0.get_mut(&path) {
                None => {
                    self.0.insert(path, mtime);
                }
                Some(recorded) if *recorded != mtime => {
                    *recorded = mtime;
                    changed.push(path);
                }
                Some(_) => {}
            }
        }
        changed
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|meta| meta.modified()).ok()
}

fn start_autoreloader(interval: Duration, ignore: Vec<String>, worker_id: u32) {
    let spawned = std::thread::Builder::new().name("liege-autoreload".to_owned()).spawn(move || {
        // The first look is at once, not after the first period as in uWSGI: an edit made meanwhile would
        // only become the baseline.
        let mut seen = Mtimes::default();
        let mut first = true;
        loop {
            let files = Python::attach(|py| crate::python::introspect::module_files(py, &ignore));
            let changed = seen.changed(files.into_iter().map(|path| {
                let mtime = modified(&path);
                (path, mtime)
            }));
            if first {
                first = false;
                if worker_id == 1 {
                    tracing::info!(
                        "Python auto-reloader enabled: {} module files checked every {} s",
                        seen.0.len(),
                        interval.as_secs()
                    );
                }
            }
            if !changed.is_empty() {
                for path in &changed {
                    tracing::info!("[uwsgi-python-reloader] module/file {} has been modified", path.display());
                }
                forget_bytecode(&changed);
                ask_master_to_reload();
            }
            std::thread::sleep(interval);
        }
    });
    if let Err(err) = spawned {
        tracing::error!("py-autoreload: cannot start the watching thread: {err}");
    }
}

/// Removes the cached bytecode of the changed sources before the reload imports them again: Python trusts a
/// `.pyc` whose recorded source mtime (in whole seconds) and size match, so an edit of the same size within
/// the second of the last compile would be imported as the old code. The cache is rebuilt on import.
fn forget_bytecode(changed: &[PathBuf]) {
    let caches: Vec<PathBuf> = Python::attach(|py| {
        changed
            .iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == "py"))
            .filter_map(|path| crate::python::introspect::bytecode_cache(py, path))
            .collect()
    });
    for cache in caches {
        match std::fs::remove_file(&cache) {
            Ok(()) => tracing::debug!("py-autoreload: removed the stale bytecode {}", cache.display()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!("py-autoreload: cannot remove the stale bytecode {}: {err}", cache.display()),
        }
    }
}

/// SIGHUP to the master (a graceful reload), as uWSGI's reloader does.
fn ask_master_to_reload() {
    let master = Scoreboard::global().map_or(0, |board| board.header().master_pid.load(Ordering::Relaxed));
    if master <= 1 {
        return tracing::error!("py-autoreload: no master to ask for a reload");
    }
    if let Err(err) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(master), Signal::SIGHUP) {
        tracing::error!("py-autoreload: cannot signal the master (pid {master}): {err}");
    }
}

// -------------------------------------------------------------------------------------------------------------
// reload-on-exception

fn install_exception_hook(policy: ReloadOnException, slot: &'static WorkerSlot) {
    let fired = AtomicBool::new(false);
    let installed = crate::python::response::set_exception_hook(Box::new(move |class, value| {
        if !policy.matches(class, value) || fired.swap(true, Ordering::Relaxed) {
            return;
        }
        let what = match value {
            Some(value) if !value.is_empty() => format!("{class}: {value}"),
            _ => class.to_owned(),
        };
        tracing::warn!(
            "reload-on-exception: the app raised {what}; this worker finishes its requests in flight and is replaced"
        );
        slot.set_exit_cause(ExitCause::ReloadOnException);
        let _ = nix::sys::signal::raise(Signal::SIGTERM);
    }));
    if !installed {
        tracing::error!("reload-on-exception: an exception hook was already installed");
    }
}

// -------------------------------------------------------------------------------------------------------------
// py-tracebacker

/// The tracebacker's socket file, and which file it is (a later worker with the same id replaces it).
struct TracebackerSocket {
    path: PathBuf,
    identity: (u64, u64),
}

impl TracebackerSocket {
    /// Removes the socket file unless another worker (a replacement with this id) has put its own there.
    fn remove_if_ours(&self) {
        let same = std::fs::symlink_metadata(&self.path).is_ok_and(|meta| (meta.dev(), meta.ino()) == self.identity);
        if same {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How long a reader that does not read may hold the tracebacker.
const TRACEBACKER_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

fn start_tracebacker(prefix: &str, worker_id: u32, chmod: Option<u32>) -> Option<TracebackerSocket> {
    let path = PathBuf::from(format!("{prefix}{worker_id}"));
    // A socket left by the previous holder of this worker id (or by a crash): replaced, as uWSGI's
    // bind_to_unix does.
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!("py-tracebacker: cannot remove the old {}: {err}", path.display()),
    }
    let listener = match UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("py-tracebacker: cannot listen on {}: {err}", path.display());
            return None;
        }
    };
    if let Some(mode) = chmod {
        use std::os::unix::fs::PermissionsExt;
        if let Err(err) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)) {
            tracing::warn!("py-tracebacker: cannot chmod {}: {err}", path.display());
        }
    }
    let identity = match std::fs::symlink_metadata(&path) {
        Ok(meta) => (meta.dev(), meta.ino()),
        Err(err) => {
            tracing::error!("py-tracebacker: {} vanished: {err}", path.display());
            return None;
        }
    };
    let spawned = std::thread::Builder::new().name("liege-tracebacker".to_owned()).spawn(move || {
        for connection in listener.incoming() {
            let mut stream = match connection {
                Ok(stream) => stream,
                Err(err) => {
                    tracing::warn!("py-tracebacker: accept failed: {err}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let report = Python::attach(crate::python::introspect::thread_stacks);
            match report {
                Ok(text) => {
                    let _ = stream.set_write_timeout(Some(TRACEBACKER_WRITE_TIMEOUT));
                    if let Err(err) = stream.write_all(text.as_bytes()) {
                        tracing::debug!("py-tracebacker: the reader went away: {err}");
                    }
                }
                Err(err) => tracing::warn!("py-tracebacker: cannot read the stacks: {err}"),
            }
        }
    });
    if let Err(err) = spawned {
        tracing::error!("py-tracebacker: cannot start its thread: {err}");
        let _ = std::fs::remove_file(&path);
        return None;
    }
    tracing::info!("python tracebacker for worker {worker_id} available on {}", path.display());
    Some(TracebackerSocket { path, identity })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
    }

    #[test]
    fn the_first_look_records_and_later_changes_are_reported_once() {
        let mut seen = Mtimes::default();
        let a = PathBuf::from("/app/a.py");
        let b = PathBuf::from("/app/b.py");
        assert!(seen.changed([(a.clone(), at(10)), (b.clone(), at(20))]).is_empty(), "a baseline, no change");
        assert!(seen.changed([(a.clone(), at(10)), (b.clone(), at(20))]).is_empty());
        assert_eq!(seen.changed([(a.clone(), at(11)), (b.clone(), at(20))]), std::slice::from_ref(&a));
        assert!(seen.changed([(a.clone(), at(11))]).is_empty(), "the new time is the record now");
        // An earlier time is a change too (a file restored from a backup or a checkout).
        assert_eq!(seen.changed([(b.clone(), at(5))]), std::slice::from_ref(&b));
    }

    #[test]
    fn files_seen_late_get_their_baseline_and_unreadable_ones_are_skipped() {
        let mut seen = Mtimes::default();
        let a = PathBuf::from("/app/a.py");
        let late = PathBuf::from("/app/imported_later.py");
        assert!(seen.changed([(a.clone(), at(10))]).is_empty());
        assert!(seen.changed([(a.clone(), at(10)), (late.clone(), at(99))]).is_empty(), "first sight of a module");
        assert!(seen.changed([(a.clone(), None)]).is_empty(), "removed: nothing to compare");
        assert!(seen.changed([(a.clone(), at(10))]).is_empty(), "back as it was");
        let both = seen.changed([(a.clone(), at(12)), (late.clone(), at(100))]);
        assert_eq!(both, [a, late], "one scan reports every file that changed (then one reload)");
    }
}
