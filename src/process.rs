//! Process-level plumbing shared by the master and its workers.

use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};

/// Called first thing in a freshly forked worker: die with the master, and undo the master's signal setup.
pub fn become_child_of(master_pid: i32) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    // The master may have died between fork and prctl: then nobody would ever signal us.
    if nix::unistd::getppid().as_raw() != master_pid {
        // SAFETY: immediate exit of a child that has nothing to clean up.
        unsafe { libc::_exit(1) };
    }
    // The master blocks its signals to read them from a signalfd; the mask is inherited across fork.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Seconds since the Unix epoch, with milliseconds.
pub fn unix_time() -> f64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (now.as_millis() as f64) / 1000.0
}

/// `killed by signal 9 (SIGKILL)` / `exited with code 3`: how a child ended, for logs.
pub fn describe_exit(status: nix::sys::wait::WaitStatus) -> String {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, code) => format!("exited with code {code}"),
        WaitStatus::Signaled(_, signal, core) => {
            format!(
                "killed by signal {} ({}){}",
                signal as i32,
                signal.as_str(),
                if core { ", core dumped" } else { "" }
            )
        }
        other => format!("{other:?}"),
    }
}

/// Resident set size of a process, from `/proc/PID/statm` (cheap: no page walk, unlike smaps).
pub fn rss_bytes(pid: i32) -> Option<u64> {
    memory(pid).map(|m| m.rss)
}

/// A process's memory as `/proc/PID/statm` has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss: u64,
    pub vsz: u64,
}

pub fn memory(pid: i32) -> Option<Memory> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let mut fields = statm.split_whitespace();
    let size_pages: u64 = fields.next()?.parse().ok()?;
    let resident_pages: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    Some(Memory { rss: resident_pages * page, vsz: size_pages * page })
}

/// Proportional set size, from `/proc/PID/smaps_rollup`: shared pages count for a fraction, so the sum over a
/// preforked group is its real footprint. Costs a page-table walk; sample it sparingly.
pub fn pss_bytes(pid: i32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = rollup.lines().find(|l| l.starts_with("Pss:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Raises the soft limit on open files to the hard limit: every idle keep-alive connection is a descriptor, and
/// the usual soft limit (1024) would let a few hundred idle clients exhaust a worker.
pub fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// The most connections one worker keeps open: the descriptor limit minus room for the app's own files.
pub fn connection_cap() -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    (soft.saturating_sub(128) as usize).clamp(64, 100_000)
}
