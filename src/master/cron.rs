//! The cron family (`cron`, `unique-cron`, `cron2`, `cron-harakiri`): commands the master runs when the local
//! wall clock matches their schedule, what uWSGI's core/cron.c and the cron checks of core/master_checks.c do.
//!
//! - Once a second (every master tick) the local time is broken down and each entry whose five fields match
//!   and whose last run began at least 60 s ago starts: `/bin/sh -c COMMAND` in a session of its own, with the
//!   master's stdout and stderr (so its output is in the vassal's log) and no descriptor but 0-2 kept. With
//!   `-1` for every field an entry runs at once, then every 60 s. The 60 s rule is uWSGI's: it is what keeps an
//!   entry from running twice in its minute.
//! - A `unique` entry does not start while its previous run is still going; uWSGI does not count that as a
//!   run, so it starts at the first tick its schedule still matches after the previous one ended.
//! - `cron-harakiri = N` (or `cron2`'s `harakiri=N`) kills a run still going N seconds after it started: SIGKILL
//!   to its process group, as uWSGI's `uwsgi_master_check_crons_deadline`.
//! - Runs are the master's children: their exit is logged with how long they took. They are not stopped with
//!   the vassal (uWSGI leaves them be too). Across a reload that re-executes the master, each entry's last
//!   start and running commands are handed to the next image ([`HANDOVER_ENV`]), so a reload neither repeats
//!   a run of the current minute nor lets a unique entry overlap its running command (uWSGI forgets both).
//!
//! The decisions (does a schedule match this time, is an entry due, when is a run overdue) are pure functions
//! with unit tests; the effects (localtime, fork/exec, kill) are the few functions at the bottom. The log lines
//! are uWSGI's (`[uwsgi-cron] running ...`), so `log-route = cron uwsgi-cron` routes them as it does there.

use liege_config::cron::{CronHarakiri, CronSchedule, CronSpec};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Environment variable carrying the entries' state to the next master image on a reload.
pub const HANDOVER_ENV: &str = "LIEGE_CRONS";

/// A local time broken down as uWSGI's cron reads a `struct tm` (`tm_mon` + 1: months are 1-12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub minute: i32,
    pub hour: i32,
    /// Day of the month, 1-31.
    pub mday: i32,
    /// 1-12.
    pub month: i32,
    /// Day of the week, 0-6 from Sunday.
    pub wday: i32,
}

/// Whether `schedule` matches `time` (uWSGI's `uwsgi_cron_task_needs_execution`).
///
/// A negative field `-N` matches the values divisible by N (`-1` any). Weekday 7 is Sunday. When both the day of
/// the month and the weekday are given (not negative) either one matching is enough, as in crontab; otherwise
/// every field must match.
pub fn matches(schedule: &CronSchedule, time: &LocalTime) -> bool {
    let field = |wanted: i32, actual: i32| {
        if wanted < 0 {
            actual % wanted.unsigned_abs() as i32 == 0
        } else {
            actual == wanted
        }
    };
    let week = if schedule.week == 7 { 0 } else { schedule.week };
    let common =
        field(schedule.minute, time.minute) && field(schedule.hour, time.hour) && field(schedule.month, time.month);
    let day = field(schedule.day, time.mday);
    let weekday = field(week, time.wday);
    if schedule.day >= 0 && schedule.week >= 0 {
        common && (day || weekday)
    } else {
        common && day && weekday
    }
}

/// One running command of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Run {
    pub pid: i32,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds after which it is killed (`cron-harakiri`).
    pub deadline: Option<i64>,
}

/// What the master remembers of an entry between ticks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryState {
    /// Unix seconds of the last start (uWSGI's `last_job`); 0 = never.
    pub last_run: i64,
    /// Its commands still running (several only for a non-unique entry whose runs outlast a minute).
    pub running: Vec<Run>,
}

/// Whether the entry starts a run now (uWSGI's `uwsgi_manage_command_cron` for one entry).
pub fn due(spec: &CronSpec, state: &EntryState, time: &LocalTime, now: i64) -> bool {
    if spec.unique && !state.running.is_empty() {
        return false;
    }
    matches(&spec.schedule, time) && now - state.last_run >= 60
}

/// Which entries are due at `time` / `now`, in order.
pub fn due_entries<'a>(
    entries: impl IntoIterator<Item = (&'a CronSpec, &'a EntryState)>,
    time: &LocalTime,
    now: i64,
) -> Vec<usize> {
    entries.into_iter().enumerate().filter(|(_, (spec, state))| due(spec, state, time, now)).map(|(i, _)| i).collect()
}

