//! The spooler family (`spooler`, `spooler-external`, `spooler-processes`, `spooler-frequency`, ...): uWSGI's
//! core/spooler.c options, typed. What they do is in liege's `master::spooler` and `spool` modules.
//!
//! As in uWSGI, `spooler-processes` applies to every `spooler` directory wherever it appears (uWSGI parses it
//! immediately, before the other options): each directory gets that many spooler processes. A directory of
//! `spooler-external` gets none: workers only write tasks into it, for another instance to run.

use std::path::PathBuf;
use std::time::Duration;

use crate::{values, ConfigError, ConfigWarning, RawOption};

/// Which spooler option (one [`crate::OptionId::Spooler`] each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpoolerOption {
    /// `spooler`: a directory, run by this vassal's spooler processes.
    Dir,
    /// `spooler-external`: a directory whose tasks another instance runs.
    External,
    Processes,
    /// `spooler-frequency` / `spooler-freq`.
    Frequency,
    MaxTasks,
    Harakiri,
    Ordered,
    Quiet,
    Chdir,
    /// `spooler-import` and its Python spellings.
    Import,
    Cheap,
    /// `touch-spoolers-reload`.
    TouchReload,
}

/// One spooler directory as configured (created and resolved to its real path by the master at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolerDir {
    pub path: PathBuf,
    /// `spooler-external`: no process runs it here.
    pub external: bool,
}

/// uWSGI's default `spooler-frequency`, seconds.
pub const DEFAULT_FREQUENCY: u64 = 30;

/// The spooler settings of a vassal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolerConfig {
    /// `spooler` and `spooler-external`, in order.
    pub dirs: Vec<SpoolerDir>,
    /// `spooler-processes`: processes per `spooler` directory (0 or unset: one).
    pub processes: u32,
    /// `spooler-frequency`: seconds between two scans of a directory (default 30).
    pub frequency: u64,
    /// `spooler-max-tasks`: a spooler exits (and is started again) after this many tasks; 0 = never.
    pub max_tasks: u64,
    /// `spooler-harakiri`: a task running longer is killed (SIGKILL to its spooler); `None` = never.
    pub harakiri: Option<Duration>,
    /// `spooler-ordered`: scan in version order and run the numbered priority subdirectories first.
    pub ordered: bool,
    /// `spooler-quiet`: no log line per task.
    pub quiet: bool,
    /// `spooler-chdir`: the directory each task runs in.
    pub chdir: Option<PathBuf>,
    /// `spooler-import`: Python modules (or files) the spooler processes import at start.
    pub imports: Vec<String>,
    /// `spooler-cheap`: spoolers start only when their directory has a task and exit when a scan finds none.
    pub cheap: bool,
    /// `touch-spoolers-reload`: touching one of these restarts the spoolers.
    pub touch_reload: Vec<PathBuf>,
}

impl Default for SpoolerConfig {
    fn default() -> Self {
        SpoolerConfig {
            dirs: Vec::new(),
            processes: 0,
            frequency: DEFAULT_FREQUENCY,
            max_tasks: 0,
            harakiri: None,
            ordered: false,
            quiet: false,
            chdir: None,
            imports: Vec::new(),
            cheap: false,
            touch_reload: Vec::new(),
        }
    }
}

impl SpoolerConfig {
    /// Applies one spooler option.
    pub fn apply(
        &mut self,
        which: SpoolerOption,
        option: &RawOption,
        w: &mut Vec<ConfigWarning>,
    ) -> Result<(), ConfigError> {
        match which {
            SpoolerOption::Dir => self.dirs.push(SpoolerDir { path: values::path(option)?, external: false }),
            SpoolerOption::External => self.dirs.push(SpoolerDir { path: values::path(option)?, external: true }),
            SpoolerOption::Processes => self.processes = values::whole_number(option, w)?,
            SpoolerOption::Frequency => {
                // (uWSGI reads it with atoi; 0 would make the spooler spin: refuse it)
                self.frequency = values::positive(option, w)?;
            }
            SpoolerOption::MaxTasks => self.max_tasks = values::whole_number(option, w)?,
            SpoolerOption::Harakiri => self.harakiri = values::seconds_or_off(option, w)?,
            SpoolerOption::Ordered => self.ordered = values::boolean(option, w)?,
            SpoolerOption::Quiet => self.quiet = values::boolean(option, w)?,
            SpoolerOption::Chdir => self.chdir = Some(values::path(option)?),
            SpoolerOption::Import => self.imports.push(values::non_empty(option)?),
            SpoolerOption::Cheap => self.cheap = values::boolean(option, w)?,
            SpoolerOption::TouchReload => self.touch_reload.push(values::path(option)?),
        }
        Ok(())
    }

    /// uWSGI's list of spoolers: `spooler-processes` entries (at least one) per directory, each its
    /// directory's index in [`Self::dirs`]. Entries of a `spooler-external` directory get no process.
    pub fn processes_per_dir(&self) -> Vec<usize> {
        let per_dir = self.processes.max(1) as usize;
        (0..self.dirs.len()).flat_map(|index| std::iter::repeat_n(index, per_dir)).collect()
    }
}

/// Why `spooler-signal-as-task` is refused.
pub const SIGNAL_AS_TASK: &str = "liege has no uWSGI signal framework (uwsgi.register_signal and friends), so a \
     spooler never receives signals to count as tasks; remove spooler-signal-as-task";
