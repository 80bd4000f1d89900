//! Hooks (`hook-PHASE = action:args`, `exec-PHASE = CMD`): uWSGI's core/hooks.c actions, run by the master
//! (or, for the per-worker phases, by each worker right after fork) at the points its phases name.
//!
//! As in uWSGI, the hooks of a phase run in order and a failing one (an `exec:` exiting non-zero, a `mkdir:`
//! that fails...) is fatal except at exit (`as-user-atexit`): the vassal does not start with a half-done
//! setup. `unix_signal:N FUNCTION` does not run anything: it changes what signal N means to the master,
//! which asks [`Hooks::signal_action`] when a signal arrives.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use liege_config::master::{Hook, HookAction, HookPhase, SignalAction};

/// A hook failed in a fatal phase.
#[derive(Debug, thiserror::Error)]
#[error("hook-{phase} '{text}' ({origin}) failed: {reason}")]
pub struct HookFailed {
    pub phase: &'static str,
    pub text: String,
    pub origin: String,
    pub reason: String,
}

/// The vassal's hooks, by phase.
#[derive(Debug, Default)]
pub struct Hooks {
    hooks: Vec<Hook>,
    /// `unix_signal` overrides: signal number → what the master does.
    signals: HashMap<i32, SignalAction>,
}

impl Hooks {
    pub fn new(hooks: &[Hook]) -> Self {
        let signals = hooks
            .iter()
            .filter_map(|hook| match hook.action {
                HookAction::UnixSignal { signal, action } => Some((signal, action)),
                _ => None,
            })
            .collect();
        Hooks { hooks: hooks.to_vec(), signals }
    }

    /// Whether any hook runs in `phase`.
    pub fn has(&self, phase: HookPhase) -> bool {
        self.hooks.iter().any(|hook| hook.phase == phase && !matches!(hook.action, HookAction::UnixSignal { .. }))
    }

    /// What a `unix_signal` hook made signal `signal` mean, if one did.
    pub fn signal_action(&self, signal: i32) -> Option<SignalAction> {
        self.signals.get(&signal).copied()
    }

    /// Runs the hooks of `phase` in order. In a fatal phase the first failure stops the run and is returned;
    /// at exit every hook runs and failures are only logged.
    pub fn run(&self, phase: HookPhase) -> Result<(), HookFailed> {
        let hooks: Vec<&Hook> = self.hooks.iter().filter(|hook| hook.phase == phase).collect();
        if hooks.is_empty() {
            return Ok(());
        }
        tracing::info!("running {} hook(s) of phase {}", hooks.len(), phase.name());
        for hook in hooks {
            if let Err(reason) = perform(&hook.action) {
                let failed = HookFailed {
                    phase: phase.name(),
                    text: hook.text.clone(),
                    origin: hook.origin.to_string(),
                    reason,
                };
                if phase.fatal() {
                    return Err(failed);
                }
                tracing::error!("{failed}");
            }
        }
        Ok(())
    }

    /// Runs `always` and, when `condition` holds, `conditional` (e.g. the jail phases on a first start only).
    pub fn run_phases(
        &self,
        always: &[HookPhase],
        condition: bool,
        conditional: &[HookPhase],
    ) -> Result<(), HookFailed> {
        for &phase in always {
            self.run(phase)?;
        }
        if !condition && conditional.iter().any(|&phase| self.has(phase)) {
            let names: Vec<&str> = conditional.iter().map(|phase| phase.name()).collect();
            tracing::info!("not running the {} hooks (not a first start as root, as uWSGI)", names.join("/"));
        }
        for &phase in conditional.iter().filter(|_| condition) {
            self.run(phase)?;
        }
        Ok(())
    }

    /// In a worker just forked: the per-worker phases (see [`worker_phases`]); `lazy` adds pre-app, which
    /// runs in each worker when the workers import the app themselves.
    pub fn run_worker_phases(&self, id: u32, spawns: u64, lazy: bool) {
        for phase in worker_phases(id, spawns) {
            self.run_in_worker(phase);
            if lazy && phase == HookPhase::PostFork {
                self.run_in_worker(HookPhase::PreApp);
            }
        }
    }

    /// Runs a phase in a forked worker: a failure ends the worker (exit code 1), as uWSGI's fatal hooks do in
    /// a worker; the master respawns it with backoff.
    pub fn run_in_worker(&self, phase: HookPhase) {
        if let Err(failed) = self.run(phase) {
            tracing::error!("{failed}; the worker exits");
            crate::logging::flush_request_log();
            std::process::exit(1);
        }
    }
}

/// Which per-worker phases a worker with id `id`, started for the `spawns`-th time, runs right after fork.
pub fn worker_phases(id: u32, spawns: u64) -> Vec<HookPhase> {
    let mut phases = vec![HookPhase::PostFork, HookPhase::Accepting];
    if spawns <= 1 {
        phases.push(HookPhase::AcceptingOnce);
    }
    if id == 1 {
        phases.push(HookPhase::Accepting1);
        if spawns <= 1 {
            phases.push(HookPhase::Accepting1Once);
        }
    }
    phases
}

