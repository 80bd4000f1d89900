//! Mules (`mule`, `mules`, `farm`, `mule-reload-mercy`, `touch-mules-reload`): what uWSGI's core/mule.c and
//! the mule parts of core/master.c do, in liege's master.
//!
//! - The master creates the message queues (`crate::python::mules::create_queues`) before its first fork,
//!   then forks each mule once the app is loaded (preload) or right away (lazy-apps: the mule starts Python
//!   itself, without the app). A mule dies with the master (`PR_SET_PDEATHSIG`), closes the listening
//!   sockets and the emperor's channel, and runs its program (`crate::python::mules::run_mule`); its output
//!   goes where the vassal's goes.
//! - A mule that exits is forked again: at once if it lived [`HEALTHY_AFTER`], else after the crash-loop
//!   backoff (`src/backoff.rs`; uWSGI respawns at once, always).
//! - Reload (any kind: SIGHUP, touch-reload, the FIFO's `r`/`c`, the emperor) and `touch-mules-reload`:
//!   SIGHUP to every mule (uWSGI's `uwsgi_reload_mules`), SIGKILL after `mule-reload-mercy`, a new mule as
//!   soon as the old one is gone. With a preloaded app the master re-executes itself: the mules get SIGHUP
//!   and their pids go to the next image in [`HANDOVER_ENV`]; it starts the new mules once those are gone
//!   (or killed at the mercy), so a mule's work never runs twice at once.
//! - Stop: SIGTERM to every mule when the stop begins (SIGKILL for a quick stop); once the workers are gone
//!   the master waits for them up to `mule-reload-mercy` (at most 30 s), then kills what is left.
//!
//! The decisions are [`MuleBoard`]'s (pure: the time is passed in, it queues [`MuleAction`]s; unit tests at
//! the end); the effects (fork, kill, waitpid) are the shell's, at the bottom.

use std::time::{Duration, Instant};

use liege_config::mules::MuleSpec;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::backoff::Backoff;

/// Environment variable carrying the pids of mules still stopping across a master re-exec.
pub const HANDOVER_ENV: &str = "LIEGE_MULES_STOPPING";

/// A mule that lived at least this long was healthy: its next exit is respawned at once.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Mule respawn backoff: 1 s, 2 s, 4 s ... at most 60 s (the daemons' numbers).
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
/// A fork that failed is tried again after this long.
const FORK_RETRY: Duration = Duration::from_secs(1);

/// An effect for the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuleAction {
    /// Fork mule `id`, then report with [`MuleBoard::spawned`].
    Spawn {
        id: u32,
    },
    Signal {
        pid: Pid,
        signal: Signal,
    },
}

/// Where one mule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuleState {
    /// No process: fork one at this time.
    Waiting { at: Instant },
    /// Running; `kill_at`: asked to exit (reload or stop), SIGKILL then if still there.
    Running { pid: Pid, since: Instant, kill_at: Option<Instant>, killed: bool },
    /// Exited during a stop: not respawned.
    Stopped,
}

#[derive(Debug, Clone)]
struct Mule {
    id: u32,
    state: MuleState,
    backoff: Backoff,
    /// Forks so far (uWSGI's `respawn_count` starts at 1 with the first).
    spawns: u64,
    /// Unix time of the last fork (for the stats).
    last_spawn: u64,
    /// How the last one ended (`killed by signal 9 (SIGKILL)`...).
    last_exit: Option<String>,
}

/// The mules' decisions.
#[derive(Debug)]
pub struct MuleBoard {
    mules: Vec<Mule>,
    mercy: Duration,
    stopping: bool,
    /// A previous image's mules, still stopping: (pid, SIGKILL at, killed). New mules wait for them.
    previous: Vec<(Pid, Instant, bool)>,
    actions: Vec<MuleAction>,
}

/// What the stats and the emperor see of one mule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuleView {
    pub id: u32,
    /// 0 when not running.
    pub pid: i32,
    pub spawns: u64,
    pub last_spawn: u64,
    pub last_exit: Option<String>,
    /// Waiting to be forked again at this time.
    pub next_start_at: Option<Instant>,
}

