//! The vassal master: binds the sockets, imports the app (preload), forks and supervises the workers.
//!
//! No tokio and no threads here, by design: `fork()` is only safe in a single-threaded process. The master
//! sleeps in `poll(2)` on a signalfd (SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP) with a timer tick, and every
//! decision it takes is visible in its log.
//!
//! Reload (SIGHUP): with preloaded apps the master re-executes itself, keeping the listening sockets and its
//! current workers (they are still its children after `exec`); the new image imports the new code, forks new
//! workers, and only then asks the old ones to finish their requests and exit. No connection is refused and
//! none waits for an import. If the new code fails to import, the old workers keep serving.

pub mod daemons; // feat
pub mod hooks; // feat
pub mod lifecycle; // feat
pub mod sockets;
pub mod stats_server;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use liege_config::master::HookPhase; // feat
use liege_config::VassalConfig;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use pyo3::prelude::*;

use crate::backoff::{Backoff, WORKER_HEALTHY_AFTER};
use crate::control::handover::{
    protocol_name, Inheritance, InheritedListener, WorkerProgram, WorkerSetup, EXIT_APP_LOAD_FAILED, INHERIT_ENV,
};
use crate::control::{Channel, EmperorCommand, VassalMessage, WorkerReport, EMPEROR_FD_ENV};
use crate::python::loader::{load_python_app_with, no_app_placeholder, AppLoadFailed};
use crate::scoreboard::{ExitCause, Scoreboard, WorkerStatus};
use crate::stats::Counters;
use sockets::BoundSocket;
use stats_server::StatsServer;

/// What the stats remember about a worker id across the processes that hold it.
#[derive(Debug, Default)]
struct WorkerHistory {
    /// Processes forked for this id.
    spawns: u64,
    /// Why the last one exited.
    last_exit: Option<&'static str>,
    /// Harakiri kills of the processes that have exited (uWSGI counts them per worker id).
    harakiri: u64,
}

/// Per-slot measurements taken on the stats tick.
#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    memory: Option<crate::process::Memory>,
    pss: Option<u64>,
    /// Requests at the previous tick, and in the second before this one (uWSGI's `delta_requests`).
    requests_before: u64,
    delta_requests: u64,
}

/// A chain reload in progress: workers are replaced one at a time, the next old one retired only once its
/// replacement serves; if a replacement fails to start, the chain stops and the old workers keep serving.
#[derive(Debug)]
struct Chain {
    /// Worker id of the next replacement to start.
    next_id: u32,
    /// Slot of the replacement being waited for.
    waiting_for: Option<usize>,
}

/// A worker slot as the master sees it.
#[derive(Debug)]
struct Slot {
    id: u32,
    pid: Option<Pid>,
    spawned_at: Instant,
    /// When to try again after a crash (backoff for crash loops).
    respawn_at: Option<Instant>,
    /// Crash-loop backoff: grows with each death within [`WORKER_HEALTHY_AFTER`] of spawning.
    backoff: Backoff,
    /// Replaced by a newer generation: not respawned when it exits.
    retiring: bool,
    /// Already told to finish and exit.
    signalled: bool,
    /// Asked to exit by a limit (lifetime, memory); not asked again.
    recycling: bool,
    /// When the harakiri stack dump was requested; the kill follows a moment later.
    harakiri_at: Option<Instant>,
    /// feat: the `harakiri-graceful-signal` was sent (see lifecycle.rs).
    harakiri_graceful_sent: bool,
    /// Since when the worker has served nothing (for `cheaper`), and its request count then.
    idle_since: Instant,
    requests_seen: u64,
}

impl Slot {
    fn new(id: u32, pid: Option<Pid>, respawn_at: Option<Instant>, backoff: Backoff) -> Self {
        let now = Instant::now();
        Self {
            id,
            pid,
            spawned_at: now,
            respawn_at,
            backoff,
            retiring: false,
            signalled: false,
            recycling: false,
            harakiri_at: None,
            harakiri_graceful_sent: false, // feat
            idle_since: now,
            requests_seen: 0,
        }
    }
}

enum Stopping {
    Graceful { deadline: Instant },
    Quick { deadline: Instant },
}

struct Master<'a> {
    config: &'a VassalConfig,
    /// What runs in a forked worker (given by the binary).
    worker: WorkerProgram,
    argv: Vec<OsString>,
    original_cwd: PathBuf,
    sockets: Vec<BoundSocket>,
    app: Option<Py<PyAny>>,
    slots: Vec<Option<Slot>>,
    /// Workers of a previous image (or generation) still finishing, with the signal already sent or not.
    old_workers: HashMap<Pid, bool>,
    stopping: Option<Stopping>,
    started_on: u64,
    /// Loaded at least once in this image (lazy-apps: a worker reported ready).
    ever_ready: bool,
    exit_code_override: Option<i32>,
    /// The emperor's control channel, when an emperor started us.
    control: Option<Channel>,
    /// `Ready` was sent for the current generation.
    announced_ready: bool,
    chain: Option<Chain>,
    /// How many workers should run (`processes`, changed by the master FIFO's `+` and `-`).
    target_workers: u32,
    /// `touch-reload` / `touch-chain-reload` files with the modification time last seen.
    watched: Vec<(PathBuf, Option<std::time::SystemTime>, bool)>,
    fifos: Vec<std::fs::File>,
    stats: Option<StatsServer>,
    /// Counters of workers that have exited (their scoreboard slots are reused).
    retired: Counters,
    /// Worker exits by cause.
    respawns: BTreeMap<String, u64>,
    history: HashMap<u32, WorkerHistory>,
    samples: Vec<Sample>,
    master_memory: Option<crate::process::Memory>,
    listen_queue_errors: u64,
    /// Unix time of the next stats tick (just after a wall-clock second; see [`crate::stats::window`]).
    next_stats_tick: f64,
    stats_ticks: u64,
    // feat: side processes and hooks (daemons.rs, hooks.rs)
    daemons: daemons::Daemons,
    hooks: hooks::Hooks,
}

