//! A worker process: forked by the master, serves the app on the inherited listening sockets.
//!
//! One tokio `current_thread` runtime per worker; the WSGI app is called inline on that thread (a hand-off to
//! another thread costs more than a hello-world app). All workers accept from the same listening sockets, so
//! a worker busy in Python simply stops accepting and the idle ones take the connections.

mod accept;
mod body;
mod exclusive;
mod harakiri;
mod http;
pub mod log_format;
mod python_runner;
mod pytools;
mod record;
mod request_body;
pub mod request_path;
mod stream;
mod uwsgi;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use liege_config::{Protocol, VassalConfig};
use liege_protocol::http_policy;
use pyo3::prelude::*;
use tokio::sync::{watch, Notify};

use crate::control::handover::{InheritedListener, WorkerSetup, EXIT_APP_LOAD_FAILED};
use crate::python::environ::EnvironSettings;
use crate::scoreboard::{Scoreboard, WorkerSlot, WorkerStatus};
use python_runner::PythonRunner;

/// Request-handling limits, resolved once from the config.
pub struct Limits {
    pub policy: http_policy::Limits,
    pub buffer_size: usize,
    pub post_buffering: usize,
    pub limit_post: u64,
    pub socket_timeout: Duration,
    pub keepalive: Duration,
    /// How long a response write to a TCP client may make no progress: `socket-timeout` (uWSGI waits that long
    /// for a socket to become writable), or `so-send-timeout` when shorter (SO_SNDTIMEO, which uWSGI sets on
    /// TCP sockets only). Unix sockets wait `socket-timeout`.
    pub tcp_write_timeout: Duration,
    /// `post-buffering-bufsize`.
    pub post_buffering_bufsize: usize,
}

impl Limits {
    pub fn from_config(config: &VassalConfig) -> Self {
        Self {
            policy: http_policy::Limits { max_header_count: 100, max_head_bytes: config.buffer_size },
            buffer_size: config.buffer_size,
            post_buffering: config.post_buffering,
            limit_post: config.limit_post,
            socket_timeout: config.socket_timeout,
            keepalive: config.keepalive_timeout,
            tcp_write_timeout: config.so_send_timeout.map_or(config.socket_timeout, |t| t.min(config.socket_timeout)),
            post_buffering_bufsize: config.post_buffering_bufsize,
        }
    }
}

/// Everything a request handler needs, shared by the worker's connections (single thread: `Rc`).
pub struct Worker {
    pub id: u32,
    pub pid: u32,
    pub slot: &'static WorkerSlot,
    /// Index of `slot` in the scoreboard.
    pub slot_index: usize,
    pub python: PythonRunner,
    pub limits: Limits,
    /// Which requests are logged, and how (compiled once from the config).
    pub request_log: log_format::RequestLog,
    pub log_clock: std::cell::RefCell<crate::logging::LocalClock>,
    /// Requests after which this worker recycles itself (`max-requests` + id × `max-requests-delta`, so the
    /// workers don't all restart at once); 0 = never.
    pub max_requests: u64,
    /// `reload-on-rss` in megabytes.
    reload_on_rss: Option<u64>,
    recycling: Cell<bool>,
    /// Set when `harakiri` is on and the app runs inline (one request at a time per worker).
    pub harakiri: Option<std::sync::Arc<harakiri::HarakiriWatch>>,
    /// Static files, routes and header edits (checked by the master at startup).
    pub request_path: request_path::RequestPath,
    /// `ksm = N`: every N requests this worker's mappings are marked mergeable (uWSGI does it after the
    /// request that makes the count a multiple of N).
    ksm: Option<(u64, std::cell::RefCell<crate::process::KsmMapper>)>,
}

impl Worker {
    /// Called after each request: past `max-requests`, stop gracefully (the master starts a fresh worker).
    pub fn request_done(&self, requests: u64) {
        use crate::scoreboard::ExitCause;
        if let Some((every, mapper)) = &self.ksm {
            if requests % every == 0 {
                mapper.borrow_mut().merge();
            }
        }
        let cause = if self.max_requests > 0 && requests >= self.max_requests {
            Some(ExitCause::MaxRequests)
        } else if let Some(limit) = self.reload_on_rss {
            // Checked after every request, as uWSGI does (the master also checks idle workers every second).
            let rss = crate::process::rss_bytes(self.pid as i32).unwrap_or(0);
            self.slot.rss_bytes.store(rss, std::sync::atomic::Ordering::Relaxed);
            (rss / (1024 * 1024) >= limit).then_some(ExitCause::ReloadOnRss)
        } else {
            None
        };
        if let Some(cause) = cause {
            if !self.recycling.replace(true) {
                if cause == ExitCause::ReloadOnRss {
                    tracing::info!("RSS over reload-on-rss after a request; recycling this worker");
                }
                self.slot.set_exit_cause(cause);
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM);
            }
        }
    }
}

