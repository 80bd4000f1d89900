//! The master's decisions, without any of their effects: which worker to fork, which to signal, when a
//! reload's new generation has taken over, when a crash loop must wait, when the master may exit.
//!
//! The shell (`master/mod.rs`) owns everything that touches the system: `fork`, `kill`, `waitpid`, the
//! scoreboard, the emperor's channel, `exec`. Each loop it feeds this core what happened (a signal, a reaped
//! child, a FIFO command) and what the workers' scoreboard slots say ([`WorkerView`]), together with the
//! time ([`Now`]: the core never reads a clock), and carries out the [`Action`]s the core queued, in order.
//! Keeping the two apart is what makes every rule below testable in microseconds (see the tests at the end)
//! instead of only by the real-process tests in `tests/`.
//!
//! A worker slot is one [`SlotState`]: forking, serving, recycling (asked to exit by a limit, respawned when
//! it does), retiring (of a generation being replaced, told to exit once the new one serves), draining (told
//! to exit for good) or waiting to be respawned. Logs are part of the decision (they say why), so the core
//! writes them itself through `tracing`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use liege_config::{Cheaper, CheaperAlgo, VassalConfig};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::backoff::{Backoff, WORKER, WORKER_HEALTHY_AFTER};
use crate::control::{Respawns, VassalMessage};
use crate::scoreboard::{ExitCause, WorkerStatus};

/// How long faulthandler gets to write a stuck worker's Python stack (after SIGUSR2) before the SIGKILL.
pub const HARAKIRI_DUMP_GRACE: Duration = Duration::from_millis(300);
/// How long a quick stop (or a graceful one past its mercy, after SIGKILL) may take before the master exits.
pub const QUICK_STOP_GRACE: Duration = Duration::from_secs(5);
/// A fork that failed (no memory, process limit) is tried again after this long.
pub const FORK_RETRY: Duration = Duration::from_secs(1);
/// uWSGI's master cycle: the cheaper check, idle mode and the master's KSM pass run once per cycle.
pub const MASTER_CYCLE: Duration = Duration::from_secs(1);
/// Idle mode stops workers with SIGINT and kills those still there this long after (uWSGI waits 3 s).
pub const IDLE_STOP_GRACE: Duration = Duration::from_secs(3);

/// The time of a decision, given by the shell: the monotonic clock for every timer, and the wall clock in
/// microseconds for harakiri (workers stamp their request start in Unix time, in the shared scoreboard).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub unix_us: u64,
}

/// What a worker's scoreboard slot says, read by the shell just before a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerView {
    pub status: WorkerStatus,
    pub requests: u64,
    /// Unix time (µs) the request in progress started; 0 when idle.
    pub request_started_us: u64,
    /// Resident memory, read only when `reload-on-rss` or `evil-reload-on-rss` is set.
    pub rss_bytes: Option<u64>,
    /// Address space (virtual size), read only when `reload-on-as` is set.
    pub vsz_bytes: Option<u64>,
    /// Sum of the worker's request durations (µs), uWSGI's `running_time`: the busyness algorithm's input.
    pub running_time_us: u64,
}

impl Default for WorkerView {
    fn default() -> Self {
        WorkerView {
            status: WorkerStatus::Free,
            requests: 0,
            request_started_us: 0,
            rss_bytes: None,
            vsz_bytes: None,
            running_time_us: 0,
        }
    }
}

impl WorkerView {
    /// Past loading the app: taking requests.
    pub fn serving(&self) -> bool {
        matches!(self.status, WorkerStatus::Idle | WorkerStatus::Busy)
    }
}

/// How to stop: SIGTERM and wait up to `reload-mercy` (SIGTERM, SIGTERM from the emperor, FIFO `q`), or
/// SIGKILL at once (SIGINT, SIGQUIT, FIFO `Q`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    Graceful,
    Quick,
}

/// How to reload: a whole new generation of workers at once, retiring the old one once every new worker
/// serves (SIGHUP, touch-reload, FIFO `r`), or one worker at a time (touch-chain-reload, FIFO `c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadKind {
    Graceful,
    Chain,
}

impl ReloadKind {
    pub fn describe(self) -> &'static str {
        match self {
            ReloadKind::Graceful => "graceful reload",
            ReloadKind::Chain => "chain reload",
        }
    }
}

/// An effect the shell must carry out, in the order queued.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Fork a worker with this id into this slot, then report the outcome with [`Core::spawned`].
    Spawn {
        slot: usize,
        id: u32,
    },
    Signal {
        pid: Pid,
        signal: Signal,
    },
    /// Record in the worker's scoreboard slot why it is being asked to exit (read back when it is reaped).
    SetExitCause {
        slot: usize,
        cause: ExitCause,
    },
    /// A request has run past `harakiri`: log it with the request line, record the cause, count it, and ask
    /// for the Python stack (SIGUSR2); the SIGKILL follows [`HARAKIRI_DUMP_GRACE`] later (with
    /// `harakiri-graceful-timeout`: first the graceful signal, the SIGKILL that long after).
    Harakiri {
        slot: usize,
        pid: Pid,
        id: u32,
        stuck_for: Duration,
    },
    /// Preloaded app: re-execute the master so the new image imports the new code (see [`Core::pids`]).
    ReExec(ReloadKind),
    /// Every worker serves: tell the emperor (with the worker list) and systemd.
    AnnounceReady,
    /// `ksm`: mark the master's own mappings mergeable (every `ksm` master cycles, as uWSGI's master).
    KsmMerge,
    Notify(VassalMessage),
    SystemdStopping,
    SystemdReloading,
}

/// A process the master started (or inherited as a slot) and that has not exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: Pid,
    pub spawned_at: Instant,
    /// When the harakiri stack dump was requested; the kill follows a moment later.
    pub harakiri_at: Option<Instant>,
    /// The `harakiri-graceful-signal` went out (sent once per harakiri).
    pub harakiri_graceful_sent: bool,
    /// When the last "skipping harakiri" line was logged (`harakiri-queue-threshold`; once a second).
    pub harakiri_skip_logged: Option<Instant>,
    /// Draining: SIGKILL at this time if it has not exited (idle mode gives workers 3 s, as uWSGI).
    pub kill_at: Option<Instant>,
}

impl Proc {
    fn new(pid: Pid, spawned_at: Instant) -> Self {
        Proc {
            pid,
            spawned_at,
            harakiri_at: None,
            harakiri_graceful_sent: false,
            harakiri_skip_logged: None,
            kill_at: None,
        }
    }
}

/// Where a worker slot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// The fork was asked for and not reported yet (only between an [`Action::Spawn`] and
    /// [`Core::spawned`]); counts as a worker of the current generation that does not serve yet.
    Forking,
    /// Of the current generation.
    Serving(Proc),
    /// Of the current generation, asked to exit by a limit (lifetime, memory); respawned when it exits, not
    /// asked again.
    Recycling(Proc),
    /// Of a generation being replaced; told to exit once the new generation serves.
    Retiring(Proc),
    /// Told to exit for good (replaced, or one worker too many); the slot is freed when it exits.
    Draining(Proc),
    /// No process: fork one at `at` (a planned recycle: now; a crash loop: after the backoff).
    Respawning { at: Instant },
}

impl SlotState {
    pub fn process(&self) -> Option<&Proc> {
        match self {
            SlotState::Serving(p) | SlotState::Recycling(p) | SlotState::Retiring(p) | SlotState::Draining(p) => {
                Some(p)
            }
            SlotState::Forking | SlotState::Respawning { .. } => None,
        }
    }

    pub fn pid(&self) -> Option<Pid> {
        self.process().map(|p| p.pid)
    }

    /// Of a generation on its way out (retiring or draining): not respawned, not shown as current.
    pub fn leaving(&self) -> bool {
        matches!(self, SlotState::Retiring(_) | SlotState::Draining(_))
    }

    /// Of the current generation and running (or being forked).
    fn current_present(&self) -> bool {
        matches!(self, SlotState::Forking | SlotState::Serving(_) | SlotState::Recycling(_))
    }
}

/// One worker id's slot.
#[derive(Debug, Clone)]
pub struct Slot {
    pub id: u32,
    pub state: SlotState,
    /// Crash-loop backoff: grows with each death within [`WORKER_HEALTHY_AFTER`] of spawning.
    backoff: Backoff,
}

/// What the stats remember about a worker id across the processes that hold it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WorkerHistory {
    /// Processes forked for this id.
    pub spawns: u64,
    /// Why the last one exited.
    pub last_exit: Option<ExitCause>,
    /// Harakiri kills of the processes that have exited (uWSGI counts them per worker id).
    pub harakiri: u64,
}

