//! Process-level plumbing shared by the master and its workers.

use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};

/// Called first thing in a freshly forked worker: die with the master, and undo the master's signal setup.
pub fn become_child_of(master_pid: i32) {
    become_child_blocking(master_pid, &SigSet::empty());
}

/// [`become_child_of`] for a child that keeps `blocked` blocked (read from a signalfd of its own): the mask
/// goes from the master's straight to `blocked`, so none of them is ever delivered in between.
pub fn become_child_blocking(master_pid: i32, blocked: &SigSet) {
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
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(blocked), None);
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

/// `never-swap`: locks every page of this process in RAM, now and in the future (`mlockall(MCL_CURRENT |
/// MCL_FUTURE)`), as uWSGI does in its master and after every fork (locks are not inherited). A failure is
/// logged and the process goes on unlocked, as in uWSGI; the message says what limit stood in the way.
pub fn never_swap(who: &str) {
    use nix::sys::mman::{mlockall, MlockAllFlags};
    match mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
        Ok(()) => tracing::info!("never-swap: memory of {who} locked in RAM"),
        Err(err) => {
            use nix::sys::resource::{getrlimit, Resource};
            let limit = match getrlimit(Resource::RLIMIT_MEMLOCK) {
                Ok((soft, _)) if soft == nix::sys::resource::RLIM_INFINITY => "unlimited".to_owned(),
                Ok((soft, _)) => format!("{soft} bytes"),
                Err(_) => "unknown".to_owned(),
            };
            tracing::error!(
                "never-swap: cannot lock the memory of {who} (mlockall: {err}); RLIMIT_MEMLOCK is {limit}: raise it \
                 (ulimit -l unlimited, systemd LimitMEMLOCK=infinity) or grant CAP_IPC_LOCK; running unlocked"
            );
        }
    }
}

/// uWSGI's `uwsgi_set_cpu_affinity` rule: worker `id` (from 1) gets `per_worker` CPUs starting at
/// `(id - 1) * per_worker`, wrapped around the `cpus` CPUs of the machine.
pub fn affinity_cpus(id: u32, per_worker: u32, cpus: usize) -> Vec<usize> {
    let cpus = cpus.max(1);
    let mut cpu = (id.saturating_sub(1) as usize).saturating_mul(per_worker as usize);
    if cpu >= cpus {
        cpu %= cpus;
    }
    let mut set = Vec::with_capacity(per_worker as usize);
    for _ in 0..per_worker {
        if cpu >= cpus {
            cpu = 0;
        }
        set.push(cpu);
        cpu += 1;
    }
    set
}

/// `cpu-affinity`: pins this (worker) process to its CPUs (see [`affinity_cpus`]); logs the mapping as
/// uWSGI does, or the error (and the worker runs unpinned, as in uWSGI).
pub fn set_cpu_affinity(id: u32, per_worker: u32) {
    use nix::sched::{sched_setaffinity, CpuSet};
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let cpus = affinity_cpus(id, per_worker, usize::try_from(online).unwrap_or(1));
    let mut set = CpuSet::new();
    for &cpu in &cpus {
        if let Err(err) = set.set(cpu) {
            tracing::error!("cpu-affinity: CPU {cpu}: {err}");
            return;
        }
    }
    let list: Vec<String> = cpus.iter().map(ToString::to_string).collect();
    match sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
        Ok(()) => tracing::info!("mapping worker {id} to CPUs: {}", list.join(" ")),
        Err(err) => tracing::error!("cpu-affinity: cannot pin worker {id} to CPUs {}: {err}", list.join(" ")),
    }
}

/// `ksm`: marks this process's memory mappings mergeable for Linux's kernel samepage merging, as uWSGI's
/// `uwsgi_linux_ksm_map`: `/proc/self/maps` is read, and only when it changed since the last pass is every
/// mapping in it given `madvise(MADV_MERGEABLE)` (the kernel takes private anonymous memory and skips what it
/// cannot merge).
#[derive(Debug, Default)]
pub struct KsmMapper {
    last: Vec<u8>,
}

impl KsmMapper {
    pub fn merge(&mut self) {
        let maps = match std::fs::read("/proc/self/maps") {
            Ok(maps) => maps,
            Err(err) => {
                tracing::error!("[KSM] cannot read /proc/self/maps: {err}");
                return;
            }
        };
        if maps == self.last {
            return;
        }
        let (mut lines, mut errors, mut last_error) = (0usize, 0usize, None);
        for line in maps.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
            lines += 1;
            let Some((start, end)) = mapping_range(line) else { continue };
            let Some(address) = std::ptr::NonNull::new(start as *mut libc::c_void) else { continue };
            // SAFETY: MADV_MERGEABLE changes no contents and unmaps nothing: it only lets the kernel share
            // identical pages copy-on-write. A range unmapped since /proc/self/maps was read just fails
            // (ENOMEM), which is counted like any other failure.
            let advised =
                unsafe { nix::sys::mman::madvise(address, end - start, nix::sys::mman::MmapAdvise::MADV_MERGEABLE) };
            if let Err(err) = advised {
                errors += 1;
                last_error = Some(err);
            }
        }
        if lines > 0 && errors >= lines {
            tracing::error!("[KSM] unable to share pages: {}", last_error.map_or_else(String::new, |e| e.to_string()));
        }
        self.last = maps;
    }
}

/// `start-end` of a `/proc/self/maps` line (hexadecimal).
fn mapping_range(line: &[u8]) -> Option<(usize, usize)> {
    let range = line.split(|&b| b == b' ').next()?;
    let text = std::str::from_utf8(range).ok()?;
    let (start, end) = text.split_once('-')?;
    let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
    (end > start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// uWSGI's round robin: consecutive blocks of `per_worker` CPUs, wrapping at the machine's count.
    #[test]
    fn affinity_is_assigned_round_robin_as_uwsgi() {
        assert_eq!(affinity_cpus(1, 1, 4), [0]);
        assert_eq!(affinity_cpus(2, 1, 4), [1]);
        assert_eq!(affinity_cpus(5, 1, 4), [0]);
        assert_eq!(affinity_cpus(2, 2, 4), [2, 3]);
        assert_eq!(affinity_cpus(3, 2, 4), [0, 1], "base 4 wraps to 0");
        assert_eq!(affinity_cpus(2, 3, 4), [3, 0, 1], "a block wraps within itself");
        assert_eq!(affinity_cpus(1, 6, 2), [0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn maps_lines_give_their_ranges() {
        assert_eq!(
            mapping_range(b"7f0000000000-7f0000021000 rw-p 00000000 00:00 0 "),
            Some((0x7f00_0000_0000, 0x7f00_0002_1000))
        );
        assert_eq!(mapping_range(b"garbage"), None);
    }

    /// The pass marks this test process's anonymous memory mergeable (`mg` in smaps' VmFlags), and a second
    /// pass with unchanged mappings is skipped.
    #[test]
    fn ksm_marks_anonymous_memory_mergeable() {
        let mut mapper = KsmMapper::default();
        mapper.merge();
        assert!(!mapper.last.is_empty());
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        assert!(
            smaps.lines().any(|l| l.starts_with("VmFlags:") && l.split_whitespace().any(|f| f == "mg")),
            "no mg flag"
        );
    }
}