/// Performs one action; `Err` is the reason it failed.
fn perform(action: &HookAction) -> Result<(), String> {
    let io = |err: std::io::Error| err.to_string();
    match action {
        HookAction::Exec(command) | HookAction::SafeExec(command) => {
            tracing::info!("hook: running \"{command}\"");
            use std::os::unix::process::CommandExt;
            let mut child = std::process::Command::new("/bin/sh");
            child.arg("-c").arg(command).stdin(std::process::Stdio::null());
            // SAFETY: the closure only calls sigprocmask (async-signal-safe) between fork and exec.
            unsafe {
                child.pre_exec(|| {
                    super::daemons::reset_signal_mask();
                    Ok(())
                });
            }
            let status = child.status().map_err(io)?;
            if !status.success() {
                let how = status.code().map_or_else(|| format!("{status}"), |code| format!("exited with code {code}"));
                if matches!(action, HookAction::SafeExec(_)) {
                    tracing::warn!("hook: command \"{command}\" {how}");
                } else {
                    return Err(format!("command {how}"));
                }
            }
        }
        HookAction::Mkdir(path) => std::fs::create_dir(path).map_err(io)?,
        HookAction::Chdir(path) => std::env::set_current_dir(path).map_err(io)?,
        HookAction::Putenv(key, value) => {
            #[allow(clippy::disallowed_methods, reason = "hooks run in the single-threaded master or worker")]
            std::env::set_var(key, value);
        }
        HookAction::Create(path) => {
            std::fs::File::create(path).map_err(io)?;
        }
        HookAction::Write { path, text, append, newline } => {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(*append)
                .truncate(!*append)
                .open(path)
                .map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
            if *newline {
                file.write_all(b"\n").map_err(io)?;
            }
        }
        HookAction::WriteFifo { path, text } => {
            use std::os::unix::fs::OpenOptionsExt;
            match std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path) {
                Ok(mut fifo) => fifo.write_all(text.as_bytes()).map_err(io)?,
                // No reader yet: not a failure (uWSGI's ENXIO/ENODEV rule).
                Err(err) if matches!(err.raw_os_error(), Some(libc::ENXIO) | Some(libc::ENODEV)) => {
                    tracing::info!("hook: no reader on {}; nothing written", path.display());
                }
                Err(err) => return Err(err.to_string()),
            }
        }
        HookAction::Unlink(path) => std::fs::remove_file(path).map_err(io)?,
        HookAction::Chmod { path, mode } => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).map_err(io)?
        }
        HookAction::Sticky(path) => {
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o1000)).map_err(io)?
        }
        HookAction::Chown { path, user, group } => {
            let uid = match user.parse::<u32>() {
                Ok(uid) => nix::unistd::Uid::from_raw(uid),
                Err(_) => nix::unistd::User::from_name(user).ok().flatten().ok_or(format!("no user '{user}'"))?.uid,
            };
            let gid = match group.parse::<u32>() {
                Ok(gid) => nix::unistd::Gid::from_raw(gid),
                Err(_) => nix::unistd::Group::from_name(group).ok().flatten().ok_or(format!("no group '{group}'"))?.gid,
            };
            let path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
            nix::unistd::chown(path.as_c_str(), Some(uid), Some(gid)).map_err(|e| e.to_string())?
        }
        HookAction::Print(text) => tracing::info!("{text}"),
        HookAction::Exit(code) => {
            tracing::info!("hook: exit({code})");
            crate::logging::flush_request_log();
            std::process::exit(*code);
        }
        // Read by the master through `signal_action`.
        HookAction::UnixSignal { .. } => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use liege_config::Origin;

    fn hook(phase: HookPhase, action: HookAction) -> Hook {
        Hook { phase, action, text: "t".into(), origin: Origin::CommandLine { index: 0 } }
    }

    #[test]
    fn worker_phases_follow_uwsgi() {
        use HookPhase::*;
        assert_eq!(worker_phases(1, 1), vec![PostFork, Accepting, AcceptingOnce, Accepting1, Accepting1Once]);
        assert_eq!(worker_phases(1, 2), vec![PostFork, Accepting, Accepting1]);
        assert_eq!(worker_phases(2, 1), vec![PostFork, Accepting, AcceptingOnce]);
        assert_eq!(worker_phases(3, 5), vec![PostFork, Accepting]);
    }

    #[test]
    fn actions_run_in_order_and_a_failure_stops_a_fatal_phase() {
        let dir = std::env::temp_dir().join(format!("liege-hooks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = dir.join("f");
        let hooks = Hooks::new(&[
            hook(HookPhase::Asap, HookAction::Mkdir(dir.clone())),
            hook(
                HookPhase::Asap,
                HookAction::Write { path: file.clone(), text: "a".into(), append: false, newline: true },
            ),
            hook(
                HookPhase::Asap,
                HookAction::Write { path: file.clone(), text: "b".into(), append: true, newline: false },
            ),
            hook(HookPhase::Asap, HookAction::Exec("false".into())),
            hook(HookPhase::Asap, HookAction::Unlink(file.clone())),
            hook(HookPhase::AsUserAtexit, HookAction::Exec("false".into())),
            hook(HookPhase::AsUserAtexit, HookAction::Unlink(file.clone())),
            hook(HookPhase::MasterStart, HookAction::UnixSignal { signal: 15, action: SignalAction::QuickStop }),
        ]);
        let failed = hooks.run(HookPhase::Asap).unwrap_err();
        assert!(failed.reason.contains("exited with code 1"), "{failed}");
        // The unlink after the failing exec did not run.
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a\nb");
        // At exit a failure is logged and the next hook still runs.
        hooks.run(HookPhase::AsUserAtexit).unwrap();
        assert!(!file.exists());
        assert_eq!(hooks.signal_action(15), Some(SignalAction::QuickStop));
        assert_eq!(hooks.signal_action(1), None);
        assert!(!hooks.has(HookPhase::MasterStart));
        // A FIFO without a reader is not a failure.
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        perform(&HookAction::WriteFifo { path: fifo, text: "x".into() }).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
