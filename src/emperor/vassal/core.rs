//! One vassal's lifecycle rules, without their effects: when to start a process, which process serves,
//! when the previous version drains, when a crash loop must wait, when a hung master is killed.
//!
//! The shell ([`super::Supervisor`]) validates files, binds sockets, spawns and talks to processes and
//! publishes snapshots; it feeds this core what happened (a command, a process event, the tick) with the
//! time ([`Now`]: the core never reads a clock), and carries out the [`Action`]s the core queued. A vassal
//! has at most one **serving** process (taking traffic), one **candidate** (starting: the first start, a
//! restart, or the new version of a reload) and any number of **retiring** ones (told to stop, until they
//! exit). The rules:
//!
//! - a changed file is validated first ([`Action::Prepare`]); the new version starts beside the running one
//!   and takes over only once it reports `ready`; if it fails, the old one keeps serving;
//! - a vassal that binds its own sockets (unix, `fd://`) reloads in place instead (its master re-executes);
//! - a process that exits before it was ready, or within [`HEALTHY_AFTER`] of it, is restarted after an
//!   exponential backoff (`emperor-throttle`); one that served longer is restarted at once;
//! - a candidate not ready within `start-timeout`, or a serving master silent for `heartbeat-timeout`, is
//!   killed; a retiring one past its mercy is killed.

use std::time::{Duration, Instant};

use crate::backoff::{Backoff, HEALTHY_AFTER};
use crate::control::{EmperorCommand, ExitCause, Respawns, VassalMessage, WorkerReport};
use crate::emperor::registry::{Command, State};
use crate::stats::Counters;

/// Extra time, beyond the vassal's `reload-mercy`, before a process that was told to stop is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a quick stop may take before the process is killed.
pub const QUICK_STOP_GRACE: Duration = Duration::from_secs(5);

/// The time of a decision: the monotonic clock for timers, Unix time for what the API shows.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    /// Seconds since the epoch, with milliseconds.
    pub unix: f64,
}

impl Now {
    fn unix_secs(&self) -> u64 {
        self.unix as u64
    }
}

/// What the supervisor wants for the vassal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    Run,
    /// Stopped through the API: stays listed.
    Stopped,
    /// File gone or emperor exiting: the supervisor ends once no process is left.
    Removed,
}

/// What a validated file needs from the core (the shell keeps the rest: arguments, sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanInfo {
    /// Names unix or fd:// sockets: binds its own sockets and reloads in place.
    pub self_managed: bool,
    /// The vassal's `reload-mercy`: how long a graceful stop may take.
    pub mercy: Duration,
}

/// Why a file cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError {
    pub message: String,
    /// Waiting may fix it (a port held by another process): retried with backoff.
    pub transient: bool,
}

impl StartError {
    pub fn permanent(message: String) -> Self {
        StartError { message, transient: false }
    }
}

/// An effect for the shell, in the order queued.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Validate the file and prepare its sockets (`problem`: a reason already known it cannot run), then
    /// call [`VassalCore::prepared`] with the outcome and this `why`.
    Prepare {
        problem: Option<String>,
        why: String,
    },
    /// Start process `id` with the plan just prepared.
    Spawn {
        id: u64,
    },
    Send {
        id: u64,
        command: EmperorCommand,
    },
    /// Kill process `id` (or cancel its start, if it is still waiting for a start slot).
    Kill {
        id: u64,
    },
    /// Drop the sockets kept open between processes (the vassal is removed).
    ReleaseSockets,
    /// An entry in the vassal's event list (and its log).
    Event {
        kind: &'static str,
        message: String,
    },
    /// A heartbeat's counters, for the traffic figures.
    RecordTraffic {
        pid: i32,
        time: f64,
        counters: Box<Counters>,
        respawns: Respawns,
    },
    /// Forget the traffic figures of an exited process.
    ForgetProcess {
        pid: i32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Serving,
    Candidate,
    Retiring,
}

/// One vassal process, as the core tracks it.
#[derive(Debug, Clone)]
pub struct Process {
    pub id: u64,
    pub pid: Option<i32>,
    spawned_at: Option<Instant>,
    pub spawned_unix: Option<u64>,
    ready_at: Option<Instant>,
    last_message: Instant,
    pub last_message_unix: Option<f64>,
    pub workers: Vec<WorkerReport>,
    /// Side processes (`attach-daemon*`), from the last heartbeat.
    pub daemons: Vec<crate::control::DaemonReport>,
    /// Master and workers, from the last heartbeat.
    pub rss_bytes: Option<u64>,
    mercy: Duration,
    stop_deadline: Option<Instant>,
    killed: bool,
    /// Why the emperor killed it, shown instead of "killed by signal 9".
    kill_reason: Option<String>,
    spawn_error: Option<String>,
}