/// A reaped worker, as the shell read it from `waitpid` and the scoreboard.
#[derive(Debug, Clone)]
pub struct WorkerExit {
    /// `exited with code 1`, `killed by signal 9 (SIGKILL)`.
    pub how: String,
    /// From the scoreboard: why the worker was asked to exit, if it was.
    pub cause: ExitCause,
    /// Exited with `EXIT_APP_LOAD_FAILED`.
    pub load_failed: bool,
    /// Harakiri kills counted in its scoreboard slot.
    pub harakiri: u64,
}

/// A chain reload in progress: workers are replaced one at a time, the next old one retired only once its
/// replacement serves; if a replacement fails to start, the chain stops and the old workers keep serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chain {
    /// Worker id of the next replacement to start.
    next_id: u32,
    /// Slot of the replacement being waited for.
    waiting_for: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stopping {
    kind: StopKind,
    deadline: Instant,
}

/// The options the decisions depend on (copied out of the config, so tests can build them in one line).
#[derive(Debug, Clone)]
pub struct Rules {
    pub processes: u32,
    pub lazy_apps: bool,
    pub need_app: bool,
    pub reload_mercy: Duration,
    pub harakiri: Option<Duration>,
    pub max_worker_lifetime: Option<Duration>,
    /// Megabytes.
    pub reload_on_rss: Option<u64>,
    pub evil_reload_on_rss: Option<u64>,
    /// `reload-on-as`, megabytes of address space.
    pub reload_on_as: Option<u64>,
    pub cheaper: Option<liege_config::Cheaper>,
    /// `exit-on-reload`: a reload request stops the vassal gracefully (exit code 0) instead.
    pub exit_on_reload: bool,
    /// `harakiri-graceful-timeout` and `harakiri-graceful-signal`: a harakiri first sends this signal and
    /// kills only this long later.
    pub harakiri_graceful: Option<(Duration, Signal)>,
    /// `harakiri-queue-threshold`: harakiri only while the listen queue holds at least this many (0: always).
    pub harakiri_queue_threshold: u64,
    /// `idle`: stop every worker after this long without a request, until a connection arrives.
    pub idle: Option<Duration>,
    /// `ksm`: the master marks its mappings mergeable every this many cycles (0: never).
    pub ksm: u64,
}

impl Rules {
    pub fn of(config: &VassalConfig) -> Self {
        Rules {
            processes: config.processes,
            lazy_apps: config.lazy_apps,
            need_app: config.need_app,
            reload_mercy: config.reload_mercy,
            harakiri: config.harakiri,
            max_worker_lifetime: config.max_worker_lifetime,
            reload_on_rss: config.reload_on_rss,
            evil_reload_on_rss: config.evil_reload_on_rss,
            reload_on_as: config.master_features.reload_on_as,
            cheaper: config.cheaper.clone(),
            exit_on_reload: config.master_features.exit_on_reload,
            harakiri_graceful: config.master_features.harakiri_graceful_timeout.map(|timeout| {
                // (the config checks the number; SIGTERM, uWSGI's default, should it ever not be one)
                let signal =
                    Signal::try_from(config.master_features.harakiri_graceful_signal).unwrap_or(Signal::SIGTERM);
                (timeout, signal)
            }),
            harakiri_queue_threshold: config.tuning.harakiri_queue_threshold,
            idle: config.tuning.idle,
            ksm: config.tuning.ksm,
        }
    }

    /// Whether [`WorkerView::rss_bytes`] is needed.
    pub fn watches_rss(&self) -> bool {
        self.reload_on_rss.is_some()
            || self.evil_reload_on_rss.is_some()
            || self.cheaper.as_ref().is_some_and(|c| c.rss_limit_soft.is_some())
    }

    /// Whether [`WorkerView::vsz_bytes`] is needed.
    pub fn watches_address_space(&self) -> bool {
        self.reload_on_as.is_some()
    }
}

/// The master's state and rules.
#[derive(Debug)]
pub struct Core {
    rules: Rules,
    slots: Vec<Option<Slot>>,
    /// Workers of a previous image still finishing, and whether they were told to exit.
    old_workers: BTreeMap<Pid, bool>,
    stopping: Option<Stopping>,
    chain: Option<Chain>,
    /// How many workers should run (`processes`, changed by the master FIFO's `+` and `-` and `cheaper`).
    target_workers: u32,
    /// Preload: the app imported in this image (without it no worker can be forked).
    app_loaded: bool,
    /// Loaded at least once in this image (a worker got past loading the app).
    ever_ready: bool,
    exit_code_override: Option<i32>,
    /// `Ready` was sent for the current generation.
    announced_ready: bool,
    /// Worker exits by cause.
    respawns: Respawns,
    history: HashMap<u32, WorkerHistory>,
    actions: Vec<Action>,
    /// The longest listen queue of the sockets, measured by the shell once a second (uWSGI's
    /// `shared->backlog`): for `harakiri-queue-threshold` and the backlog and busyness algorithms.
    backlog: u64,
    /// Requests served so far by the whole group (monotonic), for `idle`.
    total_requests: u64,
    /// Master cycles (one a second, as uWSGI's `master_cycles`) and when the next one is due.
    cycles: u64,
    next_cycle: Option<Instant>,
    /// The cheaper algorithms' memory.
    cheaper_state: CheaperState,
    /// Idle mode (`idle`): every worker was stopped; the next connection starts them again.
    cheap_mode: bool,
    /// Idle mode: the request count last seen, and since when it has not changed.
    idle_seen: Option<(u64, Instant)>,
}

impl Core {
    /// `old_workers`: the previous image's workers (after a reload's `exec`); `app_loaded`: the preloaded app
    /// imported (always true with lazy-apps, where workers import it); `respawns`: inherited counts.
    pub fn new(rules: Rules, old_workers: Vec<Pid>, app_loaded: bool, respawns: Respawns) -> Self {
        let slots = (0..rules.processes as usize * 2).map(|_| None).collect();
        let target_workers = rules.cheaper.as_ref().map_or(rules.processes, |c| c.initial);
        Core {
            app_loaded: app_loaded || rules.lazy_apps,
            rules,
            slots,
            old_workers: old_workers.into_iter().map(|pid| (pid, false)).collect(),
            stopping: None,
            chain: None,
            target_workers,
            ever_ready: false,
            exit_code_override: None,
            announced_ready: false,
            respawns,
            history: HashMap::new(),
            actions: Vec::new(),
            backlog: 0,
            total_requests: 0,
            cycles: 0,
            next_cycle: None,
            cheaper_state: CheaperState::default(),
            cheap_mode: false,
            idle_seen: None,
        }
    }

    /// The first workers of this image: all at once, or (`chain`, after a chain reload's `exec`) one at a
    /// time, each old worker retired once its replacement serves.
    pub fn start(&mut self, chain: bool) {
        if let Some(cheaper) = self.rules.cheaper.as_ref().filter(|c| c.algo == CheaperAlgo::Busyness) {
            let b = &cheaper.busyness;
            tracing::info!(
                "[busyness] settings: min={}%, max={}%, overload={}, multiplier={}, respawn penalty={}",
                b.min,
                b.max,
                cheaper.overload,
                b.multiplier,
                b.penalty
            );
            tracing::info!(
                "[busyness] backlog alert is set to {} request(s), step is {}",
                b.backlog_alert,
                b.backlog_step
            );
            tracing::info!("[busyness] backlog non-zero alert is set to {} second(s)", b.backlog_nonzero.as_secs());
        }
        if chain && !self.old_workers.is_empty() && self.app_loaded {
            tracing::info!("chain reload: replacing the previous workers one at a time");
            self.chain = Some(Chain { next_id: 1, waiting_for: None });
        } else if self.app_loaded {
            for index in 0..self.target_workers as usize {
                self.spawn(index, index as u32 + 1);
            }
        }
    }

    /// The actions queued since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    // -------------------------------------------------------------------------------------------------
    // What the shell reads

