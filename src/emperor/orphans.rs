//! Reaping orphans when the emperor is PID 1 (a container's init) or a child subreaper.
//!
//! Only two kinds of process are ever given orphans by the kernel: the init of a PID namespace (in a
//! container, the emperor itself) and a process that set `PR_SET_CHILD_SUBREAPER` (`emperor-subreaper`, as
//! uWSGI's). Any process whose parent dies (the grandchild of an `attach-daemon` that double-forks, a worker
//! whose master was SIGKILLed, a subprocess an app started and forgot) is then reparented to the emperor,
//! and if nobody waits for it, it stays a zombie for the life of the container. tokio only reaps the
//! children it spawned (`waitpid` of each one's pid), so the emperor reaps the others itself.
//!
//! It must never take an exit status that tokio (or a `std::process::Command` in the emperor, such as the
//! `@(exec://...)` of a vassal file it validates) is waiting for: that waiter would get `ECHILD`, and the
//! emperor would lose the exit of a vassal. So [`Children`] keeps the pid of every vassal process the
//! emperor spawns, and a scan reaps only zombies whose parent is the emperor and whose pid is not in that
//! set. Whatever may create a child of the emperor holds [`Children::spawning`] until the child is in the set
//! (a vassal spawn) or already reaped by its own waiter (a validation running `@(exec://)`); a scan runs only
//! when nobody holds it, so it never sees a child that is ours but not yet known.
//!
//! Scans run on SIGCHLD and every [`SLOW_SCAN`], and read `/proc/PID/stat` of every process: the ones whose
//! state is `Z` and whose parent is the emperor, minus its own children, are reaped with `waitpid(pid,
//! WNOHANG)` and logged at debug level. The decisions ([`should_reap`], [`parse_stat`], [`orphans`]) are pure
//! and unit-tested below.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, TryLockError};
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

/// Scans also run this often without a SIGCHLD (a signal can be coalesced with one that came while a scan
/// was running, or arrive while a spawn held the scan off).
pub const SLOW_SCAN: Duration = Duration::from_secs(5);
/// How soon a scan that found a spawn in progress tries again.
const RETRY: Duration = Duration::from_millis(100);

/// Why the emperor reaps orphans, or `None` when the kernel never gives it any.
pub fn should_reap(pid: i32, subreaper: bool) -> Option<&'static str> {
    if pid == 1 {
        Some("the emperor is PID 1 of its PID namespace")
    } else if subreaper {
        Some("the emperor is a child subreaper")
    } else {
        None
    }
}

/// One line of `/proc/PID/stat`, the three fields a scan needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
}

/// Reads `PID (COMM) STATE PPID ...`; COMM may hold spaces and parentheses, so it ends at the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcEntry> {
    let open = text.find(" (")?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let mut rest = text.get(close + 1..)?.split_ascii_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(ProcEntry { pid, state, ppid })
}

/// The zombies of `table` that are children of `me` and not one of `own` (the children the emperor spawned
/// and someone waits for): the orphans to reap.
pub fn orphans(me: i32, table: &[ProcEntry], own: &HashSet<i32>) -> Vec<i32> {
    let mut pids: Vec<i32> =
        table.iter().filter(|p| p.state == 'Z' && p.ppid == me && !own.contains(&p.pid)).map(|p| p.pid).collect();
    pids.sort_unstable();
    pids
}

/// The emperor's own children, and the lock that keeps scans away while one may exist that is not yet in
/// the set.
#[derive(Default)]
pub struct Children {
    /// Read-held by whatever may create a child of the emperor; a scan runs only if it can take it for
    /// writing (it never waits for it).
    quiet: RwLock<()>,
    pids: Mutex<HashSet<i32>>,
}

/// Held while a child of the emperor may exist that a scan must not take (see [`Children::spawning`]).
pub struct Spawning<'a> {
    _guard: RwLockReadGuard<'a, ()>,
}

impl Children {
    pub fn new() -> Self {
        Self::default()
    }

