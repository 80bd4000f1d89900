//! Side processes (`attach-daemon`, `attach-control-daemon`, `smart-attach-daemon(2)`, `attach-daemon2`):
//! what uWSGI's core/daemons.c does, in liege's master.
//!
//! - A **dumb** daemon (no pidfile) is a child of the master, in its own session (so a stop signal reaches its
//!   whole process group, e.g. Celery's pool), with `PR_SET_PDEATHSIG` so it dies with a master that is
//!   killed. When it exits it is started again, with the workers' crash-loop backoff (`src/backoff.rs`) when
//!   it did not live long; a *control* daemon's exit stops the vassal instead.
//! - A **smart** daemon writes a pidfile (or, with `daemonize`, liege forks it once more and writes the
//!   pidfile); the master checks the pidfile once a second and starts it again when the pid is gone. It is
//!   not stopped by a reload (it would be adopted again from its pidfile), only by a stop, like uWSGI.
//! - On a stop the master sends each daemon's `stopsignal` to its process group and, once the workers are
//!   gone, waits for the daemons up to the reload mercy before killing them.
//! - On a reload that re-executes the master, dumb daemons are signalled (their `reloadsignal`, else their
//!   `stopsignal`) and their pids handed to the next image in [`HANDOVER_ENV`]; the next image starts the new
//!   ones once the old ones are gone (so two Celery workers never consume the same queue twice over), killing
//!   any still there after the mercy. uWSGI does the same, blocking; liege keeps serving meanwhile.
//!
//! The decisions (what an exit means, what a pidfile check means) are pure functions with unit tests; the
//! effects (fork/exec, signals) are the few functions at the bottom.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use liege_config::master::DaemonSpec;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::backoff::Backoff;
use crate::control::DaemonReport;

/// Environment variable carrying the pids of dumb daemons still stopping across a master re-exec.
pub const HANDOVER_ENV: &str = "LIEGE_DAEMONS_STOPPING";

/// A daemon that lived at least this long was healthy: its next exit is respawned at once.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Daemon respawn backoff: 1 s, 2 s, 4 s ... (uWSGI throttles by the respawn count, up to 300 s).
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

/// What the master must do after a daemon event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Nothing more.
    Nothing,
    /// A control daemon died: stop the vassal gracefully.
    StopVassal,
}

/// What an exit of the daemon's direct child means (pure; see [`decide_exit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExitDecision {
    /// The launcher of a smart daemon exited: the daemon runs on, watched through its pidfile.
    Daemonized,
    /// Respawn after this delay.
    Respawn(Duration),
    /// A control daemon died.
    StopVassal,
    /// The vassal is stopping or restarting it: no respawn (or a respawn without backoff, see `restarting`).
    Expected,
}

/// Decides what an exit of a daemon's direct child means.
fn decide_exit(smart: bool, control: bool, stopping: bool, lived: Duration, backoff: &mut Backoff) -> ExitDecision {
    if stopping {
        return ExitDecision::Expected;
    }
    if smart {
        return ExitDecision::Daemonized;
    }
    if control {
        return ExitDecision::StopVassal;
    }
    if lived >= HEALTHY_AFTER {
        backoff.reset();
        return ExitDecision::Respawn(Duration::ZERO);
    }
    ExitDecision::Respawn(backoff.next_delay())
}

/// What a once-a-second pidfile check of a smart daemon means (uWSGI's `uwsgi_daemons_smart_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SmartDecision {
    /// The pidfile names a live process that is not the one we knew: adopt it.
    Adopt(i32),
    /// Running as expected.
    Fine,
    /// Start it (again).
    Spawn,
    /// Still waiting for the launcher to write the pidfile.
    Wait,
}

/// `alive_pid`: the pid in the pidfile if that process exists. `monitored`: the daemon was seen running
/// through its pidfile before. `checks`: checks since the last spawn without a valid pidfile.
fn decide_smart(
    alive_pid: Option<i32>,
    known_pid: Option<i32>,
    monitored: bool,
    checks: u32,
    freq: u32,
) -> SmartDecision {
    match alive_pid {
        Some(pid) if Some(pid) != known_pid => SmartDecision::Adopt(pid),
        Some(_) => SmartDecision::Fine,
        // Was running, now gone: start again now.
        None if monitored => SmartDecision::Spawn,
        // Just started: give it `freq` checks to write its pidfile.
        None if checks + 1 >= freq.max(1) => SmartDecision::Spawn,
        None => SmartDecision::Wait,
    }
}

