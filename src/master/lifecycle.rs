//! Lifecycle options of the master (issue 12): `harakiri-graceful-timeout` / `harakiri-graceful-signal`,
//! `reload-on-as`, `max-fd`, `exit-on-reload`. The decisions are pure functions; the master's loop applies
//! them (see the `// feat` lines in `master/mod.rs`).

use std::time::Duration;

/// How long after harakiri's stack-dump request (SIGUSR2) the next step comes: faulthandler needs a moment
/// to write the Python stack.
pub const STACK_DUMP_GRACE: Duration = Duration::from_millis(300);

/// The next step of a harakiri in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HarakiriStep {
    /// Nothing yet.
    Wait,
    /// Send the graceful signal (`harakiri-graceful-signal`) once.
    Graceful,
    /// SIGKILL.
    Kill,
}

/// `since_dump`: time since the stack dump was requested; `graceful`: `harakiri-graceful-timeout`;
/// `graceful_sent`: the graceful signal already went out. As uWSGI: with a graceful timeout the first
/// harakiri is a signal and the kill comes `timeout` seconds later; without one, the kill follows the dump.
pub fn harakiri_step(since_dump: Duration, graceful: Option<Duration>, graceful_sent: bool) -> HarakiriStep {
    if since_dump < STACK_DUMP_GRACE {
        return HarakiriStep::Wait;
    }
    match graceful {
        None => HarakiriStep::Kill,
        Some(_) if !graceful_sent => HarakiriStep::Graceful,
        Some(timeout) if since_dump >= STACK_DUMP_GRACE + timeout => HarakiriStep::Kill,
        Some(_) => HarakiriStep::Wait,
    }
}

/// `reload-on-as`: whether a worker's address space (bytes) is over the limit (megabytes).
pub fn over_address_space(vsz_bytes: u64, limit_mb: Option<u64>) -> bool {
    limit_mb.is_some_and(|limit| vsz_bytes / (1024 * 1024) >= limit)
}

/// `max-fd`: sets RLIMIT_NOFILE (soft and hard) to `n`, as uWSGI does; without root the hard limit cannot
/// be raised, which is an error that says so.
pub fn set_max_fd(n: u64) -> anyhow::Result<()> {
    use nix::sys::resource::{setrlimit, Resource};
    setrlimit(Resource::RLIMIT_NOFILE, n, n).map_err(|err| {
        anyhow::anyhow!(
            "max-fd = {n}: cannot set the open-files limit ({err}); raising it above the hard limit needs root"
        )
    })?;
    tracing::info!("open-files limit set to {n} (max-fd)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harakiri_without_graceful_timeout_kills_after_the_dump() {
        assert_eq!(harakiri_step(Duration::from_millis(100), None, false), HarakiriStep::Wait);
        assert_eq!(harakiri_step(STACK_DUMP_GRACE, None, false), HarakiriStep::Kill);
    }

    #[test]
    fn harakiri_with_graceful_timeout_signals_first_then_kills() {
        let timeout = Some(Duration::from_secs(5));
        assert_eq!(harakiri_step(Duration::from_millis(100), timeout, false), HarakiriStep::Wait);
        assert_eq!(harakiri_step(STACK_DUMP_GRACE, timeout, false), HarakiriStep::Graceful);
        assert_eq!(harakiri_step(Duration::from_secs(3), timeout, true), HarakiriStep::Wait);
        assert_eq!(harakiri_step(STACK_DUMP_GRACE + Duration::from_secs(5), timeout, true), HarakiriStep::Kill);
    }

    #[test]
    fn address_space_limit() {
        assert!(!over_address_space(10 << 20, None));
        assert!(!over_address_space(99 << 20, Some(100)));
        assert!(over_address_space(100 << 20, Some(100)));
    }
}
