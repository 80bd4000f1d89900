//! The spoolers (`spooler` and its options): processes the master forks after the app is (pre)loaded, each
//! running the tasks workers write into its directory with `uwsgi.spool()`, what uWSGI's core/spooler.c and
//! the spooler parts of core/master*.c do. The files and the shared table are in [`crate::spool`].
//!
//! - **A spooler process** scans its directory every `spooler-frequency` seconds (or the value of
//!   `uwsgi.set_spooler_frequency`), and at once when a worker spools a task there (SIGUSR1, as uWSGI). For
//!   each `uwsgi_spoolfile_on_*` file whose modification time (`at`) is not in the future it takes an fcntl
//!   lock (so two spoolers of one directory never run the same task), reads it, and calls `uwsgi.spooler`
//!   with its arguments: SPOOL_OK (-2) deletes the file, SPOOL_RETRY (-1, also an exception or a non-int
//!   answer) keeps it for the next scan, SPOOL_IGNORE (0, or no callable) leaves it and logs that no spooler
//!   function was found. `spooler-ordered` scans in version order and enters the numbered `priority`
//!   subdirectories, which sort first (`1`, `2`, `10`). It runs at the lowest CPU priority, stdin on
//!   /dev/null, its output in the vassal's log. With lazy-apps it imports the app itself, as a worker does.
//! - **`spooler-max-tasks`**: after that many tasks the spooler exits and the master starts a new one.
//!   **`spooler-harakiri`**: a task running longer gets its spooler killed (SIGKILL) by the master; the task
//!   stays spooled. **`spooler-cheap`**: no spooler runs until its directory has a task (checked every
//!   `spooler-frequency` seconds), and one exits after a scan that ran nothing.
//! - **Supervision**: a spooler that dies is started again (a planned exit, status 0, at once; a crash with
//!   the workers' crash-loop backoff, `src/backoff.rs`). A stop of the vassal sends SIGTERM (a spooler dies
//!   at once, its running task stays spooled) and SIGKILLs what is left when the master exits; a reload
//!   that re-executes the master kills them (as uWSGI) and the next image starts new ones with the new code;
//!   `touch-spoolers-reload` and a lazy-apps reload send SIGHUP: the spooler finishes its task and exits, and
//!   is started again at once (SIGKILL after `reload-mercy`).
//!
//! The decisions (what an exit means, when a harakiri or a reload's mercy is due, what a callable's answer
//! does to the file) are pure functions with unit tests; the effects are the functions below them.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use liege_config::spooler::SpoolerConfig;
use liege_config::VassalConfig;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::backoff::Backoff;
use crate::spool::file::{self, ReadFailure};
use crate::spool::SpoolBoard;

/// A spooler that lived at least this long was healthy: its next crash is respawned at once.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
/// Exit status of a planned exit (max tasks, cheap mode, SIGHUP).
const PLANNED_EXIT: i32 = 0;

/// What an exit of a spooler means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitDecision {
    /// Start it again after this delay.
    Respawn(Duration),
    /// Leave it stopped (the vassal stops, or cheap mode: started again when a task shows up).
    Stopped,
}

/// Decides what an exit of a spooler means (uWSGI's `uwsgi_master_check_spoolers_death`, with liege's
/// crash-loop backoff for the crashes).
pub fn decide_exit(stopping: bool, cheap: bool, planned: bool, lived: Duration, backoff: &mut Backoff) -> ExitDecision {
    if stopping {
        return ExitDecision::Stopped;
    }
    if cheap && planned {
        return ExitDecision::Stopped;
    }
    if planned || lived >= HEALTHY_AFTER {
        backoff.reset();
        return ExitDecision::Respawn(Duration::ZERO);
    }
    ExitDecision::Respawn(backoff.next_delay())
}

/// What the callable's answer does to the task file (uWSGI's `spooler_manage_task`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// SPOOL_OK: the task is done, its file is deleted; it counts as a task.
    Done,
    /// SPOOL_RETRY and any other non-zero answer: the file stays for the next scan; it counts as a task.
    Retry,
    /// SPOOL_IGNORE: not this callable's; the file stays, it does not count.
    Ignored,
}

pub fn outcome(answer: i32) -> Outcome {
    match answer {
        0 => Outcome::Ignored,
        -2 => Outcome::Done,
        _ => Outcome::Retry,
    }
}

