//! One vassal: its lifecycle state machine (a supervisor task) and its processes (one task each).
//!
//! The supervisor is the only place where decisions about the vassal are taken, one at a time, from three
//! sources: commands (file changed, deleted, SIGHUP, API), events from its processes (spawned, messages on
//! the control channel, exited) and a one-second tick (backoff timers, start timeouts, the heartbeat
//! watchdog, stop deadlines). After each decision it publishes a snapshot for the API.
//!
//! # Reload: the new version first
//!
//! A changed file is validated before anything is stopped: parsed with the same code the vassal uses, its
//! sockets bound (or reused), then a **new** vassal process is started on the same listening sockets, which
//! the emperor owns. Only when it reports `ready` (app imported, every worker serving) is the old process
//! told to stop (drain and exit). If the new version fails (bad file, import error, never ready), the old one
//! keeps serving and the vassal shows `error` with the reason.
//!
//! Vassals that name unix (or `fd://`) sockets bind their sockets themselves, because a vassal master
//! unlinks its unix socket paths when it stops, which would remove the path from under a new process sharing
//! the socket. Those are reloaded in place instead: the `reload` command makes the master re-execute itself
//! on its own sockets, import the new code, and keep its old workers serving if that fails.
//!
//! # Processes
//!
//! Each vassal process is `liege vassal FILE.ini [--ini INCLUDE]... [--KEY=VALUE]...`, started by fork+exec of
//! the emperor's own binary (a forked tokio process would be broken), with the emperor's listening sockets
//! and one end of a socketpair (the control channel) kept open across exec, and stdout/stderr piped into the
//! vassal's log. Starts are bounded (a semaphore) so 100 files dropped at once don't start 100 Python
//! interpreters on two cores at the same moment.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use liege_config::{Protocol, SocketAddress};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Semaphore};

use super::logs::{self, unix_time, ErrorTail, LogStore, Stream};
use super::registry::{Command, SocketInfo, State, Traffic, VassalShared, VassalStatus};
use super::sockets::{self, Listener, SocketError};
use super::Context;
use crate::backoff::{Backoff, HEALTHY_AFTER};
use crate::control::handover::{address_name, protocol_name, Inheritance, EXIT_APP_LOAD_FAILED, INHERIT_ENV};
use crate::control::{EmperorCommand, VassalMessage, WorkerReport, EMPEROR_FD_ENV};

/// Extra time, beyond the vassal's `reload-mercy`, before a process that was told to stop is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a quick stop may take before the process is killed.
const QUICK_STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a command may wait on a full control channel before the emperor falls back to a signal.
const COMMAND_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to keep reading a dead process's pipes (workers may still hold them for a moment).
const PIPE_DRAIN: Duration = Duration::from_secs(1);

/// What the supervisor wants for the vassal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Run,
    /// Stopped through the API: stays listed.
    Stopped,
    /// File gone or emperor exiting: the supervisor ends once no process is left.
    Removed,
}

/// Everything needed to start one version of the vassal, checked before anything is stopped.
struct Plan {
    args: Vec<OsString>,
    /// Sockets the emperor owns and passes down (empty for self-managed vassals).
    listeners: Vec<Arc<Listener>>,
    sockets: Vec<SocketInfo>,
    /// Names unix or fd:// sockets: binds its own sockets and reloads in place.
    self_managed: bool,
    /// The vassal's `reload-mercy`: how long a graceful stop may take.
    mercy: Duration,
}

#[derive(Debug)]
struct StartError {
    message: String,
    /// Waiting may fix it (a port held by another process): retried with backoff.
    transient: bool,
}

impl StartError {
    fn permanent(message: String) -> Self {
        StartError { message, transient: false }
    }
}

/// Supervisor → process task.
#[derive(Debug)]
enum ProcessCommand {
    Send(EmperorCommand),
    Kill,
}

/// Process task → supervisor.
#[derive(Debug)]
enum ProcessEvent {
    Spawned {
        pid: i32,
    },
    SpawnFailed(String),
    Message(VassalMessage),
    /// `None` when the process was never started (cancelled while waiting for a start slot, or exec failed).
    Exited(Option<ExitStatus>),
}

/// One vassal process, as its supervisor tracks it.
struct Process {
    id: u64,
    commands: mpsc::UnboundedSender<ProcessCommand>,
    pid: Option<i32>,
    spawned_at: Option<Instant>,
    spawned_unix: Option<u64>,
    ready_at: Option<Instant>,
    last_message: Instant,
    last_message_unix: Option<f64>,
    workers: Vec<WorkerReport>,
    /// Side processes (`attach-daemon*`), from the last heartbeat. (feat)
    daemons: Vec<crate::control::DaemonReport>,
    /// Master and workers, from the last heartbeat.
    rss_bytes: Option<u64>,
    /// Held so the sockets stay open while this process may use them.
    listeners: Vec<Arc<Listener>>,
    mercy: Duration,
    stop_deadline: Option<Instant>,
    killed: bool,
    /// Why the emperor killed it, shown instead of "killed by signal 9".
    kill_reason: Option<String>,
    spawn_error: Option<String>,
    tail: ErrorTail,
}