/// When a run started at `started` is killed: the entry's own `harakiri`, else `cron-harakiri`.
pub fn deadline(harakiri: CronHarakiri, cron_harakiri: Option<u64>, started: i64) -> Option<i64> {
    let seconds = match harakiri {
        CronHarakiri::Seconds(seconds) => seconds,
        CronHarakiri::Default => cron_harakiri?,
        CronHarakiri::Never => return None,
    };
    Some(started.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)))
}

/// The runs past their deadline at `now` (uWSGI kills when `harakiri < now`).
pub fn overdue(state: &EntryState, now: i64) -> Vec<i32> {
    state.running.iter().filter(|run| run.deadline.is_some_and(|at| at < now)).map(|run| run.pid).collect()
}

#[derive(Debug)]
struct Entry {
    spec: CronSpec,
    state: EntryState,
}

/// An entry's state as handed to the next image, with what identifies the entry there.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Handover {
    option: String,
    command: String,
    schedule: [i32; 5],
    state: EntryState,
}

fn fields(schedule: &CronSchedule) -> [i32; 5] {
    [schedule.minute, schedule.hour, schedule.day, schedule.month, schedule.week]
}

/// The master's cron entries.
#[derive(Debug)]
pub struct Crons {
    entries: Vec<Entry>,
    cron_harakiri: Option<u64>,
    /// Commands started by a previous image for entries no longer configured: reaped and logged only.
    orphans: Vec<(String, Run)>,
}

