//! `max-fd` (issue 12): the open-files limit the master sets for itself and its workers. The other lifecycle
//! options of that issue are decisions and live in the core (`exit-on-reload` in [`super::core::Core::reload`],
//! `harakiri-graceful-timeout` / `-signal` and `reload-on-as` among its limits).

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