impl Process {
    fn send(&self, command: EmperorCommand) {
        // The task is gone only after the process exited, which the supervisor learns separately.
        let _ = self.commands.send(ProcessCommand::Send(command));
    }

    fn kill(&mut self, reason: String) {
        if self.killed {
            return;
        }
        self.killed = true;
        self.kill_reason = Some(reason);
        let _ = self.commands.send(ProcessCommand::Kill);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Serving,
    Candidate,
    Retiring,
}

pub struct Supervisor {
    ctx: Arc<Context>,
    shared: Arc<VassalShared>,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    events_tx: mpsc::UnboundedSender<(u64, ProcessEvent)>,
    events: mpsc::UnboundedReceiver<(u64, ProcessEvent)>,
    next_id: u64,
    goal: Goal,
    /// The process taking traffic.
    serving: Option<Process>,
    /// A process starting (first start, restart, or the new version during a reload).
    candidate: Option<Process>,
    /// Processes told to stop, until they exit.
    retiring: Vec<Process>,
    /// Sockets of the latest plan, kept open between processes (crash loop, restart) so the port stays ours
    /// and connections queue instead of being refused.
    held: Vec<Arc<Listener>>,
    sockets: Vec<SocketInfo>,
    /// Why the current file cannot run (config error, failed reload); cleared by a successful start.
    problem: Option<String>,
    /// A self-managed vassal reloading in place since then.
    in_place: Option<Instant>,
    next_start: Option<Instant>,
    restart_pending: bool,
    backoff: Backoff,
    respawns: u64,
    reloads: u64,
    last_error: Option<String>,
    last_error_at: Option<u64>,
    last_exit: Option<String>,
}

impl Supervisor {
    pub fn new(ctx: Arc<Context>, shared: Arc<VassalShared>, commands: mpsc::UnboundedReceiver<Command>) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let backoff = Backoff::new(ctx.throttle_base, ctx.throttle_max);
        Supervisor {
            ctx,
            shared,
            commands,
            commands_open: true,
            events_tx,
            events,
            next_id: 1,
            goal: Goal::Run,
            serving: None,
            candidate: None,
            retiring: Vec::new(),
            held: Vec::new(),
            sockets: Vec::new(),
            problem: None,
            in_place: None,
            next_start: None,
            restart_pending: false,
            backoff,
            respawns: 0,
            reloads: 0,
            last_error: None,
            last_error_at: None,
            last_exit: None,
        }
    }

    fn name(&self) -> &str {
        &self.shared.name
    }

