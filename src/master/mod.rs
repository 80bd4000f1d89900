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
//!
//! This file is the master's shell: it performs effects (fork, kill, waitpid, exec, the scoreboard, the
//! emperor's channel, the stats) and leaves every decision to [`core::Core`], which it feeds events and
//! scoreboard readings and whose [`core::Action`]s it carries out.

pub mod core;
pub mod cron;
pub mod daemons;
pub mod hooks;
pub mod lifecycle;
pub mod mules;
pub mod sockets;
pub mod spooler;
pub mod stats_server;

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use liege_config::master::HookPhase;
use liege_config::VassalConfig;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use pyo3::prelude::*;

use self::core::{Action, Core, Now, ReloadKind, Rules, Slot, SlotState, StopKind, WorkerExit, WorkerView};
use crate::control::handover::{
    protocol_name, Inheritance, InheritedListener, WorkerProgram, WorkerSetup, EXIT_APP_LOAD_FAILED, INHERIT_ENV,
};
use crate::control::{Channel, EmperorCommand, VassalMessage, WorkerReport, EMPEROR_FD_ENV};
use crate::python::loader::{load_python_app_with, no_app_placeholder, AppLoadFailed};
use crate::scoreboard::{ExitCause, Scoreboard, WorkerStatus};
use crate::stats::Counters;
use sockets::BoundSocket;
use stats_server::StatsServer;

/// Per-slot measurements taken on the stats tick.
#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    memory: Option<crate::process::Memory>,
    pss: Option<u64>,
    /// Requests at the previous tick, and in the second before this one (uWSGI's `delta_requests`).
    requests_before: u64,
    delta_requests: u64,
}

struct Master<'a> {
    config: &'a VassalConfig,
    /// What runs in a forked worker (given by the binary).
    worker: WorkerProgram,
    argv: Vec<OsString>,
    original_cwd: PathBuf,
    sockets: Vec<BoundSocket>,
    app: Option<Py<PyAny>>,
    /// Every decision: the workers' slots, stop and reload state, crash-loop backoff, the limits.
    core: Core,
    /// Whether the core needs each worker's RSS (`reload-on-rss`, `evil-reload-on-rss`).
    watch_rss: bool,
    /// Whether the core needs each worker's address space (`reload-on-as`).
    watch_address_space: bool,
    started_on: u64,
    /// The emperor's control channel, when an emperor started us.
    control: Option<Channel>,
    /// `touch-reload` / `touch-chain-reload` files with the modification time last seen.
    watched: Vec<(PathBuf, Option<std::time::SystemTime>, bool)>,
    fifos: Vec<std::fs::File>,
    stats: Option<StatsServer>,
    /// Counters of workers that have exited (their scoreboard slots are reused).
    retired: Counters,
    samples: Vec<Sample>,
    master_memory: Option<crate::process::Memory>,
    listen_queue_errors: u64,
    /// Unix time of the next stats tick (just after a wall-clock second; see [`crate::stats::window`]).
    next_stats_tick: f64,
    stats_ticks: u64,
    /// Side processes (`attach-daemon*`, see daemons.rs) and hooks (`hook-*`, `exec-*`, see hooks.rs).
    daemons: daemons::Daemons,
    hooks: hooks::Hooks,
    /// `ksm`: the master's own mappings, marked mergeable every `ksm` cycles.
    ksm: crate::process::KsmMapper,
    /// `cron`, `unique-cron`, `cron2` (see cron.rs).
    crons: cron::Crons,
    /// `mule`, `mules`, `farm` (see mules.rs).
    mules: mules::Mules,
    /// `spooler` and its options (see spooler.rs).
    spoolers: spooler::Spoolers,
}