/// The timeouts the rules use (from the emperor's options).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub start_timeout: Duration,
    pub heartbeat_timeout: Duration,
    pub throttle_base: Duration,
    pub throttle_max: Duration,
}

/// A vassal's state and rules.
#[derive(Debug)]
pub struct VassalCore {
    name: String,
    limits: Limits,
    next_id: u64,
    pub goal: Goal,
    serving: Option<Process>,
    candidate: Option<Process>,
    retiring: Vec<Process>,
    /// Why the current file cannot run (config error, failed reload); cleared by a successful start.
    problem: Option<String>,
    /// A self-managed vassal reloading in place since then.
    in_place: Option<Instant>,
    next_start: Option<Instant>,
    restart_pending: bool,
    backoff: Backoff,
    pub respawns: u64,
    pub reloads: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
    pub last_exit: Option<String>,
    actions: Vec<Action>,
}

impl VassalCore {
    pub fn new(name: String, limits: Limits) -> Self {
        VassalCore {
            name,
            backoff: Backoff::new(limits.throttle_base, limits.throttle_max),
            limits,
            next_id: 1,
            goal: Goal::Run,
            serving: None,
            candidate: None,
            retiring: Vec::new(),
            problem: None,
            in_place: None,
            next_start: None,
            restart_pending: false,
            respawns: 0,
            reloads: 0,
            last_error: None,
            last_error_at: None,
            last_exit: None,
            actions: Vec::new(),
        }
    }

    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    // -------------------------------------------------------------------------------------------------
    // What the shell reads

    pub fn no_process(&self) -> bool {
        self.serving.is_none() && self.candidate.is_none() && self.retiring.is_empty()
    }

    /// The supervisor may end: removed, and its last process has exited.
    pub fn finished(&self) -> bool {
        self.goal == Goal::Removed && self.no_process()
    }

    pub fn next_start(&self) -> Option<Instant> {
        self.next_start
    }

    pub fn serving(&self) -> Option<&Process> {
        self.serving.as_ref()
    }