    /// Runs until the vassal is removed and its last process has exited; returns its name.
    pub async fn run(mut self) -> String {
        loop {
            if self.goal == Goal::Removed && self.no_process() {
                break;
            }
            let tick = Instant::now() + Duration::from_secs(1);
            let wake = self.next_start.map_or(tick, |at| at.min(tick));
            tokio::select! {
                command = self.commands.recv(), if self.commands_open => match command {
                    Some(command) => self.on_command(command),
                    None => {
                        self.commands_open = false;
                        self.on_command(Command::Remove { quick: false });
                    }
                },
                Some((id, event)) = self.events.recv() => self.on_event(id, event),
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            self.on_timers();
            self.publish();
        }
        self.publish();
        self.shared.name.clone()
    }

    fn no_process(&self) -> bool {
        self.serving.is_none() && self.candidate.is_none() && self.retiring.is_empty()
    }

    // ---------------------------------------------------------------------------------------------------
    // Commands

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Changed { problem } => {
                if self.goal != Goal::Run {
                    return;
                }
                self.backoff.reset();
                self.begin_start(problem, "configuration changed");
            }
            Command::Reload => {
                if self.goal != Goal::Run {
                    return;
                }
                if self.serving.is_some() || self.candidate.is_none() {
                    self.backoff.reset();
                    self.begin_start(None, "reload requested");
                }
            }
            Command::ChainReload => {
                if self.goal != Goal::Run {
                    return;
                }
                let serving = self.serving.as_ref().filter(|p| p.pid.is_some() && !p.killed);
                match serving {
                    Some(process) if self.candidate.is_none() => {
                        process.send(EmperorCommand::ChainReload);
                        self.reloads += 1;
                        self.shared
                            .event("reload", "chain reload requested: workers are replaced one at a time".to_owned());
                        tracing::info!("vassal {}: chain reload", self.name());
                    }
                    _ => self.on_command(Command::Reload),
                }
            }
            Command::Retry => {
                if self.goal != Goal::Run {
                    return;
                }
                self.backoff.reset();
                let broken_reload = self.serving.is_some() && self.problem.is_some();
                if self.candidate.is_none() && (self.serving.is_none() || broken_reload) {
                    tracing::info!("vassal {}: {}", self.shared.name, "retry requested: backoff cleared");
                    self.shared.event("retry", "retry requested: backoff cleared".to_owned());
                    self.begin_start(None, "retry requested");
                }
            }
            Command::Start => {
                if self.goal == Goal::Removed {
                    return;
                }
                if self.goal == Goal::Stopped {
                    self.goal = Goal::Run;
                    self.backoff.reset();
                    tracing::info!("vassal {}: {}", self.shared.name, "start requested");
                    self.shared.event("start", "start requested".to_owned());
                    if self.serving.is_none() && self.candidate.is_none() {
                        self.begin_start(None, "start requested");
                    }
                }
            }
            Command::Stop => {
                if self.goal == Goal::Run {
                    self.goal = Goal::Stopped;
                    tracing::info!("vassal {}: {}", self.shared.name, "stop requested: stopping gracefully");
                    self.shared.event("stop", "stop requested: stopping gracefully".to_owned());
                    self.stop_all(false);
                }
            }
            Command::Remove { quick } => {
                let escalate = self.goal == Goal::Removed && quick;
                if self.goal != Goal::Removed {
                    self.goal = Goal::Removed;
                    self.stop_all(quick);
                } else if escalate {
                    for process in &mut self.retiring {
                        process.send(EmperorCommand::QuickStop);
                        let deadline = Instant::now() + QUICK_STOP_GRACE;
                        process.stop_deadline = Some(process.stop_deadline.map_or(deadline, |d| d.min(deadline)));
                    }
                }
            }
        }
    }

    /// Validates the file and starts a process for it (first start, restart, or reload).
    fn begin_start(&mut self, problem: Option<String>, why: &str) {
        self.next_start = None;
        let plan = match self.validate(problem) {
            Ok(plan) => plan,
            Err(error) => {
                self.set_error(error.message.clone());
                if error.transient && self.serving.is_none() {
                    self.throttle(&error.message);
                } else {
                    tracing::error!("vassal {}: {}", self.name(), summary(&error.message));
                    let what = if self.serving.is_some() {
                        "cannot use the changed file; the running version keeps serving"
                    } else {
                        "cannot start"
                    };
                    self.shared.event("error", format!("{what}: {}", error.message));
                    self.problem = Some(error.message);
                }
                return;
            }
        };
        self.sockets = plan.sockets.clone();
        self.held = plan.listeners.clone();
        if plan.self_managed && self.serving.as_ref().is_some_and(|p| p.pid.is_some() && !p.killed) {
            if let Some(serving) = &self.serving {
                serving.send(EmperorCommand::Reload);
            }
            if let Some(candidate) = self.candidate.take() {
                self.retire(candidate, true);
            }
            self.in_place = Some(Instant::now());
            self.reloads += 1;
            self.shared.event("reload", format!("{why}: reloading in place (the vassal binds its own sockets)"));
            tracing::info!("vassal {}: {why}; reloading in place", self.name());
            return;
        }
        if let Some(candidate) = self.candidate.take() {
            // A version that was still starting is replaced by the newer one; it never took traffic.
            self.retire(candidate, true);
        }
        if self.serving.is_some() {
            self.reloads += 1;
            self.shared.event("reload", format!("{why}: starting the new version beside the running one"));
            tracing::info!("vassal {}: {why}; starting the new version", self.name());
        }
        let process = self.spawn(plan);
        self.candidate = Some(process);
    }

    // ---------------------------------------------------------------------------------------------------
    // Validation

    /// The vassal's command line (after `liege vassal`): its file, the emperor's `vassals-include` files and
    /// `vassal-set` options, in that order (later options win, as in uWSGI).
    fn vassal_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![self.shared.path.clone().into_os_string()];
        for (index, include) in self.ctx.includes.iter().enumerate() {
            args.push("--ini".into());
            args.push(self.include_spec(index, include));
        }
        for (key, value) in &self.ctx.vassal_set {
            args.push(format!("--{key}={value}").into());
        }
        args
    }

    /// `%n` must name the vassal even inside a `vassals-include` file, but the config reader gives `%n` of
    /// the file being read. So each vassal reads each include through a symlink named after the vassal
    /// (`RUN/vassals-include/NAME/I/NAME.ini`): `%n` of a symlink is the link's name. If the link cannot be
    /// made, the file is read directly.
    fn include_spec(&self, index: usize, include: &Path) -> OsString {
        let text = include.to_string_lossy().into_owned();
        let (file, section) = liege_config::ini::split_spec(&text);
        let has_section = file.len() != text.len();
        let Ok(target) = std::fs::canonicalize(file) else {
            return include.as_os_str().to_owned();
        };
        let dir = self.ctx.run_dir.join("vassals-include").join(self.name()).join(index.to_string());
        let link = dir.join(format!("{}.ini", self.name()));
        let ready = std::fs::read_link(&link).is_ok_and(|current| current == target)
            || (std::fs::create_dir_all(&dir).is_ok() && {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&target, &link).is_ok()
            });
        if !ready {
            return include.as_os_str().to_owned();
        }
        let mut spec = link.into_os_string();
        if has_section {
            spec.push(format!(":{section}"));
        }
        spec
    }

    /// Error messages name the include links; show the user's files instead.
    fn readable(&self, message: String) -> String {
        let mut message = message;
        for (index, include) in self.ctx.includes.iter().enumerate() {
            let link = self
                .ctx
                .run_dir
                .join("vassals-include")
                .join(self.name())
                .join(index.to_string())
                .join(format!("{}.ini", self.name()));
            let text = include.to_string_lossy();
            let (file, _) = liege_config::ini::split_spec(&text);
            message = message.replace(&link.display().to_string(), file);
        }
        message
    }

    /// Parses the file as the vassal will, and prepares its sockets.
    fn validate(&mut self, problem: Option<String>) -> Result<Plan, StartError> {
        if let Some(problem) = problem {
            return Err(StartError::permanent(problem));
        }
        let args = self.vassal_args();
        let env = |name: &str| std::env::var(name).ok();
        let config = liege_config::parse_vassal_args(&args, &env)
            .map_err(|err| StartError::permanent(self.readable(err.to_string())))?;
        if config.app.is_none() && config.need_app {
            return Err(StartError::permanent(format!(
                "{}: no app configured: give wsgi-file or module (or need-app = false)",
                self.shared.path.display()
            )));
        }
        let self_managed = config.sockets.iter().any(|spec| !matches!(spec.address, SocketAddress::Tcp { .. }));
        let mut listeners = Vec::new();
        if self_managed {
            let sockets = config
                .sockets
                .iter()
                .map(|spec| SocketInfo {
                    proto: protocol_name(spec.protocol).to_owned(),
                    address: address_name(&spec.address),
                    auto: false,
                })
                .collect();
            return Ok(Plan { args, listeners, sockets, self_managed, mercy: config.reload_mercy });
        }
        if config.sockets.is_empty() {
            let listener = match self.reusable(Protocol::Http, None) {
                Some(listener) => listener,
                None => {
                    let registry = self.ctx.registry.clone();
                    let mut book = self.ctx.ports.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    let bound = book.bind(self.name(), config.listen, &|other| registry.contains(other));
                    drop(book);
                    let listener =
                        bound.map_err(|err| StartError { transient: err.is_transient(), message: err.to_string() })?;
                    tracing::info!("vassal {}: assigned http socket {}", self.name(), listener.name);
                    Arc::new(listener)
                }
            };
            listeners.push(listener);
        } else {
            for spec in &config.sockets {
                let name = address_name(&spec.address);
                if let Some(listener) = self.reusable(spec.protocol, Some(&name)) {
                    listeners.push(listener);
                    continue;
                }
                match sockets::bind_own(spec, config.listen) {
                    Some(Ok(listener)) => listeners.push(Arc::new(listener)),
                    Some(Err(err)) => return Err(socket_error(err)),
                    None => {}
                }
            }
        }
        let sockets = listeners
            .iter()
            .map(|listener| SocketInfo {
                proto: listener.proto().to_owned(),
                address: listener.name.clone(),
                auto: listener.auto,
            })
            .collect();
        Ok(Plan { args, listeners, sockets, self_managed, mercy: config.reload_mercy })
    }

    /// A socket this vassal already has open: the automatic one (`name` `None`) or one with this address.
    fn reusable(&self, protocol: Protocol, name: Option<&str>) -> Option<Arc<Listener>> {
        let in_use = self.serving.iter().chain(self.candidate.iter()).flat_map(|p| p.listeners.iter());
        self.held
            .iter()
            .chain(in_use)
            .find(|listener| {
                listener.protocol == protocol
                    && match name {
                        None => listener.auto,
                        Some(name) => !listener.auto && listener.name == name,
                    }
            })
            .cloned()
    }

    // ---------------------------------------------------------------------------------------------------
    // Processes

    fn spawn(&mut self, plan: Plan) -> Process {
        let id = self.next_id;
        self.next_id += 1;
        let (commands, receiver) = mpsc::unbounded_channel();
        let tail: ErrorTail = Arc::new(Mutex::new(VecDeque::new()));
        let job = ProcessJob {
            id,
            exe: self.ctx.exe.clone(),
            dir: self.ctx.dir.clone(),
            args: plan.args,
            listeners: plan.listeners.clone(),
            slots: self.ctx.start_slots.clone(),
            logs: self.shared.logs.clone(),
            tail: tail.clone(),
        };
        tokio::spawn(run_process(job, receiver, self.events_tx.clone()));
        Process {
            id,
            commands,
            pid: None,
            spawned_at: None,
            spawned_unix: None,
            ready_at: None,
            last_message: Instant::now(),
            last_message_unix: None,
            workers: Vec::new(),
            daemons: Vec::new(), // feat
            rss_bytes: None,
            listeners: plan.listeners,
            mercy: plan.mercy,
            stop_deadline: None,
            killed: false,
            kill_reason: None,
            spawn_error: None,
            tail,
        }
    }

    /// Tells a process to stop (drain) or quick-stop, and tracks it until it exits.
    fn retire(&mut self, mut process: Process, quick: bool) {
        if process.pid.is_none() {
            // Not started yet (waiting for a start slot): cancel.
            process.killed = true;
            let _ = process.commands.send(ProcessCommand::Kill);
        } else if quick {
            process.send(EmperorCommand::QuickStop);
            process.stop_deadline = Some(Instant::now() + QUICK_STOP_GRACE);
        } else {
            process.send(EmperorCommand::Stop);
            process.stop_deadline = Some(Instant::now() + process.mercy + STOP_GRACE);
        }
        self.retiring.push(process);
    }

    fn stop_all(&mut self, quick: bool) {
        self.next_start = None;
        self.restart_pending = false;
        self.in_place = None;
        if let Some(candidate) = self.candidate.take() {
            self.retire(candidate, true);
        }
        if let Some(serving) = self.serving.take() {
            self.retire(serving, quick);
        }
        if self.goal == Goal::Removed {
            self.held.clear();
        }
    }

    fn find(&mut self, id: u64) -> Option<(Role, &mut Process)> {
        if let Some(process) = self.serving.as_mut().filter(|p| p.id == id) {
            return Some((Role::Serving, process));
        }
        if let Some(process) = self.candidate.as_mut().filter(|p| p.id == id) {
            return Some((Role::Candidate, process));
        }
        self.retiring.iter_mut().find(|p| p.id == id).map(|p| (Role::Retiring, p))
    }

    fn take(&mut self, id: u64) -> Option<(Role, Process)> {
        if self.serving.as_ref().is_some_and(|p| p.id == id) {
            return self.serving.take().map(|p| (Role::Serving, p));
        }
        if self.candidate.as_ref().is_some_and(|p| p.id == id) {
            return self.candidate.take().map(|p| (Role::Candidate, p));
        }
        let index = self.retiring.iter().position(|p| p.id == id)?;
        Some((Role::Retiring, self.retiring.swap_remove(index)))
    }

    // ---------------------------------------------------------------------------------------------------
    // Events

    fn on_event(&mut self, id: u64, event: ProcessEvent) {
        match event {
            ProcessEvent::Spawned { pid } => {
                let reload = self.serving.is_some();
                if let Some((role, process)) = self.find(id) {
                    process.pid = Some(pid);
                    process.spawned_at = Some(Instant::now());
                    process.spawned_unix = Some(crate::process::unix_now());
                    process.last_message = Instant::now();
                    if role == Role::Candidate {
                        let what = if reload { "new version started" } else { "started" };
                        tracing::info!("vassal {}: {what}: pid {pid}", self.shared.name);
                        self.shared.event("spawn", format!("{what}: pid {pid}"));
                    }
                }
            }
            ProcessEvent::SpawnFailed(error) => {
                if let Some((_, process)) = self.find(id) {
                    process.spawn_error = Some(error);
                }
            }
            ProcessEvent::Message(message) => self.on_message(id, message),
            ProcessEvent::Exited(status) => self.on_exit(id, status),
        }
    }

    fn on_message(&mut self, id: u64, message: VassalMessage) {
        let in_place = self.in_place.is_some();
        let Some((role, process)) = self.find(id) else {
            return;
        };
        process.last_message = Instant::now();
        process.last_message_unix = Some(unix_time());
        match message {
            VassalMessage::Ready { pid, workers } => {
                process.workers = workers;
                process.ready_at = Some(Instant::now());
                let count = process.workers.len();
                match role {
                    Role::Candidate => self.promote(pid, count),
                    Role::Serving if in_place => {
                        self.in_place = None;
                        self.problem = None;
                        self.shared
                            .event("ready", format!("reloaded in place: pid {pid} serving with {count} worker(s)"));
                        tracing::info!("vassal {}: reloaded in place", self.name());
                    }
                    _ => {}
                }
            }
            VassalMessage::Heartbeat { pid, workers, time, counters, rss_bytes, respawns, daemons, .. } => {
                process.workers = workers;
                process.daemons = daemons; // feat
                process.rss_bytes = rss_bytes;
                if let Some(counters) = counters {
                    self.shared.record_traffic(pid, time, *counters, respawns);
                }
            }
            VassalMessage::WorkerSpawned { .. } => {}
            VassalMessage::WorkerExited { id: worker, pid, cause } => {
                if role != Role::Retiring && !cause.starts_with("reload") {
                    self.shared.event("worker", format!("worker {worker} (pid {pid}) {cause}"));
                }
            }
            VassalMessage::ReloadFailed { error } => {
                if role == Role::Serving {
                    let message = format!(
                        "reload failed, the previous version keeps serving: {}",
                        explain(&error, &process.tail)
                    );
                    self.in_place = None;
                    tracing::error!("vassal {}: {}", self.name(), summary(&message));
                    self.shared.event("error", message.clone());
                    self.set_error(message.clone());
                    self.problem = Some(message);
                }
            }
            VassalMessage::Stopping => {}
        }
    }

    /// The candidate is ready: it takes over, and the previous version (if any) drains and exits.
    fn promote(&mut self, pid: i32, workers: usize) {
        let Some(candidate) = self.candidate.take() else {
            return;
        };
        let replaced = self.serving.take();
        self.problem = None;
        if let Some(old) = replaced {
            let old_pid = old.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
            self.shared.event(
                "ready",
                format!(
                    "new version ready: pid {pid} serving with {workers} worker(s); pid {old_pid} drains and exits"
                ),
            );
            tracing::info!("vassal {}: new version ready (pid {pid}); stopping pid {old_pid}", self.name());
            self.retire(old, false);
        } else {
            self.shared.event("ready", format!("ready: pid {pid} serving with {workers} worker(s)"));
            tracing::info!("vassal {}: running (pid {pid}, {workers} worker(s))", self.name());
        }
        self.serving = Some(candidate);
    }

    fn on_exit(&mut self, id: u64, status: Option<ExitStatus>) {
        let Some((role, process)) = self.take(id) else {
            return;
        };
        let mut cause = match (&process.spawn_error, status) {
            (Some(error), _) => format!("could not be started: {error}"),
            (None, status) => describe_exit(status),
        };
        if let Some(reason) = &process.kill_reason {
            cause = format!("{reason} ({cause})");
        }
        if let Some(pid) = process.pid {
            self.shared.forget_process(pid);
        }
        let pid = process.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        match role {
            Role::Retiring => {
                if process.pid.is_some() {
                    tracing::info!("vassal {}: pid {pid} {cause}", self.name());
                    self.shared.event("exit", format!("pid {pid} {cause}"));
                }
            }
            Role::Candidate => {
                self.last_exit = Some(cause.clone());
                if self.goal != Goal::Run {
                    return;
                }
                let message = explain(&cause, &process.tail);
                self.set_error(message.clone());
                if self.serving.is_some() {
                    let text = format!("the new version failed, the running version keeps serving: {message}");
                    tracing::error!("vassal {}: {}", self.name(), summary(&text));
                    self.shared.event("error", text);
                    self.problem = Some(message);
                } else {
                    self.shared.event("exit", format!("pid {pid} {cause} before it was ready"));
                    self.throttle(&message);
                }
            }
            Role::Serving => {
                self.last_exit = Some(cause.clone());
                self.in_place = None;
                if self.goal != Goal::Run {
                    return;
                }
                let message = explain(&cause, &process.tail);
                self.set_error(message.clone());
                self.shared.event("exit", format!("pid {pid} {cause}"));
                tracing::warn!("vassal {}: pid {pid} {cause}", self.name());
                if self.candidate.is_some() {
                    return;
                }
                let healthy = process.ready_at.is_some_and(|at| at.elapsed() >= HEALTHY_AFTER);
                if healthy {
                    self.backoff.reset();
                    self.respawns += 1;
                    self.begin_start(None, "restart after an unexpected exit");
                } else {
                    self.throttle(&message);
                }
            }
        }
    }

    /// Schedules the next start after the backoff delay.
    fn throttle(&mut self, reason: &str) {
        let delay = self.backoff.next_delay();
        self.next_start = Some(Instant::now() + delay);
        self.restart_pending = true;
        let message = format!(
            "retrying in {:.1} s (failure {}): {}",
            delay.as_secs_f64(),
            self.backoff.failures(),
            summary(reason)
        );
        tracing::warn!("vassal {}: {message}", self.name());
        self.shared.event("throttle", message);
    }

    fn set_error(&mut self, message: String) {
        self.last_error = Some(message);
        self.last_error_at = Some(crate::process::unix_now());
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        if self.next_start.is_some_and(|at| at <= now) && self.goal == Goal::Run {
            self.next_start = None;
            if std::mem::take(&mut self.restart_pending) {
                self.respawns += 1;
            }
            if self.serving.is_none() && self.candidate.is_none() {
                self.begin_start(None, "restart");
            }
        }
        let start_timeout = self.ctx.start_timeout;
        if let Some(candidate) = self.candidate.as_mut() {
            if candidate.ready_at.is_none()
                && candidate.spawned_at.is_some_and(|at| now.duration_since(at) >= start_timeout)
            {
                candidate.kill(format!("not ready within {} s; killed", start_timeout.as_secs()));
            }
        }
        let heartbeat_timeout = self.ctx.heartbeat_timeout;
        let in_place = self.in_place;
        let mut hung = None;
        if let Some(serving) = self.serving.as_mut() {
            let overdue = match in_place {
                Some(since) => now.duration_since(since) >= start_timeout,
                None => now.duration_since(serving.last_message) >= heartbeat_timeout,
            };
            if overdue && serving.pid.is_some() && !serving.killed {
                let reason = match in_place {
                    Some(_) => format!("in-place reload not finished within {} s; killed", start_timeout.as_secs()),
                    None => format!("no heartbeat for {} s; killed", heartbeat_timeout.as_secs()),
                };
                hung = Some(reason.clone());
                serving.kill(reason);
            }
            if serving.ready_at.is_some_and(|at| now.duration_since(at) >= HEALTHY_AFTER) && self.backoff.failures() > 0
            {
                self.backoff.reset();
            }
        }
        if let Some(reason) = hung {
            tracing::warn!("vassal {}: {reason}", self.name());
            self.shared.event("watchdog", reason);
        }
        for process in &mut self.retiring {
            if process.stop_deadline.is_some_and(|at| at <= now) && !process.killed {
                process.kill("did not stop in time; killed".to_owned());
            }
        }
    }

    fn state(&self) -> State {
        if self.goal != Goal::Run {
            return if self.no_process() { State::Stopped } else { State::Stopping };
        }
        if self.serving.is_some() {
            if self.candidate.is_some() || self.in_place.is_some() {
                State::Reloading
            } else if self.problem.is_some() {
                State::Error
            } else {
                State::Running
            }
        } else if self.candidate.is_some() {
            State::Starting
        } else if self.next_start.is_some() {
            State::Throttled
        } else if self.problem.is_some() {
            State::Error
        } else {
            State::Starting
        }
    }

    fn publish(&self) {
        let shown = self.serving.as_ref().or(self.candidate.as_ref());
        let retry_at =
            self.next_start.map(|at| unix_time() + at.saturating_duration_since(Instant::now()).as_secs_f64());
        let status = VassalStatus {
            name: self.shared.name.clone(),
            config: self.shared.path.display().to_string(),
            state: self.state(),
            pid: shown.and_then(|p| p.pid),
            sockets: self.sockets.clone(),
            workers: shown.map(|p| p.workers.clone()).unwrap_or_default(),
            daemons: shown.map(|p| p.daemons.clone()).unwrap_or_default(), // feat
            respawns: self.respawns,
            last_error: self.last_error.clone(),
            started_at: self.serving.as_ref().and_then(|p| p.spawned_unix),
            first_started_at: None, // kept by VassalShared::publish
            reloads: self.reloads,
            last_exit: self.last_exit.clone(),
            last_error_at: self.last_error_at,
            retry_at,
            failures: self.backoff.failures(),
            requests: 0,
            last_heartbeat: self.serving.as_ref().and_then(|p| p.last_message_unix),
            log_file: self.shared.logs.file_path().map(|p| p.display().to_string()),
            traffic: Traffic {
                rss_bytes: self.serving.as_ref().and_then(|p| p.rss_bytes),
                pss_bytes: self
                    .serving
                    .as_ref()
                    .and_then(|p| p.workers.iter().map(|w| w.pss_bytes).sum::<Option<u64>>()),
                ..Traffic::default()
            },
        };
        self.shared.publish(status);
    }
}