/// Runs the vassal until it is stopped; returns the process exit code.
pub fn run(config: &VassalConfig, argv: Vec<OsString>, worker: WorkerProgram) -> anyhow::Result<i32> {
    let original_cwd = std::env::current_dir().context("cannot read the current directory")?;
    let inheritance: Inheritance = match std::env::var(INHERIT_ENV) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("invalid {INHERIT_ENV}"))?,
        Err(_) => Inheritance::default(),
    };
    #[allow(clippy::disallowed_methods, reason = "the master is single-threaded: no thread reads the environment")]
    std::env::remove_var(INHERIT_ENV);
    let control = Channel::from_env();
    #[allow(clippy::disallowed_methods, reason = "the master is single-threaded: no thread reads the environment")]
    std::env::remove_var(EMPEROR_FD_ENV);
    let started_on = if inheritance.started_on > 0 { inheritance.started_on } else { crate::process::unix_now() };

    if let Some(path) = &config.logto {
        redirect_output(path)?;
    }
    // feat: hooks (see hooks.rs); asap runs first, the jail phases only on a first start (as uWSGI).
    let hooks = hooks::Hooks::new(&config.master_features.hooks);
    let first_start = inheritance.old_workers.is_empty();
    hooks.run_phases(&[HookPhase::Asap], first_start, &[HookPhase::PreJail, HookPhase::InJail, HookPhase::PostJail])?;
    // `env = KEY=VALUE` options, set before Python starts (and before any worker thread exists).
    #[allow(clippy::disallowed_methods, reason = "the master is single-threaded: no thread reads the environment")]
    for (key, value) in &config.env {
        std::env::set_var(key, value);
    }
    if let Some(dir) = &config.chdir {
        std::env::set_current_dir(dir).with_context(|| format!("chdir {}", dir.display()))?;
    }
    if config.threads > 1 {
        // (each worker feeds them from its event loop)
        tracing::info!("{} Python threads per worker", config.threads);
    }
    if !config.master {
        tracing::info!("liege always runs a master process; 'master = false' is ignored");
    }
    (worker.check_config)(config).map_err(anyhow::Error::msg)?;
    crate::process::raise_open_files_limit();
    if let Some(n) = config.master_features.max_fd {
        lifecycle::set_max_fd(n)?; // feat
    }
    let sockets =
        sockets::open_all(&config.sockets, config.listen, sockets::UnixSocketAccess::of(config), inheritance.sockets)?;
    for socket in &sockets {
        tracing::info!("{} socket bound to {}", protocol_name(socket.protocol), socket.name);
    }
    if let Some(pidfile) = &config.pidfile {
        std::fs::write(pidfile, format!("{}\n", std::process::id()))
            .with_context(|| format!("pidfile {}", pidfile.display()))?;
    }
    let stats = match &config.stats {
        None => None,
        Some(address) => match StatsServer::bind(address, config.stats_http) {
            Ok(server) => {
                tracing::info!("stats server on {}{}", server.name(), if config.stats_http { " (HTTP)" } else { "" });
                Some(server)
            }
            // After a reload the workers keep serving even if the stats address was taken meanwhile.
            Err(err) if !inheritance.old_workers.is_empty() => {
                tracing::error!("no stats server: {err}");
                None
            }
            Err(err) => return Err(anyhow::Error::new(err).context("stats server")),
        },
    };
    hooks.run_phases(&[], nix::unistd::Uid::effective().is_root(), &[HookPhase::AsRoot])?; // feat
    drop_privileges(config)?;
    hooks.run(HookPhase::AsUser)?; // feat

    let board = Scoreboard::install(config.processes as usize * 2)?;
    crate::cache::install(&config.caches)?;
    let reloading = !inheritance.old_workers.is_empty();
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGHUP] {
        signals.add(signal);
    }
    signals.thread_block().context("cannot block signals")?;
    let signal_fd =
        SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).context("signalfd")?;

    let app = if config.lazy_apps {
        None
    } else {
        hooks.run(HookPhase::PreApp)?; // feat
        match load_python_app_with(config, started_on) {
            Ok(app) => {
                hooks.run(HookPhase::PostApp)?; // feat
                Some(app)
            }
            Err(AppLoadFailed) if reloading => {
                tracing::error!("reload failed: the app did not load; the previous workers keep serving");
                None
            }
            Err(AppLoadFailed) if !config.need_app => Some(no_app_placeholder()?),
            Err(AppLoadFailed) => return Ok(EXIT_APP_LOAD_FAILED),
        }
    };
    let _ = board;

    let mut master = Master {
        config,
        worker,
        argv,
        original_cwd,
        sockets,
        app,
        slots: (0..config.processes as usize * 2).map(|_| None).collect(),
        old_workers: inheritance.old_workers.into_iter().map(|pid| (Pid::from_raw(pid), false)).collect(),
        stopping: None,
        started_on,
        ever_ready: false,
        exit_code_override: None,
        control,
        announced_ready: false,
        chain: None,
        target_workers: config.cheaper.as_ref().map_or(config.processes, |c| c.initial),
        watched: config
            .touch_reload
            .iter()
            .map(|p| (p.clone(), false))
            .chain(config.touch_chain_reload.iter().map(|p| (p.clone(), true)))
            .map(|(path, chain)| {
                let mtime = modified(&path);
                (path, mtime, chain)
            })
            .collect(),
        fifos: open_fifos(&config.master_fifo),
        stats,
        retired: inheritance.counters.unwrap_or_default(),
        respawns: inheritance.respawns,
        history: HashMap::new(),
        samples: vec![Sample::default(); config.processes as usize * 2],
        master_memory: None,
        listen_queue_errors: 0,
        next_stats_tick: 0.0,
        stats_ticks: 0,
        daemons: daemons::Daemons::new(&config.master_features.daemons, config.reload_mercy), // feat
        hooks,                                                                                // feat
    };
    master.hooks.run(HookPhase::MasterStart)?; // feat
    master.daemons.tick(Instant::now()); // feat: start the daemons
    if reloading && master.app.is_none() && !config.lazy_apps {
        master.notify(&VassalMessage::ReloadFailed { error: "the app did not load; see the log".into() });
    }
    if inheritance.chain && reloading && master.app.is_some() {
        tracing::info!("chain reload: replacing the previous workers one at a time");
        master.chain = Some(Chain { next_id: 1, waiting_for: None });
    } else if master.app.is_some() || config.lazy_apps {
        for index in 0..master.target_workers as usize {
            master.spawn(index, index as u32 + 1);
        }
    }
    tracing::info!(
        "serving with {} worker(s){}",
        config.processes,
        if config.lazy_apps { " (lazy-apps)" } else { " (app preloaded)" }
    );
    Ok(master.run_loop(&signal_fd))
}