impl MuleBoard {
    /// `count` mules (ids 1..=count); `previous`: a previous image's mules, still stopping.
    pub fn new(count: u32, mercy: Duration, previous: Vec<Pid>, now: Instant) -> Self {
        MuleBoard {
            mules: (1..=count)
                .map(|id| Mule {
                    id,
                    state: MuleState::Waiting { at: now },
                    backoff: Backoff::new(BACKOFF.0, BACKOFF.1),
                    spawns: 0,
                    last_spawn: 0,
                    last_exit: None,
                })
                .collect(),
            mercy,
            stopping: false,
            previous: previous.into_iter().map(|pid| (pid, now + mercy, false)).collect(),
            actions: Vec::new(),
        }
    }

    pub fn take_actions(&mut self) -> Vec<MuleAction> {
        std::mem::take(&mut self.actions)
    }

    /// Forks what is due, kills what overstayed its mercy.
    pub fn tick(&mut self, now: Instant) {
        for (pid, kill_at, killed) in &mut self.previous {
            if !*killed && now >= *kill_at {
                tracing::warn!("mule (pid {pid}) of the previous image is taking too much time to die... NO MERCY !!!");
                *killed = true;
                self.actions.push(MuleAction::Signal { pid: *pid, signal: Signal::SIGKILL });
            }
        }
        let previous_gone = self.previous.is_empty();
        for mule in &mut self.mules {
            match &mut mule.state {
                MuleState::Waiting { at } if !self.stopping && previous_gone && now >= *at => {
                    self.actions.push(MuleAction::Spawn { id: mule.id });
                }
                MuleState::Running { pid, kill_at: Some(kill_at), killed, .. } if !*killed && now >= *kill_at => {
                    tracing::warn!("mule {} (pid {pid}) is taking too much time to die... NO MERCY !!!", mule.id);
                    *killed = true;
                    self.actions.push(MuleAction::Signal { pid: *pid, signal: Signal::SIGKILL });
                }
                _ => {}
            }
        }
    }

    /// The outcome of a [`MuleAction::Spawn`].
    pub fn spawned(&mut self, id: u32, result: Result<Pid, String>, now: Instant, unix_now: u64) {
        let Some(mule) = self.mules.iter_mut().find(|m| m.id == id) else { return };
        match result {
            Ok(pid) => {
                tracing::info!("spawned mule {id} (pid: {pid})");
                mule.spawns += 1;
                mule.last_spawn = unix_now;
                mule.state = MuleState::Running { pid, since: now, kill_at: None, killed: false };
                if self.stopping {
                    // (a stop that began between the decision and the fork)
                    mule.state = MuleState::Running { pid, since: now, kill_at: Some(now + self.mercy), killed: false };
                    self.actions.push(MuleAction::Signal { pid, signal: Signal::SIGTERM });
                }
            }
            Err(err) => {
                tracing::error!("cannot fork mule {id}: {err}; trying again in {FORK_RETRY:?}");
                mule.state = MuleState::Waiting { at: now + FORK_RETRY };
            }
        }
    }

    /// A child exited: true if it was a mule (then what follows is decided here).
    pub fn reaped(&mut self, pid: Pid, how: &str, now: Instant) -> bool {
        if let Some(index) = self.previous.iter().position(|(p, _, _)| *p == pid) {
            self.previous.remove(index);
            tracing::info!("mule (pid {pid}) of the previous image {how}");
            return true;
        }
        let stopping = self.stopping;
        let Some(mule) =
            self.mules.iter_mut().find(|m| matches!(m.state, MuleState::Running { pid: p, .. } if p == pid))
        else {
            return false;
        };
        let MuleState::Running { since, kill_at, .. } = mule.state else { return false };
        mule.last_exit = Some(how.to_owned());
        if stopping {
            tracing::info!("mule {} (pid {pid}) {how}", mule.id);
            mule.state = MuleState::Stopped;
        } else if kill_at.is_some() {
            // Asked to restart (reload, touch-mules-reload): a new one at once.
            tracing::info!("mule {} (pid {pid}) {how}; starting it again", mule.id);
            mule.backoff.reset();
            mule.state = MuleState::Waiting { at: now };
        } else if now.duration_since(since) >= HEALTHY_AFTER {
            tracing::warn!("mule {} (pid {pid}) {how}; respawning", mule.id);
            mule.backoff.reset();
            mule.state = MuleState::Waiting { at: now };
        } else {
            let delay = mule.backoff.next_delay();
            tracing::warn!(
                "mule {} (pid {pid}) {how} after {:.1} s; respawning in {delay:?}",
                mule.id,
                now.duration_since(since).as_secs_f64()
            );
            mule.state = MuleState::Waiting { at: now + delay };
        }
        true
    }