    pub fn candidate(&self) -> Option<&Process> {
        self.candidate.as_ref()
    }

    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }

    pub fn state(&self) -> State {
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

    // -------------------------------------------------------------------------------------------------
    // Commands

    pub fn on_command(&mut self, command: Command, now: Now) {
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
                let serving = self.serving.as_ref().filter(|p| p.pid.is_some() && !p.killed).map(|p| p.id);
                match serving {
                    Some(id) if self.candidate.is_none() => {
                        self.actions.push(Action::Send { id, command: EmperorCommand::ChainReload });
                        self.reloads += 1;
                        self.event("reload", "chain reload requested: workers are replaced one at a time".to_owned());
                        tracing::info!("vassal {}: chain reload", self.name);
                    }
                    _ => self.on_command(Command::Reload, now),
                }
            }
            Command::Retry => {
                if self.goal != Goal::Run {
                    return;
                }
                self.backoff.reset();
                let broken_reload = self.serving.is_some() && self.problem.is_some();
                if self.candidate.is_none() && (self.serving.is_none() || broken_reload) {
                    tracing::info!("vassal {}: retry requested: backoff cleared", self.name);
                    self.event("retry", "retry requested: backoff cleared".to_owned());
                    self.begin_start(None, "retry requested");
                }
            }
            Command::Start => {
                if self.goal == Goal::Stopped {
                    self.goal = Goal::Run;
                    self.backoff.reset();
                    tracing::info!("vassal {}: start requested", self.name);
                    self.event("start", "start requested".to_owned());
                    if self.serving.is_none() && self.candidate.is_none() {
                        self.begin_start(None, "start requested");
                    }
                }
            }
            Command::Stop => {
                if self.goal == Goal::Run {
                    self.goal = Goal::Stopped;
                    tracing::info!("vassal {}: stop requested: stopping gracefully", self.name);
                    self.event("stop", "stop requested: stopping gracefully".to_owned());
                    self.stop_all(false, now);
                }
            }
            Command::Remove { quick } => {
                if self.goal != Goal::Removed {
                    self.goal = Goal::Removed;
                    self.stop_all(quick, now);
                } else if quick {
                    // A second, quick removal (the emperor stopping hard): hurry what is still draining.
                    let deadline = now.mono + QUICK_STOP_GRACE;
                    for process in &mut self.retiring {
                        self.actions.push(Action::Send { id: process.id, command: EmperorCommand::QuickStop });
                        process.stop_deadline = Some(process.stop_deadline.map_or(deadline, |d| d.min(deadline)));
                    }
                }
            }
        }
    }

    /// First start, restart or reload: the shell validates the file first ([`Action::Prepare`]).
    fn begin_start(&mut self, problem: Option<String>, why: &str) {
        self.next_start = None;
        self.actions.push(Action::Prepare { problem, why: why.to_owned() });
    }

    /// The outcome of an [`Action::Prepare`]: reload in place, start a new process (whose id is returned:
    /// the shell spawns it with the plan it prepared), or record why the file cannot run.
    pub fn prepared(&mut self, outcome: Result<PlanInfo, StartError>, why: &str, now: Now) -> Option<u64> {
        let plan = match outcome {
            Ok(plan) => plan,
            Err(error) => {
                self.set_error(error.message.clone(), now);
                if error.transient && self.serving.is_none() {
                    self.throttle(&error.message, now);
                } else {
                    tracing::error!("vassal {}: {}", self.name, summary(&error.message));
                    let what = if self.serving.is_some() {
                        "cannot use the changed file; the running version keeps serving"
                    } else {
                        "cannot start"
                    };
                    self.event("error", format!("{what}: {}", error.message));
                    self.problem = Some(error.message);
                }
                return None;
            }
        };
        if plan.self_managed {
            if let Some(id) = self.serving.as_ref().filter(|p| p.pid.is_some() && !p.killed).map(|p| p.id) {
                self.actions.push(Action::Send { id, command: EmperorCommand::Reload });
                if let Some(candidate) = self.candidate.take() {
                    self.retire(candidate, true, now);
                }
                self.in_place = Some(now.mono);
                self.reloads += 1;
                self.event("reload", format!("{why}: reloading in place (the vassal binds its own sockets)"));
                tracing::info!("vassal {}: {why}; reloading in place", self.name);
                return None;
            }
        }
        if let Some(candidate) = self.candidate.take() {
            // A version that was still starting is replaced by the newer one; it never took traffic.
            self.retire(candidate, true, now);
        }
        if self.serving.is_some() {
            self.reloads += 1;
            self.event("reload", format!("{why}: starting the new version beside the running one"));
            tracing::info!("vassal {}: {why}; starting the new version", self.name);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.candidate = Some(Process {
            id,
            pid: None,
            spawned_at: None,
            spawned_unix: None,
            ready_at: None,
            last_message: now.mono,
            last_message_unix: None,
            workers: Vec::new(),
            daemons: Vec::new(),
            rss_bytes: None,
            mercy: plan.mercy,
            stop_deadline: None,
            killed: false,
            kill_reason: None,
            spawn_error: None,
        });
        self.actions.push(Action::Spawn { id });
        Some(id)
    }

    // -------------------------------------------------------------------------------------------------
    // Process events

    pub fn on_spawned(&mut self, id: u64, pid: i32, now: Now) {
        let reload = self.serving.is_some();
        let Some((role, process)) = self.find(id) else { return };
        process.pid = Some(pid);
        process.spawned_at = Some(now.mono);
        process.spawned_unix = Some(now.unix_secs());
        process.last_message = now.mono;
        if role == Role::Candidate {
            let what = if reload { "new version started" } else { "started" };
            tracing::info!("vassal {}: {what}: pid {pid}", self.name);
            self.event("spawn", format!("{what}: pid {pid}"));
        }
    }

    pub fn on_spawn_failed(&mut self, id: u64, error: String) {
        if let Some((_, process)) = self.find(id) {
            process.spawn_error = Some(error);
        }
    }

    /// A control message from process `id`; `tail` is what it last wrote on stderr (for error messages).
    pub fn on_message(&mut self, id: u64, message: VassalMessage, tail: &[String], now: Now) {
        let in_place = self.in_place.is_some();
        let Some((role, process)) = self.find(id) else { return };
        process.last_message = now.mono;
        process.last_message_unix = Some(now.unix);
        match message {
            VassalMessage::Ready { pid, workers } => {
                process.workers = workers;
                process.ready_at = Some(now.mono);
                let count = process.workers.len();
                match role {
                    Role::Candidate => self.promote(pid, count, now),
                    Role::Serving if in_place => {
                        self.in_place = None;
                        self.problem = None;
                        self.event("ready", format!("reloaded in place: pid {pid} serving with {count} worker(s)"));
                        tracing::info!("vassal {}: reloaded in place", self.name);
                    }
                    _ => {}
                }
            }
            VassalMessage::Heartbeat { pid, workers, time, counters, rss_bytes, respawns, daemons, .. } => {
                process.workers = workers;
                process.daemons = daemons;
                process.rss_bytes = rss_bytes;
                if let Some(counters) = counters {
                    self.actions.push(Action::RecordTraffic { pid, time, counters, respawns });
                }
            }
            VassalMessage::WorkerSpawned { .. } => {}
            VassalMessage::WorkerExited { id: worker, pid, cause, how } => {
                // Workers replaced by a reload, or of a version on its way out, are not news.
                if role != Role::Retiring && cause != ExitCause::Reload {
                    let exit = VassalMessage::describe_exit(cause, &how);
                    self.event("worker", format!("worker {worker} (pid {pid}) {exit}"));
                }
            }
            VassalMessage::ReloadFailed { error } => {
                if role == Role::Serving {
                    let message =
                        format!("reload failed, the previous version keeps serving: {}", explain(&error, tail));
                    self.in_place = None;
                    tracing::error!("vassal {}: {}", self.name, summary(&message));
                    self.event("error", message.clone());
                    self.set_error(message.clone(), now);
                    self.problem = Some(message);
                }
            }
            VassalMessage::Stopping => {}
        }
    }

    /// The candidate is ready: it takes over, and the previous version (if any) drains and exits.
    fn promote(&mut self, pid: i32, workers: usize, now: Now) {
        let Some(candidate) = self.candidate.take() else { return };
        let replaced = self.serving.take();
        self.problem = None;
        if let Some(old) = replaced {
            let old_pid = old.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
            self.event(
                "ready",
                format!(
                    "new version ready: pid {pid} serving with {workers} worker(s); pid {old_pid} drains and exits"
                ),
            );
            tracing::info!("vassal {}: new version ready (pid {pid}); stopping pid {old_pid}", self.name);
            self.retire(old, false, now);
        } else {
            self.event("ready", format!("ready: pid {pid} serving with {workers} worker(s)"));
            tracing::info!("vassal {}: running (pid {pid}, {workers} worker(s))", self.name);
        }
        self.serving = Some(candidate);
    }

    /// Process `id` exited; `how` says how (`exited with code 1`), `tail` what it last wrote on stderr.
    pub fn on_exit(&mut self, id: u64, how: String, tail: &[String], now: Now) {
        let Some((role, process)) = self.take(id) else { return };
        let mut cause = match &process.spawn_error {
            Some(error) => format!("could not be started: {error}"),
            None => how,
        };
        if let Some(reason) = &process.kill_reason {
            cause = format!("{reason} ({cause})");
        }
        if let Some(pid) = process.pid {
            self.actions.push(Action::ForgetProcess { pid });
        }
        let pid = process.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        match role {
            Role::Retiring => {
                if process.pid.is_some() {
                    tracing::info!("vassal {}: pid {pid} {cause}", self.name);
                    self.event("exit", format!("pid {pid} {cause}"));
                }
            }
            Role::Candidate => {
                self.last_exit = Some(cause.clone());
                if self.goal != Goal::Run {
                    return;
                }
                let message = explain(&cause, tail);
                self.set_error(message.clone(), now);
                if self.serving.is_some() {
                    let text = format!("the new version failed, the running version keeps serving: {message}");
                    tracing::error!("vassal {}: {}", self.name, summary(&text));
                    self.event("error", text);
                    self.problem = Some(message);
                } else {
                    self.event("exit", format!("pid {pid} {cause} before it was ready"));
                    self.throttle(&message, now);
                }
            }
            Role::Serving => {
                self.last_exit = Some(cause.clone());
                self.in_place = None;
                if self.goal != Goal::Run {
                    return;
                }
                let message = explain(&cause, tail);
                self.set_error(message.clone(), now);
                self.event("exit", format!("pid {pid} {cause}"));
                tracing::warn!("vassal {}: pid {pid} {cause}", self.name);
                if self.candidate.is_some() {
                    return;
                }
                let healthy =
                    process.ready_at.is_some_and(|at| now.mono.saturating_duration_since(at) >= HEALTHY_AFTER);
                if healthy {
                    self.backoff.reset();
                    self.respawns += 1;
                    self.begin_start(None, "restart after an unexpected exit");
                } else {
                    self.throttle(&message, now);
                }
            }
        }
    }

    /// The one-second tick (and the backoff timer): restarts, start timeouts, the heartbeat watchdog, stop
    /// deadlines.
    pub fn on_timers(&mut self, now: Now) {
        let mono = now.mono;
        if self.next_start.is_some_and(|at| at <= mono) && self.goal == Goal::Run {
            self.next_start = None;
            if std::mem::take(&mut self.restart_pending) {
                self.respawns += 1;
            }
            if self.serving.is_none() && self.candidate.is_none() {
                self.begin_start(None, "restart");
            }
        }
        let start_timeout = self.limits.start_timeout;
        if let Some(candidate) = self.candidate.as_mut() {
            if candidate.ready_at.is_none()
                && candidate.spawned_at.is_some_and(|at| mono.saturating_duration_since(at) >= start_timeout)
            {
                kill(&mut self.actions, candidate, format!("not ready within {} s; killed", start_timeout.as_secs()));
            }
        }
        let heartbeat_timeout = self.limits.heartbeat_timeout;
        let mut hung = None;
        if let Some(serving) = self.serving.as_mut() {
            let overdue = match self.in_place {
                Some(since) => mono.saturating_duration_since(since) >= start_timeout,
                None => mono.saturating_duration_since(serving.last_message) >= heartbeat_timeout,
            };
            if overdue && serving.pid.is_some() && !serving.killed {
                let reason = match self.in_place {
                    Some(_) => format!("in-place reload not finished within {} s; killed", start_timeout.as_secs()),
                    None => format!("no heartbeat for {} s; killed", heartbeat_timeout.as_secs()),
                };
                hung = Some(reason.clone());
                kill(&mut self.actions, serving, reason);
            }
            if serving.ready_at.is_some_and(|at| mono.saturating_duration_since(at) >= HEALTHY_AFTER)
                && self.backoff.failures() > 0
            {
                self.backoff.reset();
            }
        }
        if let Some(reason) = hung {
            tracing::warn!("vassal {}: {reason}", self.name);
            self.event("watchdog", reason);
        }
        for process in &mut self.retiring {
            if process.stop_deadline.is_some_and(|at| at <= mono) && !process.killed {
                kill(&mut self.actions, process, "did not stop in time; killed".to_owned());
            }
        }
    }

    // -------------------------------------------------------------------------------------------------
    // The rules' pieces

    fn event(&mut self, kind: &'static str, message: String) {
        self.actions.push(Action::Event { kind, message });
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

    /// Tells a process to stop (drain) or quick-stop, and tracks it until it exits.
    fn retire(&mut self, mut process: Process, quick: bool, now: Now) {
        if process.pid.is_none() {
            // Not started yet (waiting for a start slot): cancel.
            process.killed = true;
            self.actions.push(Action::Kill { id: process.id });
        } else if quick {
            self.actions.push(Action::Send { id: process.id, command: EmperorCommand::QuickStop });
            process.stop_deadline = Some(now.mono + QUICK_STOP_GRACE);
        } else {
            self.actions.push(Action::Send { id: process.id, command: EmperorCommand::Stop });
            process.stop_deadline = Some(now.mono + process.mercy + STOP_GRACE);
        }
        self.retiring.push(process);
    }

    fn stop_all(&mut self, quick: bool, now: Now) {
        self.next_start = None;
        self.restart_pending = false;
        self.in_place = None;
        if let Some(candidate) = self.candidate.take() {
            self.retire(candidate, true, now);
        }
        if let Some(serving) = self.serving.take() {
            self.retire(serving, quick, now);
        }
        if self.goal == Goal::Removed {
            self.actions.push(Action::ReleaseSockets);
        }
    }

    /// Schedules the next start after the backoff delay.
    fn throttle(&mut self, reason: &str, now: Now) {
        let delay = self.backoff.next_delay();
        self.next_start = Some(now.mono + delay);
        self.restart_pending = true;
        let message = format!(
            "retrying in {:.1} s (failure {}): {}",
            delay.as_secs_f64(),
            self.backoff.failures(),
            summary(reason)
        );
        tracing::warn!("vassal {}: {message}", self.name);
        self.event("throttle", message);
    }

    fn set_error(&mut self, message: String, now: Now) {
        self.last_error = Some(message);
        self.last_error_at = Some(now.unix_secs());
    }
}

/// Kills a process once, remembering why (shown instead of "killed by signal 9").
fn kill(actions: &mut Vec<Action>, process: &mut Process, reason: String) {
    if process.killed {
        return;
    }
    process.killed = true;
    process.kill_reason = Some(reason);
    actions.push(Action::Kill { id: process.id });
}

/// One line for logs: the first line of a message, plus its last one when there are several (the exception
/// at the end of a traceback says more than anything between).
pub fn summary(text: &str) -> String {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let first = lines.next().unwrap_or(text);
    match lines.next_back() {
        Some(last) => format!("{first}: {}", last.trim()),
        None => first.to_owned(),
    }
}

/// The reason plus what the process printed about it: from the first error line among its last stderr
/// lines (an import error and its traceback), else its last few lines.
pub fn explain(cause: &str, lines: &[String]) -> String {
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

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