#[derive(Debug)]
struct Daemon {
    spec: DaemonSpec,
    /// The direct child (dumb daemons and launchers) or the pid from the pidfile (smart daemons).
    pid: Option<i32>,
    /// The pid is our child (waitpid reaps it); false for an adopted smart daemon.
    child: bool,
    /// Smart: seen alive through the pidfile.
    monitored: bool,
    /// Smart: pidfile checks since the last spawn without a valid pidfile.
    checks: u32,
    spawned_at: Instant,
    respawn_at: Option<Instant>,
    backoff: Backoff,
    /// Starts (the first included).
    starts: u64,
    last_exit: Option<String>,
    /// Being restarted (touch, reload): the exit is expected, respawn at once.
    restarting: bool,
    touch_seen: Vec<Option<SystemTime>>,
    /// The process group of a dumb daemon whose leader exited while other members still run (a shell
    /// pipeline's programs): no new start until it is empty, SIGKILL at the deadline.
    lingering: Option<(i32, Instant)>,
}

/// The master's daemons.
#[derive(Debug)]
pub struct Daemons {
    daemons: Vec<Daemon>,
    /// Dumb daemons of a previous image still stopping, and when to kill them.
    previous: Vec<i32>,
    previous_deadline: Instant,
    stopping: bool,
    mercy: Duration,
    last_smart_check: Option<Instant>,
}

impl Daemons {
    /// The daemons of `specs`, none started yet; picks up the previous image's stopping daemons from the
    /// environment (and removes the variable, so workers and daemons don't see it).
    pub fn new(specs: &[DaemonSpec], mercy: Duration) -> Self {
        let previous = std::env::var(HANDOVER_ENV)
            .map(|text| text.split(',').filter_map(|pid| pid.parse().ok()).collect())
            .unwrap_or_default();
        #[allow(clippy::disallowed_methods, reason = "the master is single-threaded: no thread reads the environment")]
        std::env::remove_var(HANDOVER_ENV);
        let now = Instant::now();
        Daemons {
            daemons: specs
                .iter()
                .map(|spec| Daemon {
                    spec: spec.clone(),
                    pid: None,
                    child: false,
                    monitored: false,
                    checks: 0,
                    spawned_at: now,
                    respawn_at: Some(now),
                    backoff: Backoff::new(BACKOFF.0, BACKOFF.1),
                    starts: 0,
                    last_exit: None,
                    restarting: false,
                    lingering: None,
                    touch_seen: spec.touch.iter().map(|path| modified(path)).collect(),
                })
                .collect(),
            previous,
            previous_deadline: now + mercy,
            stopping: false,
            mercy,
            last_smart_check: None,
        }
    }