    /// Restarts every mule: SIGHUP now, SIGKILL after the mercy, a new one once it is gone (reload,
    /// `touch-mules-reload`). A mule waiting out a crash-loop delay starts at once.
    pub fn restart_all(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        for mule in &mut self.mules {
            match &mut mule.state {
                MuleState::Running { pid, kill_at: kill_at @ None, .. } => {
                    *kill_at = Some(now + self.mercy);
                    self.actions.push(MuleAction::Signal { pid: *pid, signal: Signal::SIGHUP });
                }
                MuleState::Waiting { at } => {
                    *at = now;
                    mule.backoff.reset();
                }
                _ => {}
            }
        }
    }

    /// The vassal stops: SIGTERM to every mule (SIGKILL for a quick stop); none is respawned.
    pub fn stop(&mut self, quick: bool, now: Instant) {
        let again = self.stopping;
        self.stopping = true;
        for mule in &mut self.mules {
            match &mut mule.state {
                MuleState::Running { pid, kill_at, killed, .. } => {
                    if quick && !*killed {
                        *killed = true;
                        self.actions.push(MuleAction::Signal { pid: *pid, signal: Signal::SIGKILL });
                    } else if !again || kill_at.is_none() {
                        *kill_at = Some(kill_at.map_or(now + self.mercy, |at| at.min(now + self.mercy)));
                        self.actions.push(MuleAction::Signal { pid: *pid, signal: Signal::SIGTERM });
                    }
                }
                MuleState::Waiting { .. } => mule.state = MuleState::Stopped,
                MuleState::Stopped => {}
            }
        }
        if quick {
            for (pid, _, killed) in &mut self.previous {
                if !*killed {
                    *killed = true;
                    self.actions.push(MuleAction::Signal { pid: *pid, signal: Signal::SIGKILL });
                }
            }
        }
    }

    /// Before the master re-executes itself: SIGHUP to every mule; returns the pids to hand over (with those
    /// of a previous image still stopping). The mules are the next image's to wait for.
    pub fn before_exec(&mut self, now: Instant) -> Vec<Pid> {
        self.restart_all(now);
        let mut pids: Vec<Pid> = self.previous.iter().map(|(pid, _, _)| *pid).collect();
        pids.extend(self.mules.iter().filter_map(|m| match m.state {
            MuleState::Running { pid, .. } => Some(pid),
            _ => None,
        }));
        pids
    }

    /// Every process this board knows of (current and previous image), for the last wait.
    pub fn pids(&self) -> Vec<Pid> {
        let mut pids: Vec<Pid> = self.previous.iter().map(|(pid, _, _)| *pid).collect();
        pids.extend(self.mules.iter().filter_map(|m| match m.state {
            MuleState::Running { pid, .. } => Some(pid),
            _ => None,
        }));
        pids
    }

    pub fn views(&self) -> Vec<MuleView> {
        self.mules
            .iter()
            .map(|m| MuleView {
                id: m.id,
                pid: match m.state {
                    MuleState::Running { pid, .. } => pid.as_raw(),
                    _ => 0,
                },
                spawns: m.spawns,
                last_spawn: m.last_spawn,
                last_exit: m.last_exit.clone(),
                next_start_at: match m.state {
                    MuleState::Waiting { at } if !self.stopping => Some(at),
                    _ => None,
                },
            })
            .collect()
    }

    #[cfg(test)]
    pub fn state(&self, id: u32) -> Option<MuleState> {
        self.mules.iter().find(|m| m.id == id).map(|m| m.state)
    }
}

// --- the effects ---

/// The mules of one master image: the board and the specs.
pub struct Mules {
    specs: Vec<MuleSpec>,
    pub board: MuleBoard,
    mercy: Duration,
    /// `touch-mules-reload` files with the modification time last seen.
    touch: Vec<(std::path::PathBuf, Option<std::time::SystemTime>)>,
}