/// Runs the worker until it is told to stop; never returns.
pub fn run(setup: WorkerSetup<'_>) -> ! {
    let code = match run_inner(setup) {
        Ok(()) => 0,
        Err(code) => code,
    };
    crate::logging::flush_request_log();
    // SAFETY: _exit skips atexit handlers and stdio flushing inherited from the master, which a forked child
    // must not run twice.
    unsafe { libc::_exit(code) }
}

fn run_inner(setup: WorkerSetup<'_>) -> Result<(), i32> {
    uwsgi_role(setup.id);
    let config = setup.config;
    let slot = Scoreboard::global().and_then(|board| board.slot(setup.slot)).ok_or(1)?;
    slot.pid.store(std::process::id() as i32, std::sync::atomic::Ordering::Relaxed);

    let app = match setup.app {
        Some(app) => app,
        None => crate::python::loader::load_python_app(config).map_err(|_| EXIT_APP_LOAD_FAILED)?,
    };
    if let Some(megabytes) = config.limit_as {
        // RLIMIT_AS: past it allocations fail (MemoryError in Python) instead of the host swapping.
        let bytes = megabytes.saturating_mul(1024 * 1024);
        if let Err(err) = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_AS, bytes, bytes) {
            tracing::warn!("cannot apply limit-as ({megabytes} MB): {err}");
        }
    }
    let worker = Python::attach(|py| -> PyResult<Worker> {
        if config.harakiri.is_some() {
            // On SIGUSR2 (sent by the master before a harakiri kill) the Python stack of every thread goes to
            // the log, from a C signal handler: it works while the app is stuck in Python or in a syscall.
            let faulthandler = py.import("faulthandler")?;
            let signal = py.import("signal")?.getattr("SIGUSR2")?;
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("all_threads", true)?;
            faulthandler.call_method("register", (signal,), Some(&kwargs))?;
        }
        crate::python::uwsgi_module::run_post_fork_hook(py);
        let settings = EnvironSettings {
            multithread: config.threads > 1,
            multiprocess: config.processes > 1,
            file_wrapper: !config.wsgi_disable_file_wrapper,
        };
        Ok(Worker {
            id: setup.id,
            pid: std::process::id(),
            slot,
            slot_index: setup.slot,
            python: PythonRunner::new(py, config.threads, app, &settings)?,
            max_requests: if config.max_requests == 0 {
                0
            } else {
                config.max_requests + u64::from(setup.id) * config.max_requests_delta
            },
            reload_on_rss: config.reload_on_rss,
            recycling: Cell::new(false),
            harakiri: config.harakiri.filter(|_| config.threads <= 1).map(|limit| {
                harakiri::HarakiriWatch::start(
                    slot,
                    limit,
                    config.harakiri_verbose,
                    config.tuning.harakiri_queue_threshold,
                )
            }),
            limits: Limits::from_config(config),
            request_path: request_path::RequestPath::from_config(config)
                .map_err(pyo3::exceptions::PyValueError::new_err)?,
            // Warnings were shown once by the master (`check_request_log`).
            request_log: log_format::RequestLog::new(config).0,
            log_clock: std::cell::RefCell::new(crate::logging::LocalClock::new()),
            ksm: (config.tuning.ksm > 0).then(|| (config.tuning.ksm, Default::default())),
        })
    })
    .map_err(|err| {
        tracing::error!("worker setup failed: {err}");
        1
    })?;
    // py-autoreload, py-tracebacker, reload-on-exception (until the worker ends: the tracebacker's socket).
    let _pytools = pytools::start(config, setup.id, slot);
    let mercy = config.worker_reload_mercy;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|err| {
        tracing::error!("cannot start the event loop: {err}");
        1
    })?;
    let listeners = setup.listeners;
    // The GIL is released while the event loop waits and held only while Python runs.
    Python::attach(|py| {
        py.detach(|| {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, serve(Rc::new(worker), listeners, mercy))
        })
    })
}

/// Compiles the request log format once in the master, to show its warnings (unknown variables) at startup
/// instead of once per worker.
pub fn check_request_log(config: &VassalConfig) {
    for warning in log_format::RequestLog::new(config).1 {
        tracing::warn!("{warning}");
    }
}

/// What the master checks once before forking workers: the request log's warnings, and the request path
/// (routes, static maps), whose errors stop the vassal.
pub fn check_config(config: &VassalConfig) -> Result<(), String> {
    check_request_log(config);
    request_path::check(config)
}

fn uwsgi_role(id: u32) {
    crate::python::uwsgi_module::set_worker_id(id);
    crate::logging::set_worker_role(id);
}

/// Counts open connections so a graceful stop can wait for them, and publishes the count in the scoreboard
/// (other workers read it to balance accepts).
struct ConnectionTracker {
    slot: &'static WorkerSlot,
    open: Cell<usize>,
    idle: Notify,
    /// Notified whenever a connection closes (for the accept loops waiting under the cap).
    closed: Notify,
}

impl ConnectionTracker {
    fn new(slot: &'static WorkerSlot) -> Self {
        Self { slot, open: Cell::new(0), idle: Notify::new(), closed: Notify::new() }
    }