/// The time now, for the core.
fn now() -> Now {
    let unix_us =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    Now { mono: Instant::now(), unix_us }
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

    // --- logging family (conf): logto with log-truncate / logfile-chown, then the log process ---
    if let Some(path) = &config.logto {
        let owner = config.logs.chown.then(|| log_file_owner(config)).transpose()?;
        crate::logging::redirect_to_logfile(path, config.logs.truncate && inheritance.old_workers.is_empty(), owner)?;
    }
    crate::logging::router::start(config)?;
    if config.show_config {
        eprint!("{}", liege_config::show_config(&config.raw));
    }
    // --- end logging family ---
    if config.tuning.never_swap {
        // (as uWSGI: right after the logs are set up; each worker locks itself again after its fork)
        crate::process::never_swap("the master");
    }
    if config.tuning.ksm > 0 {
        tracing::info!("[KSM] enabled with frequency: {}", config.tuning.ksm);
    }
    // Hooks (see hooks.rs): asap runs first, the jail phases only on a first start (as uWSGI).
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
        lifecycle::set_max_fd(n)?;
    }
    let sockets =
        sockets::open_all(&config.sockets, config.listen, sockets::UnixSocketAccess::of(config), inheritance.sockets)?;
    for socket in &sockets {
        tracing::info!("{} socket bound to {}", protocol_name(socket.protocol), socket.name);
    }
    sockets::set_send_timeout(&sockets, config.so_send_timeout).context("so-send-timeout (SO_SNDTIMEO)")?;
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
    hooks.run_phases(&[], nix::unistd::Uid::effective().is_root(), &[HookPhase::AsRoot])?;
    drop_privileges(config)?;
    hooks.run(HookPhase::AsUser)?;

    let board = Scoreboard::install(config.processes as usize * 2)?;
    crate::cache::install(&config.caches)?;
    // (mule family) The mules' message queues, before any fork: workers and mules inherit them.
    crate::python::mules::create_queues(&config.mules).context("cannot create the mule message queues")?;
    let reloading = !inheritance.old_workers.is_empty();
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGHUP] {
        signals.add(signal);
    }
    signals.thread_block().context("cannot block signals")?;
    let signal_fd =
        SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).context("signalfd")?;

    install_spoolers(config, &original_cwd)?;
    let app = if config.lazy_apps {
        None
    } else {
        hooks.run(HookPhase::PreApp)?;
        match load_python_app_with(config, started_on) {
            Ok(app) => {
                hooks.run(HookPhase::PostApp)?;
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

    let rules = Rules::of(config);
    let watch_rss = rules.watches_rss();
    let watch_address_space = rules.watches_address_space();
    let old_workers = inheritance.old_workers.iter().map(|&pid| Pid::from_raw(pid)).collect();
    let core = Core::new(rules, old_workers, app.is_some(), inheritance.respawns);
    let mut master = Master {
        config,
        worker,
        argv,
        original_cwd,
        sockets,
        app,
        core,
        watch_rss,
        watch_address_space,
        started_on,
        control,
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
        samples: vec![Sample::default(); config.processes as usize * 2],
        master_memory: None,
        listen_queue_errors: 0,
        next_stats_tick: 0.0,
        stats_ticks: 0,
        daemons: daemons::Daemons::new(&config.master_features.daemons, config.reload_mercy),
        hooks,
        ksm: crate::process::KsmMapper::default(),
        crons: cron::Crons::new(&config.master_features.crons, config.master_features.cron_harakiri),
        mules: mules::Mules::new(&config.mules.mules, config.mules.reload_mercy, &config.mules.touch_reload),
        spoolers: spooler::Spoolers::new(&config.spooler, config.reload_mercy),
    };
    master.hooks.run(HookPhase::MasterStart)?;
    master.daemons.tick(Instant::now()); // start the side processes
    if reloading && master.app.is_none() && !config.lazy_apps {
        master.notify(&VassalMessage::ReloadFailed { error: "the app did not load; see the log".into() });
    }
    master.core.start(inheritance.chain && reloading);
    master.apply();
    // (mule family) After the app is loaded, as uWSGI.
    master.mules.board.tick(Instant::now());
    master.apply_mules();
    // The spoolers, once the app is loaded (they come with its modules; see spooler.rs).
    master.spoolers.start(Instant::now());
    master.tick_spoolers();
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
            // An emperor waits for `ready` before routing a reload's traffic: report it promptly.
            let busy = self.core.busy() || (self.control.is_some() && !self.core.announced_ready());
            let mut timeout = Duration::from_millis(if busy { 50 } else { 1000 });
            let until_tick = self.next_stats_tick - crate::process::unix_time();
            timeout = timeout.min(Duration::from_secs_f64(until_tick.clamp(0.0, 1.0)));
            if let Some(deadline) = self.stats.as_ref().and_then(StatsServer::next_deadline) {
                timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
            }
            let timeout = u16::try_from(timeout.as_millis() + 1).unwrap_or(1000);
            let mut control_readable = false;
            let connection_waiting;
            {
                let mut fds = vec![nix::poll::PollFd::new(signal_fd.as_fd(), nix::poll::PollFlags::POLLIN)];
                // Idle mode: no worker runs; a connection on any socket wakes them (nobody accepts here).
                let cheap = self.core.cheap();
                if cheap {
                    for socket in &self.sockets {
                        fds.push(nix::poll::PollFd::new(socket.fd.as_fd(), nix::poll::PollFlags::POLLIN));
                    }
                }
                let socket_fds = 1..if cheap { 1 + self.sockets.len() } else { 1 };
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
                connection_waiting = fds[socket_fds].iter().any(|fd| fd.revents().is_some_and(|r| !r.is_empty()));
                if self.control.is_some() {
                    if let Some(events) = fds.last().and_then(|fd| fd.revents()) {
                        control_readable = !events.is_empty();
                    }
                }
            }
            if control_readable {
                self.handle_control();
            }
            if connection_waiting {
                self.core.connection_waiting();
                self.apply();
            }
            if let Some(mut stats) = self.stats.take() {
                stats.serve(|| self.uwsgi_stats_document());
                self.stats = Some(stats);
            }
            self.read_fifos();
            while let Ok(Some(info)) = signal_fd.read_signal() {
                let now = Instant::now();
                // A `unix_signal` hook may give the signal another meaning.
                if let Some(action) = self.hooks.signal_action(info.ssi_signo as i32) {
                    self.signal_hook(action, now);
                    self.apply();
                    continue;
                }
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {}
                    Ok(Signal::SIGTERM) => self.core.begin_stop(StopKind::Graceful, now),
                    Ok(Signal::SIGINT) | Ok(Signal::SIGQUIT) => self.core.begin_stop(StopKind::Quick, now),
                    Ok(Signal::SIGHUP) => self.core.reload_asked_by(Pid::from_raw(info.ssi_pid as i32), now),
                    _ => {}
                }
                self.apply();
            }
            self.reap();
            if !self.core.stopping() {
                self.check_touched_files();
                self.mules.check_touched();
            }
            self.daemons.tick(Instant::now());
            self.mules.board.tick(Instant::now());
            self.apply_mules();
            self.crons.tick(crate::process::unix_now() as i64, !self.core.stopping());
            self.tick_spoolers();
            let views = self.views();
            if let Some(board) = Scoreboard::global() {
                self.core.set_total_requests(board.total_requests());
            }
            let exit = self.core.tick(now(), &views);
            self.apply();
            if let Some(code) = exit {
                self.send_heartbeat(crate::process::unix_time());
                self.notify(&VassalMessage::Stopping);
                self.cleanup();
                return code;
            }
            self.report();
        }
    }

    /// What a `unix_signal` hook bound a signal to.
    fn signal_hook(&mut self, action: liege_config::master::SignalAction, now: Instant) {
        use liege_config::master::SignalAction;
        match action {
            SignalAction::GracefulStop => self.core.begin_stop(StopKind::Graceful, now),
            SignalAction::QuickStop => self.core.begin_stop(StopKind::Quick, now),
            SignalAction::GracefulReload => self.core.reload(ReloadKind::Graceful, now),
            SignalAction::BrutalReload => self.core.brutal_reload(now),
        }
    }

    /// What each worker's scoreboard slot says, for the core's next decision.
    fn views(&self) -> Vec<WorkerView> {
        use std::sync::atomic::Ordering::Relaxed;
        let board = Scoreboard::global();
        (0..self.samples.len())
            .map(|index| {
                let Some(counters) = board.and_then(|b| b.slot(index)) else { return WorkerView::default() };
                let slot = self.core.slots().find(|(i, _)| *i == index).map(|(_, s)| s.state);
                let process = match slot {
                    Some(SlotState::Serving(p) | SlotState::Recycling(p)) => Some(p),
                    _ => None,
                };
                let rss_bytes = process.filter(|_| self.watch_rss).map(|p| {
                    let rss = crate::process::rss_bytes(p.pid.as_raw()).unwrap_or(0);
                    counters.rss_bytes.store(rss, Relaxed);
                    rss
                });
                let vsz_bytes = process
                    .filter(|_| self.watch_address_space)
                    .and_then(|p| crate::process::memory(p.pid.as_raw()))
                    .map(|m| m.vsz);
                WorkerView {
                    status: counters.status(),
                    requests: counters.requests.load(Relaxed),
                    request_started_us: counters.request_started_us.load(Relaxed),
                    rss_bytes,
                    vsz_bytes,
                    running_time_us: counters.running_time_us.load(Relaxed),
                }
            })
            .collect()
    }

    /// Carries out the core's actions, in order (a spawn's outcome goes back to the core at once).
    fn apply(&mut self) {
        loop {
            let actions = self.core.take_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                self.perform(action);
            }
        }
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Spawn { slot, id } => {
                let result = self.fork_worker(slot, id);
                self.core.spawned(slot, result, Instant::now());
            }
            Action::Signal { pid, signal } => {
                let _ = kill(pid, signal);
            }
            Action::SetExitCause { slot, cause } => mark_exit_cause(slot, cause),
            Action::Harakiri { slot, pid, id, stuck_for } => {
                let Some(counters) = Scoreboard::global().and_then(|b| b.slot(slot)) else { return };
                let line =
                    counters.request_line().map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_default();
                tracing::error!(
                    "HARAKIRI: worker {id} (pid {pid}) stuck for {:.1} s (harakiri = {} s) in request \"{line}\"; its Python stack follows",
                    stuck_for.as_secs_f64(),
                    self.config.harakiri.map_or(0, |h| h.as_secs())
                );
                counters.set_exit_cause(ExitCause::Harakiri);
                counters.harakiri_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = kill(pid, Signal::SIGUSR2);
            }
            Action::ReExec(kind) => self.exec_reload(kind),
            Action::KsmMerge => self.ksm.merge(),
            Action::AnnounceReady => {
                self.notify(&VassalMessage::Ready { pid: std::process::id() as i32, workers: self.worker_reports() });
                crate::systemd::ready(&format!("serving with {} worker(s)", self.config.processes));
            }
            Action::Notify(message) => self.notify(&message),
            // The vassal begins to stop: its side processes stop with it.
            Action::SystemdStopping => {
                crate::systemd::stopping();
                self.daemons.stop();
                self.mules.board.stop(self.core.stop_kind() == Some(StopKind::Quick), Instant::now());
                self.apply_mules();
                self.spoolers.stop();
            }
            // A reload begins: with lazy-apps the master stays, so the side processes restart now (with a
            // preloaded app, around the exec: see `exec_reload`).
            Action::SystemdReloading => {
                crate::systemd::reloading();
                if self.config.lazy_apps {
                    self.daemons.reload();
                    self.mules.board.restart_all(Instant::now());
                    self.apply_mules();
                    self.spoolers.reload(Instant::now());
                }
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
                    let now = Instant::now();
                    match command {
                        Ok(EmperorCommand::Reload) => self.core.reload(ReloadKind::Graceful, now),
                        Ok(EmperorCommand::ChainReload) => self.core.reload(ReloadKind::Chain, now),
                        Ok(EmperorCommand::Stop) => self.core.begin_stop(StopKind::Graceful, now),
                        Ok(EmperorCommand::QuickStop) => self.core.begin_stop(StopKind::Quick, now),
                        Err(err) => tracing::warn!("ignoring a malformed emperor command: {err}"),
                    }
                    self.apply();
                }
            }
            Err(_) => {
                // The emperor is gone: a vassal must not outlive it (no orphans holding its sockets).
                tracing::warn!("the emperor went away; stopping gracefully");
                self.control = None;
                self.core.begin_stop(StopKind::Graceful, Instant::now());
                self.apply();
            }
        }
    }

    /// The current workers (not those of a generation being retired), by slot index.
    fn current_workers(&self) -> impl Iterator<Item = (usize, &Slot, Pid)> + '_ {
        self.core.slots().filter_map(|(index, slot)| Some((index, slot, slot.state.pid()?)))
    }

    fn worker_reports(&self) -> Vec<WorkerReport> {
        use std::sync::atomic::Ordering::Relaxed;
        let board = Scoreboard::global();
        let now_us = (crate::process::unix_time() * 1e6) as u64;
        self.current_workers()
            .map(|(index, slot, pid)| {
                let counters = board.and_then(|b| b.slot(index));
                let sample = self.samples.get(index).copied().unwrap_or_default();
                let history = self.core.history(slot.id);
                let requests = counters.map_or(0, |c| c.requests.load(Relaxed));
                let running_us = counters.map_or(0, |c| c.running_time_us.load(Relaxed));
                WorkerReport {
                    id: slot.id,
                    pid: pid.as_raw(),
                    status: counters.map_or(WorkerStatus::Starting, |c| c.status()),
                    requests,
                    exceptions: counters.map_or(0, |c| c.exceptions.load(Relaxed)),
                    rss_bytes: sample.memory.map(|m| m.rss),
                    pss_bytes: sample.pss,
                    last_spawn: counters.map(|c| c.last_spawn_s.load(Relaxed)),
                    respawn_count: history.map_or(1, |h| h.spawns),
                    respawn_cause: history.and_then(|h| h.last_exit),
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

    /// Samples memory and sends a heartbeat just after every wall-clock second.
    fn report(&mut self) {
        let now = crate::process::unix_time();
        if now >= self.next_stats_tick {
            // Stamped with the time it was due, not the time it ran: a heartbeat a busy machine delays by a
            // few hundred ms still books its requests to the second it covers.
            let due = if self.next_stats_tick > 0.0 { self.next_stats_tick } else { now };
            self.next_stats_tick = now.floor() + 1.005;
            self.stats_tick();
            if !self.core.stopping() {
                self.send_heartbeat(due);
            }
        }
    }

    /// Once a second: memory of every process (PSS every 5 s: it walks page tables), requests per worker in
    /// the last second, and a full accept queue counted as uWSGI counts it.
    fn stats_tick(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats_ticks += 1;
        let with_pss = self.stats_ticks % 5 == 1;
        let board = Scoreboard::global();
        let pids: Vec<Option<Pid>> = (0..self.samples.len())
            .map(|index| self.core.slots().find(|(i, _)| *i == index).and_then(|(_, s)| s.state.pid()))
            .collect();
        for (index, pid) in pids.into_iter().enumerate() {
            let Some(sample) = self.samples.get_mut(index) else { continue };
            let Some(pid) = pid else {
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
        // uWSGI's master_check_listen_queue: the longest queue of the sockets (TCP only: Linux reports no
        // queue for a unix socket), for harakiri-queue-threshold and the cheaper algorithms.
        let mut backlog = 0;
        for (queued, limit) in self.sockets.iter().filter_map(|s| crate::stats::uwsgi::listen_queue(s.fd.as_fd())) {
            if limit > 0 && queued >= limit {
                self.listen_queue_errors += 1;
            }
            backlog = backlog.max(queued);
        }
        self.core.set_listen_queue(backlog);
        if let Some(board) = board {
            board.header().backlog.store(backlog, Relaxed);
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
            respawns: self.core.respawns().clone(),
            daemons: self.daemons.reports().into_iter().chain(self.mule_reports()).collect(),
        });
    }

    /// uWSGI's stats document (see [`crate::stats::uwsgi`]).
    fn uwsgi_stats_document(&self) -> Vec<u8> {
        use crate::stats::uwsgi;
        use std::sync::atomic::Ordering::Relaxed;
        let board = Scoreboard::global();
        let mut workers: Vec<uwsgi::Worker> = Vec::new();
        for (index, slot, pid) in self.current_workers().filter(|(_, slot, _)| !slot.state.leaving()) {
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
            let history = self.core.history(slot.id);
            worker.harakiri_count = history.map_or(0, |h| h.harakiri) + counters.harakiri_count.load(Relaxed);
            worker.rss = sample.memory.map_or(0, |m| m.rss);
            worker.vsz = sample.memory.map_or(0, |m| m.vsz);
            worker.last_spawn = counters.last_spawn_s.load(Relaxed);
            worker.respawn_count = history.map_or(1, |h| h.spawns);
            if let Some(core) = worker.cores.first_mut() {
                core.write_errors = counters.write_errors.load(Relaxed);
            }
            workers.push(worker);
        }
        // Worker ids with no process right now (cheaper mode, or waiting to respawn) show as uWSGI shows them.
        for id in 1..=self.config.processes {
            if !workers.iter().any(|w| w.id == id) {
                let mut worker = uwsgi::Worker::new(id, 0, "cheap", 0, 0, 0, 0);
                worker.respawn_count = self.core.history(id).map_or(0, |h| h.spawns);
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
            // (uWSGI's `shared->backlog`: the longest queue)
            listen_queue: sockets.iter().map(|s| s.queue).max().unwrap_or(0),
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
            mules: self.mule_stats(),
            spoolers: self.spoolers.stats(),
        };
        serde_json::to_vec_pretty(&document).unwrap_or_default()
    }

    // --- spooler family (spooler) ---
    /// Starts the spoolers that are due (see spooler.rs).
    fn tick_spoolers(&mut self) {
        if self.spoolers.is_empty() {
            return;
        }
        let now = Instant::now();
        for slot in self.spoolers.tick(now, crate::process::unix_now() as i64) {
            let result = self.fork_spooler(slot);
            self.spoolers.spawned(slot, result, now);
        }
    }

    /// In a freshly forked side process (a mule, a spooler): closes what belongs to the master alone: the
    /// emperor's channel (a child holding it would hide the master's death), the stats server and the
    /// listening sockets (a side process accepts nothing, as uWSGI's `uwsgi_close_all_sockets`).
    fn close_master_fds_in_side_process(&self) {
        use std::os::fd::AsRawFd;
        if let Some(control) = &self.control {
            // SAFETY: the child never uses or drops `self.control`; closing its copy of the fd is all.
            unsafe { libc::close(control.fd().as_raw_fd()) };
        }
        if let Some(stats) = &self.stats {
            stats.close_in_child();
        }
        for socket in &self.sockets {
            // SAFETY: the child never uses the listening sockets; closing its copies is all.
            unsafe { libc::close(socket.fd.as_raw_fd()) };
        }
    }

    /// Forks the spooler of table slot `slot`; returns its pid (the child never returns).
    fn fork_spooler(&mut self, slot: usize) -> Result<i32, String> {
        let master_pid = std::process::id() as i32;
        let python_live = !self.config.lazy_apps || crate::launch::hosted().is_some();
        // A worker may wake the spooler (SIGUSR1) as soon as its pid is in the table: the child is born with
        // SIGUSR1 blocked (and keeps it so, see spooler::wake_signals) until it reads it from its signalfd.
        let mut wake = SigSet::empty();
        wake.add(Signal::SIGUSR1);
        let _ = wake.thread_block();
        // SAFETY: the master is single-threaded, and holds the GIL when Python is live.
        let forked = unsafe { fork_with_python_hooks(python_live) };
        match forked {
            Ok(ForkResult::Child) => {
                crate::process::become_child_blocking(master_pid, &spooler::wake_signals());
                self.close_master_fds_in_side_process();
                if python_live {
                    // SAFETY: the only thread of the child, holding the GIL taken for PyOS_BeforeFork.
                    unsafe { pyo3::ffi::PyOS_AfterFork_Child() };
                }
                spooler::run_process(self.config, slot, python_live && !self.config.lazy_apps)
            }
            Ok(ForkResult::Parent { child }) => {
                let _ = wake.thread_unblock();
                Ok(child.as_raw())
            }
            Err(err) => {
                let _ = wake.thread_unblock();
                Err(err.to_string())
            }
        }
    }
    // --- end spooler family ---

    /// Forks a worker into `index` with worker id `id`; returns its pid (the child never returns).
    fn fork_worker(&mut self, index: usize, id: u32) -> Result<Pid, String> {
        let Some(board_slot) = Scoreboard::global().and_then(|b| b.slot(index)) else {
            return Err(format!("no scoreboard slot {index}"));
        };
        board_slot.reset(id, crate::process::unix_now());
        let preload = !self.config.lazy_apps;
        // Taken before the fork: a child that asked getppid() after it could see 1 if the master died in
        // between, and would then never notice it was orphaned.
        let master_pid = std::process::id() as i32;
        // (issue 13, extension mode: the interpreter that loaded liege is live in the master even with
        // lazy-apps, so its fork hooks run then too.)
        let python_live = preload || crate::launch::hosted().is_some();
        // SAFETY: the master is single-threaded (no tokio, no threads), and holds the GIL when Python is live.
        let forked = unsafe { fork_with_python_hooks(python_live) };
        match forked {
            Ok(ForkResult::Child) => {
                // First of all: die with the master (before any Python code can run and take time).
                crate::process::become_child_of(master_pid);
                if self.config.tuning.never_swap {
                    crate::process::never_swap(&format!("worker {id}"));
                }
                if self.config.tuning.cpu_affinity > 0 {
                    crate::process::set_cpu_affinity(id, self.config.tuning.cpu_affinity);
                }
                // The emperor's channel is the master's alone; a worker holding it open would hide the
                // master's death from the emperor.
                if let Some(control) = &self.control {
                    // SAFETY: this child never uses or drops `self.control`; closing its copy of the fd is all.
                    unsafe { libc::close(control.fd().as_raw_fd()) };
                }
                if let Some(stats) = &self.stats {
                    stats.close_in_child();
                }
                if python_live {
                    // SAFETY: we are the only thread in the child, which still holds the GIL the parent took
                    // for PyOS_BeforeFork (fork_with_python_hooks).
                    unsafe { pyo3::ffi::PyOS_AfterFork_Child() };
                }
                crate::python::mules::close_receive_ends_in_worker(); // (mule family: only mules receive)
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
                // Per-worker hooks (post-fork, accepting*, and pre-app with lazy-apps).
                self.hooks.run_worker_phases(id, self.core.history(id).map_or(0, |h| h.spawns) + 1, !preload);
                // (lazy-apps: no interpreter in the master, nothing to hand over)
                let app = self.app.as_ref().map(|app| Python::attach(|py| app.clone_ref(py)));
                (self.worker.run)(WorkerSetup { id, slot: index, config: self.config, listeners, app })
            }
            Ok(ForkResult::Parent { child }) => {
                board_slot.pid.store(child.as_raw(), std::sync::atomic::Ordering::Relaxed);
                self.notify(&VassalMessage::WorkerSpawned { id, pid: child.as_raw() });
                Ok(child)
            }
            Err(err) => Err(err.to_string()),
        }
    }

    /// Collects every exited child; the core decides what follows.
    fn reap(&mut self) {
        let views = self.views();
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => status,
            };
            let Some(pid) = status.pid() else { continue };
            let how = crate::process::describe_exit(status);
            if self.core.slot_of(pid).is_none() {
                if self.mules.board.reaped(pid, &how, Instant::now()) {
                    self.apply_mules();
                    continue;
                }
                if self.crons.reaped(pid.as_raw(), &how, crate::process::unix_now() as i64) {
                    continue;
                }
                if self.spoolers.reaped(pid.as_raw(), status, &how, Instant::now()) {
                    continue;
                }
                // A side process?
                match self.daemons.reaped(pid.as_raw(), &how, Instant::now()) {
                    Some(daemons::Follow::StopVassal) => {
                        self.core.begin_stop(StopKind::Graceful, Instant::now());
                        self.apply();
                        continue;
                    }
                    Some(daemons::Follow::Nothing) => continue,
                    // A previous image's worker, or unknown: the core's.
                    None => {}
                }
            }
            let mut exit = WorkerExit {
                how,
                cause: ExitCause::Unplanned,
                load_failed: matches!(status, WaitStatus::Exited(_, EXIT_APP_LOAD_FAILED)),
                harakiri: 0,
            };
            let slot = self.core.slot_of(pid).and_then(|index| Scoreboard::global()?.slot(index).map(|s| (s, index)));
            if let (Some((slot, _)), Some(board)) = (slot, Scoreboard::global()) {
                use std::sync::atomic::Ordering::Relaxed;
                exit.cause = slot.exit_cause();
                // The worker is gone: its counters move to the group's retired totals and the slot is cleared
                // for the next worker.
                self.retired.add_slot(slot);
                exit.harakiri = slot.harakiri_count.load(Relaxed);
                board.header().retired_requests.fetch_add(slot.requests.load(Relaxed), Relaxed);
                slot.clear_counters();
                slot.set_status(WorkerStatus::Free);
            }
            self.core.worker_exited(pid, exit, &views, Instant::now());
            self.apply();
        }
    }

    /// Preloaded app: re-executes this binary so the new image imports the new code from scratch, keeping
    /// the sockets and the workers (they are still its children after `exec`). Returns only on failure.
    fn exec_reload(&mut self, kind: ReloadKind) {
        let inheritance = Inheritance {
            sockets: self.sockets.iter().map(BoundSocket::inherit).collect(),
            old_workers: self.core.pids().into_iter().map(Pid::as_raw).collect(),
            started_on: self.started_on,
            chain: kind == ReloadKind::Chain,
            counters: Some(self.group_counters()),
            respawns: self.core.respawns().clone(),
        };
        self.daemons.before_exec(); // the next image starts the side processes once these are gone
        self.crons.before_exec();
        self.mules.before_exec();
        self.spoolers.kill_all(); // the next image starts new ones with the new code
        let error = self.exec_self(&inheritance);
        self.daemons.exec_failed();
        self.crons.exec_failed();
        self.mules.exec_failed();
        self.spoolers.start(Instant::now());
        tracing::error!("reload failed, cannot re-execute liege: {error}; the current workers keep serving");
        self.notify(&VassalMessage::ReloadFailed { error: error.to_string() });
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
            self.core.reload(if chain { ReloadKind::Chain } else { ReloadKind::Graceful }, Instant::now());
            self.apply();
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
            let now = Instant::now();
            match command {
                b'r' | b'R' => self.core.reload(ReloadKind::Graceful, now),
                b'c' => self.core.reload(ReloadKind::Chain, now),
                b'q' => self.core.begin_stop(StopKind::Graceful, now),
                b'Q' => self.core.begin_stop(StopKind::Quick, now),
                // Workers only, from this master's image (new code only with lazy-apps).
                b'w' => self.core.reload_workers(),
                b'W' => self.core.kill_workers(),
                b'+' => self.core.change_worker_count(true),
                b'-' => self.core.change_worker_count(false),
                b'\n' | b'\r' | b' ' => {}
                other => tracing::warn!("master FIFO: unknown command {:?}", other as char),
            }
            self.apply();
        }
    }

    fn exec_self(&self, inheritance: &Inheritance) -> anyhow::Error {
        use std::os::unix::process::CommandExt;
        let json = match serde_json::to_string(inheritance) {
            Ok(json) => json,
            Err(err) => return err.into(),
        };
        // (issue 13: the same program again, the binary or `PYTHON -c <bootstrap>`; its interpreter is chosen.)
        let (exe, prefix) = match crate::launch::Program::current() {
            Ok(program) => program.command_line(),
            Err(err) => return err.into(),
        };
        crate::logging::flush_request_log();
        let mut command = std::process::Command::new(exe);
        command.args(prefix).args(&self.argv).env(crate::launch::CHOSEN_ENV, "1");
        command.env(INHERIT_ENV, json).current_dir(&self.original_cwd);
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
        self.daemons.finish();
        self.mules.finish();
        self.spoolers.kill_all();
        let _ = self.hooks.run(HookPhase::AsUserAtexit); // (failures are logged there)
        tracing::info!("stopped");
    }
}

// --- spooler family (spooler) ---
/// Creates the spooler directories and the spoolers' shared table before anything is forked or imported
/// (the `uwsgi` module offers the spooler functions only when there is one).
/// A relative directory is taken from where liege started, as uWSGI resolves it while reading its options
/// (before `chdir`); it is created after privileges are dropped, so the app's user owns it.
fn install_spoolers(config: &VassalConfig, original_cwd: &std::path::Path) -> anyhow::Result<()> {
    if config.spooler.dirs.is_empty() {
        return Ok(());
    }
    let dirs: Vec<(PathBuf, bool)> =
        config.spooler.dirs.iter().map(|d| (original_cwd.join(&d.path), d.external)).collect();
    crate::spool::SpoolBoard::install(&dirs, config.spooler.processes_per_dir())?;
    crate::python::uwsgi_module::set_spooler_quiet(config.spooler.quiet);
    Ok(())
}
// --- end spooler family ---

/// `logfile-chown` (logging family, conf): the numeric uid/gid `drop_privileges` will switch to.
fn log_file_owner(config: &VassalConfig) -> anyhow::Result<(Option<u32>, Option<u32>)> {
    let gid = match &config.gid {
        None => None,
        Some(group) => Some(match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                nix::unistd::Group::from_name(group)?.with_context(|| format!("no group '{group}'"))?.gid.as_raw()
            }
        }),
    };
    let uid = match &config.uid {
        None => None,
        Some(user) => Some(match user.parse::<u32>() {
            Ok(uid) => uid,
            Err(_) => nix::unistd::User::from_name(user)?.with_context(|| format!("no user '{user}'"))?.uid.as_raw(),
        }),
    };
    Ok((uid, gid))
}