impl Crons {
    /// The entries of `specs`; picks up the previous image's state from the environment (and removes the
    /// variable, so workers and commands don't see it).
    pub fn new(specs: &[CronSpec], cron_harakiri: Option<u64>) -> Self {
        let mut handed: Vec<Handover> =
            std::env::var(HANDOVER_ENV).ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
        #[allow(clippy::disallowed_methods, reason = "the master is single-threaded: no thread reads the environment")]
        std::env::remove_var(HANDOVER_ENV);
        let entries = specs
            .iter()
            .map(|spec| {
                let same = |h: &Handover| {
                    h.option == spec.option && h.command == spec.command && h.schedule == fields(&spec.schedule)
                };
                let state = handed.iter().position(same).map(|at| handed.remove(at).state).unwrap_or_default();
                tracing::info!("[uwsgi-cron] command \"{}\" registered as cron task", spec.command);
                Entry { spec: spec.clone(), state }
            })
            .collect();
        let orphans =
            handed.into_iter().flat_map(|h| h.state.running.into_iter().map(move |run| (h.command.clone(), run)));
        Crons { entries, cron_harakiri, orphans: orphans.collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.orphans.is_empty()
    }

    /// Every master tick: kill overdue runs, then (unless `start` is false: the vassal is stopping) start the
    /// entries that are due now.
    pub fn tick(&mut self, now: i64, start: bool) {
        if self.entries.is_empty() {
            return;
        }
        for entry in &self.entries {
            for pid in overdue(&entry.state, now) {
                tracing::warn!("*** HARAKIRI ON CRON \"{}\" (pid: {pid}) ***", entry.spec.command);
                // Its own session: the whole group (the shell and what it started).
                if kill(Pid::from_raw(-pid), Signal::SIGKILL).is_err() {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        if !start {
            return;
        }
        let Some(time) = local_time(now) else {
            tracing::error!("[uwsgi-cron] cannot read the local time");
            return;
        };
        let due = due_entries(self.entries.iter().map(|e| (&e.spec, &e.state)), &time, now);
        for index in due {
            let entry = &mut self.entries[index];
            match run_command(&entry.spec.command) {
                Ok(pid) => {
                    tracing::info!("[uwsgi-cron] running \"{}\" (pid {pid})", entry.spec.command);
                    let deadline = deadline(entry.spec.harakiri, self.cron_harakiri, now);
                    entry.state.running.push(Run { pid, started_at: now, deadline });
                }
                Err(err) => tracing::error!("[uwsgi-cron] cannot run \"{}\": {err}", entry.spec.command),
            }
            // As uWSGI: the attempt counts as the entry's run of this minute, even if it could not start.
            entry.state.last_run = now;
        }
    }

    /// Offers an exited child; false when it is not a cron command.
    pub fn reaped(&mut self, pid: i32, how: &str, now: i64) -> bool {
        for entry in &mut self.entries {
            if let Some(at) = entry.state.running.iter().position(|run| run.pid == pid) {
                let run = entry.state.running.remove(at);
                tracing::info!(
                    "[uwsgi-cron] command \"{}\" running with pid {pid} exited after {} second(s) ({how})",
                    entry.spec.command,
                    now - run.started_at
                );
                return true;
            }
        }
        if let Some(at) = self.orphans.iter().position(|(_, run)| run.pid == pid) {
            let (command, run) = self.orphans.remove(at);
            tracing::info!(
                "[uwsgi-cron] command \"{command}\" running with pid {pid} exited after {} second(s) ({how})",
                now - run.started_at
            );
            return true;
        }
        false
    }

    /// Before the master re-executes itself: hand each entry's state to the next image.
    pub fn before_exec(&self) {
        if self.is_empty() {
            return;
        }
        let mut handed: Vec<Handover> = self
            .entries
            .iter()
            .map(|entry| Handover {
                option: entry.spec.option.clone(),
                command: entry.spec.command.clone(),
                schedule: fields(&entry.spec.schedule),
                state: entry.state.clone(),
            })
            .collect();
        // Runs of entries a previous image had: still our children, still to be reaped.
        for (command, run) in &self.orphans {
            handed.push(Handover {
                option: String::new(),
                command: command.clone(),
                schedule: [0; 5],
                state: EntryState { last_run: 0, running: vec![*run] },
            });
        }
        if let Ok(json) = serde_json::to_string(&handed) {
            // Read back (and removed) by `Crons::new` in the next image.
            #[allow(
                clippy::disallowed_methods,
                reason = "the master is single-threaded: no thread reads the environment"
            )]
            std::env::set_var(HANDOVER_ENV, json);
        }
    }

    /// The exec failed: this image keeps the state.
    pub fn exec_failed(&self) {
        #[allow(clippy::disallowed_methods, reason = "the master is single-threaded: no thread reads the environment")]
        std::env::remove_var(HANDOVER_ENV);
    }
}

/// `now` broken down in the local time zone (`localtime_r`).
fn local_time(now: i64) -> Option<LocalTime> {
    let secs: libc::time_t = now;
    // SAFETY: an all-zero `tm` is a valid value to be overwritten.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r writes only into the `tm` we own and reads `secs`.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return None;
    }
    Some(LocalTime { minute: tm.tm_min, hour: tm.tm_hour, mday: tm.tm_mday, month: tm.tm_mon + 1, wday: tm.tm_wday })
}

/// Starts `/bin/sh -c command` as uWSGI's `uwsgi_run_command`: its own session, the master's stdin, stdout and
/// stderr, every other descriptor closed at exec.
fn run_command(command: &str) -> std::io::Result<i32> {
    use std::os::unix::process::CommandExt;
    let mut process = std::process::Command::new("/bin/sh");
    process.arg("-c").arg(command);
    // SAFETY: runs in the forked child before exec; the master is single-threaded, so no lock can be held by
    // another thread. Only sigprocmask, setsid and close_range (all async-signal-safe syscalls) are called.
    unsafe {
        process.pre_exec(|| {
            super::daemons::reset_signal_mask();
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Every descriptor above stderr closes at exec (liege's are close-on-exec already; this covers any
            // that is not). Without close_range (Linux < 5.11) the close-on-exec flags alone do it.
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
            Ok(())
        });
    }
    let child = process.spawn()?;
    // The master reaps it with waitpid (see `Crons::reaped`); dropping `Child` neither waits nor kills.
    Ok(child.id() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use liege_config::Origin;

    fn at(minute: i32, hour: i32, mday: i32, month: i32, wday: i32) -> LocalTime {
        LocalTime { minute, hour, mday, month, wday }
    }

    fn schedule(minute: i32, hour: i32, day: i32, month: i32, week: i32) -> CronSchedule {
        CronSchedule { minute, hour, day, month, week }
    }

    fn spec(schedule: CronSchedule, unique: bool) -> CronSpec {
        CronSpec {
            schedule,
            command: "true".into(),
            unique,
            harakiri: CronHarakiri::Default,
            origin: Origin::CommandLine { index: 0 },
            option: "cron".into(),
        }
    }

    #[test]
    fn fields_match_values_any_and_every_n() {
        // 15 0 -1 -1 -1: 00:15 every day.
        let daily = schedule(15, 0, -1, -1, -1);
        assert!(matches(&daily, &at(15, 0, 3, 7, 2)));
        assert!(!matches(&daily, &at(16, 0, 3, 7, 2)));
        assert!(!matches(&daily, &at(15, 1, 3, 7, 2)));
        // -15 in the minute field: */15.
        let quarter = schedule(-15, -1, -1, -1, -1);
        for minute in [0, 15, 30, 45] {
            assert!(matches(&quarter, &at(minute, 13, 9, 9, 5)), "minute {minute}");
        }
        assert!(!matches(&quarter, &at(14, 13, 9, 9, 5)));
        // Every value of -1 fields.
        let every = CronSchedule::EVERY_MINUTE;
        assert!(matches(&every, &at(0, 0, 1, 1, 0)) && matches(&every, &at(59, 23, 31, 12, 6)));
        // Months are 1-12: -2 in the month field means even months.
        let even_months = schedule(0, 0, 1, -2, -1);
        assert!(matches(&even_months, &at(0, 0, 1, 2, 4)) && !matches(&even_months, &at(0, 0, 1, 1, 4)));
        // Hour -6: 0, 6, 12, 18.
        let six = schedule(0, -6, -1, -1, -1);
        assert!(matches(&six, &at(0, 18, 1, 1, 1)) && !matches(&six, &at(0, 19, 1, 1, 1)));
    }

    #[test]
    fn day_and_weekday_are_ored_when_both_are_given() {
        // 0 0 1 -1 0: midnight on the 1st, or on a Sunday (crontab's rule).
        let both = schedule(0, 0, 1, -1, 0);
        assert!(matches(&both, &at(0, 0, 1, 5, 3)), "the 1st, a Wednesday");
        assert!(matches(&both, &at(0, 0, 12, 5, 0)), "a Sunday, the 12th");
        assert!(!matches(&both, &at(0, 0, 12, 5, 3)));
        // Weekday only (the day is -1): ANDed, so only Sundays.
        let sundays = schedule(0, 0, -1, -1, 0);
        assert!(matches(&sundays, &at(0, 0, 12, 5, 0)) && !matches(&sundays, &at(0, 0, 13, 5, 1)));
        // 7 is Sunday too.
        assert!(matches(&schedule(0, 0, -1, -1, 7), &at(0, 0, 12, 5, 0)));
        // Day only: the 1st of January, whatever the weekday.
        let yearly = schedule(0, 0, 1, 1, -1);
        assert!(matches(&yearly, &at(0, 0, 1, 1, 4)) && !matches(&yearly, &at(0, 0, 1, 2, 4)));
    }

    #[test]
    fn an_entry_runs_once_per_60_seconds_of_matching_time() {
        let every = spec(CronSchedule::EVERY_MINUTE, false);
        let mut state = EntryState::default();
        let time = at(10, 12, 1, 1, 0);
        assert!(due(&every, &state, &time, 1_000_000), "never ran: at once");
        state.last_run = 1_000_000;
        assert!(!due(&every, &state, &at(11, 12, 1, 1, 0), 1_000_030), "30 s later, even in the next minute");
        assert!(due(&every, &state, &at(11, 12, 1, 1, 0), 1_000_060));
        // A specific minute runs once in it, though the master checks every second.
        let at_15 = spec(schedule(15, -1, -1, -1, -1), false);
        let mut state = EntryState::default();
        assert!(!due(&at_15, &state, &at(14, 3, 1, 1, 0), 59));
        assert!(due(&at_15, &state, &at(15, 3, 1, 1, 0), 60));
        state.last_run = 60;
        for second in 61..120 {
            assert!(!due(&at_15, &state, &at(15, 3, 1, 1, 0), second));
        }
        assert!(due(&at_15, &state, &at(15, 4, 1, 1, 0), 3660));
    }

    #[test]
    fn unique_entries_wait_for_their_previous_run() {
        let unique = spec(CronSchedule::EVERY_MINUTE, true);
        let plain = spec(CronSchedule::EVERY_MINUTE, false);
        let running = EntryState { last_run: 0, running: vec![Run { pid: 7, started_at: 0, deadline: None }] };
        let time = at(1, 0, 1, 1, 0);
        assert!(!due(&unique, &running, &time, 60));
        assert!(due(&plain, &running, &time, 60), "a plain entry overlaps its previous run");
        // Skipped minutes do not count as runs: once the previous run ended, the next tick starts it.
        let ended = EntryState { last_run: 0, running: Vec::new() };
        assert!(due(&unique, &ended, &at(3, 0, 1, 1, 0), 190));
        let entries = [unique.clone(), plain.clone()];
        let states = [running.clone(), running];
        assert_eq!(due_entries(entries.iter().zip(states.iter()), &time, 60), vec![1]);
    }

    #[test]
    fn harakiri_deadlines() {
        assert_eq!(deadline(CronHarakiri::Default, None, 100), None);
        assert_eq!(deadline(CronHarakiri::Default, Some(30), 100), Some(130));
        assert_eq!(deadline(CronHarakiri::Seconds(5), Some(30), 100), Some(105));
        assert_eq!(deadline(CronHarakiri::Never, Some(30), 100), None);
        let state = EntryState {
            last_run: 100,
            running: vec![
                Run { pid: 1, started_at: 100, deadline: Some(105) },
                Run { pid: 2, started_at: 100, deadline: None },
                Run { pid: 3, started_at: 101, deadline: Some(106) },
            ],
        };
        assert_eq!(overdue(&state, 105), Vec::<i32>::new(), "killed once the deadline has passed");
        assert_eq!(overdue(&state, 106), vec![1]);
        assert_eq!(overdue(&state, 200), vec![1, 3]);
    }

    #[test]
    fn local_time_is_broken_down() {
        let time = local_time(0).unwrap();
        assert!((1..=12).contains(&time.month) && (0..=6).contains(&time.wday) && (1..=31).contains(&time.mday));
    }
}