    /// Periodic work (every master tick): start due daemons, check pidfiles and touch files once a second.
    pub fn tick(&mut self, now: Instant) {
        if self.stopping || self.daemons.is_empty() {
            return;
        }
        self.previous.retain(|&pgid| group_alive(pgid));
        if !self.previous.is_empty() {
            if now < self.previous_deadline {
                return;
            }
            for pid in self.previous.drain(..) {
                tracing::warn!("daemon (pid {pid}) of the previous master did not stop in time; killing it");
                signal_group(pid, Signal::SIGKILL as i32);
            }
        }
        let second_passed = self.last_smart_check.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1));
        if second_passed {
            self.last_smart_check = Some(now);
        }
        for daemon in &mut self.daemons {
            if let Some((pgid, deadline)) = daemon.lingering {
                if !group_alive(pgid) {
                    daemon.lingering = None;
                } else if now >= deadline {
                    tracing::warn!(
                        "daemon \"{}\": processes of group {pgid} still running; killing them",
                        daemon.spec.command
                    );
                    signal_group(pgid, Signal::SIGKILL as i32);
                    daemon.lingering = None;
                } else {
                    continue;
                }
            }
            if daemon.respawn_at.is_some_and(|at| at <= now) {
                daemon.respawn_at = None;
                spawn(daemon, now);
                continue;
            }
            if !second_passed {
                continue;
            }
            if let Some(pidfile) = daemon.spec.pidfile.clone() {
                if daemon.respawn_at.is_none() {
                    smart_check(daemon, &pidfile, now);
                }
            }
            check_touch(daemon);
        }
    }

    /// Offers an exited child to the daemons; `None` when it is not one of theirs.
    pub fn reaped(&mut self, pid: i32, how: &str, now: Instant) -> Option<Follow> {
        if let Some(index) = self.previous.iter().position(|&p| p == pid) {
            // Its group is waited for in `tick` (the program may outlive a shell leader).
            tracing::info!("daemon of the previous master (pid {}) {how}", self.previous[index]);
            return Some(Follow::Nothing);
        }
        let stopping = self.stopping;
        let daemon = self.daemons.iter_mut().find(|d| d.child && d.pid == Some(pid))?;
        daemon.child = false;
        let smart = daemon.spec.pidfile.is_some();
        if !smart {
            daemon.pid = None;
            daemon.last_exit = Some(how.to_owned());
            if group_alive(pid) {
                daemon.lingering = Some((pid, now + self.mercy));
            }
        }
        let command = &daemon.spec.command;
        if daemon.restarting && !stopping {
            daemon.restarting = false;
            daemon.pid = None;
            tracing::info!("daemon \"{command}\" (pid {pid}) {how}; starting it again");
            daemon.respawn_at = Some(now);
            return Some(Follow::Nothing);
        }
        let lived = now.duration_since(daemon.spawned_at);
        match decide_exit(smart, daemon.spec.control, stopping, lived, &mut daemon.backoff) {
            ExitDecision::Daemonized => {
                tracing::debug!("daemon \"{command}\": launcher (pid {pid}) {how}");
                daemon.pid = None;
            }
            ExitDecision::Expected => tracing::info!("daemon \"{command}\" (pid {pid}) {how}"),
            ExitDecision::StopVassal => {
                tracing::warn!("control daemon \"{command}\" (pid {pid}) {how}; stopping the vassal");
                return Some(Follow::StopVassal);
            }
            ExitDecision::Respawn(delay) if delay.is_zero() => {
                tracing::warn!("daemon \"{command}\" (pid {pid}) {how}; respawning");
                daemon.respawn_at = Some(now);
            }
            ExitDecision::Respawn(delay) => {
                tracing::warn!("daemon \"{command}\" (pid {pid}) {how}; respawning too fast, waiting {delay:?}");
                daemon.respawn_at = Some(now + delay);
            }
        }
        Some(Follow::Nothing)
    }

    /// The vassal stops: signal every dumb daemon (and smart ones with `notifypid`).
    pub fn stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        for daemon in &mut self.daemons {
            daemon.respawn_at = None;
            let Some(pid) = daemon.pid else { continue };
            let smart = daemon.spec.pidfile.is_some();
            // Pidfile-governed daemons outlive the vassal (uWSGI's rule: a database must not be killed with
            // the app) unless they asked to be told (`notifypid`).
            if !smart || daemon.spec.notify_pid {
                tracing::info!("stopping daemon \"{}\" (pid {pid})", daemon.spec.command);
                signal_group(pid, daemon.spec.stop_signal);
            }
        }
    }

    /// A reload that keeps this master (lazy-apps): dumb daemons are restarted (their `reloadsignal` if they
    /// have one, which they are expected to exit on, as in uWSGI), smart ones with `notifypid` are signalled.
    pub fn reload(&mut self) {
        for daemon in &mut self.daemons {
            let Some(pid) = daemon.pid else { continue };
            let signal =
                if daemon.spec.reload_signal > 0 { daemon.spec.reload_signal } else { daemon.spec.stop_signal };
            if daemon.spec.pidfile.is_none() {
                tracing::info!("reload: restarting daemon \"{}\" (pid {pid})", daemon.spec.command);
                daemon.restarting = true;
                signal_group(pid, signal);
            } else if daemon.spec.notify_pid {
                signal_group(pid, if daemon.spec.reload_signal > 0 { daemon.spec.reload_signal } else { 1 });
            }
        }
    }

    /// Before the master re-executes itself: signal the dumb daemons and hand their pids to the next image,
    /// which starts the new ones once these are gone.
    pub fn before_exec(&mut self) {
        self.reload();
        let stopping: Vec<String> = self
            .daemons
            .iter()
            .filter(|d| d.spec.pidfile.is_none() && d.child)
            .filter_map(|d| d.pid)
            .chain(self.previous.iter().copied())
            .map(|pid| pid.to_string())
            .collect();
        if !stopping.is_empty() {
            // Read back (and removed) by `Daemons::new` in the next image.
            #[allow(
                clippy::disallowed_methods,
                reason = "the master is single-threaded: no thread reads the environment"
            )]
            std::env::set_var(HANDOVER_ENV, stopping.join(","));
        }
    }

    /// The exec failed: take the daemons back (they exit on the signal; they are respawned as usual).
    pub fn exec_failed(&mut self) {
        #[allow(clippy::disallowed_methods, reason = "the master is single-threaded: no thread reads the environment")]
        std::env::remove_var(HANDOVER_ENV);
        for daemon in &mut self.daemons {
            daemon.restarting = daemon.restarting && daemon.pid.is_some();
        }
    }

    /// At exit, after the workers: wait up to the mercy for the signalled daemons, then kill what is left.
    pub fn finish(&mut self) {
        self.stop();
        let deadline = Instant::now() + self.mercy.min(Duration::from_secs(30));
        loop {
            let mut waiting: Vec<i32> = self.daemons.iter().filter(|d| d.child).filter_map(|d| d.pid).collect();
            waiting.extend(&self.previous);
            waiting.extend(self.daemons.iter().filter_map(|d| d.lingering.map(|(pgid, _)| pgid)));
            waiting.sort_unstable();
            waiting.dedup();
            waiting.retain(|&pid| {
                match nix::sys::wait::waitpid(Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    Ok(nix::sys::wait::WaitStatus::StillAlive) => return true,
                    Ok(status) => tracing::info!("daemon (pid {pid}) {}", crate::process::describe_exit(status)),
                    Err(_) => {}
                }
                // The leader is gone; the rest of its group (a shell's programs) counts too.
                group_alive(pid)
            });
            for daemon in &mut self.daemons {
                if daemon.child && daemon.pid.is_some_and(|pid| !waiting.contains(&pid)) {
                    daemon.pid = None;
                    daemon.child = false;
                }
            }
            self.previous.retain(|pid| waiting.contains(pid));
            if waiting.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                for pid in waiting {
                    tracing::warn!("daemon (pid {pid}) did not stop in time; killing it");
                    signal_group(pid, Signal::SIGKILL as i32);
                    let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the API shows.
    pub fn reports(&self) -> Vec<DaemonReport> {
        self.daemons
            .iter()
            .map(|d| DaemonReport {
                command: d.spec.command.clone(),
                kind: d.spec.option.clone(),
                pid: d.pid,
                running: d.pid.is_some_and(alive),
                starts: d.starts,
                last_exit: d.last_exit.clone(),
                next_start_in_s: d.respawn_at.map(|at| at.saturating_duration_since(Instant::now()).as_secs_f64()),
            })
            .collect()
    }
}

fn smart_check(daemon: &mut Daemon, pidfile: &Path, now: Instant) {
    let alive_pid = read_pidfile(pidfile).filter(|&pid| alive(pid));
    match decide_smart(alive_pid, daemon.pid, daemon.monitored, daemon.checks, daemon.spec.freq) {
        SmartDecision::Adopt(pid) => {
            if daemon.pid.is_some() {
                tracing::info!("daemon \"{}\": pidfile now names pid {pid}", daemon.spec.command);
            }
            daemon.pid = Some(pid);
            daemon.child = false;
            daemon.monitored = true;
            daemon.checks = 0;
        }
        SmartDecision::Fine => daemon.monitored = true,
        SmartDecision::Spawn => {
            if daemon.monitored {
                daemon.last_exit =
                    Some(format!("pid {} gone (pidfile {})", daemon.pid.unwrap_or(0), pidfile.display()));
                tracing::warn!(
                    "daemon \"{}\" is gone (pidfile {}); respawning",
                    daemon.spec.command,
                    pidfile.display()
                );
            } else if daemon.starts > 0 {
                tracing::warn!(
                    "daemon \"{}\" wrote no valid pidfile {} within {} s; starting it again",
                    daemon.spec.command,
                    pidfile.display(),
                    daemon.spec.freq
                );
            }
            daemon.monitored = false;
            daemon.pid = None;
            let lived = now.duration_since(daemon.spawned_at);
            let delay = if lived >= HEALTHY_AFTER || daemon.starts == 0 {
                daemon.backoff.reset();
                Duration::ZERO
            } else {
                daemon.backoff.next_delay()
            };
            daemon.respawn_at = Some(now + delay);
        }
        SmartDecision::Wait => daemon.checks += 1,
    }
}

fn check_touch(daemon: &mut Daemon) {
    let mut touched = None;
    for (path, seen) in daemon.spec.touch.iter().zip(daemon.touch_seen.iter_mut()) {
        let now = modified(path);
        if now != *seen {
            *seen = now;
            touched = Some(path.clone());
        }
    }
    if let (Some(path), Some(pid)) = (touched, daemon.pid) {
        tracing::info!("{} was touched: restarting daemon \"{}\" (pid {pid})", path.display(), daemon.spec.command);
        daemon.restarting = daemon.child;
        signal_group(pid, daemon.spec.stop_signal);
    }
}

/// Starts the daemon (its launcher, for smart daemons liege daemonizes).
fn spawn(daemon: &mut Daemon, now: Instant) {
    use std::os::unix::process::CommandExt;
    let spec = &daemon.spec;
    if let Some(pidfile) = &spec.pidfile {
        // A smart daemon already running (after a reload, or started by someone else) is adopted.
        if let Some(pid) = read_pidfile(pidfile).filter(|&pid| alive(pid)) {
            tracing::info!("daemon \"{}\" found running (pid {pid}, pidfile {})", spec.command, pidfile.display());
            daemon.pid = Some(pid);
            daemon.child = false;
            daemon.monitored = true;
            return;
        }
    }
    let mut command = std::process::Command::new("/bin/sh");
    command.arg("-c").arg(shell_line(&spec.command));
    if !spec.honour_stdin {
        command.stdin(std::process::Stdio::null());
    }
    if let Some(dir) = &spec.chdir {
        command.current_dir(dir);
    }
    if let Some(gid) = spec.gid {
        command.gid(gid);
    }
    if let Some(uid) = spec.uid {
        command.uid(uid);
    }
    let dumb = spec.pidfile.is_none();
    let daemonize_to = spec.pidfile.clone().filter(|_| spec.daemonize);
    let master_pid = std::process::id() as i32;
    // SAFETY: runs in the forked child before exec; the master is single-threaded, so the child has no lock
    // another thread could hold. Only sigprocmask, setsid, prctl, fork, write and _exit are called.
    unsafe {
        command.pre_exec(move || {
            reset_signal_mask();
            // Its own session: a stop signal goes to the daemon's whole process group.
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if dumb {
                // Dies with the master, whatever kills it (uWSGI does the same for dumb daemons).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != master_pid {
                    libc::_exit(1);
                }
            }
            if let Some(pidfile) = &daemonize_to {
                // smart-attach-daemon2: fork again, the launcher exits, the grandchild writes the pidfile.
                match libc::fork() {
                    -1 => return Err(std::io::Error::last_os_error()),
                    0 => {}
                    _ => libc::_exit(0),
                }
                std::fs::write(pidfile, format!("{}\n", libc::getpid()))?;
            }
            Ok(())
        });
    }
    daemon.spawned_at = now;
    daemon.checks = 0;
    daemon.monitored = false;
    match command.spawn() {
        Ok(child) => {
            let pid = child.id() as i32;
            // The master reaps it with waitpid (see `reaped`); dropping `Child` neither waits nor kills.
            drop(child);
            daemon.starts += 1;
            daemon.pid = Some(pid);
            daemon.child = true;
            tracing::info!(
                "{} daemon \"{}\" (pid {pid})",
                if daemon.starts > 1 { "respawned" } else { "spawned" },
                daemon.spec.command
            );
        }
        Err(err) => {
            let delay = daemon.backoff.next_delay();
            tracing::error!("cannot start daemon \"{}\": {err}; retrying in {delay:?}", daemon.spec.command);
            daemon.last_exit = Some(format!("cannot start: {err}"));
            daemon.respawn_at = Some(now + delay);
        }
    }
}

/// The line given to `sh -c`: a simple command gets `exec` in front, so the daemon *is* the process the master
/// watches and signals (a shell that stays in between would exit on SIGTERM and leave the program running).
/// Lists, pipelines, subshells, keywords and assignments are run as written; their process group is still
/// waited for (see `Daemon::lingering`).
fn shell_line(command: &str) -> String {
    let command = command.trim();
    let first = command.split_whitespace().next().unwrap_or("");
    let compound = command.contains([';', '&', '|', '\n', '(', ')', '`'])
        || first.contains('=')
        || matches!(first, "if" | "for" | "while" | "until" | "case" | "{" | "!" | "exec" | "[[");
    if compound {
        command.to_owned()
    } else {
        format!("exec {command}")
    }
}

/// In a child about to exec: unblock every signal. The master reads its signals from a signalfd and keeps
/// them blocked; a blocked mask survives exec, and a program that never sees SIGTERM cannot be stopped.
pub(super) fn reset_signal_mask() {
    // SAFETY: sigemptyset/sigprocmask on a local set; async-signal-safe, fine between fork and exec.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Whether any process of the group `pgid` is left.
fn group_alive(pgid: i32) -> bool {
    pgid > 0 && kill(Pid::from_raw(-pgid), None).is_ok()
}

/// Sends `signal` to the daemon's process group, or to the process when it leads none.
fn signal_group(pid: i32, signal: i32) {
    let Ok(signal) = Signal::try_from(signal) else { return };
    if kill(Pid::from_raw(-pid), signal).is_err() {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

fn alive(pid: i32) -> bool {
    pid > 0 && kill(Pid::from_raw(pid), None).is_ok()
}

/// The pid in a pidfile (uWSGI's `uwsgi_check_pidfile`: `atoi` of the content, positive).
fn read_pidfile(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    let digits: String = text.trim().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&pid| pid > 0)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(BACKOFF.0, BACKOFF.1)
    }

    #[test]
    fn dumb_daemon_exits_respawn_with_backoff_until_healthy() {
        let mut b = backoff();
        let short = Duration::from_millis(500);
        assert_eq!(decide_exit(false, false, false, short, &mut b), ExitDecision::Respawn(Duration::from_secs(1)));
        assert_eq!(decide_exit(false, false, false, short, &mut b), ExitDecision::Respawn(Duration::from_secs(2)));
        assert_eq!(decide_exit(false, false, false, short, &mut b), ExitDecision::Respawn(Duration::from_secs(4)));
        // A daemon that ran a while starts over.
        assert_eq!(decide_exit(false, false, false, HEALTHY_AFTER, &mut b), ExitDecision::Respawn(Duration::ZERO));
        assert_eq!(decide_exit(false, false, false, short, &mut b), ExitDecision::Respawn(Duration::from_secs(1)));
    }

    #[test]
    fn control_smart_and_stopping_exits() {
        let mut b = backoff();
        let lived = Duration::from_secs(100);
        assert_eq!(decide_exit(false, true, false, lived, &mut b), ExitDecision::StopVassal);
        assert_eq!(decide_exit(true, false, false, lived, &mut b), ExitDecision::Daemonized);
        assert_eq!(decide_exit(false, true, true, lived, &mut b), ExitDecision::Expected);
        assert_eq!(decide_exit(false, false, true, lived, &mut b), ExitDecision::Expected);
    }

    #[test]
    fn smart_checks() {
        // The pidfile appears: adopt the pid.
        assert_eq!(decide_smart(Some(42), None, false, 0, 10), SmartDecision::Adopt(42));
        assert_eq!(decide_smart(Some(42), Some(42), true, 0, 10), SmartDecision::Fine);
        // Another pid (the daemon re-executed itself): adopt it.
        assert_eq!(decide_smart(Some(43), Some(42), true, 0, 10), SmartDecision::Adopt(43));
        // Gone after running: start again.
        assert_eq!(decide_smart(None, Some(42), true, 0, 10), SmartDecision::Spawn);
        // Not yet written: wait freq checks.
        assert_eq!(decide_smart(None, None, false, 0, 3), SmartDecision::Wait);
        assert_eq!(decide_smart(None, None, false, 1, 3), SmartDecision::Wait);
        assert_eq!(decide_smart(None, None, false, 2, 3), SmartDecision::Spawn);
    }

    #[test]
    fn simple_commands_are_execed_compound_ones_kept() {
        assert_eq!(shell_line("celery -A proj worker -l info"), "exec celery -A proj worker -l info");
        assert_eq!(shell_line("python $HOME/x.py > /tmp/log"), "exec python $HOME/x.py > /tmp/log");
        for kept in ["a; b", "a && b", "a | b", "A=1 b", "if true; then x; fi", "(cd /x && y)", "exec z"] {
            assert_eq!(shell_line(kept), kept);
        }
    }

    #[test]
    fn pidfiles_are_read_as_uwsgi_reads_them() {
        let dir = std::env::temp_dir().join(format!("liege-daemons-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.pid");
        std::fs::write(&file, "1234\n").unwrap();
        assert_eq!(read_pidfile(&file), Some(1234));
        std::fs::write(&file, "0").unwrap();
        assert_eq!(read_pidfile(&file), None);
        std::fs::write(&file, "garbage").unwrap();
        assert_eq!(read_pidfile(&file), None);
        assert_eq!(read_pidfile(&dir.join("missing.pid")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