impl Mules {
    /// Reads (and removes) the previous image's stopping mules from the environment.
    pub fn new(specs: &[MuleSpec], mercy: Duration, touch: &[std::path::PathBuf]) -> Self {
        let previous: Vec<Pid> = std::env::var(HANDOVER_ENV)
            .map(|text| text.split(',').filter_map(|pid| pid.parse().ok()).map(Pid::from_raw).collect())
            .unwrap_or_default();
        #[allow(clippy::disallowed_methods, reason = "the master is single-threaded: no thread reads the environment")]
        std::env::remove_var(HANDOVER_ENV);
        Mules {
            specs: specs.to_vec(),
            board: MuleBoard::new(specs.len() as u32, mercy, previous, Instant::now()),
            mercy,
            touch: touch.iter().map(|path| (path.clone(), modified(path))).collect(),
        }
    }

    /// `touch-mules-reload`: a changed modification time restarts the mules (only them).
    pub fn check_touched(&mut self) {
        let mut touched = false;
        for (path, seen) in &mut self.touch {
            let now = modified(path);
            if now != *seen {
                *seen = now;
                tracing::info!("*** {} has been touched... mules reload !!! ***", path.display());
                touched = true;
            }
        }
        if touched {
            self.board.restart_all(Instant::now());
        }
    }

    pub fn spec(&self, id: u32) -> Option<&MuleSpec> {
        self.specs.iter().find(|s| s.id == id)
    }

