//! One vassal: its supervisor task (this file: the shell) and its processes (one task each), with every
//! decision taken by its state machine in [`core`].
//!
//! The supervisor feeds the core, one at a time, events from three sources: commands (file changed, deleted,
//! SIGHUP, API), events from its processes (spawned, messages on the control channel, exited) and a
//! one-second tick (backoff timers, start timeouts, the heartbeat watchdog, stop deadlines). It carries out
//! the core's actions (validate the file and bind its sockets, spawn, send a command, kill, log an event)
//! and after each decision publishes a snapshot for the API.
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

pub mod core;

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use liege_config::{Protocol, SocketAddress};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Semaphore};

use self::core::{Action, Limits, Now, PlanInfo, StartError, VassalCore};
use super::logs::{self, unix_time, ErrorTail, LogStore, Stream};
use super::registry::{Command, SocketInfo, Traffic, VassalShared, VassalStatus};
use super::sockets::{self, Listener, SocketError};
use super::Context;
use crate::control::handover::{address_name, protocol_name, Inheritance, EXIT_APP_LOAD_FAILED, INHERIT_ENV};
use crate::control::{EmperorCommand, VassalMessage, EMPEROR_FD_ENV};
/// How long a command may wait on a full control channel before the emperor falls back to a signal.
const COMMAND_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to keep reading a dead process's pipes (workers may still hold them for a moment).
const PIPE_DRAIN: Duration = Duration::from_secs(1);

/// Everything needed to start one version of the vassal, checked before anything is stopped.
struct Plan {
    args: Vec<OsString>,
    /// The program that runs this vassal: the binary or the interpreter of its environment (`crate::launch`).
    program: crate::launch::Program,
    /// Sockets the emperor owns and passes down (empty for self-managed vassals).
    listeners: Vec<Arc<Listener>>,
    sockets: Vec<SocketInfo>,
    /// Names unix or fd:// sockets: binds its own sockets and reloads in place.
    self_managed: bool,
    /// The vassal's `reload-mercy`: how long a graceful stop may take.
    mercy: Duration,
    /// `emperor-tyrant`: the user, group and supplementary groups the process becomes before exec.
    run_as: Option<RunAs>,
}

/// Who a tyrant emperor's vassal runs as: its file's owner.
#[derive(Debug, Clone)]
struct RunAs {
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
    groups: Vec<nix::unistd::Gid>,
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

/// What the shell keeps of a process besides the core's record: its task's command line, the sockets it
/// holds, its last stderr lines.
struct Handle {
    commands: mpsc::UnboundedSender<ProcessCommand>,
    /// Held so the sockets stay open while this process may use them.
    listeners: Vec<Arc<Listener>>,
    tail: ErrorTail,
}

impl Handle {
    fn tail(&self) -> Vec<String> {
        self.tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().cloned().collect()
    }
}

pub struct Supervisor {
    ctx: Arc<Context>,
    shared: Arc<VassalShared>,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    events_tx: mpsc::UnboundedSender<(u64, ProcessEvent)>,
    events: mpsc::UnboundedReceiver<(u64, ProcessEvent)>,
    /// Every decision about the vassal.
    core: VassalCore,
    /// The processes the core tracks, by id.
    handles: HashMap<u64, Handle>,
    /// Sockets of the latest plan, kept open between processes (crash loop, restart) so the port stays ours
    /// and connections queue instead of being refused.
    held: Vec<Arc<Listener>>,
    sockets: Vec<SocketInfo>,
    /// The plan just prepared, for the [`Action::Spawn`] that follows it.
    plan: Option<Plan>,
}

fn now() -> Now {
    Now { mono: Instant::now(), unix: unix_time() }
}

impl Supervisor {
    pub fn new(ctx: Arc<Context>, shared: Arc<VassalShared>, commands: mpsc::UnboundedReceiver<Command>) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let limits = Limits {
            start_timeout: ctx.start_timeout,
            heartbeat_timeout: ctx.heartbeat_timeout,
            throttle_base: ctx.throttle_base,
            throttle_max: ctx.throttle_max,
        };
        let core = VassalCore::new(shared.name.clone(), limits);
        Supervisor {
            ctx,
            shared,
            commands,
            commands_open: true,
            events_tx,
            events,
            core,
            handles: HashMap::new(),
            held: Vec::new(),
            sockets: Vec::new(),
            plan: None,
        }
    }

    fn name(&self) -> &str {
        &self.shared.name
    }