    /// Hold this across a spawn and the [`Children::insert`] of its pid, or across anything that starts and
    /// waits for a child itself (a config read with `@(exec://...)`).
    pub fn spawning(&self) -> Spawning<'_> {
        Spawning { _guard: self.quiet.read().unwrap_or_else(|poisoned| poisoned.into_inner()) }
    }

    /// A child the emperor spawned and waits for (tokio's); call with [`Children::spawning`] held.
    pub fn insert(&self, pid: i32) {
        self.lock_pids().insert(pid);
    }

    /// The child was waited for (its pid may be anyone's from now on).
    pub fn remove(&self, pid: i32) {
        self.lock_pids().remove(&pid);
    }

    fn lock_pids(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.pids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One scan: reaps every orphan zombie of `me` found in `proc`. `None` when a spawn was in progress (try
    /// again shortly); otherwise the pids reaped.
    pub fn scan(&self, me: i32, proc: &Path) -> Option<Vec<i32>> {
        let _quiet = match self.quiet.try_write() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return None,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        let table = read_table(proc);
        let mut own = self.lock_pids();
        // A pid gone from /proc was reaped by its waiter; forget it (removal after a wait normally did).
        let present: HashSet<i32> = table.iter().map(|p| p.pid).collect();
        own.retain(|pid| present.contains(pid));
        let mut reaped = Vec::new();
        for pid in orphans(me, &table, &own) {
            let target = nix::unistd::Pid::from_raw(pid);
            match nix::sys::wait::waitpid(target, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => {
                    tracing::debug!("reaped orphan pid {pid}: exited with code {code}");
                    reaped.push(pid);
                }
                Ok(nix::sys::wait::WaitStatus::Signaled(_, signal, core)) => {
                    let core = if core { " (core dumped)" } else { "" };
                    tracing::debug!("reaped orphan pid {pid}: killed by signal {} ({signal}){core}", signal as i32);
                    reaped.push(pid);
                }
                Ok(other) => tracing::debug!("orphan pid {pid}: waitpid said {other:?}"),
                Err(err) => tracing::debug!("orphan pid {pid}: waitpid failed: {err}"),
            }
        }
        Some(reaped)
    }
}

/// Every process of `proc` (`/proc` of the emperor's PID namespace) that could be read.
fn read_table(proc: &Path) -> Vec<ProcEntry> {
    let Ok(entries) = std::fs::read_dir(proc) else { return Vec::new() };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|text| parse_stat(&text))
        .collect()
}

/// Reaps orphans for the emperor's life: on SIGCHLD, and every [`SLOW_SCAN`].
pub async fn run(children: Arc<Children>) {
    let me = nix::unistd::getpid().as_raw();
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(stream) => Some(stream),
        Err(err) => {
            tracing::warn!("cannot watch SIGCHLD ({err}); reaping orphans every {} s only", SLOW_SCAN.as_secs());
            None
        }
    };
    let mut timer = tokio::time::interval(SLOW_SCAN);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(()) = async { match sigchld.as_mut() { Some(s) => s.recv().await, None => None } } => {}
            _ = timer.tick() => {}
        }
        loop {
            let children = children.clone();
            let done = tokio::task::spawn_blocking(move || children.scan(me, Path::new("/proc"))).await;
            match done {
                Ok(Some(_)) => break,
                Ok(None) => tokio::time::sleep(RETRY).await,
                Err(err) => {
                    tracing::warn!("orphan scan failed: {err}");
                    break;
                }
            }
        }
    }
}