impl Master<'_> {
    fn run_loop(&mut self, signal_fd: &SignalFd) -> i32 {
        loop {
            let busy = self.stopping.is_some()
                || self.chain.is_some()
                // An emperor waits for `ready` before routing a reload's traffic: report it promptly.
                || (self.control.is_some() && !self.announced_ready)
                || self.old_workers.values().any(|signalled| !signalled)
                || self.slots.iter().flatten().any(|s| s.retiring && !s.signalled)
                || self.slots.iter().flatten().any(|s| s.respawn_at.is_some() || s.harakiri_at.is_some());
            let mut timeout = Duration::from_millis(if busy { 50 } else { 1000 });
            let until_tick = self.next_stats_tick - crate::process::unix_time();
            timeout = timeout.min(Duration::from_secs_f64(until_tick.clamp(0.0, 1.0)));
            if let Some(deadline) = self.stats.as_ref().and_then(StatsServer::next_deadline) {
                timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
            }
            let timeout = u16::try_from(timeout.as_millis() + 1).unwrap_or(1000);
            let mut control_readable = false;
            {
                let mut fds = vec![nix::poll::PollFd::new(signal_fd.as_fd(), nix::poll::PollFlags::POLLIN)];
                for fifo in &self.fifos {
                    fds.push(nix::poll::PollFd::new(fifo.as_fd(), nix::poll::PollFlags::POLLIN));
                }
                if let Some(stats) = &self.stats {
                    fds.extend(stats.poll_fds().into_iter().map(|(fd, flags)| nix::poll::PollFd::new(fd, flags)));
                }
                if let Some(control) = &self.control {
                    fds.push(nix::poll::PollFd::new(control.fd(), nix::poll::PollFlags::POLLIN));
                }
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(timeout));
                if self.control.is_some() {
                    if let Some(events) = fds.last().and_then(|fd| fd.revents()) {
                        control_readable = !events.is_empty();
                    }
                }
            }
            if control_readable {
                self.handle_control();
            }
            if let Some(mut stats) = self.stats.take() {
                stats.serve(|| self.uwsgi_stats_document());
                self.stats = Some(stats);
            }
            self.read_fifos();
            while let Ok(Some(info)) = signal_fd.read_signal() {
                // feat: a `unix_signal` hook may give the signal another meaning
                if let Some(action) = self.hooks.signal_action(info.ssi_signo as i32) {
                    self.signal_hook(action);
                    continue;
                }
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {}
                    Ok(Signal::SIGTERM) => self.begin_stop(true),
                    Ok(Signal::SIGINT) | Ok(Signal::SIGQUIT) => self.begin_stop(false),
                    Ok(Signal::SIGHUP) => self.reload(),
                    _ => {}
                }
            }
            self.reap();
            if let Some(code) = self.tick() {
                self.send_heartbeat(crate::process::unix_time());
                self.notify(&VassalMessage::Stopping);
                self.cleanup();
                return code;
            }
            self.report();
        }
    }

    /// feat: what a `unix_signal` hook bound a signal to.
    fn signal_hook(&mut self, action: liege_config::master::SignalAction) {
        use liege_config::master::SignalAction;
        match action {
            SignalAction::GracefulStop => self.begin_stop(true),
            SignalAction::QuickStop => self.begin_stop(false),
            SignalAction::GracefulReload => self.reload(),
            SignalAction::BrutalReload => {
                self.signal_all(Signal::SIGKILL);
                self.reload();
            }
        }
    }

    /// Sends a message to the emperor, if there is one; never blocks.
    fn notify(&self, message: &VassalMessage) {
        if let Some(control) = &self.control {
            if let Err(err) = control.send(message) {
                tracing::debug!("emperor channel: {err}");
            }
        }
    }

    fn handle_control(&mut self) {
        let Some(control) = self.control.as_mut() else { return };
        match control.receive::<EmperorCommand>() {
            Ok(commands) => {
                for command in commands {
                    match command {
                        Ok(EmperorCommand::Reload) => self.reload(),
                        Ok(EmperorCommand::ChainReload) => self.reload_with(true),
                        Ok(EmperorCommand::Stop) => self.begin_stop(true),
                        Ok(EmperorCommand::QuickStop) => self.begin_stop(false),
                        Err(err) => tracing::warn!("ignoring a malformed emperor command: {err}"),
                    }
                }
            }
            Err(_) => {
                // The emperor is gone: a vassal must not outlive it (no orphans holding its sockets).
                tracing::warn!("the emperor went away; stopping gracefully");
                self.control = None;
                self.begin_stop(true);
            }
        }
    }

    /// The current workers (not those of a generation being retired), by slot index.
    fn current_workers(&self) -> impl Iterator<Item = (usize, &Slot, Pid)> + '_ {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let slot = slot.as_ref()?;
            Some((index, slot, slot.pid?))
        })
    }

    fn worker_reports(&self) -> Vec<WorkerReport> {
        use std::sync::atomic::Ordering::Relaxed;
        let board = Scoreboard::global();
        let now_us = (crate::process::unix_time() * 1e6) as u64;
        self.current_workers()
            .map(|(index, slot, pid)| {
                let counters = board.and_then(|b| b.slot(index));
                let sample = self.samples.get(index).copied().unwrap_or_default();
                let history = self.history.get(&slot.id);
                let requests = counters.map_or(0, |c| c.requests.load(Relaxed));
                let running_us = counters.map_or(0, |c| c.running_time_us.load(Relaxed));
                WorkerReport {
                    id: slot.id,
                    pid: pid.as_raw(),
                    status: counters.map_or("starting", |c| c.status().as_str()).to_owned(),
                    requests,
                    exceptions: counters.map_or(0, |c| c.exceptions.load(Relaxed)),
                    rss_bytes: sample.memory.map(|m| m.rss),
                    pss_bytes: sample.pss,
                    last_spawn: counters.map(|c| c.last_spawn_s.load(Relaxed)),
                    respawn_count: history.map_or(1, |h| h.spawns),
                    respawn_cause: history.and_then(|h| h.last_exit).map(str::to_owned),
                    harakiri_count: history.map_or(0, |h| h.harakiri)
                        + counters.map_or(0, |c| c.harakiri_count.load(Relaxed)),
                    avg_rt_ms: (requests > 0).then(|| running_us as f64 / requests as f64 / 1000.0),
                    current_request: counters.and_then(|c| {
                        let started = c.request_started_us.load(Relaxed);
                        (started > 0 && c.status() == WorkerStatus::Busy).then(|| crate::control::CurrentRequest {
                            line: String::from_utf8_lossy(&c.request_line().unwrap_or_default()).into_owned(),
                            running_ms: now_us.saturating_sub(started) as f64 / 1000.0,
                        })
                    }),
                }
            })
            .collect()
    }

    /// The whole group's counters: exited workers plus live ones.
    fn group_counters(&self) -> Counters {
        let mut total = self.retired.clone();
        if let Some(board) = Scoreboard::global() {
            for slot in board.slots() {
                total.add_slot(slot);
            }
        }
        total
    }

    /// Tells the emperor when the current generation is serving; samples memory and sends a heartbeat just
    /// after every wall-clock second.
    fn report(&mut self) {
        let now = crate::process::unix_time();
        if now >= self.next_stats_tick {
            // Stamped with the time it was due, not the time it ran: a heartbeat a busy machine delays by a
            // few hundred ms still books its requests to the second it covers.
            let due = if self.next_stats_tick > 0.0 { self.next_stats_tick } else { now };
            self.next_stats_tick = now.floor() + 1.005;
            self.stats_tick();
            if self.stopping.is_none() {
                self.send_heartbeat(due);
            }
        }
        if self.stopping.is_some() || self.announced_ready {
            return;
        }
        let board = Scoreboard::global();
        let current: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].as_ref().is_some_and(|s| !s.retiring && s.pid.is_some()))
            .collect();
        let all_serving = current.len() == self.config.processes as usize
            && current.iter().all(|&i| {
                board
                    .and_then(|b| b.slot(i))
                    .is_some_and(|b| matches!(b.status(), WorkerStatus::Idle | WorkerStatus::Busy))
            });
        if all_serving {
            self.announced_ready = true;
            self.notify(&VassalMessage::Ready { pid: std::process::id() as i32, workers: self.worker_reports() });
            crate::systemd::ready(&format!("serving with {} worker(s)", self.config.processes));
        }
    }

    /// Once a second: memory of every process (PSS every 5 s: it walks page tables), requests per worker in
    /// the last second, and a full accept queue counted as uWSGI counts it.
    fn stats_tick(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats_ticks += 1;
        let with_pss = self.stats_ticks % 5 == 1;
        let board = Scoreboard::global();
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(sample) = self.samples.get_mut(index) else { continue };
            let Some(pid) = slot.as_ref().and_then(|s| s.pid) else {
                *sample = Sample::default();
                continue;
            };
            sample.memory = crate::process::memory(pid.as_raw());
            if let (Some(memory), Some(counters)) = (sample.memory, board.and_then(|b| b.slot(index))) {
                counters.rss_bytes.store(memory.rss, Relaxed);
            }
            if with_pss {
                sample.pss = crate::process::pss_bytes(pid.as_raw());
            }
            let requests = board.and_then(|b| b.slot(index)).map_or(0, |c| c.requests.load(Relaxed));
            sample.delta_requests = requests.saturating_sub(sample.requests_before);
            sample.requests_before = requests;
        }
        self.master_memory = crate::process::memory(std::process::id() as i32);
        if let Some((queued, limit)) = self.sockets.iter().find_map(|s| crate::stats::uwsgi::listen_queue(s.fd.as_fd()))
        {
            if limit > 0 && queued >= limit {
                self.listen_queue_errors += 1;
            }
        }
    }

    /// Sends the workers and the group's counters, stamped `time`.
    fn send_heartbeat(&self, time: f64) {
        if self.control.is_none() {
            return;
        }
        let workers = self.worker_reports();
        let rss_bytes = self.master_memory.map(|m| m.rss + workers.iter().filter_map(|w| w.rss_bytes).sum::<u64>());
        let counters = self.group_counters();
        self.notify(&VassalMessage::Heartbeat {
            pid: std::process::id() as i32,
            requests: counters.requests,
            workers,
            time,
            counters: Some(Box::new(counters)),
            rss_bytes,
            respawns: self.respawns.clone(),
            daemons: self.daemons.reports(), // feat
        });
    }

    /// uWSGI's stats document (see [`crate::stats::uwsgi`]).
    fn uwsgi_stats_document(&self) -> Vec<u8> {
        use crate::stats::uwsgi;
        use std::sync::atomic::Ordering::Relaxed;
        let board = Scoreboard::global();
        let mut workers: Vec<uwsgi::Worker> = Vec::new();
        for (index, slot, pid) in self.current_workers().filter(|(_, slot, _)| !slot.retiring) {
            let Some(counters) = board.and_then(|b| b.slot(index)) else { continue };
            let sample = self.samples.get(index).copied().unwrap_or_default();
            let status = match counters.status() {
                WorkerStatus::Idle => "idle",
                WorkerStatus::Busy => "busy",
                WorkerStatus::Stopping => "busy",
                WorkerStatus::Starting | WorkerStatus::Free => "cheap",
            };
            let mut worker = uwsgi::Worker::new(
                slot.id,
                pid.as_raw(),
                status,
                counters.requests.load(Relaxed),
                counters.exceptions.load(Relaxed),
                counters.running_time_us.load(Relaxed),
                counters.bytes_out.load(Relaxed),
            );
            worker.delta_requests = sample.delta_requests;
            worker.harakiri_count =
                self.history.get(&slot.id).map_or(0, |h| h.harakiri) + counters.harakiri_count.load(Relaxed);
            worker.rss = sample.memory.map_or(0, |m| m.rss);
            worker.vsz = sample.memory.map_or(0, |m| m.vsz);
            worker.last_spawn = counters.last_spawn_s.load(Relaxed);
            worker.respawn_count = self.history.get(&slot.id).map_or(1, |h| h.spawns);
            workers.push(worker);
        }
        // Worker ids with no process right now (cheaper mode, or waiting to respawn) show as uWSGI shows them.
        for id in 1..=self.config.processes {
            if !workers.iter().any(|w| w.id == id) {
                let mut worker = uwsgi::Worker::new(id, 0, "cheap", 0, 0, 0, 0);
                worker.respawn_count = self.history.get(&id).map_or(0, |h| h.spawns);
                workers.push(worker);
            }
        }
        workers.sort_by_key(|w| w.id);
        let sockets: Vec<uwsgi::Socket> = self
            .sockets
            .iter()
            .map(|socket| {
                let (queue, max_queue) = uwsgi::listen_queue(socket.fd.as_fd()).unwrap_or((0, 0));
                uwsgi::Socket {
                    name: socket.name.clone(),
                    proto: protocol_name(socket.protocol).to_owned(),
                    queue,
                    max_queue,
                    shared: 0,
                    can_offload: 0,
                }
            })
            .collect();
        let document = uwsgi::Document {
            version: format!("liege-{}", env!("CARGO_PKG_VERSION")),
            listen_queue: sockets.first().map_or(0, |s| s.queue),
            listen_queue_errors: self.listen_queue_errors,
            signal_queue: 0,
            load: workers.iter().filter(|w| w.status == "busy").count() as u64,
            pid: std::process::id() as i32,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            cwd: std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
            locks: Vec::new(),
            caches: crate::cache::stats_entries(),
            sockets,
            workers,
        };
        serde_json::to_vec_pretty(&document).unwrap_or_default()
    }

    /// Forks a worker into `index` with worker id `id`.
    fn spawn(&mut self, index: usize, id: u32) {
        if !self.config.lazy_apps && self.app.is_none() {
            tracing::error!("cannot start worker {id}: the app is not loaded (send SIGHUP to retry)");
            return;
        }
        let Some(board_slot) = Scoreboard::global().and_then(|b| b.slot(index)) else { return };
        board_slot.reset(id, crate::process::unix_now());
        let preload = !self.config.lazy_apps;
        // Taken before the fork: a child that asked getppid() after it could see 1 if the master died in
        // between, and would then never notice it was orphaned.
        let master_pid = std::process::id() as i32;
        // SAFETY: the master is single-threaded (no tokio, no threads), so fork is safe. With Python loaded,
        // CPython's own fork hooks keep its locks and state consistent (PyOS_BeforeFork/AfterFork_*),
        // e.g. reseeding `random` and resetting the import lock; the GIL is held across them.
        let forked = unsafe {
            if preload {
                pyo3::ffi::PyOS_BeforeFork();
            }
            nix::unistd::fork()
        };
        match forked {
            Ok(ForkResult::Child) => {
                // First of all: die with the master (before any Python code can run and take time).
                crate::process::become_child_of(master_pid);
                // The emperor's channel is the master's alone; a worker holding it open would hide the
                // master's death from the emperor.
                if let Some(control) = &self.control {
                    // SAFETY: this child never uses or drops `self.control`; closing its copy of the fd is all.
                    unsafe { libc::close(control.fd().as_raw_fd()) };
                }
                if let Some(stats) = &self.stats {
                    stats.close_in_child();
                }
                if preload {
                    // SAFETY: see above; we are the only thread in the child, which still holds the GIL the
                    // parent took for PyOS_BeforeFork.
                    unsafe { pyo3::ffi::PyOS_AfterFork_Child() };
                }
                let listeners = self
                    .sockets
                    .iter()
                    .filter_map(|s| {
                        Some(InheritedListener {
                            protocol: s.protocol,
                            fd: s.fd.try_clone().ok()?,
                            unix_path: s.unix_path.as_ref().map(|p| p.display().to_string()),
                        })
                    })
                    .collect();
                // feat: per-worker hooks (post-fork, accepting*, and pre-app with lazy-apps)
                self.hooks.run_worker_phases(id, self.history.get(&id).map_or(0, |h| h.spawns) + 1, !preload);
                // (lazy-apps: no interpreter in the master, nothing to hand over)
                let app = self.app.as_ref().map(|app| Python::attach(|py| app.clone_ref(py)));
                (self.worker.run)(WorkerSetup { id, slot: index, config: self.config, listeners, app })
            }
            Ok(ForkResult::Parent { child }) => {
                if preload {
                    // SAFETY: pairs the PyOS_BeforeFork above, in the same (only) thread, GIL still held.
                    unsafe { pyo3::ffi::PyOS_AfterFork_Parent() };
                }
                board_slot.pid.store(child.as_raw(), std::sync::atomic::Ordering::Relaxed);
                let backoff = self.slots[index].as_ref().map_or_else(worker_backoff, |s| s.backoff.clone());
                self.history.entry(id).or_default().spawns += 1;
                self.slots[index] = Some(Slot::new(id, Some(child), None, backoff));
                tracing::info!("spawned worker {id} (pid {child})");
                self.notify(&VassalMessage::WorkerSpawned { id, pid: child.as_raw() });
            }
            Err(err) => {
                if preload {
                    // SAFETY: the fork failed, so this is still the parent: undo PyOS_BeforeFork as CPython
                    // requires (same thread, GIL still held).
                    unsafe { pyo3::ffi::PyOS_AfterFork_Parent() };
                }
                tracing::error!("cannot fork worker {id}: {err}; retrying in 1 s");
                self.slots[index] =
                    Some(Slot::new(id, None, Some(Instant::now() + Duration::from_secs(1)), worker_backoff()));
            }
        }
    }

    /// Collects every exited child and decides what follows.
    fn reap(&mut self) {
        self.refresh_ever_ready();
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => status,
            };
            let Some(pid) = status.pid() else { continue };
            let mut how = crate::process::describe_exit(status);
            if self.old_workers.remove(&pid).is_some() {
                tracing::info!("previous worker (pid {pid}) {how}");
                continue;
            }
            let Some(index) = self.slots.iter().position(|s| s.as_ref().is_some_and(|s| s.pid == Some(pid))) else {
                // feat: a side process?
                match self.daemons.reaped(pid.as_raw(), &how, Instant::now()) {
                    Some(daemons::Follow::StopVassal) => self.begin_stop(true),
                    Some(daemons::Follow::Nothing) => {}
                    None => tracing::debug!("unknown child {pid} {how}"),
                }
                continue;
            };
            let mut cause = ExitCause::Unplanned;
            let mut harakiri = 0;
            if let Some(board) = Scoreboard::global() {
                if let Some(slot) = board.slot(index) {
                    cause = slot.exit_cause();
                    // The worker is gone: its counters move to the group's retired totals and the slot is
                    // cleared for the next worker.
                    self.retired.add_slot(slot);
                    harakiri = slot.harakiri_count.load(std::sync::atomic::Ordering::Relaxed);
                    let served = slot.requests.load(std::sync::atomic::Ordering::Relaxed);
                    board.header().retired_requests.fetch_add(served, std::sync::atomic::Ordering::Relaxed);
                    slot.clear_counters();
                    slot.set_status(WorkerStatus::Free);
                }
            }
            let Some(slot) = self.slots[index].as_mut() else { continue };
            slot.pid = None;
            let id = slot.id;
            let retiring = slot.retiring;
            let recorded_cause = if retiring { "reload" } else { cause.as_str() };
            if self.stopping.is_none() {
                *self.respawns.entry(recorded_cause.to_owned()).or_default() += 1;
            }
            let history = self.history.entry(id).or_default();
            history.last_exit = Some(recorded_cause);
            history.harakiri += harakiri;
            let reported = match (retiring, cause) {
                (true, _) => format!("reload ({how})"),
                (false, ExitCause::Unplanned) => how.clone(),
                (false, cause) => format!("{} ({how})", cause.as_str()),
            };
            self.notify(&VassalMessage::WorkerExited { id, pid: pid.as_raw(), cause: reported });
            let Some(slot) = self.slots[index].as_mut() else { continue };
            if slot.retiring || self.stopping.is_some() {
                let why = if self.stopping.is_some() { "stop" } else { cause.as_str() };
                tracing::info!("worker {id} (pid {pid}) {how} ({why})");
                self.slots[index] = None;
                continue;
            }
            if cause != ExitCause::Unplanned {
                // A planned recycle: log why, respawn at once, and don't count it as a crash.
                how = format!("{how} ({})", cause.as_str());
                let level_warn = cause == ExitCause::Harakiri || cause == ExitCause::EvilReloadOnRss;
                if level_warn {
                    tracing::warn!("worker {id} (pid {pid}) {how}; respawning");
                } else {
                    tracing::info!("worker {id} (pid {pid}) {how}; respawning");
                }
                slot.backoff.reset();
                slot.respawn_at = Some(Instant::now());
                continue;
            }
            let lived = slot.spawned_at.elapsed();
            if self.chain.as_ref().is_some_and(|c| c.waiting_for == Some(index)) {
                // The replacement died before serving: stop the chain, the old workers keep serving.
                tracing::error!(
                    "chain reload stopped: new worker {id} (pid {pid}) {how}; the previous workers keep serving"
                );
                self.notify(&VassalMessage::ReloadFailed { error: format!("new worker {id} {how}") });
                self.slots[index] = None;
                self.abort_chain();
                continue;
            }
            let load_failed = matches!(status, WaitStatus::Exited(_, EXIT_APP_LOAD_FAILED));
            if load_failed && !self.ever_ready && self.config.need_app {
                tracing::error!("worker {id} (pid {pid}) could not load the app; giving up");
                self.begin_stop(false);
                self.exit_code_override = Some(EXIT_APP_LOAD_FAILED);
                continue;
            }
            // Crash loops back off exponentially instead of fork-bombing; a worker that lived a while starts over.
            let delay = if lived < WORKER_HEALTHY_AFTER {
                slot.backoff.next_delay()
            } else {
                slot.backoff.reset();
                Duration::ZERO
            };
            if delay.is_zero() {
                tracing::warn!("worker {id} (pid {pid}) {how}; respawning");
            } else {
                tracing::warn!("worker {id} (pid {pid}) {how}; respawning too fast, waiting {delay:?}");
            }
            slot.respawn_at = Some(Instant::now() + delay);
        }
    }

    /// Lazy-apps: has any worker of this image got past loading the app? (Before that, a load failure means
    /// the app is broken and the vassal gives up; after it, a failing worker is respawned with backoff.)
    fn refresh_ever_ready(&mut self) {
        if self.ever_ready {
            return;
        }
        let board = Scoreboard::global();
        self.ever_ready = self.slots.iter().enumerate().any(|(i, s)| {
            s.as_ref().is_some_and(|s| s.pid.is_some())
                && board
                    .and_then(|b| b.slot(i))
                    .is_some_and(|b| matches!(b.status(), WorkerStatus::Idle | WorkerStatus::Busy))
        });
    }

    /// Periodic work; returns the exit code once the master should exit.
    fn tick(&mut self) -> Option<i32> {
        let now = Instant::now();
        let board = Scoreboard::global();
        self.refresh_ever_ready();
        self.daemons.tick(now); // feat
        if let Some(stopping) = &self.stopping {
            let deadline = match stopping {
                Stopping::Graceful { deadline } | Stopping::Quick { deadline } => *deadline,
            };
            let alive = self.slots.iter().flatten().any(|s| s.pid.is_some()) || !self.old_workers.is_empty();
            if !alive {
                return Some(self.exit_code_override.unwrap_or(0));
            }
            let was_quick = matches!(stopping, Stopping::Quick { .. });
            if now >= deadline {
                tracing::warn!("workers still running after the mercy period; killing them");
                self.signal_all(Signal::SIGKILL);
                self.stopping = Some(Stopping::Quick { deadline: now + Duration::from_secs(5) });
                if was_quick {
                    return Some(self.exit_code_override.unwrap_or(0));
                }
            }
            return None;
        }
        self.enforce_limits(now);
        self.check_touched_files();
        self.advance_chain();
        self.adapt_worker_count(now);
        self.scale_to_target();
        let due: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref().filter(|s| s.pid.is_none() && s.respawn_at.is_some_and(|at| at <= now)).map(|_| i)
            })
            .collect();
        for index in due {
            let id = self.slots[index].as_ref().map_or(index as u32 + 1, |s| s.id);
            self.spawn(index, id);
        }
        // Retire the previous generation once every current worker is serving.
        let waiting_retire = self.chain.is_none() && self.old_workers.values().any(|signalled| !signalled)
            || self.chain.is_none()
                && self.slots.iter().flatten().any(|s| s.retiring && !s.signalled && s.pid.is_some());
        if waiting_retire {
            let current: Vec<usize> = (0..self.slots.len())
                .filter(|&i| self.slots[i].as_ref().is_some_and(|s| !s.retiring && s.pid.is_some()))
                .collect();
            let ready = !current.is_empty()
                && current.iter().all(|&i| {
                    board
                        .and_then(|b| b.slot(i))
                        .is_some_and(|b| matches!(b.status(), WorkerStatus::Idle | WorkerStatus::Busy))
                });
            if ready {
                for (pid, signalled) in self.old_workers.iter_mut().filter(|(_, s)| !**s) {
                    let _ = kill(*pid, Signal::SIGTERM);
                    *signalled = true;
                }
                for slot in self.slots.iter_mut().flatten().filter(|s| s.retiring && !s.signalled) {
                    if let Some(pid) = slot.pid {
                        let _ = kill(pid, Signal::SIGTERM);
                    }
                    slot.signalled = true;
                }
                tracing::info!("new workers ready; previous workers are finishing their requests");
            }
        }
        None
    }

    /// Lifetime, memory and harakiri limits, checked every tick for every serving worker.
    fn enforce_limits(&mut self, now: Instant) {
        let config = self.config;
        let Some(board) = Scoreboard::global() else { return };
        let now_us =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot.as_mut().filter(|s| !s.retiring) else { continue };
            let (Some(pid), Some(counters)) = (slot.pid, board.slot(index)) else { continue };
            if let Some(harakiri) = config.harakiri {
                let started = counters.request_started_us.load(std::sync::atomic::Ordering::Relaxed);
                let stuck_for = Duration::from_micros(now_us.saturating_sub(started));
                match slot.harakiri_at {
                    None if started > 0 && stuck_for > harakiri => {
                        let line = counters
                            .request_line()
                            .map(|l| String::from_utf8_lossy(&l).into_owned())
                            .unwrap_or_default();
                        tracing::error!(
                            "HARAKIRI: worker {} (pid {pid}) stuck for {:.1} s (harakiri = {} s) in request \"{line}\"; its Python stack follows",
                            slot.id,
                            stuck_for.as_secs_f64(),
                            harakiri.as_secs()
                        );
                        counters.set_exit_cause(ExitCause::Harakiri);
                        counters.harakiri_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let _ = kill(pid, Signal::SIGUSR2);
                        slot.harakiri_at = Some(now);
                    }
                    // Give faulthandler a moment to write the stack, then kill (feat: or first the
                    // harakiri-graceful-signal, see lifecycle.rs).
                    Some(at) => match lifecycle::harakiri_step(
                        now.duration_since(at),
                        config.master_features.harakiri_graceful_timeout,
                        slot.harakiri_graceful_sent,
                    ) {
                        lifecycle::HarakiriStep::Kill => {
                            let _ = kill(pid, Signal::SIGKILL);
                        }
                        lifecycle::HarakiriStep::Graceful => {
                            let signal = config.master_features.harakiri_graceful_signal;
                            tracing::warn!(
                                "HARAKIRI: graceful termination attempt on worker {} with signal {signal}",
                                slot.id
                            );
                            if let Ok(signal) = Signal::try_from(signal) {
                                let _ = kill(pid, signal);
                            }
                            slot.harakiri_graceful_sent = true;
                        }
                        lifecycle::HarakiriStep::Wait => {}
                    },
                    _ => {}
                }
            }
            if slot.recycling {
                continue;
            }
            let mut recycle = |cause: ExitCause, signal: Signal, why: String| {
                tracing::info!("worker {} (pid {pid}): {why}; recycling it", slot.id);
                counters.set_exit_cause(cause);
                let _ = kill(pid, signal);
                slot.recycling = true;
            };
            if let Some(lifetime) = config.max_worker_lifetime {
                if slot.spawned_at.elapsed() >= lifetime {
                    recycle(
                        ExitCause::MaxWorkerLifetime,
                        Signal::SIGTERM,
                        format!("max-worker-lifetime ({} s) reached", lifetime.as_secs()),
                    );
                    continue;
                }
            }
            // feat: reload-on-as (lifecycle.rs)
            if let Some(memory) = config.master_features.reload_on_as.and_then(|_| crate::process::memory(pid.as_raw()))
            {
                if lifecycle::over_address_space(memory.vsz, config.master_features.reload_on_as) {
                    let megabytes = memory.vsz / (1024 * 1024);
                    recycle(
                        ExitCause::ReloadOnAs,
                        Signal::SIGTERM,
                        format!("address space {megabytes} MB over reload-on-as"),
                    );
                    continue;
                }
            }
            if config.reload_on_rss.is_some() || config.evil_reload_on_rss.is_some() {
                let rss = crate::process::rss_bytes(pid.as_raw()).unwrap_or(0);
                counters.rss_bytes.store(rss, std::sync::atomic::Ordering::Relaxed);
                let megabytes = rss / (1024 * 1024);
                if config.evil_reload_on_rss.is_some_and(|limit| megabytes >= limit) {
                    recycle(
                        ExitCause::EvilReloadOnRss,
                        Signal::SIGKILL,
                        format!("RSS {megabytes} MB over evil-reload-on-rss"),
                    );
                } else if config.reload_on_rss.is_some_and(|limit| megabytes >= limit) {
                    recycle(ExitCause::ReloadOnRss, Signal::SIGTERM, format!("RSS {megabytes} MB over reload-on-rss"));
                }
            }
        }
    }

    fn signal_all(&self, signal: Signal) {
        for pid in self.slots.iter().flatten().filter_map(|s| s.pid).chain(self.old_workers.keys().copied()) {
            let _ = kill(pid, signal);
        }
    }

    fn begin_stop(&mut self, graceful: bool) {
        crate::systemd::stopping();
        self.daemons.stop(); // feat
        if graceful {
            if self.stopping.is_some() {
                return;
            }
            tracing::info!("graceful stop: waiting up to {:?} for requests in flight", self.config.reload_mercy);
            self.signal_all(Signal::SIGTERM);
            self.stopping = Some(Stopping::Graceful { deadline: Instant::now() + self.config.reload_mercy });
        } else {
            tracing::info!("quick stop");
            self.signal_all(Signal::SIGKILL);
            self.stopping = Some(Stopping::Quick { deadline: Instant::now() + Duration::from_secs(5) });
        }
    }

    /// Graceful reload with the app re-imported.
    fn reload(&mut self) {
        self.reload_with(false);
    }

    /// `chain`: replace the workers one at a time instead of starting a whole new generation at once.
    fn reload_with(&mut self, chain: bool) {
        if self.stopping.is_some() || self.chain.is_some() {
            return;
        }
        if self.config.master_features.exit_on_reload {
            // feat: exit-on-reload (lifecycle.rs)
            tracing::info!("exit-on-reload: stopping instead of reloading");
            self.begin_stop(true);
            return;
        }
        crate::systemd::reloading();
        if self.config.lazy_apps {
            // Workers import the app themselves: no need to re-execute the master.
            self.daemons.reload(); // feat
            self.replace_workers(chain);
            return;
        }
        // Preload: re-execute this binary so the new image imports the new code from scratch.
        let kind = if chain { "chain reload" } else { "graceful reload" };
        tracing::info!("{kind}: re-executing the master to import the app again");
        let inheritance = Inheritance {
            sockets: self.sockets.iter().map(BoundSocket::inherit).collect(),
            old_workers: self
                .slots
                .iter()
                .flatten()
                .filter_map(|s| s.pid)
                .chain(self.old_workers.keys().copied())
                .map(Pid::as_raw)
                .collect(),
            started_on: self.started_on,
            chain,
            counters: Some(self.group_counters()),
            respawns: self.respawns.clone(),
        };
        self.daemons.before_exec(); // feat: the next image starts the daemons once these are gone
        let error = self.exec_self(&inheritance);
        self.daemons.exec_failed(); // feat
        tracing::error!("reload failed, cannot re-execute liege: {error}; the current workers keep serving");
        self.notify(&VassalMessage::ReloadFailed { error: error.to_string() });
    }

    /// Starts a new generation of workers forked from this master (new code only with lazy-apps) and retires
    /// the current one once it serves, all at once or one at a time (`chain`).
    fn replace_workers(&mut self, chain: bool) {
        tracing::info!("{}: starting new workers", if chain { "chain reload" } else { "graceful reload" });
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if let Some(slot) = slot {
                slot.retiring = true;
                mark_exit_cause(index, ExitCause::Reload);
            }
        }
        self.announced_ready = false;
        if chain {
            self.chain = Some(Chain { next_id: 1, waiting_for: None });
            return;
        }
        for id in 1..=self.target_workers {
            if let Some(index) = self.free_slot() {
                self.spawn(index, id);
            }
        }
    }

    fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(Option::is_none)
    }

    /// One step of a chain reload, each tick: start the next replacement, or retire an old worker once the
    /// replacement serves.
    fn advance_chain(&mut self) {
        let Some(chain) = &self.chain else { return };
        if let Some(index) = chain.waiting_for {
            let serving = Scoreboard::global()
                .and_then(|b| b.slot(index))
                .is_some_and(|c| matches!(c.status(), WorkerStatus::Idle | WorkerStatus::Busy));
            if !serving {
                return;
            }
            // The replacement serves: retire one old worker (of this image, or of the previous one).
            if let Some(slot) = self.slots.iter_mut().flatten().find(|s| s.retiring && !s.signalled && s.pid.is_some())
            {
                if let Some(pid) = slot.pid {
                    let _ = kill(pid, Signal::SIGTERM);
                }
                slot.signalled = true;
            } else if let Some((pid, signalled)) = self.old_workers.iter_mut().find(|(_, signalled)| !**signalled) {
                let _ = kill(*pid, Signal::SIGTERM);
                *signalled = true;
            }
        }
        let next_id = chain.next_id;
        if next_id > self.target_workers {
            // Every replacement serves: anything old still unsignalled goes now.
            for slot in self.slots.iter_mut().flatten().filter(|s| s.retiring && !s.signalled) {
                if let Some(pid) = slot.pid {
                    let _ = kill(pid, Signal::SIGTERM);
                }
                slot.signalled = true;
            }
            for (pid, signalled) in self.old_workers.iter_mut().filter(|(_, s)| !**s) {
                let _ = kill(*pid, Signal::SIGTERM);
                *signalled = true;
            }
            tracing::info!("chain reload complete");
            self.chain = None;
            return;
        }
        let Some(index) = self.free_slot() else { return };
        self.spawn(index, next_id);
        self.chain = Some(Chain { next_id: next_id + 1, waiting_for: Some(index) });
    }

    /// A chain reload failed: the workers not yet replaced become current again.
    fn abort_chain(&mut self) {
        self.chain = None;
        for slot in self.slots.iter_mut().flatten().filter(|s| s.retiring && !s.signalled) {
            slot.retiring = false;
        }
        // Workers of a previous image can't be adopted back as slots; they keep serving until they exit.
        self.announced_ready = false;
    }

    /// `cheaper` (uWSGI's `spare` algorithm): when every worker is busy, add `cheaper-step` workers (up to
    /// `processes`); a worker above the minimum that served nothing for `idle` seconds is retired.
    fn adapt_worker_count(&mut self, now: Instant) {
        let Some(cheaper) = &self.config.cheaper else { return };
        if self.chain.is_some() || self.stopping.is_some() {
            return;
        }
        let Some(board) = Scoreboard::global() else { return };
        let mut serving = 0u32;
        let mut busy = 0u32;
        let mut longest_idle = Duration::ZERO;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot.as_mut().filter(|s| !s.retiring && s.pid.is_some()) else { continue };
            let Some(counters) = board.slot(index) else { continue };
            serving += 1;
            let requests = counters.requests.load(std::sync::atomic::Ordering::Relaxed);
            let status = counters.status();
            if status == WorkerStatus::Busy || requests != slot.requests_seen {
                slot.idle_since = now;
                slot.requests_seen = requests;
            }
            if status == WorkerStatus::Busy {
                busy += 1;
            }
            longest_idle = longest_idle.max(now.duration_since(slot.idle_since));
        }
        if serving > 0 && busy == serving && self.target_workers < self.config.processes {
            self.target_workers = (self.target_workers + cheaper.step).min(self.config.processes);
            tracing::info!("cheaper: all {serving} worker(s) busy, going to {}", self.target_workers);
        } else if self.target_workers > cheaper.min_workers && longest_idle >= cheaper.idle && busy < serving {
            self.target_workers -= 1;
            tracing::info!("cheaper: a worker idle for {} s, going to {}", longest_idle.as_secs(), self.target_workers);
            // Restart the idle clocks so one idle period retires one worker, not all of them at once.
            for slot in self.slots.iter_mut().flatten() {
                slot.idle_since = now;
            }
        }
    }

    /// Keeps `target_workers` workers running (the FIFO's `+`/`-`, `cheaper`).
    fn scale_to_target(&mut self) {
        if self.chain.is_some() || self.stopping.is_some() || (!self.config.lazy_apps && self.app.is_none()) {
            return;
        }
        let current: Vec<(usize, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().filter(|s| !s.retiring).map(|s| (i, s.id)))
            .collect();
        if (current.len() as u32) < self.target_workers {
            let used: Vec<u32> = current.iter().map(|(_, id)| *id).collect();
            if let (Some(id), Some(index)) =
                ((1..=self.config.processes).find(|id| !used.contains(id)), self.free_slot())
            {
                self.spawn(index, id);
            }
        } else if (current.len() as u32) > self.target_workers {
            if let Some(&(index, id)) = current.iter().max_by_key(|(_, id)| *id) {
                if let Some(slot) = self.slots[index].as_mut() {
                    tracing::info!("stopping worker {id}: {} worker(s) wanted", self.target_workers);
                    mark_exit_cause(
                        index,
                        if self.config.cheaper.is_some() { ExitCause::Cheaper } else { ExitCause::Reload },
                    );
                    slot.retiring = true;
                    slot.signalled = true;
                    if let Some(pid) = slot.pid {
                        let _ = kill(pid, Signal::SIGTERM);
                    }
                }
            }
        }
    }

    /// `touch-reload` / `touch-chain-reload`: a changed modification time triggers the reload.
    fn check_touched_files(&mut self) {
        let mut trigger = None;
        for (path, seen, chain) in &mut self.watched {
            let now = modified(path);
            if now != *seen {
                *seen = now;
                tracing::info!("{} was touched", path.display());
                trigger = Some(trigger.unwrap_or(false) || *chain);
            }
        }
        if let Some(chain) = trigger {
            self.reload_with(chain);
        }
    }

    /// uWSGI's master FIFO: one letter per command.
    fn read_fifos(&mut self) {
        let mut commands = Vec::new();
        for fifo in &self.fifos {
            let mut buffer = [0u8; 64];
            while let Ok(n) = nix::unistd::read(fifo.as_fd(), &mut buffer) {
                if n == 0 {
                    break;
                }
                commands.extend_from_slice(&buffer[..n]);
            }
        }
        for command in commands {
            match command {
                b'r' | b'R' => self.reload_with(false),
                b'c' => self.reload_with(true),
                b'q' => self.begin_stop(true),
                b'Q' => self.begin_stop(false),
                // Workers only, from this master's image (new code only with lazy-apps).
                b'w' => {
                    if self.stopping.is_none() && self.chain.is_none() {
                        self.replace_workers(false);
                    }
                }
                b'W' => {
                    for pid in self.slots.iter().flatten().filter_map(|s| s.pid) {
                        let _ = kill(pid, Signal::SIGKILL);
                    }
                }
                b'+' if self.target_workers < self.config.processes => {
                    self.target_workers += 1;
                    tracing::info!("master FIFO: {} worker(s) wanted", self.target_workers);
                }
                b'-' if self.target_workers > 1 => {
                    self.target_workers -= 1;
                    tracing::info!("master FIFO: {} worker(s) wanted", self.target_workers);
                }
                b'+' | b'-' => tracing::info!(
                    "master FIFO: worker count stays {} (1..={})",
                    self.target_workers,
                    self.config.processes
                ),
                b'\n' | b'\r' | b' ' => {}
                other => tracing::warn!("master FIFO: unknown command {:?}", other as char),
            }
        }
    }

    fn exec_self(&self, inheritance: &Inheritance) -> anyhow::Error {
        use std::os::unix::process::CommandExt;
        let json = match serde_json::to_string(inheritance) {
            Ok(json) => json,
            Err(err) => return err.into(),
        };
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(err) => return err.into(),
        };
        crate::logging::flush_request_log();
        let mut command = std::process::Command::new(exe);
        command.args(&self.argv).env(INHERIT_ENV, json).current_dir(&self.original_cwd);
        if let Some(control) = &self.control {
            let fd = control.fd().as_raw_fd();
            // SAFETY: clearing FD_CLOEXEC on our own descriptor so the next image keeps the channel.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
            command.env(EMPEROR_FD_ENV, fd.to_string());
        }
        // exec only returns on failure.
        command.exec().into()
    }

    fn cleanup(&mut self) {
        if let Some(stats) = &self.stats {
            stats.cleanup();
        }
        for socket in &self.sockets {
            if let Some(path) = &socket.unix_path {
                let _ = std::fs::remove_file(path);
            }
        }
        if let Some(pidfile) = &self.config.pidfile {
            let _ = std::fs::remove_file(pidfile);
        }
        self.daemons.finish(); // feat
        let _ = self.hooks.run(HookPhase::AsUserAtexit); // feat (failures are logged there)
        tracing::info!("stopped");
    }
}