    /// Runs until the vassal is removed and its last process has exited; returns its name.
    pub async fn run(mut self) -> String {
        loop {
            if self.core.finished() {
                break;
            }
            let tick = Instant::now() + Duration::from_secs(1);
            let wake = self.core.next_start().map_or(tick, |at| at.min(tick));
            tokio::select! {
                command = self.commands.recv(), if self.commands_open => match command {
                    Some(command) => self.core.on_command(command, now()),
                    None => {
                        self.commands_open = false;
                        self.core.on_command(Command::Remove { quick: false }, now());
                    }
                },
                Some((id, event)) = self.events.recv() => self.on_event(id, event),
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            self.apply();
            self.core.on_timers(now());
            self.apply();
            self.publish();
        }
        self.publish();
        self.shared.name.clone()
    }

    /// Carries out the core's actions, in order.
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
            Action::Prepare { problem, why } => {
                let outcome = self.validate(problem).map(|plan| {
                    self.sockets = plan.sockets.clone();
                    self.held = plan.listeners.clone();
                    let info = PlanInfo { self_managed: plan.self_managed, mercy: plan.mercy };
                    self.plan = Some(plan);
                    info
                });
                self.core.prepared(outcome, &why, now());
            }
            Action::Spawn { id } => match self.plan.take() {
                Some(plan) => self.spawn(id, plan),
                None => tracing::error!("vassal {}: no plan to start process {id} with", self.name()),
            },
            Action::Send { id, command } => {
                if let Some(handle) = self.handles.get(&id) {
                    // The task is gone only after the process exited, which the core learns separately.
                    let _ = handle.commands.send(ProcessCommand::Send(command));
                }
            }
            Action::Kill { id } => {
                if let Some(handle) = self.handles.get(&id) {
                    let _ = handle.commands.send(ProcessCommand::Kill);
                }
            }
            Action::ReleaseSockets => self.held.clear(),
            Action::Event { kind, message } => self.shared.event(kind, message),
            Action::RecordTraffic { pid, time, counters, respawns } => {
                self.shared.record_traffic(pid, time, *counters, respawns)
            }
            Action::ForgetProcess { pid } => self.shared.forget_process(pid),
        }
    }

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

    /// `emperor-tyrant`: the owner of the vassal file (of the link itself with `-nofollow`), never root, and
    /// with `-initgroups` the owner's supplementary groups, resolved here since the child cannot look them
    /// up between fork and exec.
    fn tyrant_owner(&self) -> Result<Option<RunAs>, StartError> {
        let Some(tyrant) = self.ctx.tyrant else { return Ok(None) };
        let path = &self.shared.path;
        let metadata = if tyrant.nofollow { std::fs::symlink_metadata(path) } else { std::fs::metadata(path) };
        let metadata = metadata.map_err(|err| StartError::permanent(format!("{}: {err}", path.display())))?;
        let (uid, gid) = crate::privileges::tyrant_owner(metadata.uid(), metadata.gid())
            .map_err(|err| StartError::permanent(format!("{}: {err}", path.display())))?;
        let groups = if tyrant.initgroups { crate::privileges::groups_of(uid, gid) } else { vec![gid] };
        Ok(Some(RunAs { uid, gid, groups }))
    }

    /// Parses the file as the vassal will, and prepares its sockets.
    fn validate(&mut self, problem: Option<String>) -> Result<Plan, StartError> {
        if let Some(problem) = problem {
            return Err(StartError::permanent(problem));
        }
        let args = self.vassal_args();
        let env = |name: &str| std::env::var(name).ok();
        // `@(exec://...)` runs a child of the emperor and waits for it: no orphan scan meanwhile.
        let spawning = self.ctx.children.spawning();
        let config = liege_config::parse_vassal_args(&args, &env)
            .map_err(|err| StartError::permanent(self.readable(err.to_string())))?;
        drop(spawning);
        // Each vassal on the interpreter of its own environment; see crate::launch.
        let program = crate::launch::choose(config.python.as_deref(), config.virtualenv.as_deref(), &self.ctx.program)
            .map_err(|err| StartError::permanent(format!("{}: {err}", self.shared.path.display())))?;
        if config.app.is_none() && config.need_app {
            return Err(StartError::permanent(format!(
                "{}: no app configured: give wsgi-file or module (or need-app = false)",
                self.shared.path.display()
            )));
        }
        let run_as = self.tyrant_owner()?;
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
            return Ok(Plan { args, program, listeners, sockets, self_managed, mercy: config.reload_mercy, run_as });
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
        Ok(Plan { args, program, listeners, sockets, self_managed, mercy: config.reload_mercy, run_as })
    }

    /// A socket this vassal already has open: the automatic one (`name` `None`) or one with this address.
    fn reusable(&self, protocol: Protocol, name: Option<&str>) -> Option<Arc<Listener>> {
        let ids = self.core.serving().iter().chain(self.core.candidate().iter()).map(|p| p.id).collect::<Vec<_>>();
        let in_use = ids.iter().filter_map(|id| self.handles.get(id)).flat_map(|h| h.listeners.iter());
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

    /// Starts the task that owns process `id`.
    fn spawn(&mut self, id: u64, plan: Plan) {
        let (commands, receiver) = mpsc::unbounded_channel();
        let tail: ErrorTail = Arc::new(Mutex::new(VecDeque::new()));
        let job = ProcessJob {
            id,
            program: plan.program,
            dir: self.ctx.dir.clone(),
            args: plan.args,
            run_as: plan.run_as,
            listeners: plan.listeners.clone(),
            slots: self.ctx.start_slots.clone(),
            children: self.ctx.children.clone(),
            logs: self.shared.logs.clone(),
            tail: tail.clone(),
        };
        tokio::spawn(run_process(job, receiver, self.events_tx.clone()));
        self.handles.insert(id, Handle { commands, listeners: plan.listeners, tail });
    }

    fn tail(&self, id: u64) -> Vec<String> {
        self.handles.get(&id).map(Handle::tail).unwrap_or_default()
    }

    fn on_event(&mut self, id: u64, event: ProcessEvent) {
        match event {
            ProcessEvent::Spawned { pid } => self.core.on_spawned(id, pid, now()),
            ProcessEvent::SpawnFailed(error) => self.core.on_spawn_failed(id, error),
            ProcessEvent::Message(message) => {
                let tail =
                    if matches!(message, VassalMessage::ReloadFailed { .. }) { self.tail(id) } else { Vec::new() };
                self.core.on_message(id, message, &tail, now());
            }
            ProcessEvent::Exited(status) => {
                let tail = self.tail(id);
                self.core.on_exit(id, describe_exit(status), &tail, now());
                self.apply();
                self.handles.remove(&id);
            }
        }
    }

    fn publish(&self) {
        let core = &self.core;
        let shown = core.serving().or(core.candidate());
        let retry_at =
            core.next_start().map(|at| unix_time() + at.saturating_duration_since(Instant::now()).as_secs_f64());
        let status = VassalStatus {
            name: self.shared.name.clone(),
            config: self.shared.path.display().to_string(),
            state: core.state(),
            pid: shown.and_then(|p| p.pid),
            sockets: self.sockets.clone(),
            workers: shown.map(|p| p.workers.clone()).unwrap_or_default(),
            daemons: shown.map(|p| p.daemons.clone()).unwrap_or_default(),
            respawns: core.respawns,
            last_error: core.last_error.clone(),
            started_at: core.serving().and_then(|p| p.spawned_unix),
            first_started_at: None, // kept by VassalShared::publish
            reloads: core.reloads,
            last_exit: core.last_exit.clone(),
            last_error_at: core.last_error_at,
            retry_at,
            failures: core.failures(),
            requests: 0,
            last_heartbeat: core.serving().and_then(|p| p.last_message_unix),
            log_file: self.shared.logs.file_path().map(|p| p.display().to_string()),
            traffic: Traffic {
                rss_bytes: core.serving().and_then(|p| p.rss_bytes),
                pss_bytes: core.serving().and_then(|p| p.workers.iter().map(|w| w.pss_bytes).sum::<Option<u64>>()),
                ..Traffic::default()
            },
        };
        self.shared.publish(status);
    }
}