    fn set_open(&self, open: usize) {
        self.open.set(open);
        self.slot.connections.store(open as u32, std::sync::atomic::Ordering::Relaxed);
    }

    fn opened(self: &Rc<Self>) -> ConnectionGuard {
        self.set_open(self.open.get() + 1);
        ConnectionGuard(Rc::clone(self))
    }

    async fn all_closed(&self) {
        while self.open.get() > 0 {
            self.idle.notified().await;
        }
    }
}

struct ConnectionGuard(Rc<ConnectionTracker>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let open = self.0.open.get() - 1;
        self.0.set_open(open);
        self.0.closed.notify_waiters();
        if open == 0 {
            self.0.idle.notify_waiters();
        }
    }
}

async fn serve(worker: Rc<Worker>, listeners: Vec<InheritedListener>, mercy: Duration) -> Result<(), i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let signals = (|| -> std::io::Result<_> {
        Ok((
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::quit())?,
        ))
    })();
    let (mut term, mut hup, mut int, mut quit) = signals.map_err(|err| {
        tracing::error!("cannot install signal handlers: {err}");
        1
    })?;
    let (stop_sender, stop) = watch::channel(false);
    let tracker = Rc::new(ConnectionTracker::new(worker.slot));
    for listener in listeners {
        tokio::task::spawn_local(accept_loop(listener, Rc::clone(&worker), stop.clone(), Rc::clone(&tracker)));
    }
    tokio::task::spawn_local(async {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            crate::logging::flush_request_log();
        }
    });
    worker.slot.set_status(WorkerStatus::Idle);
    tracing::debug!("ready");

    tokio::select! {
        _ = term.recv() => {}
        _ = hup.recv() => {}
        _ = int.recv() => return Ok(()),
        _ = quit.recv() => return Ok(()),
    }
    // Graceful: stop accepting, let in-flight requests finish, close idle keep-alive connections.
    worker.slot.set_status(WorkerStatus::Stopping);
    let _ = stop_sender.send(true);
    tokio::select! {
        _ = tracker.all_closed() => {}
        _ = tokio::time::sleep(mercy) => tracing::warn!("worker-reload-mercy ({mercy:?}) expired with requests in flight"),
        _ = int.recv() => {}
        _ = quit.recv() => {}
    }
    Ok(())
}

async fn accept_loop(
    listener: InheritedListener,
    worker: Rc<Worker>,
    mut stop: watch::Receiver<bool>,
    tracker: Rc<ConnectionTracker>,
) {
    let protocol = listener.protocol;
    let write_timeout =
        if listener.unix_path.is_none() { worker.limits.tcp_write_timeout } else { worker.limits.socket_timeout };
    let accepting = match accept::Listener::new(listener.fd, listener.unix_path, protocol == Protocol::Http) {
        Ok(accepting) => accepting,
        Err(err) => return tracing::error!("cannot use listening socket: {err}"),
    };
    let cap = crate::process::connection_cap();
    loop {
        // Backpressure: at the cap this worker stops accepting; new connections wait in the kernel's queue for
        // a worker with room, instead of failing with EMFILE.
        // Paused, the kernel offers the connections to siblings instead of waking this worker for nothing.
        if tracker.open.get() >= cap {
            if let Err(err) = accepting.pause() {
                tracing::warn!("cannot pause the listener at the connection cap: {err}");
            }
            while tracker.open.get() >= cap {
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => return,
                    _ = tracker.closed.notified() => {}
                }
            }
            if let Err(err) = accepting.resume() {
                tracing::warn!("cannot resume the listener below the connection cap: {err}");
            }
        }
        let connection = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return,
            connection = accepting.accept(worker.slot_index, || tracker.open.get() as u32) => connection,
        };
        match connection {
            Ok((mut stream, info)) => {
                stream.watch_writes(Some(write_timeout), &worker.slot.write_errors);
                let guard = tracker.opened();
                let connection_worker = Rc::clone(&worker);
                let stop = stop.clone();
                tokio::task::spawn_local(async move {
                    let worker = connection_worker;
                    match protocol {
                        Protocol::Http => http::serve(stream, info, worker, stop).await,
                        Protocol::Uwsgi => uwsgi::serve(stream, Rc::from(info.remote_addr.as_str()), worker).await,
                    }
                    drop(guard);
                });
                // Serve the new connection before taking the next one, as a uWSGI worker does: its request is
                // usually there already, and connections still pending were offered to idle siblings too
                // (those that arrived after this worker woke), which take them instead of queueing here.
                tokio::task::yield_now().await;
            }
            Err(err) => {
                // Out of descriptors or memory: back off instead of spinning on the ready socket.
                tracing::warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Identifies a connection within this worker (for per-connection caches on Python threads).
fn next_connection_id() -> u64 {
    thread_local! {
        static NEXT: Cell<u64> = const { Cell::new(1) };
    }
    NEXT.with(|next| {
        let id = next.get();
        next.set(id + 1);
        id
    })
}