    pub fn slots(&self) -> impl Iterator<Item = (usize, &Slot)> + '_ {
        self.slots.iter().enumerate().filter_map(|(index, slot)| Some((index, slot.as_ref()?)))
    }

    /// Every process this master is responsible for (handed to the next image on a reload).
    pub fn pids(&self) -> Vec<Pid> {
        self.slots().filter_map(|(_, s)| s.state.pid()).chain(self.old_workers.keys().copied()).collect()
    }

    pub fn history(&self, id: u32) -> Option<&WorkerHistory> {
        self.history.get(&id)
    }

    pub fn respawns(&self) -> &Respawns {
        &self.respawns
    }

    pub fn stopping(&self) -> bool {
        self.stopping.is_some()
    }

    /// The stop under way, if any (the mules follow its kind).
    pub fn stop_kind(&self) -> Option<StopKind> {
        self.stopping.as_ref().map(|s| s.kind)
    }

    pub fn announced_ready(&self) -> bool {
        self.announced_ready
    }

    #[cfg(test)]
    pub fn target_workers(&self) -> u32 {
        self.target_workers
    }

    /// Idle mode: every worker is stopped; the shell watches the listening sockets and calls
    /// [`Core::connection_waiting`] when one becomes readable.
    pub fn cheap(&self) -> bool {
        self.cheap_mode
    }

    /// The longest listen queue of the sockets right now (the shell measures it once a second).
    pub fn set_listen_queue(&mut self, backlog: u64) {
        self.backlog = backlog;
    }

    /// Requests served by the group so far (monotonic), for idle mode.
    pub fn set_total_requests(&mut self, total: u64) {
        self.total_requests = total;
    }

    /// Something is due soon (a stop, a reload, a respawn, a harakiri kill): poll in short steps.
    pub fn busy(&self) -> bool {
        self.stopping.is_some()
            || self.chain.is_some()
            || self.old_workers.values().any(|signalled| !signalled)
            || self.slots().any(|(_, s)| match s.state {
                SlotState::Retiring(_) | SlotState::Respawning { .. } | SlotState::Forking => true,
                SlotState::Serving(p) | SlotState::Recycling(p) => p.harakiri_at.is_some(),
                SlotState::Draining(p) => p.harakiri_at.is_some() || p.kill_at.is_some(),
            })
    }

    // -------------------------------------------------------------------------------------------------
    // Commands (signals, the emperor's channel, the master FIFO)

    pub fn begin_stop(&mut self, kind: StopKind, now: Instant) {
        self.actions.push(Action::SystemdStopping);
        match kind {
            StopKind::Graceful => {
                if self.stopping.is_some() {
                    return;
                }
                tracing::info!("graceful stop: waiting up to {:?} for requests in flight", self.rules.reload_mercy);
                self.signal_all(Signal::SIGTERM);
                self.stopping = Some(Stopping { kind, deadline: now + self.rules.reload_mercy });
            }
            StopKind::Quick => {
                tracing::info!("quick stop");
                self.signal_all(Signal::SIGKILL);
                self.stopping = Some(Stopping { kind, deadline: now + QUICK_STOP_GRACE });
            }
        }
    }

    /// A reload: ignored while stopping or during a chain reload. With lazy-apps the master forks the new
    /// generation itself (the workers import the new code); with a preloaded app it re-executes itself.
    /// With `exit-on-reload` a reload is a graceful stop (exit code 0), as uWSGI: the process manager
    /// around the vassal starts it again.
    pub fn reload(&mut self, kind: ReloadKind, now: Instant) {
        if self.stopping.is_some() || self.chain.is_some() {
            return;
        }
        if self.rules.exit_on_reload {
            tracing::info!("exit-on-reload: stopping instead of reloading");
            self.begin_stop(StopKind::Graceful, now);
            return;
        }
        self.actions.push(Action::SystemdReloading);
        if self.rules.lazy_apps {
            self.replace_workers(kind);
        } else {
            tracing::info!("{}: re-executing the master to import the app again", kind.describe());
            self.actions.push(Action::ReExec(kind));
        }
    }

    // --- Python plugin options (py) ---
    /// SIGHUP from `sender`: a graceful reload, unless the sender is a worker that a reload is already
    /// replacing. Every worker watches the files with `py-autoreload` (and any may call `uwsgi.reload()`),
    /// so several notice the same edit: the first one's reload replaces them all, and the requests of the
    /// workers on their way out add nothing. Workers of the previous image count as replaced only if this
    /// image loaded the app; after a reload that failed to import they are the ones serving, and asking
    /// again (the code was fixed) is a new reload.
    pub fn reload_asked_by(&mut self, sender: Pid, now: Instant) {
        let leaving = self.slots().any(|(_, s)| s.state.leaving() && s.state.pid() == Some(sender));
        let previous_image = self.old_workers.contains_key(&sender) && self.app_loaded;
        if leaving || previous_image {
            tracing::info!("a worker being replaced (pid {sender}) asked for a reload: the reload under way covers it");
            return;
        }
        self.reload(ReloadKind::Graceful, now);
    }
    // --- end Python plugin options ---

    /// FIFO `w`: new workers forked from this image (new code only with lazy-apps), the old ones retired once
    /// they serve.
    pub fn reload_workers(&mut self) {
        if self.stopping.is_none() && self.chain.is_none() {
            self.replace_workers(ReloadKind::Graceful);
        }
    }

    /// A `unix_signal` hook's brutal reload: SIGKILL every process (old workers included), then reload.
    pub fn brutal_reload(&mut self, now: Instant) {
        self.signal_all(Signal::SIGKILL);
        self.reload(ReloadKind::Graceful, now);
    }

    /// FIFO `W`: SIGKILL every worker (they are respawned as crashes are).
    pub fn kill_workers(&mut self) {
        let pids: Vec<Pid> = self.slots().filter_map(|(_, s)| s.state.pid()).collect();
        for pid in pids {
            self.actions.push(Action::Signal { pid, signal: Signal::SIGKILL });
        }
    }

    /// FIFO `+` (`more`) and `-`: one worker more or fewer, within 1..=processes. With cheaper, as uWSGI:
    /// the change is applied at the next cheaper check (a spawn, or the oldest idle worker stopped), before
    /// the algorithm, whatever it says; the `manual` algorithm leaves the count to these alone.
    pub fn change_worker_count(&mut self, more: bool) {
        if self.rules.cheaper.is_some() {
            self.cheaper_state.fifo_delta += if more { 1 } else { -1 };
            tracing::info!(
                "master FIFO: {} worker at the next cheaper check",
                if more { "one more" } else { "one fewer" }
            );
            return;
        }
        if more && self.target_workers < self.rules.processes {
            self.target_workers += 1;
        } else if !more && self.target_workers > 1 {
            self.target_workers -= 1;
        } else {
            tracing::info!("master FIFO: worker count stays {} (1..={})", self.target_workers, self.rules.processes);
            return;
        }
        tracing::info!("master FIFO: {} worker(s) wanted", self.target_workers);
    }

    // -------------------------------------------------------------------------------------------------
    // Events from the shell

    /// The outcome of an [`Action::Spawn`].
    pub fn spawned(&mut self, slot: usize, result: Result<Pid, String>, now: Instant) {
        let Some(entry) = self.slots.get_mut(slot).and_then(Option::as_mut) else { return };
        let id = entry.id;
        match result {
            Ok(pid) => {
                entry.state = SlotState::Serving(Proc::new(pid, now));
                self.history.entry(id).or_default().spawns += 1;
                tracing::info!("spawned worker {id} (pid {pid})");
            }
            Err(err) => {
                tracing::error!("cannot fork worker {id}: {err}; retrying in 1 s");
                entry.state = SlotState::Respawning { at: now + FORK_RETRY };
                entry.backoff = worker_backoff();
            }
        }
    }

    /// The slot of a worker process, if `pid` is one (the shell then reads its scoreboard slot).
    pub fn slot_of(&self, pid: Pid) -> Option<usize> {
        self.slots().find(|(_, s)| s.state.pid() == Some(pid)).map(|(index, _)| index)
    }

    /// A child was reaped: a previous image's worker, or one of ours (respawned, freed, or the end of a
    /// chain reload or of the vassal).
    pub fn worker_exited(&mut self, pid: Pid, exit: WorkerExit, views: &[WorkerView], now: Instant) {
        self.refresh_ever_ready(views);
        let how = &exit.how;
        if self.old_workers.remove(&pid).is_some() {
            tracing::info!("previous worker (pid {pid}) {how}");
            return;
        }
        let Some(index) = self.slot_of(pid) else {
            tracing::debug!("unknown child {pid} {how}");
            return;
        };
        let stopping = self.stopping.is_some();
        let Some(slot) = self.slots[index].as_mut() else { return };
        let id = slot.id;
        let spawned_at = slot.state.process().map_or(now, |p| p.spawned_at);
        let leaving = slot.state.leaving();
        let cause = exit.cause;
        // A worker that leaves for good counts as replaced by a reload, whatever limit asked it last (unless
        // cheaper or idle mode retired it).
        let recorded_cause = if leaving && cause != ExitCause::Cheaper { ExitCause::Reload } else { cause };
        if !stopping {
            *self.respawns.entry(recorded_cause).or_default() += 1;
        }
        let history = self.history.entry(id).or_default();
        history.last_exit = Some(recorded_cause);
        history.harakiri += exit.harakiri;
        self.actions.push(Action::Notify(VassalMessage::WorkerExited {
            id,
            pid: pid.as_raw(),
            cause: recorded_cause,
            how: how.clone(),
        }));
        if leaving || stopping {
            let why = if stopping { "stop" } else { cause.as_str() };
            tracing::info!("worker {id} (pid {pid}) {how} ({why})");
            self.slots[index] = None;
            return;
        }
        if cause != ExitCause::Unplanned {
            // A planned recycle: log why, respawn at once, and don't count it as a crash.
            let how = format!("{how} ({})", cause.as_str());
            if cause == ExitCause::Harakiri || cause == ExitCause::EvilReloadOnRss {
                tracing::warn!("worker {id} (pid {pid}) {how}; respawning");
            } else {
                tracing::info!("worker {id} (pid {pid}) {how}; respawning");
            }
            slot.backoff.reset();
            slot.state = SlotState::Respawning { at: now };
            return;
        }
        if self.chain.is_some_and(|c| c.waiting_for == Some(index)) {
            // The replacement died before serving: stop the chain, the old workers keep serving.
            tracing::error!(
                "chain reload stopped: new worker {id} (pid {pid}) {how}; the previous workers keep serving"
            );
            self.actions.push(Action::Notify(VassalMessage::ReloadFailed { error: format!("new worker {id} {how}") }));
            self.slots[index] = None;
            self.abort_chain();
            return;
        }
        if exit.load_failed && !self.ever_ready && self.rules.need_app {
            tracing::error!("worker {id} (pid {pid}) could not load the app; giving up");
            self.slots[index] = None;
            self.begin_stop(StopKind::Quick, now);
            self.exit_code_override = Some(crate::control::handover::EXIT_APP_LOAD_FAILED);
            return;
        }
        // Crash loops back off exponentially instead of fork-bombing; a worker that lived a while starts over.
        let delay = if now.saturating_duration_since(spawned_at) < WORKER_HEALTHY_AFTER {
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
        slot.state = SlotState::Respawning { at: now + delay };
    }

    /// Periodic work; returns the exit code once the master should exit.
    pub fn tick(&mut self, now: Now, views: &[WorkerView]) -> Option<i32> {
        self.refresh_ever_ready(views);
        if let Some(stopping) = self.stopping {
            let alive = self.slots().any(|(_, s)| s.state.pid().is_some()) || !self.old_workers.is_empty();
            if !alive {
                return Some(self.exit_code_override.unwrap_or(0));
            }
            if now.mono >= stopping.deadline {
                tracing::warn!("workers still running after the mercy period; killing them");
                self.signal_all(Signal::SIGKILL);
                self.stopping = Some(Stopping { kind: StopKind::Quick, deadline: now.mono + QUICK_STOP_GRACE });
                if stopping.kind == StopKind::Quick {
                    return Some(self.exit_code_override.unwrap_or(0));
                }
            }
            return None;
        }
        self.enforce_limits(now, views);
        self.kill_overdue_drains(now.mono);
        self.advance_chain(views);
        match self.next_cycle {
            // (the first cycle comes a second after the first tick, as uWSGI's first cheaper check)
            None => self.next_cycle = Some(now.mono + MASTER_CYCLE),
            Some(at) if now.mono >= at => {
                self.next_cycle = Some(now.mono + MASTER_CYCLE);
                self.cycles += 1;
                self.master_cycle(views, now.mono);
            }
            Some(_) => {}
        }
        if self.rules.cheaper.is_none() && !self.cheap_mode {
            self.scale_to_target();
        }
        let due: Vec<(usize, u32)> = self
            .slots()
            .filter(|(_, s)| matches!(s.state, SlotState::Respawning { at } if at <= now.mono))
            .map(|(index, s)| (index, s.id))
            .collect();
        for (index, id) in due {
            self.spawn(index, id);
        }
        self.retire_previous_generation(views);
        self.check_ready(views);
        None
    }

    // -------------------------------------------------------------------------------------------------
    // The rules

    /// Queues a fork of worker `id` into `index`.
    fn spawn(&mut self, index: usize, id: u32) {
        if !self.app_loaded {
            tracing::error!("cannot start worker {id}: the app is not loaded (send SIGHUP to retry)");
            return;
        }
        let Some(entry) = self.slots.get_mut(index) else { return };
        let backoff = entry.as_ref().map_or_else(worker_backoff, |s| s.backoff.clone());
        *entry = Some(Slot { id, state: SlotState::Forking, backoff });
        self.actions.push(Action::Spawn { slot: index, id });
    }

    fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(Option::is_none)
    }

    fn signal_all(&mut self, signal: Signal) {
        for pid in self.pids() {
            self.actions.push(Action::Signal { pid, signal });
        }
    }

    fn terminate(&mut self, pid: Pid) {
        self.actions.push(Action::Signal { pid, signal: Signal::SIGTERM });
    }

    /// Lazy-apps: has any worker of this image got past loading the app? (Before that, a load failure means
    /// the app is broken and the vassal gives up; after it, a failing worker is respawned with backoff.)
    fn refresh_ever_ready(&mut self, views: &[WorkerView]) {
        if self.ever_ready {
            return;
        }
        let ready = self.slots().any(|(i, s)| s.state.pid().is_some() && views.get(i).is_some_and(WorkerView::serving));
        self.ever_ready = ready;
    }

    /// The current generation's workers, all present and serving (none forking or loading).
    fn current_all_serving(&self, views: &[WorkerView]) -> (usize, bool) {
        let current: Vec<usize> =
            self.slots().filter(|(_, s)| s.state.current_present()).map(|(index, _)| index).collect();
        let all = current.iter().all(|&i| {
            self.slots[i].as_ref().is_some_and(|s| s.state.pid().is_some())
                && views.get(i).is_some_and(WorkerView::serving)
        });
        (current.len(), all)
    }

    /// Tells the emperor (and systemd) once every worker of the current generation serves.
    fn check_ready(&mut self, views: &[WorkerView]) {
        if self.announced_ready {
            return;
        }
        let (count, all) = self.current_all_serving(views);
        // (with cheaper, the workers wanted now: cheaper-initial at first)
        let wanted = if self.rules.cheaper.is_some() { self.target_workers } else { self.rules.processes };
        if all && count > 0 && count >= wanted as usize {
            self.announced_ready = true;
            self.actions.push(Action::AnnounceReady);
        }
    }

    /// Retires the previous generation (a previous image's workers, or retiring slots) once every current
    /// worker serves. During a chain reload [`Core::advance_chain`] does it one worker at a time instead.
    fn retire_previous_generation(&mut self, views: &[WorkerView]) {
        if self.chain.is_some() {
            return;
        }
        let waiting = self.old_workers.values().any(|signalled| !signalled)
            || self.slots().any(|(_, s)| matches!(s.state, SlotState::Retiring(_)));
        if !waiting {
            return;
        }
        let (count, all) = self.current_all_serving(views);
        if count > 0 && all {
            self.retire_all_old();
            tracing::info!("new workers ready; previous workers are finishing their requests");
        }
    }

    /// SIGTERM to every old worker not told yet.
    fn retire_all_old(&mut self) {
        let old: Vec<Pid> = self.old_workers.iter().filter(|(_, s)| !**s).map(|(pid, _)| *pid).collect();
        for pid in old {
            self.terminate(pid);
            self.old_workers.insert(pid, true);
        }
        for index in 0..self.slots.len() {
            if let Some(SlotState::Retiring(p)) = self.slots[index].as_ref().map(|s| s.state) {
                self.terminate(p.pid);
                if let Some(slot) = self.slots[index].as_mut() {
                    slot.state = SlotState::Draining(p);
                }
            }
        }
    }

    /// Lifetime, memory and harakiri limits, checked every tick for every worker of the current generation.
    fn enforce_limits(&mut self, now: Now, views: &[WorkerView]) {
        let rules = &self.rules;
        let backlog = self.backlog;
        for (index, entry) in self.slots.iter_mut().enumerate() {
            let Some(slot) = entry.as_mut() else { continue };
            let (mut proc, recycling) = match slot.state {
                SlotState::Serving(p) => (p, false),
                SlotState::Recycling(p) => (p, true),
                _ => continue,
            };
            let Some(view) = views.get(index) else { continue };
            let pid = proc.pid;
            if let Some(harakiri) = rules.harakiri {
                let started = view.request_started_us;
                let stuck_for = Duration::from_micros(now.unix_us.saturating_sub(started));
                match proc.harakiri_at {
                    // `harakiri-queue-threshold`, as uWSGI: not while the listen queue is shorter; checked
                    // again each tick, so the harakiri comes as soon as the queue grows.
                    None if started > 0 && stuck_for > harakiri && backlog < rules.harakiri_queue_threshold => {
                        let due = proc
                            .harakiri_skip_logged
                            .is_none_or(|at| now.mono.saturating_duration_since(at) >= MASTER_CYCLE);
                        if due {
                            tracing::info!(
                                "HARAKIRI: Skipping harakiri on worker {}. Listen queue is smaller than the threshold ({} < {})",
                                slot.id,
                                backlog,
                                rules.harakiri_queue_threshold
                            );
                            proc.harakiri_skip_logged = Some(now.mono);
                        }
                    }
                    None if started > 0 && stuck_for > harakiri => {
                        self.actions.push(Action::Harakiri { slot: index, pid, id: slot.id, stuck_for });
                        proc.harakiri_at = Some(now.mono);
                    }
                    // Give faulthandler a moment to write the stack, then kill (again each tick until reaped),
                    // or first the graceful signal.
                    Some(at) => match harakiri_step(
                        now.mono.saturating_duration_since(at),
                        rules.harakiri_graceful.map(|(timeout, _)| timeout),
                        proc.harakiri_graceful_sent,
                    ) {
                        HarakiriStep::Kill => self.actions.push(Action::Signal { pid, signal: Signal::SIGKILL }),
                        HarakiriStep::Graceful => {
                            let signal = rules.harakiri_graceful.map_or(Signal::SIGTERM, |(_, signal)| signal);
                            tracing::warn!(
                                "HARAKIRI: graceful termination attempt on worker {} with signal {}",
                                slot.id,
                                signal as i32
                            );
                            self.actions.push(Action::Signal { pid, signal });
                            proc.harakiri_graceful_sent = true;
                        }
                        HarakiriStep::Wait => {}
                    },
                    _ => {}
                }
            }
            slot.state = if recycling { SlotState::Recycling(proc) } else { SlotState::Serving(proc) };
            if recycling {
                continue;
            }
            let over_lifetime = rules
                .max_worker_lifetime
                .filter(|lifetime| now.mono.saturating_duration_since(proc.spawned_at) >= *lifetime)
                .map(|lifetime| {
                    (
                        ExitCause::MaxWorkerLifetime,
                        Signal::SIGTERM,
                        format!("max-worker-lifetime ({} s) reached", lifetime.as_secs()),
                    )
                });
            let over_address_space = || {
                let megabytes = view.vsz_bytes? / (1024 * 1024);
                rules.reload_on_as.filter(|limit| megabytes >= *limit).map(|_| {
                    (ExitCause::ReloadOnAs, Signal::SIGTERM, format!("address space {megabytes} MB over reload-on-as"))
                })
            };
            let over_memory = || {
                let megabytes = view.rss_bytes? / (1024 * 1024);
                if rules.evil_reload_on_rss.is_some_and(|limit| megabytes >= limit) {
                    Some((
                        ExitCause::EvilReloadOnRss,
                        Signal::SIGKILL,
                        format!("RSS {megabytes} MB over evil-reload-on-rss"),
                    ))
                } else if rules.reload_on_rss.is_some_and(|limit| megabytes >= limit) {
                    Some((ExitCause::ReloadOnRss, Signal::SIGTERM, format!("RSS {megabytes} MB over reload-on-rss")))
                } else {
                    None
                }
            };
            if let Some((cause, signal, why)) = over_lifetime.or_else(over_address_space).or_else(over_memory) {
                tracing::info!("worker {} (pid {pid}): {why}; recycling it", slot.id);
                self.actions.push(Action::SetExitCause { slot: index, cause });
                self.actions.push(Action::Signal { pid, signal });
                slot.state = SlotState::Recycling(proc);
            }
        }
    }

    /// Starts a new generation of workers forked from this master and retires the current one once it
    /// serves, all at once or one at a time.
    fn replace_workers(&mut self, kind: ReloadKind) {
        tracing::info!("{}: starting new workers", kind.describe());
        // (a reload in idle mode's cheap mode starts the workers: the mode ends)
        self.cheap_mode = false;
        for index in 0..self.slots.len() {
            let Some(slot) = self.slots[index].as_mut() else { continue };
            slot.state = match slot.state {
                SlotState::Serving(p) | SlotState::Recycling(p) | SlotState::Retiring(p) => SlotState::Retiring(p),
                SlotState::Draining(p) => SlotState::Draining(p),
                // No process to replace: the new generation takes the worker id.
                SlotState::Forking | SlotState::Respawning { .. } => {
                    self.slots[index] = None;
                    continue;
                }
            };
            self.actions.push(Action::SetExitCause { slot: index, cause: ExitCause::Reload });
        }
        self.announced_ready = false;
        if kind == ReloadKind::Chain {
            self.chain = Some(Chain { next_id: 1, waiting_for: None });
            return;
        }
        for id in 1..=self.target_workers {
            if let Some(index) = self.free_slot() {
                self.spawn(index, id);
            }
        }
    }

    /// One step of a chain reload, each tick: start the next replacement, or retire an old worker once the
    /// replacement serves.
    fn advance_chain(&mut self, views: &[WorkerView]) {
        let Some(chain) = self.chain else { return };
        if let Some(index) = chain.waiting_for {
            if !views.get(index).is_some_and(WorkerView::serving) {
                return;
            }
            // The replacement serves: retire one old worker (of this image, or of the previous one).
            let retiring = self.slots().find_map(|(i, s)| match s.state {
                SlotState::Retiring(p) => Some((i, p)),
                _ => None,
            });
            if let Some((i, p)) = retiring {
                self.terminate(p.pid);
                if let Some(slot) = self.slots[i].as_mut() {
                    slot.state = SlotState::Draining(p);
                }
            } else if let Some(pid) = self.old_workers.iter().find(|(_, s)| !**s).map(|(pid, _)| *pid) {
                self.terminate(pid);
                self.old_workers.insert(pid, true);
            }
        }
        if chain.next_id > self.target_workers {
            // Every replacement serves: anything old still unsignalled goes now.
            self.retire_all_old();
            tracing::info!("chain reload complete");
            self.chain = None;
            return;
        }
        let Some(index) = self.free_slot() else { return };
        self.spawn(index, chain.next_id);
        self.chain = Some(Chain { next_id: chain.next_id + 1, waiting_for: Some(index) });
    }

    /// A chain reload failed: the workers not yet replaced become current again.
    fn abort_chain(&mut self) {
        self.chain = None;
        for index in 0..self.slots.len() {
            let Some(slot) = self.slots[index].as_mut() else { continue };
            if let SlotState::Retiring(p) = slot.state {
                slot.state = SlotState::Serving(p);
                // Kept, not reloaded: a later exit of this worker is not the reload's.
                self.actions.push(Action::SetExitCause { slot: index, cause: ExitCause::Unplanned });
            }
        }
        // Workers of a previous image can't be adopted back as slots; they keep serving until they exit.
        self.announced_ready = false;
    }

    /// Once a second (uWSGI's master cycle): idle mode, the cheaper check, the master's KSM pass.
    fn master_cycle(&mut self, views: &[WorkerView], now: Instant) {
        self.check_idle(views, now);
        if self.rules.cheaper.is_some() && !self.cheap_mode && !self.reloading() && self.app_loaded {
            self.calc_cheaper(views, now);
        }
        if self.rules.ksm > 0 && self.cycles % self.rules.ksm == 0 {
            self.actions.push(Action::KsmMerge);
        }
    }

    /// A reload is replacing workers (uWSGI runs no cheaper check meanwhile).
    fn reloading(&self) -> bool {
        self.chain.is_some()
            || self.old_workers.values().any(|signalled| !signalled)
            || self.slots().any(|(_, s)| matches!(s.state, SlotState::Retiring(_)))
    }

    /// SIGKILL to a draining worker past its deadline (idle mode's 3 s).
    fn kill_overdue_drains(&mut self, now: Instant) {
        for slot in self.slots.iter_mut().flatten() {
            if let SlotState::Draining(mut p) = slot.state {
                if p.kill_at.is_some_and(|at| now >= at) {
                    self.actions.push(Action::Signal { pid: p.pid, signal: Signal::SIGKILL });
                    p.kill_at = None;
                    slot.state = SlotState::Draining(p);
                }
            }
        }
    }

    /// `idle` (uWSGI's `uwsgi_master_check_idle`): with no worker busy and the request count unchanged for
    /// more than `idle`, every worker is stopped (SIGINT, SIGKILL 3 s later) and the master waits for a
    /// connection. A busy worker leaves the clock alone.
    fn check_idle(&mut self, views: &[WorkerView], now: Instant) {
        let Some(idle) = self.rules.idle else { return };
        if self.cheap_mode || !self.app_loaded || self.reloading() {
            return;
        }
        let busy = self.slots().any(|(index, s)| {
            matches!(s.state, SlotState::Serving(_) | SlotState::Recycling(_))
                && views.get(index).is_some_and(|v| v.status == WorkerStatus::Busy)
        });
        if busy {
            return;
        }
        match self.idle_seen {
            Some((count, since)) if count == self.total_requests => {
                let quiet = now.saturating_duration_since(since);
                if quiet > idle {
                    tracing::info!("workers have been inactive for more than {} seconds", idle.as_secs());
                    self.enter_cheap_mode(now);
                }
            }
            _ => self.idle_seen = Some((self.total_requests, now)),
        }
    }

    fn enter_cheap_mode(&mut self, now: Instant) {
        self.cheap_mode = true;
        self.idle_seen = None;
        for index in 0..self.slots.len() {
            let Some(slot) = self.slots[index].as_mut() else { continue };
            match slot.state {
                SlotState::Serving(mut p) | SlotState::Recycling(mut p) => {
                    p.kill_at = Some(now + IDLE_STOP_GRACE);
                    slot.state = SlotState::Draining(p);
                    self.actions.push(Action::SetExitCause { slot: index, cause: ExitCause::Cheaper });
                    self.actions.push(Action::Signal { pid: p.pid, signal: Signal::SIGINT });
                }
                SlotState::Forking | SlotState::Respawning { .. } => self.slots[index] = None,
                SlotState::Retiring(_) | SlotState::Draining(_) => {}
            }
        }
        tracing::info!("cheap mode enabled: waiting for socket connection...");
    }

    /// Idle mode: a listening socket became readable. As uWSGI: start `processes` workers again (with
    /// cheaper, its minimum), which accept the connection.
    pub fn connection_waiting(&mut self) {
        if !self.cheap_mode || self.stopping.is_some() {
            return;
        }
        self.cheap_mode = false;
        let needed = self.rules.cheaper.as_ref().map_or(self.target_workers, |c| c.min_workers);
        tracing::info!("a connection is waiting: cheap mode ends, starting {needed} worker(s)");
        if self.rules.cheaper.is_some() {
            self.target_workers = needed;
        }
        self.spawn_free_ids(needed);
    }

    /// Forks up to `count` workers with the lowest worker ids no slot holds (uWSGI: its cheaped workers).
    fn spawn_free_ids(&mut self, count: u32) -> u32 {
        let mut spawned = 0;
        for id in 1..=self.rules.processes {
            if spawned == count {
                break;
            }
            if self.slots().any(|(_, s)| s.id == id) {
                continue;
            }
            let Some(index) = self.free_slot() else { break };
            self.spawn(index, id);
            spawned += 1;
        }
        spawned
    }

    /// uWSGI's `uwsgi_calc_cheaper`, once a second: the RSS limits first (the hard one stops a worker, the
    /// soft one forbids spawning), then the master FIFO's pending `+`/`-`, else the algorithm; a positive
    /// answer forks that many cheaped workers (lowest ids first), a negative one stops the oldest idle
    /// workers (when all are busy, the stop waits for the next check).
    fn calc_cheaper(&mut self, views: &[WorkerView], now: Instant) {
        let Some(cheaper) = self.rules.cheaper.clone() else { return };
        let workers = self.cheaper_workers(views);
        // uWSGI's `!cheaped`: every current worker, also one waiting to be respawned.
        let current: Vec<usize> = self.slots().filter(|(_, s)| !s.state.leaving()).map(|(index, _)| index).collect();
        let mut can_spawn = true;
        let mut needed: i64 = 0;
        if let Some(soft) = cheaper.rss_limit_soft {
            let total_rss: u64 = current.iter().filter_map(|&i| views.get(i).and_then(|v| v.rss_bytes)).sum();
            let active = current.len();
            if cheaper.rss_limit_hard.is_some_and(|hard| active > 1 && total_rss >= hard) {
                tracing::warn!(
                    "cheaper hard rss memory limit exceeded ({total_rss} bytes), cheap one of {active} workers"
                );
                needed = -1;
                can_spawn = false;
            } else if total_rss >= soft {
                tracing::debug!("cheaper soft rss memory limit exceeded ({total_rss} bytes), can't spawn more workers");
                can_spawn = false;
            }
        }
        let fifo_delta = std::mem::take(&mut self.cheaper_state.fifo_delta);
        if fifo_delta != 0 {
            // (discarded while a memory limit holds, as uWSGI)
            if can_spawn {
                needed = fifo_delta;
            }
        } else if needed == 0 {
            let available = (1..=self.rules.processes).filter(|id| !self.slots().any(|(_, s)| s.id == *id)).count();
            let input = CheaperInput {
                workers: &workers,
                available: available as u32,
                processes: self.rules.processes,
                backlog: self.backlog,
                can_spawn,
            };
            needed = self.cheaper_state.decide(&cheaper, &input, now);
            if !can_spawn && needed > 0 {
                needed = 0;
            }
        }
        if needed > 0 {
            let count = u32::try_from(needed).unwrap_or(u32::MAX);
            let spawned = self.spawn_free_ids(count);
            if spawned > 0 {
                tracing::info!("cheaper ({}): spawning {spawned} worker(s)", cheaper.algo.name());
            }
        } else if needed < 0 {
            for _ in 0..needed.unsigned_abs() {
                self.cheap_oldest_idle(views, cheaper.algo);
            }
        }
        self.target_workers = self.slots().filter(|(_, s)| !s.state.leaving()).count() as u32;
    }

    /// The workers the cheaper algorithms count (uWSGI: `cheaped == 0 && pid > 0`).
    fn cheaper_workers(&self, views: &[WorkerView]) -> Vec<CheaperWorker> {
        self.slots()
            .filter_map(|(index, s)| match s.state {
                SlotState::Serving(p) | SlotState::Recycling(p) => {
                    let view = views.get(index).copied().unwrap_or_default();
                    Some(CheaperWorker {
                        id: s.id,
                        pid: p.pid,
                        busy: view.status == WorkerStatus::Busy,
                        running_time_us: view.running_time_us,
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// Stops the oldest worker not in a request (uWSGI curses it with SIGWINCH: it finishes and exits); if
    /// every worker is busy, the master FIFO's delta carries the stop to the next check, as uWSGI.
    fn cheap_oldest_idle(&mut self, views: &[WorkerView], algo: CheaperAlgo) {
        let oldest = self
            .slots()
            .filter_map(|(index, s)| match s.state {
                SlotState::Serving(p) | SlotState::Recycling(p)
                    if views.get(index).is_none_or(|v| v.status != WorkerStatus::Busy) =>
                {
                    Some((p.spawned_at, s.id, index, p))
                }
                _ => None,
            })
            .min_by_key(|(spawned_at, id, _, _)| (*spawned_at, *id));
        let Some((_, id, index, p)) = oldest else {
            self.cheaper_state.fifo_delta -= 1;
            return;
        };
        let left = self.slots().filter(|(_, s)| !s.state.leaving()).count() - 1;
        tracing::info!(
            "cheaper ({}): stopping worker {id} (pid {}), the oldest idle one; {left} left",
            algo.name(),
            p.pid
        );
        self.actions.push(Action::SetExitCause { slot: index, cause: ExitCause::Cheaper });
        self.terminate(p.pid);
        if let Some(slot) = self.slots[index].as_mut() {
            slot.state = SlotState::Draining(p);
        }
    }

    /// Keeps `target_workers` workers running (the FIFO's `+`/`-`; not with cheaper, which has its own
    /// rules): forks the lowest free worker id, or retires the highest.
    fn scale_to_target(&mut self) {
        if self.chain.is_some() || self.stopping.is_some() || !self.app_loaded {
            return;
        }
        let current: Vec<(usize, u32)> =
            self.slots().filter(|(_, s)| !s.state.leaving()).map(|(index, s)| (index, s.id)).collect();
        let count = current.len() as u32;
        if count < self.target_workers {
            let used: Vec<u32> = current.iter().map(|(_, id)| *id).collect();
            if let (Some(id), Some(index)) =
                ((1..=self.rules.processes).find(|id| !used.contains(id)), self.free_slot())
            {
                self.spawn(index, id);
            }
        } else if count > self.target_workers {
            let Some(&(index, id)) = current.iter().max_by_key(|(_, id)| *id) else { return };
            tracing::info!("stopping worker {id}: {} worker(s) wanted", self.target_workers);
            self.actions.push(Action::SetExitCause { slot: index, cause: ExitCause::Reload });
            let state = self.slots[index].as_ref().map(|s| s.state);
            match state.and_then(|s| s.process().copied()) {
                Some(p) => {
                    self.terminate(p.pid);
                    if let Some(slot) = self.slots[index].as_mut() {
                        slot.state = SlotState::Draining(p);
                    }
                }
                // Waiting to be respawned: simply not respawned.
                None => self.slots[index] = None,
            }
        }
    }
}

/// A worker as the cheaper algorithms see it: running, of the current generation, not being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CheaperWorker {
    id: u32,
    pid: Pid,
    busy: bool,
    running_time_us: u64,
}

/// What one cheaper check looks at.
struct CheaperInput<'a> {
    workers: &'a [CheaperWorker],
    /// Worker ids with no process (uWSGI's `cheaped == 1 && pid == 0`): how many could be forked.
    available: u32,
    processes: u32,
    backlog: u64,
    /// False while `cheaper-rss-limit-soft` (or the hard one) holds.
    can_spawn: bool,
}

impl CheaperInput<'_> {
    /// uWSGI's "decheaped" count: the available workers, at most `step` (its loops read a step of 0 as 1).
    fn decheap(&self, step: u32) -> i64 {
        i64::from(self.available.min(step.max(1)))
    }
}

/// The last thing the busyness algorithm did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum BusynessAction {
    #[default]
    None,
    Spawn,
    Cheap,
}

/// The busyness plugin's state (uWSGI's `uwsgi_cheaper_busyness_global`).
#[derive(Debug, Default)]
struct BusynessState {
    /// The first check's time; the measurement periods start there.
    tcheck: Option<Instant>,
    /// Per worker id: its process and `running_time` at the last measurement (a new process starts at 0).
    last_values: HashMap<u32, (Pid, u64)>,
    /// Per worker id: checks in this period that found it busy.
    was_busy: HashMap<u32, u64>,
    last_cheaped: Option<Instant>,
    /// No worker is retired for low busyness before this.
    next_cheap: Option<Instant>,
    /// The current multiplier (starts at `cheaper-busyness-multiplier`, grows by the penalty).
    cheap_multi: u64,
    last_action: BusynessAction,
    /// Periods in a row between min and max.
    tolerance_counter: u64,
    emergency_workers: u32,
    backlog_nonzero_since: Option<Instant>,
}

/// What the cheaper algorithms remember between checks (uWSGI keeps it in static variables).
#[derive(Debug, Default)]
struct CheaperState {
    /// The master FIFO's `+` and `-` not applied yet (uWSGI's `cheaper_fifo_delta`).
    fifo_delta: i64,
    spare_overload: u64,
    spare_idle: u64,
    spare2_idle: u64,
    busyness: BusynessState,
}

impl CheaperState {
    /// The algorithm's answer: how many workers to fork (> 0) or to stop (< 0).
    fn decide(&mut self, cheaper: &Cheaper, input: &CheaperInput<'_>, now: Instant) -> i64 {
        match cheaper.algo {
            CheaperAlgo::Spare => self.spare(cheaper, input),
            CheaperAlgo::Spare2 => self.spare2(cheaper, input),
            CheaperAlgo::Backlog => backlog_algo(cheaper, input),
            CheaperAlgo::Manual => 0,
            CheaperAlgo::Busyness => self.busyness(cheaper, input, now),
        }
    }

    /// uWSGI's `spare`: every check with all workers busy counts one overload (one with a free worker takes
    /// one back); `cheaper-overload` of them fork `cheaper-step` workers. With no overload left, each check
    /// counts one idle cycle, and every `cheaper-overload`-th stops a worker above `cheaper`, unless exactly
    /// one worker is free (the spare).
    fn spare(&mut self, cheaper: &Cheaper, input: &CheaperInput<'_>) -> i64 {
        if input.workers.iter().any(|w| !w.busy) {
            self.spare_overload = self.spare_overload.saturating_sub(1);
        } else {
            self.spare_overload += 1;
            self.spare_idle = 0;
        }
        if input.can_spawn && self.spare_overload >= cheaper.overload {
            self.spare_overload = 0;
            return input.decheap(cheaper.step);
        }
        if self.spare_overload == 0 {
            let active = input.workers.len() as u64;
            let busy = input.workers.iter().filter(|w| w.busy).count() as u64;
            if active > busy && active - busy == 1 {
                return 0;
            }
            self.spare_idle += 1;
            if active > u64::from(cheaper.min_workers) && self.spare_idle % cheaper.overload == 0 {
                return -1;
            }
        }
        0
    }

    /// uWSGI's `spare2`: keeps `cheaper` workers idle. Fewer idle: fork up to the difference (at most
    /// `cheaper-step`); more idle for `cheaper-idle` checks in a row: stop one.
    fn spare2(&mut self, cheaper: &Cheaper, input: &CheaperInput<'_>) -> i64 {
        let idle = input.workers.iter().filter(|w| !w.busy).count() as u64;
        let cheaped = u64::from(input.processes).saturating_sub(input.workers.len() as u64);
        let target = u64::from(cheaper.min_workers);
        if idle < target {
            self.spare2_idle = 0;
            if !input.can_spawn {
                return 0;
            }
            let spawn = (target - idle).min(cheaped).min(u64::from(cheaper.step));
            return i64::try_from(spawn).unwrap_or(0);
        }
        if idle == target {
            self.spare2_idle = 0;
            return 0;
        }
        self.spare2_idle += 1;
        if self.spare2_idle < cheaper.idle_cycles {
            return 0;
        }
        self.spare2_idle = 0;
        -1
    }

    /// uWSGI's cheaper_busyness plugin (`cheaper_busyness_algo`), step by step: each check notes which
    /// workers are busy; every `cheaper-overload` seconds each worker's busyness is the share of the period
    /// its requests took (from its `running_time`; a worker seen busy with no request finished counts 100%),
    /// and the average decides: above max fork `cheaper-step`, below min stop one once the cheaper timer
    /// (`cheaper-overload` × multiplier) has run out, in between hold the timer. Between measurements a
    /// listen queue over `-backlog-alert`, or non-empty for `-backlog-nonzero` seconds, forks emergency
    /// workers.
    fn busyness(&mut self, cheaper: &Cheaper, input: &CheaperInput<'_>, now: Instant) -> i64 {
        let settings = &cheaper.busyness;
        let b = &mut self.busyness;
        let period = Duration::from_secs(cheaper.overload);
        let period_us = u128::from(cheaper.overload) * 1_000_000;
        let Some(tcheck) = b.tcheck else {
            // (the plugin's init: timers start, the multiplier at its configured value)
            b.tcheck = Some(now);
            b.cheap_multi = settings.multiplier;
            set_next_cheap_time(b, cheaper, now);
            return 0;
        };
        let active = input.workers.len() as u64;
        let active_ids: Vec<u32> = input.workers.iter().map(|w| w.id).collect();
        b.was_busy.retain(|id, _| active_ids.contains(id));
        for worker in input.workers {
            *b.was_busy.entry(worker.id).or_default() += u64::from(worker.busy);
        }
        let backlog = input.backlog;
        let can_emergency = input.can_spawn && backlog > settings.backlog_alert && active < u64::from(input.processes);
        if now.saturating_duration_since(tcheck) >= period {
            b.tcheck = Some(now);
            let mut total_busyness = 0u64;
            for worker in input.workers {
                let last = match b.last_values.get(&worker.id) {
                    Some(&(pid, value)) if pid == worker.pid => value,
                    _ => 0,
                };
                let delta = worker.running_time_us.saturating_sub(last);
                let mut percent = (u128::from(delta) * 100 / period_us).min(100) as u64;
                let was_busy = b.was_busy.get(&worker.id).copied().unwrap_or(0);
                if delta == 0 && was_busy > 0 {
                    if settings.verbose {
                        tracing::info!(
                            "[busyness] worker {} was busy {was_busy} time(s) in last cycle but no request was \
                             completed during this time, marking as 100% busy",
                            worker.id
                        );
                    }
                    percent = 100;
                }
                b.was_busy.insert(worker.id, 0);
                total_busyness += percent;
                if settings.verbose && active > 1 {
                    tracing::info!(
                        "[busyness] worker nr {} {}s average busyness is at {percent}%",
                        worker.id,
                        cheaper.overload
                    );
                }
                b.last_values.insert(worker.id, (worker.pid, worker.running_time_us));
            }
            b.last_values.retain(|id, _| active_ids.contains(id));
            let avg = total_busyness.checked_div(active).unwrap_or(0);
            if settings.verbose {
                tracing::info!("[busyness] {}s average busyness of {active} worker(s) is at {avg}%", cheaper.overload);
            }
            if avg > settings.max {
                b.tolerance_counter = 0;
                let decheaped = if input.can_spawn { input.decheap(cheaper.step) } else { 0 };
                if decheaped > 0 {
                    b.last_action = BusynessAction::Spawn;
                    // Workers needed again within multiplier periods of the last retirement: wait longer next
                    // time.
                    let since_cheaped = b.last_cheaped.map(|at| now.saturating_duration_since(at).as_secs());
                    if since_cheaped.is_some_and(|secs| secs / cheaper.overload <= b.cheap_multi) {
                        b.cheap_multi += settings.penalty;
                        tracing::info!(
                            "[busyness] worker(s) respawned to fast, increasing cheaper multiplier to {} (+{})",
                            b.cheap_multi,
                            settings.penalty
                        );
                    } else {
                        decrease_multi(b, settings.multiplier);
                    }
                    set_next_cheap_time(b, cheaper, now);
                    tracing::info!(
                        "[busyness] {}s average busyness is at {avg}%, will spawn {decheaped} new worker(s)",
                        cheaper.overload
                    );
                } else {
                    tracing::info!(
                        "[busyness] {}s average busyness is at {avg}% but we already started maximum number of \
                         workers available with current limits ({active})",
                        cheaper.overload
                    );
                }
                return decheaped;
            } else if can_emergency {
                return spawn_emergency_workers(b, cheaper, input, now);
            } else if avg < settings.min {
                if active == 1 {
                    return 0;
                }
                b.tolerance_counter = 0;
                if active > u64::from(cheaper.min_workers) {
                    let next_cheap = b.next_cheap.unwrap_or(now);
                    if now >= next_cheap {
                        if b.last_action == BusynessAction::Cheap {
                            decrease_multi(b, settings.multiplier);
                        }
                        set_next_cheap_time(b, cheaper, now);
                        tracing::info!(
                            "[busyness] {}s average busyness is at {avg}%, cheap one of {active} running workers",
                            cheaper.overload
                        );
                        b.last_cheaped = Some(now);
                        b.last_action = BusynessAction::Cheap;
                        b.emergency_workers = b.emergency_workers.saturating_sub(1);
                        return -1;
                    } else if settings.verbose {
                        tracing::info!(
                            "[busyness] need to wait {} more second(s) to cheap worker",
                            next_cheap.saturating_duration_since(now).as_secs()
                        );
                    }
                }
            } else {
                if active == 1 {
                    return 0;
                }
                // Busy enough to slow the retirement of emergency workers down.
                b.emergency_workers = b.emergency_workers.saturating_sub(1);
                b.tolerance_counter += 1;
                if b.tolerance_counter >= 3 {
                    if settings.verbose {
                        tracing::info!(
                            "[busyness] {}s average busyness is at {avg}%, {} non-idle cycle(s), resetting cheaper \
                             timer",
                            cheaper.overload,
                            b.tolerance_counter
                        );
                    }
                    set_next_cheap_time(b, cheaper, now);
                } else {
                    if settings.verbose {
                        tracing::info!(
                            "[busyness] {}s average busyness is at {avg}%, {} non-idle cycle(s), adjusting cheaper \
                             timer",
                            cheaper.overload,
                            b.tolerance_counter
                        );
                    }
                    // This period does not count as idle.
                    b.next_cheap = Some(b.next_cheap.unwrap_or(now) + period);
                }
            }
        } else if can_emergency {
            return spawn_emergency_workers(b, cheaper, input, now);
        } else if backlog > 0 {
            match b.backlog_nonzero_since {
                Some(since) => {
                    let filled_for = now.saturating_duration_since(since);
                    if input.can_spawn && filled_for.as_secs() >= settings.backlog_nonzero.as_secs() {
                        tracing::info!(
                            "[busyness] backlog was non-zero for {} second(s), spawning new worker(s)",
                            filled_for.as_secs()
                        );
                        b.backlog_nonzero_since = Some(now);
                        return spawn_emergency_workers(b, cheaper, input, now);
                    }
                }
                None => {
                    if settings.verbose {
                        tracing::info!("[busyness] backlog is starting to fill ({backlog})");
                    }
                    b.backlog_nonzero_since = Some(now);
                }
            }
        } else if b.backlog_nonzero_since.take().is_some() && settings.verbose {
            tracing::info!("[busyness] backlog is now empty");
        }
        0
    }
}

/// The plugin's `set_next_cheap_time`: the next retirement for low busyness comes `cheaper-overload` ×
/// the multiplier from now (× the backlog multiplier while emergency workers run).
fn set_next_cheap_time(b: &mut BusynessState, cheaper: &Cheaper, now: Instant) {
    let multiplier = if b.emergency_workers > 0 {
        if cheaper.busyness.verbose {
            tracing::info!(
                "[busyness] {} emergency worker(s) running, using {} seconds cheaper timer",
                b.emergency_workers,
                cheaper.overload * cheaper.busyness.backlog_multiplier
            );
        }
        cheaper.busyness.backlog_multiplier
    } else {
        b.cheap_multi
    };
    b.next_cheap = Some(now + Duration::from_secs(cheaper.overload.saturating_mul(multiplier)));
}

/// The plugin's `decrease_multi`: one less, down to the configured multiplier.
fn decrease_multi(b: &mut BusynessState, initial: u64) {
    if b.cheap_multi > initial {
        b.cheap_multi -= 1;
        tracing::info!("[busyness] decreasing cheaper multiplier to {}", b.cheap_multi);
    }
}

/// The plugin's `spawn_emergency_worker`: up to `-backlog-step` workers now, the multiplier back to its
/// configured value and the cheaper timer restarted.
fn spawn_emergency_workers(b: &mut BusynessState, cheaper: &Cheaper, input: &CheaperInput<'_>, now: Instant) -> i64 {
    b.cheap_multi = cheaper.busyness.multiplier;
    b.last_action = BusynessAction::Spawn;
    let decheaped = input.decheap(cheaper.busyness.backlog_step);
    set_next_cheap_time(b, cheaper, now);
    if decheaped > 0 {
        b.emergency_workers += decheaped as u32;
        tracing::info!(
            "[busyness] {} requests in listen queue, spawning {decheaped} emergency worker(s) ({})!",
            input.backlog,
            b.emergency_workers
        );
    } else {
        tracing::info!(
            "[busyness] {} requests in listen queue but we are already started maximum number of workers ({})",
            input.backlog,
            input.processes
        );
    }
    decheaped
}

/// uWSGI's `backlog` algorithm: fork `cheaper-step` workers while the listen queue is longer than
/// `cheaper-overload`, stop one (down to `cheaper`) each check while it is shorter.
fn backlog_algo(cheaper: &Cheaper, input: &CheaperInput<'_>) -> i64 {
    if input.can_spawn && input.backlog > cheaper.overload {
        input.decheap(cheaper.step)
    } else if input.backlog < cheaper.overload && input.workers.len() as u64 > u64::from(cheaper.min_workers) {
        -1
    } else {
        0
    }
}

/// The next step of a harakiri in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HarakiriStep {
    /// Nothing yet.
    Wait,
    /// Send `harakiri-graceful-signal` (once).
    Graceful,
    /// SIGKILL.
    Kill,
}

/// `since_dump`: time since the stack dump was asked for; `graceful`: `harakiri-graceful-timeout`;
/// `graceful_sent`: the graceful signal already went out. As uWSGI: with a graceful timeout the harakiri
/// first sends the signal and the kill comes `timeout` later; without one, the kill follows the dump.
fn harakiri_step(since_dump: Duration, graceful: Option<Duration>, graceful_sent: bool) -> HarakiriStep {
    if since_dump < HARAKIRI_DUMP_GRACE {
        return HarakiriStep::Wait;
    }
    match graceful {
        None => HarakiriStep::Kill,
        Some(_) if !graceful_sent => HarakiriStep::Graceful,
        Some(timeout) if since_dump >= HARAKIRI_DUMP_GRACE + timeout => HarakiriStep::Kill,
        Some(_) => HarakiriStep::Wait,
    }
}

/// A fresh worker's crash-loop backoff (see [`crate::backoff::WORKER`]).
fn worker_backoff() -> Backoff {
    Backoff::new(WORKER.0, WORKER.1)
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