fn socket_error(err: SocketError) -> StartError {
    StartError { transient: err.is_transient(), message: err.to_string() }
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

/// Everything the process task needs.
struct ProcessJob {
    id: u64,
    program: crate::launch::Program,
    dir: PathBuf,
    args: Vec<OsString>,
    run_as: Option<RunAs>,
    listeners: Vec<Arc<Listener>>,
    slots: Arc<Semaphore>,
    /// Where the process's pid is kept while tokio waits for it (see `super::orphans`).
    children: Arc<super::orphans::Children>,
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
            status = child.wait() => {
                job.children.remove(pid);
                break status.ok();
            }
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
    // `liege vassal ...` or `PYTHON -c <bootstrap> vassal ...`, its interpreter chosen already.
    let (exe, prefix) = job.program.command_line();
    let mut command = tokio::process::Command::new(exe);
    command
        .args(prefix)
        .env(crate::launch::CHOSEN_ENV, "1")
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
    let run_as = job.run_as.clone();
    if let Some(run_as) = &run_as {
        tracing::info!("emperor-tyrant: vassal runs as uid {} gid {}", run_as.uid, run_as.gid);
    }
    // SAFETY: runs in the child between fork and exec; only async-signal-safe calls (fcntl, setgroups,
    // setgid, setuid: raw system calls here, the child being single-threaded) on descriptors and values
    // prepared in the parent (held by `job` and `theirs` until spawn returns), and no allocation.
    unsafe {
        command.pre_exec(move || {
            for &fd in &keep {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(run_as) = &run_as {
                let groups: &[nix::unistd::Gid] = &run_as.groups;
                if libc::setgroups(groups.len(), groups.as_ptr().cast()) != 0
                    || libc::setgid(run_as.gid.as_raw()) != 0
                    || libc::setuid(run_as.uid.as_raw()) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    // The orphan reaper must know the pid before it can see the process exit.
    let spawning = job.children.spawning();
    let child = command.spawn()?;
    if let Some(pid) = child.id() {
        job.children.insert(pid as i32);
    }
    drop(spawning);
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