/// Whether a task that must end by `deadline` (unix seconds, 0 = none) is overdue at `now` (uWSGI kills when
/// `harakiri < now`).
pub fn harakiri_due(deadline: i64, now: i64) -> bool {
    deadline > 0 && deadline < now
}

/// Whether a spooler that has run `tasks` recycles (`spooler-max-tasks`, 0 = never).
pub fn must_recycle(tasks: u64, max_tasks: u64) -> bool {
    max_tasks > 0 && tasks >= max_tasks
}

#[derive(Debug)]
struct Entry {
    /// Slot in the shared table.
    slot: usize,
    dir: PathBuf,
    external: bool,
    pid: Option<i32>,
    spawned_at: Instant,
    respawn_at: Option<Instant>,
    backoff: Backoff,
    /// Asked to restart (SIGHUP) at this time: SIGKILL after the mercy.
    restarting: Option<Instant>,
}

/// The master's spoolers.
#[derive(Debug)]
pub struct Spoolers {
    entries: Vec<Entry>,
    cheap: bool,
    frequency: u64,
    harakiri: bool,
    mercy: Duration,
    stopping: bool,
    touch: Vec<(PathBuf, Option<SystemTime>)>,
    last_cheap_check: Option<Instant>,
}

impl Spoolers {
    /// The spoolers of the installed table (none if the vassal has no `spooler`), none started yet.
    pub fn new(config: &SpoolerConfig, mercy: Duration) -> Self {
        let entries = SpoolBoard::global()
            .map(|board| {
                (0..board.len())
                    .filter_map(|slot| {
                        let dir = board.slot_dir(slot)?;
                        Some(Entry {
                            slot,
                            dir: dir.path.clone(),
                            external: dir.external,
                            pid: None,
                            spawned_at: Instant::now(),
                            respawn_at: None,
                            backoff: Backoff::new(BACKOFF.0, BACKOFF.1),
                            restarting: None,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Spoolers {
            entries,
            cheap: config.cheap,
            frequency: config.frequency.max(1),
            harakiri: config.harakiri.is_some(),
            mercy,
            stopping: false,
            touch: config.touch_reload.iter().map(|p| (p.clone(), modified(p))).collect(),
            last_cheap_check: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Marks every spooler due to start now (not in cheap mode, not external): called once the app is loaded.
    pub fn start(&mut self, now: Instant) {
        for entry in &mut self.entries {
            if !entry.external && !self.cheap {
                entry.respawn_at = Some(now);
            }
        }
    }

    /// Once per master cycle: the slots to fork now (the master forks them and reports with [`Self::spawned`]);
    /// also kills overdue tasks, restarts past their mercy, and checks `touch-spoolers-reload`.
    pub fn tick(&mut self, now: Instant, unix_now: i64) -> Vec<usize> {
        if self.stopping {
            return Vec::new();
        }
        let board = SpoolBoard::global();
        if self.touch.iter_mut().any(|(path, seen)| {
            let mtime = modified(path);
            let changed = mtime != *seen;
            *seen = mtime;
            if changed {
                tracing::info!("*** {} has been touched... spoolers reload !!! ***", path.display());
            }
            changed
        }) {
            self.reload(now);
        }
        for entry in &mut self.entries {
            let Some(pid) = entry.pid else { continue };
            if let Some(slot) = board.and_then(|b| b.slot(entry.slot)) {
                if self.harakiri && harakiri_due(slot.harakiri_at.load(Relaxed), unix_now) {
                    tracing::error!("*** HARAKIRI ON THE SPOOLER (pid: {pid}) ***");
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    slot.harakiri_at.store(0, Relaxed);
                }
            }
            if entry.restarting.is_some_and(|at| now.duration_since(at) > self.mercy) {
                tracing::warn!(
                    "spooler {} (pid: {pid}) is taking too much time to die...NO MERCY !!!",
                    entry.dir.display()
                );
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                entry.restarting = None;
            }
        }
        if self.cheap && self.last_cheap_check.is_none_or(|at| now.duration_since(at).as_secs() >= self.frequency) {
            self.last_cheap_check = Some(now);
            // (one process per directory per check, as uWSGI)
            let mut started: Vec<PathBuf> = Vec::new();
            for entry in &mut self.entries {
                if entry.external || entry.pid.is_some() || entry.respawn_at.is_some() || started.contains(&entry.dir) {
                    continue;
                }
                if !file::jobs(&entry.dir).is_empty() {
                    started.push(entry.dir.clone());
                    entry.respawn_at = Some(now);
                }
            }
        }
        let mut due = Vec::new();
        for entry in &mut self.entries {
            if entry.pid.is_none() && entry.respawn_at.is_some_and(|at| at <= now) {
                entry.respawn_at = None;
                due.push(entry.slot);
            }
        }
        due
    }

    /// The outcome of forking slot `slot`.
    pub fn spawned(&mut self, slot: usize, result: Result<i32, String>, now: Instant) {
        let Some(entry) = self.entries.iter_mut().find(|e| e.slot == slot) else { return };
        let board_slot = SpoolBoard::global().and_then(|b| b.slot(slot));
        match result {
            Ok(pid) => {
                tracing::info!("spawned the uWSGI spooler on dir {} with pid {pid}", entry.dir.display());
                entry.pid = Some(pid);
                entry.spawned_at = now;
                if let Some(board_slot) = board_slot {
                    board_slot.pid.store(pid, Relaxed);
                }
            }
            Err(err) => {
                tracing::error!("cannot fork the spooler on {}: {err}", entry.dir.display());
                entry.respawn_at = Some(now + entry.backoff.next_delay());
            }
        }
    }

    /// Offers an exited child to the spoolers: false when it is not one of theirs.
    pub fn reaped(&mut self, pid: i32, status: nix::sys::wait::WaitStatus, how: &str, now: Instant) -> bool {
        let Some(entry) = self.entries.iter_mut().find(|e| e.pid == Some(pid)) else { return false };
        entry.pid = None;
        let restarting = entry.restarting.take().is_some();
        let board_slot = SpoolBoard::global().and_then(|b| b.slot(entry.slot));
        if let Some(board_slot) = board_slot {
            board_slot.pid.store(0, Relaxed);
            board_slot.running.store(0, Relaxed);
            board_slot.harakiri_at.store(0, Relaxed);
        }
        let planned = restarting || matches!(status, nix::sys::wait::WaitStatus::Exited(_, PLANNED_EXIT));
        let lived = now.duration_since(entry.spawned_at);
        match decide_exit(self.stopping, self.cheap, planned, lived, &mut entry.backoff) {
            ExitDecision::Stopped if self.cheap && !self.stopping => {
                tracing::info!("spooler {} ended", entry.dir.display())
            }
            ExitDecision::Stopped => tracing::info!("spooler (pid: {pid}) annihilated ({how})"),
            ExitDecision::Respawn(delay) => {
                if planned {
                    tracing::info!("spooler {} (pid {pid}) {how}; starting a new one", entry.dir.display());
                } else {
                    tracing::warn!("OOOPS the spooler is no more...trying respawn... (pid {pid} {how})");
                }
                if !delay.is_zero() {
                    tracing::warn!("spooler {} respawning too fast, waiting {delay:?}", entry.dir.display());
                }
                if let Some(board_slot) = board_slot {
                    board_slot.respawns.fetch_add(1, Relaxed);
                }
                entry.respawn_at = Some(now + delay);
            }
        }
        true
    }

    /// Restarts every running spooler (SIGHUP: it finishes its task and exits; started again at once).
    pub fn reload(&mut self, now: Instant) {
        for entry in &mut self.entries {
            if let Some(pid) = entry.pid {
                tracing::info!("reloading the spooler on {} (pid {pid})", entry.dir.display());
                let _ = kill(Pid::from_raw(pid), Signal::SIGHUP);
                entry.restarting = Some(now);
            }
        }
    }

    /// The vassal stops: SIGTERM to every spooler (it exits at once) and no more starts.
    pub fn stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        for entry in &mut self.entries {
            entry.respawn_at = None;
            if let Some(pid) = entry.pid {
                tracing::info!("stopping the spooler on {} (pid {pid})", entry.dir.display());
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
    }

    /// Before the master re-executes itself (a reload with a preloaded app) and when it exits: kill the
    /// spoolers and wait for them (as uWSGI's `uwsgi_destroy_processes`); their running tasks stay spooled.
    pub fn kill_all(&mut self) {
        for entry in &mut self.entries {
            let Some(pid) = entry.pid.take() else { continue };
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
            tracing::info!("killed the spooler with pid {pid}");
            if let Some(slot) = SpoolBoard::global().and_then(|b| b.slot(entry.slot)) {
                slot.pid.store(0, Relaxed);
            }
        }
    }

    /// uWSGI's `spoolers` entries of the stats document.
    pub fn stats(&self) -> Vec<crate::stats::uwsgi::Spooler> {
        let Some(board) = SpoolBoard::global() else { return Vec::new() };
        board
            .slots()
            .map(|(slot, dir)| crate::stats::uwsgi::Spooler {
                dir: dir.path.display().to_string(),
                pid: slot.pid.load(Relaxed).max(0) as u64,
                tasks: slot.tasks.load(Relaxed),
                respawns: slot.respawns.load(Relaxed),
                running: u64::from(slot.running.load(Relaxed)),
            })
            .collect()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

// --- the spooler process (a forked child of the master) ---

/// The signals a spooler reads from its signalfd (SIGUSR1: wake up, SIGHUP: reload), blocked from its birth
/// on: a worker may wake the spooler as soon as its pid is in the table, and SIGUSR1's default action would
/// kill it.
pub fn wake_signals() -> nix::sys::signal::SigSet {
    let mut wait_for = nix::sys::signal::SigSet::empty();
    wait_for.add(Signal::SIGUSR1);
    wait_for.add(Signal::SIGHUP);
    wait_for
}

/// Runs the spooler of slot `index` in this freshly forked process, until it must exit. `python_live`: the
/// app (and the interpreter) came with the fork; otherwise (lazy-apps) it is imported here first.
pub fn run_process(config: &VassalConfig, index: usize, python_live: bool) -> ! {
    crate::logging::set_spooler_role();
    let code = match SpoolBoard::global() {
        Some(board) => Spooler::new(config, board, index).run(python_live),
        None => 1,
    };
    crate::logging::flush_request_log();
    // SAFETY: _exit skips the atexit handlers and stdio buffers inherited from the master, as a worker does.
    unsafe { libc::_exit(code) }
}

struct Spooler<'a> {
    vassal: &'a VassalConfig,
    config: &'a SpoolerConfig,
    board: &'static SpoolBoard,
    slot: &'static crate::spool::SpoolerSlot,
    index: usize,
    dir: PathBuf,
    pid: u32,
    last_task_managed: i64,
    signals: Option<nix::sys::signalfd::SignalFd>,
    /// SIGHUP seen: exit after the current task.
    reload_asked: bool,
}

impl<'a> Spooler<'a> {
    fn new(config: &'a VassalConfig, board: &'static SpoolBoard, index: usize) -> Self {
        let slot = board.slot(index).unwrap_or_else(|| {
            // (cannot happen: the master forks only slots of the table)
            // SAFETY: _exit in a forked child.
            unsafe { libc::_exit(1) }
        });
        let dir = board.slot_dir(index).map(|d| d.path.clone()).unwrap_or_default();
        Spooler {
            vassal: config,
            config: &config.spooler,
            board,
            slot,
            index,
            dir,
            pid: std::process::id(),
            last_task_managed: 0,
            signals: None,
            reload_asked: false,
        }
    }

    fn run(&mut self, python_live: bool) -> i32 {
        crate::spool::set_current_spooler(self.index);
        self.slot.pid.store(self.pid as i32, Relaxed);
        self.slot.tasks.store(0, Relaxed);
        self.slot.running.store(0, Relaxed);
        if let Err(err) = self.setup_process() {
            tracing::error!("spooler {}: {err}", self.dir.display());
            return 1;
        }
        if !python_live {
            // lazy-apps: the app (and its @spool functions) is imported here, as in a worker.
            let _ = crate::python::loader::load_python_app(self.vassal);
        }
        // As uWSGI: the post-fork hook (uwsgidecorators' @postfork chain) runs in spoolers too, then the imports.
        pyo3::Python::attach(crate::python::uwsgi_module::run_post_fork_hook);
        crate::python::uwsgi_module::spooler_imports(&self.config.imports);
        loop {
            if std::env::set_current_dir(&self.dir).is_err() {
                tracing::error!("spooler: cannot chdir to {}", self.dir.display());
                return 1;
            }
            let dir = self.dir.clone();
            if let Some(code) = self.scan(&dir) {
                return code;
            }
            if self.config.cheap {
                if self.last_task_managed == 0 {
                    tracing::info!("cheaping spooler {} ...", self.dir.display());
                    return PLANNED_EXIT;
                }
                self.last_task_managed = 0;
            }
            if self.reload_asked {
                return PLANNED_EXIT;
            }
            let frequency = match self.board.frequency() {
                0 => self.config.frequency,
                set => set,
            };
            self.wait(Duration::from_secs(frequency.max(1)));
            if self.reload_asked {
                return PLANNED_EXIT;
            }
        }
    }

    /// Signals, priority and stdin, as uWSGI's `spooler_start` and `spooler`.
    fn setup_process(&mut self) -> anyhow::Result<()> {
        use nix::sys::signal::{signal, SigHandler, SigmaskHow};
        // SAFETY: setting dispositions in this single-threaded child: TERM and INT end it at once (uWSGI's
        // end_me), PIPE and USR2 are ignored; USR1 (wake up) and HUP (reload) are read from a signalfd.
        unsafe {
            signal(Signal::SIGTERM, SigHandler::SigDfl)?;
            signal(Signal::SIGINT, SigHandler::SigDfl)?;
            signal(Signal::SIGQUIT, SigHandler::SigDfl)?;
            signal(Signal::SIGPIPE, SigHandler::SigIgn)?;
            signal(Signal::SIGUSR2, SigHandler::SigIgn)?;
        }
        let wait_for = wake_signals();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&wait_for), None)?;
        self.signals = Some(nix::sys::signalfd::SignalFd::with_flags(
            &wait_for,
            nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
        )?);
        // SAFETY: lowering our own priority (uWSGI's setpriority(PRIO_MAX)); failure is harmless.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
        let null = std::fs::File::open("/dev/null")?;
        nix::unistd::dup2_stdin(null)?;
        Ok(())
    }

    /// Sleeps up to `timeout`, woken by SIGUSR1 (a task was spooled) or SIGHUP (reload).
    fn wait(&mut self, timeout: Duration) {
        use std::os::fd::AsFd;
        let Some(signals) = &self.signals else {
            std::thread::sleep(timeout);
            return;
        };
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [nix::poll::PollFd::new(signals.as_fd(), nix::poll::PollFlags::POLLIN)];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(millis));
        self.drain_signals();
    }

    fn drain_signals(&mut self) {
        let Some(signals) = &self.signals else { return };
        while let Ok(Some(info)) = signals.read_signal() {
            if info.ssi_signo == Signal::SIGHUP as u32 {
                self.reload_asked = true;
            }
        }
    }

    /// One pass over `dir` (readdir order, or version order with `spooler-ordered`); `Some(code)` to exit.
    fn scan(&mut self, dir: &Path) -> Option<i32> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            tracing::error!("spooler_readdir()/opendir(): {}", dir.display());
            return None;
        };
        let mut names: Vec<String> =
            entries.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        if self.config.ordered {
            names.sort_by(|a, b| file::version_cmp(a, b));
        }
        for name in names {
            if let Some(code) = self.manage_task(dir, &name) {
                return Some(code);
            }
            self.drain_signals();
            if self.reload_asked {
                return Some(PLANNED_EXIT);
            }
        }
        None
    }

    /// uWSGI's `spooler_manage_task`; `Some(code)` when the spooler must exit (max tasks).
    fn manage_task(&mut self, dir: &Path, name: &str) -> Option<i32> {
        use std::os::unix::fs::MetadataExt;
        if !file::is_candidate(name, self.config.ordered) {
            return None;
        }
        let path = dir.join(name);
        let metadata = std::fs::symlink_metadata(&path).ok()?;
        // A task for the future.
        if metadata.mtime() > crate::process::unix_now() as i64 {
            return None;
        }
        if metadata.is_dir() {
            if self.config.ordered {
                let inner = std::fs::canonicalize(&path).ok()?;
                return self.scan(&inner);
            }
            return None;
        }
        if !metadata.is_file() {
            return None;
        }
        let (locked, task) = match file::open_task(&path) {
            Ok(opened) => opened,
            Err(ReadFailure::Skip) => return None,
            Err(ReadFailure::Broken) => {
                tracing::error!("[spooler] broken task file {}: removed", path.display());
                let _ = std::fs::remove_file(&path);
                return None;
            }
        };
        self.slot.running.store(1, Relaxed);
        let started = crate::process::unix_now() as i64;
        self.last_task_managed = started;
        let quiet = self.config.quiet;
        if !quiet {
            tracing::info!("[spooler {} pid: {}] managing request {name} ...", self.dir.display(), self.pid);
        }
        if let Some(chdir) = &self.config.chdir {
            if let Err(err) = std::env::set_current_dir(chdir) {
                tracing::error!("spooler_manage_task()/chdir() {}: {err}", chdir.display());
            }
        }
        if let Some(harakiri) = self.config.harakiri {
            self.slot.harakiri_at.store(started + harakiri.as_secs() as i64, Relaxed);
        }
        let answer = crate::python::uwsgi_module::run_spooler_callable(name.as_bytes(), &task.args, &task.body);
        self.slot.harakiri_at.store(0, Relaxed);
        let result = outcome(answer);
        if result != Outcome::Ignored {
            self.slot.tasks.fetch_add(1, Relaxed);
        }
        if result == Outcome::Done {
            if !quiet {
                let took = crate::process::unix_now() as i64 - started;
                tracing::info!(
                    "[spooler {} pid: {}] done with task {name} after {took} seconds",
                    self.dir.display(),
                    self.pid
                );
            }
            if let Err(err) = std::fs::remove_file(&path) {
                tracing::error!("[spooler] cannot remove {}: {err}; something horrible happened", path.display());
                return Some(1);
            }
        }
        // The file is unlocked here.
        drop(locked);
        self.slot.running.store(0, Relaxed);
        let tasks = self.slot.tasks.load(Relaxed);
        if must_recycle(tasks, self.config.max_tasks) {
            tracing::info!(
                "[spooler {} pid: {}] maximum number of tasks reached ({}) recycling ...",
                self.dir.display(),
                self.pid,
                self.config.max_tasks
            );
            return Some(PLANNED_EXIT);
        }
        if std::env::set_current_dir(dir).is_err() {
            tracing::error!("[spooler] something horrible happened to the spooler. Better to kill it.");
            return Some(1);
        }
        if result == Outcome::Ignored {
            tracing::warn!("unable to find the spooler function, have you loaded it into the spooler process ?");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(BACKOFF.0, BACKOFF.1)
    }

    #[test]
    fn exits_while_stopping_are_final() {
        let mut b = backoff();
        assert_eq!(decide_exit(true, false, false, Duration::ZERO, &mut b), ExitDecision::Stopped);
        assert_eq!(decide_exit(true, true, true, Duration::ZERO, &mut b), ExitDecision::Stopped);
    }

    #[test]
    fn planned_exits_respawn_at_once_crashes_back_off() {
        let mut b = backoff();
        // max tasks, SIGHUP: at once, however short the life.
        assert_eq!(decide_exit(false, false, true, Duration::ZERO, &mut b), ExitDecision::Respawn(Duration::ZERO));
        // A crash right after start waits, longer each time.
        let ExitDecision::Respawn(first) = decide_exit(false, false, false, Duration::ZERO, &mut b) else {
            panic!("respawn")
        };
        let ExitDecision::Respawn(second) = decide_exit(false, false, false, Duration::ZERO, &mut b) else {
            panic!("respawn")
        };
        assert!(first > Duration::ZERO && second > first, "{first:?} {second:?}");
        // A crash after a healthy life: at once.
        assert_eq!(decide_exit(false, false, false, HEALTHY_AFTER, &mut b), ExitDecision::Respawn(Duration::ZERO));
    }

    #[test]
    fn cheap_spoolers_stay_stopped_after_their_work() {
        let mut b = backoff();
        assert_eq!(decide_exit(false, true, true, Duration::ZERO, &mut b), ExitDecision::Stopped);
        // A crash of a cheap spooler is still respawned.
        assert!(matches!(decide_exit(false, true, false, Duration::ZERO, &mut b), ExitDecision::Respawn(_)));
    }

    #[test]
    fn answers_of_the_callable() {
        assert_eq!(outcome(-2), Outcome::Done);
        assert_eq!(outcome(-1), Outcome::Retry);
        assert_eq!(outcome(0), Outcome::Ignored);
        assert_eq!(outcome(5), Outcome::Retry);
    }

    #[test]
    fn harakiri_and_recycling() {
        assert!(!harakiri_due(0, 100));
        assert!(!harakiri_due(100, 100));
        assert!(harakiri_due(99, 100));
        assert!(!must_recycle(5, 0));
        assert!(!must_recycle(1, 2));
        assert!(must_recycle(2, 2));
    }
}