    /// Before a re-exec: hand the mules over to the next image.
    pub fn before_exec(&mut self) {
        let pids = self.board.before_exec(Instant::now());
        self.signal();
        if !pids.is_empty() {
            let text: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
            #[allow(
                clippy::disallowed_methods,
                reason = "the master is single-threaded: no thread reads the environment"
            )]
            std::env::set_var(HANDOVER_ENV, text.join(","));
        }
    }

    /// The exec failed: the mules exit on their SIGHUP and are started again as usual.
    pub fn exec_failed(&mut self) {
        #[allow(clippy::disallowed_methods, reason = "the master is single-threaded: no thread reads the environment")]
        std::env::remove_var(HANDOVER_ENV);
    }

    /// Sends the board's signals (spawns are the shell's: they need the master's state).
    pub fn signal(&mut self) -> Vec<u32> {
        let mut spawns = Vec::new();
        for action in self.board.take_actions() {
            match action {
                MuleAction::Signal { pid, signal } => {
                    let _ = nix::sys::signal::kill(pid, signal);
                }
                MuleAction::Spawn { id } => spawns.push(id),
            }
        }
        spawns
    }

    /// At exit, after the workers: wait up to the mercy (at most 30 s) for the mules, then kill what is left.
    pub fn finish(&mut self) {
        self.board.stop(false, Instant::now());
        self.signal();
        let deadline = Instant::now() + self.mercy.min(Duration::from_secs(30));
        let mut waiting: Vec<Pid> = self.board.pids();
        loop {
            waiting.retain(|&pid| match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => true,
                Ok(status) => {
                    tracing::info!("mule (pid {pid}) {}", crate::process::describe_exit(status));
                    false
                }
                Err(_) => false,
            });
            if waiting.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                for &pid in &waiting {
                    tracing::warn!("mule (pid {pid}) is taking too much time to die... NO MERCY !!!");
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                    let _ = nix::sys::wait::waitpid(pid, None);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl super::Master<'_> {
    /// Carries out the mules' decisions (forks included).
    pub(super) fn apply_mules(&mut self) {
        loop {
            let spawns = self.mules.signal();
            if spawns.is_empty() {
                return;
            }
            for id in spawns {
                let result = self.fork_mule(id);
                self.mules.board.spawned(id, result, Instant::now(), crate::process::unix_now());
            }
        }
    }

    /// The mules in the stats document.
    pub(super) fn mule_stats(&self) -> Vec<crate::stats::uwsgi::Mule> {
        self.mules
            .board
            .views()
            .into_iter()
            .map(|view| {
                let memory = (view.pid > 0).then(|| crate::process::memory(view.pid)).flatten();
                crate::stats::uwsgi::Mule {
                    id: view.id,
                    pid: view.pid,
                    file: self.mules.spec(view.id).map(|s| s.value.clone()).unwrap_or_default(),
                    respawn_count: view.spawns,
                    last_spawn: view.last_spawn,
                    rss: memory.map_or(0, |m| m.rss),
                    vsz: memory.map_or(0, |m| m.vsz),
                }
            })
            .collect()
    }

    /// The mules for the emperor, among the side processes of the heartbeat (`kind` "mule").
    pub(super) fn mule_reports(&self) -> Vec<crate::control::DaemonReport> {
        let now = Instant::now();
        self.mules
            .board
            .views()
            .into_iter()
            .map(|view| {
                let value = self.mules.spec(view.id).map(|s| s.value.as_str()).unwrap_or_default();
                crate::control::DaemonReport {
                    command: if value.is_empty() {
                        format!("mule {}", view.id)
                    } else {
                        format!("mule {}: {value}", view.id)
                    },
                    kind: "mule".to_owned(),
                    pid: (view.pid > 0).then_some(view.pid),
                    running: view.pid > 0,
                    starts: view.spawns,
                    last_exit: view.last_exit,
                    next_start_in_s: view.next_start_at.map(|at| at.saturating_duration_since(now).as_secs_f64()),
                }
            })
            .collect()
    }

    /// Forks mule `id`; returns its pid (the child never returns).
    fn fork_mule(&mut self, id: u32) -> Result<Pid, String> {
        let Some(spec) = self.mules.spec(id).cloned() else { return Err(format!("no mule {id}")) };
        // (preload: the master's interpreter, with the app, comes with the fork; lazy-apps: none)
        let preloaded = !self.config.lazy_apps;
        let master_pid = std::process::id() as i32;
        let python_live = preloaded || crate::launch::hosted().is_some();
        // SAFETY: the master is single-threaded (no tokio, no threads), and holds the GIL when Python is live.
        let forked = unsafe { super::fork_with_python_hooks(python_live) };
        match forked {
            Ok(nix::unistd::ForkResult::Child) => {
                crate::process::become_child_of(master_pid);
                self.close_master_fds_in_side_process();
                if python_live {
                    // SAFETY: the only thread of the child, holding the GIL taken for the fork.
                    unsafe { pyo3::ffi::PyOS_AfterFork_Child() };
                }
                crate::logging::set_mule_role(id);
                let code = crate::python::mules::run_mule(self.config, &spec, preloaded, self.started_on);
                crate::logging::flush_request_log();
                // SAFETY: _exit skips the atexit handlers and stdio buffers inherited from the master.
                unsafe { libc::_exit(code) }
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => Ok(child),
            Err(err) => Err(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(n: i32) -> Pid {
        Pid::from_raw(n)
    }

    fn started(board: &mut MuleBoard, now: Instant) -> Vec<u32> {
        board.tick(now);
        let mut ids = Vec::new();
        for action in board.take_actions() {
            if let MuleAction::Spawn { id } = action {
                board.spawned(id, Ok(pid(100 + id as i32)), now, 0);
                ids.push(id);
            }
        }
        ids
    }

    #[test]
    fn every_mule_starts_at_once_and_a_crash_loop_backs_off() {
        let t = Instant::now();
        let mut board = MuleBoard::new(2, Duration::from_secs(60), Vec::new(), t);
        assert_eq!(started(&mut board, t), [1, 2]);
        assert!(board.reaped(pid(101), "exited with code 1", t + Duration::from_millis(100)));
        assert_eq!(board.state(1), Some(MuleState::Waiting { at: t + Duration::from_millis(100) + BACKOFF.0 }));
        assert!(started(&mut board, t + Duration::from_millis(500)).is_empty());
        assert_eq!(started(&mut board, t + Duration::from_millis(1100)), [1]);
        // A second quick crash waits twice as long.
        let t2 = t + Duration::from_millis(1200);
        assert!(board.reaped(pid(101), "was killed by SIGKILL", t2));
        assert_eq!(board.state(1), Some(MuleState::Waiting { at: t2 + 2 * BACKOFF.0 }));
        // A mule that lived long is respawned at once.
        let late = t + HEALTHY_AFTER + Duration::from_secs(1);
        assert!(board.reaped(pid(102), "exited with code 0", late));
        assert_eq!(board.state(2), Some(MuleState::Waiting { at: late }));
        assert!(!board.reaped(pid(999), "exited", late), "not a mule");
    }

    #[test]
    fn a_restart_signals_then_kills_after_the_mercy_and_starts_a_new_one() {
        let t = Instant::now();
        let mercy = Duration::from_secs(5);
        let mut board = MuleBoard::new(2, mercy, Vec::new(), t);
        started(&mut board, t);
        board.restart_all(t);
        assert_eq!(
            board.take_actions(),
            [
                MuleAction::Signal { pid: pid(101), signal: Signal::SIGHUP },
                MuleAction::Signal { pid: pid(102), signal: Signal::SIGHUP }
            ]
        );
        // Asked again meanwhile: not signalled twice.
        board.restart_all(t + Duration::from_secs(1));
        assert!(board.take_actions().is_empty());
        // Mule 1 exits: started again at once, without backoff.
        assert!(board.reaped(pid(101), "exited", t + Duration::from_secs(1)));
        assert_eq!(started(&mut board, t + Duration::from_secs(1)), [1]);
        // Mule 2 overstays its mercy: SIGKILL, once.
        board.tick(t + mercy + Duration::from_millis(1));
        assert_eq!(board.take_actions(), [MuleAction::Signal { pid: pid(102), signal: Signal::SIGKILL }]);
        board.tick(t + mercy + Duration::from_secs(1));
        assert!(board.take_actions().is_empty());
        assert!(board.reaped(pid(102), "was killed by SIGKILL", t + mercy + Duration::from_secs(1)));
        assert_eq!(started(&mut board, t + mercy + Duration::from_secs(1)), [2]);
    }

    #[test]
    fn a_stop_terminates_and_never_respawns() {
        let t = Instant::now();
        let mut board = MuleBoard::new(2, Duration::from_secs(60), Vec::new(), t);
        started(&mut board, t);
        board.reaped(pid(102), "exited", t); // waiting for its backoff
        board.take_actions();
        board.stop(false, t);
        assert_eq!(board.take_actions(), [MuleAction::Signal { pid: pid(101), signal: Signal::SIGTERM }]);
        assert_eq!(board.state(2), Some(MuleState::Stopped));
        assert!(board.reaped(pid(101), "exited", t + Duration::from_secs(1)));
        assert_eq!(board.state(1), Some(MuleState::Stopped));
        assert!(started(&mut board, t + Duration::from_secs(100)).is_empty());
        // A restart during a stop does nothing.
        board.restart_all(t);
        assert!(board.take_actions().is_empty());
    }

    #[test]
    fn a_quick_stop_kills_at_once_even_after_a_graceful_one() {
        let t = Instant::now();
        let mut board = MuleBoard::new(1, Duration::from_secs(60), Vec::new(), t);
        started(&mut board, t);
        board.stop(false, t);
        assert_eq!(board.take_actions(), [MuleAction::Signal { pid: pid(101), signal: Signal::SIGTERM }]);
        board.stop(true, t);
        assert_eq!(board.take_actions(), [MuleAction::Signal { pid: pid(101), signal: Signal::SIGKILL }]);
    }

    #[test]
    fn after_a_re_exec_new_mules_wait_for_the_previous_ones() {
        let t = Instant::now();
        let mercy = Duration::from_secs(3);
        let mut board = MuleBoard::new(1, mercy, vec![pid(50), pid(51)], t);
        assert!(started(&mut board, t).is_empty());
        assert!(board.reaped(pid(50), "exited", t));
        assert!(started(&mut board, t).is_empty());
        // The other one overstays: killed at the mercy; the new mule starts once it is reaped.
        board.tick(t + mercy);
        assert_eq!(board.take_actions(), [MuleAction::Signal { pid: pid(51), signal: Signal::SIGKILL }]);
        assert!(board.reaped(pid(51), "was killed by SIGKILL", t + mercy));
        assert_eq!(started(&mut board, t + mercy), [1]);
    }

    #[test]
    fn before_exec_signals_and_hands_over_every_pid() {
        let t = Instant::now();
        let mut board = MuleBoard::new(2, Duration::from_secs(60), Vec::new(), t);
        started(&mut board, t);
        assert_eq!(board.before_exec(t), [pid(101), pid(102)]);
        assert_eq!(board.take_actions().len(), 2);
        let views = board.views();
        assert_eq!((views[0].id, views[0].pid, views[0].spawns), (1, 101, 1));
    }

    #[test]
    fn a_failed_fork_is_retried() {
        let t = Instant::now();
        let mut board = MuleBoard::new(1, Duration::from_secs(60), Vec::new(), t);
        board.tick(t);
        assert_eq!(board.take_actions(), [MuleAction::Spawn { id: 1 }]);
        board.spawned(1, Err("EAGAIN".into()), t, 0);
        assert_eq!(board.state(1), Some(MuleState::Waiting { at: t + FORK_RETRY }));
    }
}