/// `emperor-subreaper`: become the reaper of every orphaned descendant (uWSGI's `PR_SET_CHILD_SUBREAPER`).
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this process is a child subreaper (set by `emperor-subreaper`, or kept across the exec that
/// started it).
pub fn is_subreaper() -> bool {
    let mut flag: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer, which points at `flag`.
    let done = unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut flag as *mut libc::c_int, 0, 0, 0) };
    done == 0 && flag != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaps_only_as_pid_1_or_a_subreaper() {
        assert!(should_reap(1, false).is_some_and(|why| why.contains("PID 1")));
        assert!(should_reap(1, true).is_some());
        assert!(should_reap(4242, true).is_some_and(|why| why.contains("subreaper")));
        assert_eq!(should_reap(4242, false), None);
    }

    #[test]
    fn parses_stat_lines_with_awkward_names() {
        let line = "1234 (sleep) Z 1 1234 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0\n";
        assert_eq!(parse_stat(line), Some(ProcEntry { pid: 1234, state: 'Z', ppid: 1 }));
        let odd = "77 (a) b (c) S) S 5 77 77 0";
        assert_eq!(parse_stat(odd), Some(ProcEntry { pid: 77, state: 'S', ppid: 5 }));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("12 (x)"), None);
        assert_eq!(parse_stat("12 (x) R notanumber"), None);
    }

    #[test]
    fn orphans_are_our_zombies_that_nobody_else_waits_for() {
        let table = [
            ProcEntry { pid: 1, state: 'S', ppid: 0 },
            ProcEntry { pid: 10, state: 'Z', ppid: 1 }, // a vassal tokio waits for
            ProcEntry { pid: 11, state: 'S', ppid: 1 }, // a live vassal
            ProcEntry { pid: 30, state: 'Z', ppid: 1 }, // an orphan that exited
            ProcEntry { pid: 20, state: 'Z', ppid: 1 }, // another
            ProcEntry { pid: 40, state: 'S', ppid: 1 }, // an orphan still running
            ProcEntry { pid: 50, state: 'Z', ppid: 11 }, // a master's zombie worker: its master reaps it
        ];
        let own: HashSet<i32> = [10, 11].into_iter().collect();
        assert_eq!(orphans(1, &table, &own), vec![20, 30]);
        assert_eq!(orphans(11, &table, &own), vec![50]);
        assert!(orphans(99, &table, &own).is_empty());
    }

    #[test]
    fn a_scan_waits_while_a_spawn_is_in_progress() {
        let children = Children::new();
        let empty = tempfile::tempdir().expect("a temporary directory");
        {
            let _spawning = children.spawning();
            children.insert(4242);
            assert_eq!(children.scan(1, empty.path()), None);
        }
        assert_eq!(children.scan(1, empty.path()), Some(Vec::new()));
        // 4242 is not in that (empty) /proc: it was reaped by its waiter, so it is forgotten.
        assert!(children.lock_pids().is_empty());
    }

    #[test]
    fn a_scan_reaps_a_real_orphan_zombie_and_not_a_child_someone_waits_for() {
        // Two children of this test stand in for an orphan and a vassal (the rule is the same: parent is us,
        // state Z). The scan reads a copy of their two /proc entries only, so it cannot touch the children of
        // tests running beside this one.
        let me = nix::unistd::getpid().as_raw();
        let children = Children::new();
        let spawn = |code: i32| {
            std::process::Command::new("/bin/sh").arg("-c").arg(format!("exit {code}")).spawn().expect("sh")
        };
        let mut waited = {
            let _spawning = children.spawning();
            let child = spawn(3);
            children.insert(child.id() as i32);
            child
        };
        let orphan = spawn(7).id() as i32;
        let stat = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = |pid: i32| parse_stat(&stat(pid)).map(|p| p.state) == Some('Z');
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !(zombie(orphan) && zombie(waited.id() as i32)) {
            assert!(std::time::Instant::now() < deadline, "the children never exited");
            std::thread::sleep(Duration::from_millis(10));
        }
        let proc = tempfile::tempdir().expect("a temporary directory");
        for pid in [orphan, waited.id() as i32] {
            std::fs::create_dir(proc.path().join(pid.to_string())).expect("mkdir");
            std::fs::write(proc.path().join(pid.to_string()).join("stat"), stat(pid)).expect("write");
        }
        assert_eq!(children.scan(me, proc.path()), Some(vec![orphan]));
        assert!(std::fs::metadata(format!("/proc/{orphan}")).is_err(), "the orphan was reaped");
        // The child someone waits for still gives its waiter its status.
        assert_eq!(waited.wait().expect("wait").code(), Some(3));
    }
}