/// `uid`/`gid`/`cap`: drop root after the sockets are bound, before any app code runs (see
/// [`crate::privileges`]).
fn drop_privileges(config: &VassalConfig) -> anyhow::Result<()> {
    let target = crate::privileges::Target::resolve(config.uid.as_deref(), config.gid.as_deref(), &config.caps)?;
    if target.is_empty() {
        return Ok(());
    }
    if !nix::unistd::Uid::effective().is_root() {
        // As uWSGI (which only runs its as-root phase as root); capabilities inherited as ambient ones across
        // a reload's exec are still there.
        tracing::info!("not running as root: uid/gid/cap ignored");
        return Ok(());
    }
    target.apply()?;
    let kept = if config.caps.is_empty() { String::new() } else { format!(" keeping cap {}", config.caps.join(",")) };
    tracing::info!("dropped privileges to uid {} gid {}{kept}", nix::unistd::getuid(), nix::unistd::getgid());
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

/// Records in the scoreboard why the worker in `index` is being retired (read back when it is reaped).
fn mark_exit_cause(index: usize, cause: ExitCause) {
    if let Some(slot) = Scoreboard::global().and_then(|b| b.slot(index)) {
        slot.set_exit_cause(cause);
    }
}

/// fork(2) from the master, with CPython's fork hooks when an interpreter is live (workers, mules and
/// spoolers all fork this way): `PyOS_BeforeFork` first, then in the parent, whether the fork worked or not,
/// `PyOS_AfterFork_Parent`. The hooks keep CPython's locks and state consistent across the fork (the import
/// lock reset, `random` reseeded...). The child gets `Ok(Child)` still holding the GIL taken for
/// `PyOS_BeforeFork`, and calls `PyOS_AfterFork_Child` itself once it has closed what it must not keep,
/// before any Python code runs.
///
/// # Safety
/// The calling process must be single-threaded (the master is: no tokio, no threads), and with
/// `python_live` this thread must hold the GIL.
unsafe fn fork_with_python_hooks(python_live: bool) -> nix::Result<ForkResult> {
    // SAFETY: the caller's contract above: one thread, the GIL held for the hooks.
    unsafe {
        if python_live {
            pyo3::ffi::PyOS_BeforeFork();
        }
        let forked = nix::unistd::fork();
        if python_live && !matches!(forked, Ok(ForkResult::Child)) {
            pyo3::ffi::PyOS_AfterFork_Parent();
        }
        forked
    }
}