fn socket_error(err: SocketError) -> StartError {
    StartError { transient: err.is_transient(), message: err.to_string() }
}

/// One line for logs: the first line of a message, plus its last one when there are several (the exception
/// at the end of a traceback says more than anything between).
fn summary(text: &str) -> String {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let first = lines.next().unwrap_or(text);
    match lines.next_back() {
        Some(last) => format!("{first}: {}", last.trim()),
        None => first.to_owned(),
    }
}

/// `exited with code 22 (the app failed to load)`, `killed by signal 9 (SIGKILL)`.
pub fn describe_exit(status: Option<ExitStatus>) -> String {
    let Some(status) = status else {
        return "was never started".to_owned();
    };
    if let Some(code) = status.code() {
        return match code {
            0 => "exited with code 0".to_owned(),
            1 => "exited with code 1 (startup error)".to_owned(),
            code if code == EXIT_APP_LOAD_FAILED => {
                format!("exited with code {code} (the app failed to load)")
            }
            code => format!("exited with code {code}"),
        };
    }
    match status.signal() {
        Some(signal) => {
            let name = nix::sys::signal::Signal::try_from(signal).map_or("unknown", |s| s.as_str());
            format!("killed by signal {signal} ({name})")
        }
        None => format!("{status}"),
    }
}