/// Appends stdout and stderr to `path` (uWSGI's `logto`).
fn redirect_output(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("logto {}", path.display()))?;
    for target in [1, 2] {
        // SAFETY: dup2 onto the standard descriptors we own.
        if unsafe { libc::dup2(file.as_raw_fd(), target) } < 0 {
            return Err(std::io::Error::last_os_error()).context("logto");
        }
    }
    Ok(())
}

/// `uid`/`gid`: drop root after the sockets are bound, before any app code runs.
fn drop_privileges(config: &VassalConfig) -> anyhow::Result<()> {
    if config.uid.is_none() && config.gid.is_none() {
        return Ok(());
    }
    if !nix::unistd::Uid::effective().is_root() {
        tracing::info!("not running as root: uid/gid ignored");
        return Ok(());
    }
    if let Some(group) = &config.gid {
        let gid = match group.parse::<u32>() {
            Ok(gid) => nix::unistd::Gid::from_raw(gid),
            Err(_) => nix::unistd::Group::from_name(group)?.with_context(|| format!("no group '{group}'"))?.gid,
        };
        nix::unistd::setgroups(&[gid]).context("setgroups")?;
        nix::unistd::setgid(gid).context("setgid")?;
    }
    if let Some(user) = &config.uid {
        let uid = match user.parse::<u32>() {
            Ok(uid) => nix::unistd::Uid::from_raw(uid),
            Err(_) => nix::unistd::User::from_name(user)?.with_context(|| format!("no user '{user}'"))?.uid,
        };
        nix::unistd::setuid(uid).context("setuid")?;
    }
    tracing::info!("dropped privileges to uid {} gid {}", nix::unistd::getuid(), nix::unistd::getgid());
    Ok(())
}

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Opens (creating if needed) each master FIFO read-write and non-blocking: holding a write end ourselves means
/// a writer closing never leaves the FIFO at a permanent EOF that would wake poll(2) in a loop.
fn open_fifos(paths: &[PathBuf]) -> Vec<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    paths
        .iter()
        .filter_map(|path| {
            let is_fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
            if !is_fifo {
                let _ = std::fs::remove_file(path);
                if let Err(err) = nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
                    tracing::error!("master-fifo {}: {err}", path.display());
                    return None;
                }
            }
            match std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open(path) {
                Ok(file) => {
                    tracing::info!("master FIFO at {}", path.display());
                    Some(file)
                }
                Err(err) => {
                    tracing::error!("master-fifo {}: {err}", path.display());
                    None
                }
            }
        })
        .collect()
}

/// A fresh worker's crash-loop backoff (see [`crate::backoff::WORKER`]).
fn worker_backoff() -> Backoff {
    Backoff::new(crate::backoff::WORKER.0, crate::backoff::WORKER.1)
}

/// Records in the scoreboard why the worker in `index` is being retired (read back when it is reaped).
fn mark_exit_cause(index: usize, cause: ExitCause) {
    if let Some(slot) = Scoreboard::global().and_then(|b| b.slot(index)) {
        slot.set_exit_cause(cause);
    }
}