/// The reason plus what the process printed about it: from the first error line among its last stderr
/// lines (an import error and its traceback), else its last few lines.
fn explain(cause: &str, tail: &ErrorTail) -> String {
    let lines: Vec<String> = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().cloned().collect();
    let recent = &lines[lines.len().saturating_sub(30)..];
    let start = recent
        .iter()
        .position(|line| line.contains(" ERROR: ") || line.starts_with("liege: ") || line.starts_with("Traceback"))
        .unwrap_or(recent.len().saturating_sub(10));
    let mut detail = recent[start..].join("\n");
    const LIMIT: usize = 4000;
    if detail.len() > LIMIT {
        let mut cut = detail.len() - LIMIT;
        while !detail.is_char_boundary(cut) {
            cut += 1;
        }
        detail = format!("...{}", &detail[cut..]);
    }
    if detail.is_empty() {
        cause.to_owned()
    } else {
        format!("{cause}\n{detail}")
    }
}

/// Everything the process task needs.
struct ProcessJob {
    id: u64,
    exe: PathBuf,
    dir: PathBuf,
    args: Vec<OsString>,
    listeners: Vec<Arc<Listener>>,
    slots: Arc<Semaphore>,
    logs: Arc<LogStore>,
    tail: ErrorTail,
}

/// Owns one vassal process from start to exit: waits for a start slot, spawns it, relays its control
/// messages, carries commands to it, and reports its exit once its output is read.
async fn run_process(
    job: ProcessJob,
    mut commands: mpsc::UnboundedReceiver<ProcessCommand>,
    events: mpsc::UnboundedSender<(u64, ProcessEvent)>,
) {
    let id = job.id;
    let report = |event: ProcessEvent| {
        // The supervisor outlives its processes; if it is gone there is nobody left to tell.
        let _ = events.send((id, event));
    };
    let permit = tokio::select! {
        permit = job.slots.clone().acquire_owned() => permit.ok(),
        _ = commands.recv() => {
            report(ProcessEvent::Exited(None));
            return;
        }
    };
    let mut permit = permit;
    let (mut child, control) = match start(&job) {
        Ok(started) => started,
        Err(err) => {
            report(ProcessEvent::SpawnFailed(err.to_string()));
            report(ProcessEvent::Exited(None));
            return;
        }
    };
    let Some(pid) = child.id().map(|pid| pid as i32) else {
        report(ProcessEvent::SpawnFailed("the process vanished at once".to_owned()));
        report(ProcessEvent::Exited(child.wait().await.ok()));
        return;
    };
    report(ProcessEvent::Spawned { pid });
    for fd in [
        child.stdout.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
        child.stderr.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
    ]
    .into_iter()
    .flatten()
    {
        logs::enlarge_pipe(fd);
    }
    let stdout =
        child.stdout.take().map(|out| tokio::spawn(logs::capture(out, job.logs.clone(), Stream::Stdout, pid, None)));
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(logs::capture(err, job.logs.clone(), Stream::Stderr, pid, Some(job.tail.clone()))));
    let (reader, mut writer) = control.into_split();
    let mut lines = BufReader::new(reader).lines();
    let mut channel_open = true;
    let mut commands_open = true;
    let status = loop {
        tokio::select! {
            line = lines.next_line(), if channel_open => match line {
                Ok(Some(text)) => match serde_json::from_str::<VassalMessage>(&text) {
                    Ok(message) => {
                        if matches!(message, VassalMessage::Ready { .. } | VassalMessage::WorkerSpawned { .. }) {
                            // The expensive part of a start (Python and the app's import, preloaded before the
                            // first fork) is over: let the next vassal start. Waiting for `ready` instead
                            // would serialise starts on the master's 1 s poll tick.
                            permit = None;
                        }
                        report(ProcessEvent::Message(message));
                    }
                    Err(err) => tracing::debug!("vassal pid {pid}: unreadable control message ({err}): {text}"),
                },
                Ok(None) | Err(_) => channel_open = false,
            },
            status = child.wait() => break status.ok(),
            command = commands.recv(), if commands_open => match command {
                Some(ProcessCommand::Send(command)) => send_command(&mut writer, pid, command).await,
                Some(ProcessCommand::Kill) => {
                    let _ = child.start_kill();
                }
                None => {
                    // The supervisor is gone (emperor shutting down hard): nobody will manage this process.
                    commands_open = false;
                    let _ = child.start_kill();
                }
            },
        }
    };
    drop(permit);
    let _ = tokio::time::timeout(PIPE_DRAIN, async {
        if let Some(task) = stdout {
            let _ = task.await;
        }
        if let Some(task) = stderr {
            let _ = task.await;
        }
    })
    .await;
    report(ProcessEvent::Exited(status));
}

/// Spawns `liege vassal ...` with the sockets and the control channel kept open across exec.
fn start(job: &ProcessJob) -> std::io::Result<(tokio::process::Child, tokio::net::UnixStream)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    let ours = tokio::net::UnixStream::from_std(ours)?;
    let mut command = tokio::process::Command::new(&job.exe);
    command
        .arg("vassal")
        .args(&job.args)
        .current_dir(&job.dir)
        .env(EMPEROR_FD_ENV, theirs.as_raw_fd().to_string())
        .env_remove(crate::systemd::NOTIFY_SOCKET_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if job.listeners.is_empty() {
        command.env_remove(INHERIT_ENV);
    } else {
        let inheritance =
            Inheritance { sockets: job.listeners.iter().map(|l| l.inherited()).collect(), ..Default::default() };
        command.env(INHERIT_ENV, serde_json::to_string(&inheritance).map_err(std::io::Error::other)?);
    }
    let keep: Vec<RawFd> = job.listeners.iter().map(|l| l.fd.as_raw_fd()).chain([theirs.as_raw_fd()]).collect();
    // SAFETY: runs in the child between fork and exec; only fcntl (async-signal-safe) on descriptors that are
    // open in the parent (held by `job` and `theirs` until spawn returns), and no allocation.
    unsafe {
        command.pre_exec(move || {
            for &fd in &keep {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(theirs);
    Ok((child, ours))
}

/// Writes one command line to the vassal; if the channel is stuck or closed, says it with a signal instead
/// (the master gives SIGTERM, SIGINT and SIGHUP the same meanings).
async fn send_command(writer: &mut tokio::net::unix::OwnedWriteHalf, pid: i32, command: EmperorCommand) {
    let mut line = match serde_json::to_vec(&command) {
        Ok(line) => line,
        Err(err) => {
            tracing::error!("cannot encode {command:?}: {err}");
            return;
        }
    };
    line.push(b'\n');
    let sent = tokio::time::timeout(COMMAND_WRITE_TIMEOUT, writer.write_all(&line)).await;
    if !matches!(sent, Ok(Ok(()))) {
        let signal = match command {
            EmperorCommand::Stop => libc::SIGTERM,
            EmperorCommand::QuickStop => libc::SIGINT,
            EmperorCommand::Reload | EmperorCommand::ChainReload => libc::SIGHUP,
        };
        tracing::debug!("control channel to pid {pid} unusable; sending signal {signal}");
        // SAFETY: kill(2) on our own child, which has not been reaped yet (the caller still waits on it).
        unsafe { libc::kill(pid, signal) };
    }
}
