//! The cheaper family (adaptive worker count: `cheaper*`, the five algorithms, the busyness plugin's options,
//! the RSS limits), uWSGI's idle mode (`idle`), and the master's process tuning (`harakiri-queue-threshold`,
//! `cpu-affinity`, `never-swap`, `ksm`).
//!
//! Read with uWSGI's defaults and its startup checks (core/init.c, plugins/cheaper_busyness): a mistake uWSGI
//! exits on is an error naming the line; a value uWSGI corrects with a warning is corrected the same way and
//! warned about. What the values do at run time is the master's business (`liege::master::core`).

use std::time::Duration;

use crate::options::OptionId;
use crate::{values, ConfigError, ConfigWarning, RawOption};

/// The cheaper algorithm (`cheaper-algo`), uWSGI's four built-in ones and the busyness plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheaperAlgo {
    /// The default: one more worker after `cheaper-overload` seconds with every worker busy, one fewer every
    /// `cheaper-overload` idle seconds (unless exactly one worker is free).
    Spare,
    /// Keeps `cheaper` idle workers: spawns when fewer are idle, retires one after `cheaper-idle` seconds
    /// with more idle.
    Spare2,
    /// Spawns while the listen queue is longer than `cheaper-overload`, retires while it is shorter.
    Backlog,
    /// Never changes the worker count by itself: only the master FIFO's `+` and `-` do.
    Manual,
    /// uWSGI's cheaper_busyness plugin: the share of each `cheaper-overload` period the workers spent in
    /// requests, with emergency workers when the listen queue fills.
    Busyness,
}

impl CheaperAlgo {
    pub fn name(self) -> &'static str {
        match self {
            CheaperAlgo::Spare => "spare",
            CheaperAlgo::Spare2 => "spare2",
            CheaperAlgo::Backlog => "backlog",
            CheaperAlgo::Manual => "manual",
            CheaperAlgo::Busyness => "busyness",
        }
    }

    fn parse(option: &RawOption) -> Result<Self, ConfigError> {
        match option.value.trim() {
            "spare" => Ok(CheaperAlgo::Spare),
            "spare2" => Ok(CheaperAlgo::Spare2),
            "backlog" => Ok(CheaperAlgo::Backlog),
            "manual" => Ok(CheaperAlgo::Manual),
            "busyness" => Ok(CheaperAlgo::Busyness),
            _ => Err(values::invalid(
                option,
                "liege has uWSGI's cheaper algorithms spare, spare2, backlog, manual and busyness (uWSGI falls \
                 back to spare for an unknown name; its example plugin backlog2 is not available)",
            )),
        }
    }
}

/// One of the busyness plugin's options (`cheaper-busyness-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BusynessOption {
    Max,
    Min,
    Multiplier,
    Penalty,
    Verbose,
    BacklogAlert,
    BacklogMultiplier,
    BacklogStep,
    BacklogNonzero,
}

/// The busyness algorithm's settings, with the plugin's defaults (a 0 means the default, as in the plugin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busyness {
    /// Percent above which the workers are loaded: spawn (`cheaper-busyness-max`, default 50).
    pub max: u64,
    /// Percent below which they are idle: retire one once the cheaper timer allows (`-min`, default 25).
    pub min: u64,
    /// Idle `cheaper-overload` periods before a worker is retired (`-multiplier`, default 10).
    pub multiplier: u64,
    /// Added to the multiplier when workers come back too soon after one was retired (`-penalty`, default 2).
    pub penalty: u64,
    /// Listen queue length above which emergency workers are spawned (`-backlog-alert`, default 33).
    pub backlog_alert: u64,
    /// The multiplier used while emergency workers run (`-backlog-multiplier`, default 3).
    pub backlog_multiplier: u64,
    /// Emergency workers spawned at once (`-backlog-step`, default 1).
    pub backlog_step: u32,
    /// A listen queue non-empty this long spawns an emergency worker (`-backlog-nonzero`, default 60 s).
    pub backlog_nonzero: Duration,
    /// `cheaper-busyness-verbose`: log every measurement.
    pub verbose: bool,
}

impl Default for Busyness {
    fn default() -> Self {
        Busyness {
            max: 50,
            min: 25,
            multiplier: 10,
            penalty: 2,
            backlog_alert: 33,
            backlog_multiplier: 3,
            backlog_step: 1,
            backlog_nonzero: Duration::from_secs(60),
            verbose: false,
        }
    }
}

/// The cheaper (adaptive worker count) settings; `None` in [`crate::VassalConfig::cheaper`] when off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cheaper {
    /// Minimum number of workers kept running (`cheaper`); for spare2, the number of idle workers kept.
    pub min_workers: u32,
    /// Workers started at boot (`cheaper-initial`, default = `min_workers`).
    pub initial: u32,
    /// Workers added at once (`cheaper-step`, default 1; uWSGI reads 0 as 1).
    pub step: u32,
    pub algo: CheaperAlgo,
    /// `cheaper-overload` (default 3): spare's cycles (seconds) of overload or idleness before acting,
    /// backlog's queue length, busyness's measurement period in seconds.
    pub overload: u64,
    /// `cheaper-idle` (spare2, default 10): idle cycles (seconds) before a worker is retired.
    pub idle_cycles: u64,
    /// `cheaper-rss-limit-soft`, bytes: while the workers' total RSS is at least this, none is spawned.
    pub rss_limit_soft: Option<u64>,
    /// `cheaper-rss-limit-hard`, bytes: while the total is at least this, one worker is retired per cycle.
    pub rss_limit_hard: Option<u64>,
    pub busyness: Busyness,
}

/// Process tuning and idle mode, read here next to the cheaper family they live with in uWSGI's master.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tuning {
    /// `idle`: with no request for this long (and none in progress), every worker is stopped until the next
    /// connection arrives (uWSGI's cheap mode).
    pub idle: Option<Duration>,
    /// `harakiri-queue-threshold`: a request past `harakiri` is killed only while the listen queue holds at
    /// least this many connections (0, the default: always).
    pub harakiri_queue_threshold: u64,
    /// `cpu-affinity`: each worker is pinned to this many CPUs, worker N starting at CPU (N-1)*count.
    pub cpu_affinity: u32,
    /// `never-swap`: `mlockall(MCL_CURRENT | MCL_FUTURE)` in the master and in every worker.
    pub never_swap: bool,
    /// `ksm = N`: every N requests (worker) or N master cycles (master), mark the process's mappings
    /// mergeable for Linux KSM; 0 = off, a bare `ksm` = 1.
    pub ksm: u64,
}

/// The cheaper options as given, checked together once everything is read.
#[derive(Default)]
pub(crate) struct CheaperOptions<'r> {
    min_workers: Option<(u32, &'r RawOption)>,
    initial: Option<(u32, &'r RawOption)>,
    step: Option<u32>,
    algo: Option<(CheaperAlgo, &'r RawOption)>,
    overload: Option<u64>,
    idle_cycles: Option<u64>,
    rss_limit_soft: Option<(u64, &'r RawOption)>,
    rss_limit_hard: Option<(u64, &'r RawOption)>,
    busyness: Busyness,
    /// Every cheaper option given, for the warning when `cheaper` itself is off.
    given: Vec<&'r RawOption>,
    busyness_given: Vec<&'r RawOption>,
}

impl<'r> CheaperOptions<'r> {
    /// Reads one option of the family; `false` if `id` is not one.
    pub(crate) fn apply(
        &mut self,
        id: OptionId,
        option: &'r RawOption,
        w: &mut Vec<ConfigWarning>,
    ) -> Result<bool, ConfigError> {
        match id {
            OptionId::Cheaper => {
                self.min_workers = Some((values::whole_number(option, w)?, option));
                return Ok(true);
            }
            OptionId::CheaperInitial => self.initial = Some((values::whole_number(option, w)?, option)),
            OptionId::CheaperStep => self.step = Some(values::whole_number(option, w)?),
            OptionId::CheaperAlgo => self.algo = Some((CheaperAlgo::parse(option)?, option)),
            // (uWSGI divides by it: 0 would crash its master)
            OptionId::CheaperOverload => self.overload = Some(values::positive(option, w)?),
            OptionId::CheaperIdle => self.idle_cycles = Some(values::whole_number(option, w)?),
            OptionId::CheaperRssLimitSoft => {
                self.rss_limit_soft = values::number_or_off(option, w)?.map(|bytes| (bytes, option))
            }
            OptionId::CheaperRssLimitHard => {
                self.rss_limit_hard = values::number_or_off(option, w)?.map(|bytes| (bytes, option))
            }
            OptionId::CheaperBusyness(which) => {
                self.busyness_option(which, option, w)?;
                self.busyness_given.push(option);
                return Ok(true);
            }
            _ => return Ok(false),
        }
        self.given.push(option);
        Ok(true)
    }

    fn busyness_option(
        &mut self,
        which: BusynessOption,
        option: &RawOption,
        w: &mut Vec<ConfigWarning>,
    ) -> Result<(), ConfigError> {
        let defaults = Busyness::default();
        let b = &mut self.busyness;
        // The plugin replaces a 0 by its default.
        let number = |w: &mut Vec<ConfigWarning>, default: u64| -> Result<u64, ConfigError> {
            let n: u64 = values::whole_number(option, w)?;
            Ok(if n == 0 { default } else { n })
        };
        match which {
            BusynessOption::Max => b.max = number(w, defaults.max)?,
            BusynessOption::Min => b.min = number(w, defaults.min)?,
            BusynessOption::Multiplier => b.multiplier = number(w, defaults.multiplier)?,
            BusynessOption::Penalty => b.penalty = number(w, defaults.penalty)?,
            BusynessOption::Verbose => b.verbose = values::boolean(option, w)?,
            BusynessOption::BacklogAlert => b.backlog_alert = number(w, defaults.backlog_alert)?,
            BusynessOption::BacklogMultiplier => b.backlog_multiplier = number(w, defaults.backlog_multiplier)?,
            BusynessOption::BacklogStep => {
                let step = number(w, u64::from(defaults.backlog_step))?;
                b.backlog_step = u32::try_from(step).map_err(|_| values::invalid(option, "number too large"))?;
            }
            BusynessOption::BacklogNonzero => {
                b.backlog_nonzero = Duration::from_secs(number(w, defaults.backlog_nonzero.as_secs())?)
            }
        }
        Ok(())
    }

    /// Checks the settings together, as uWSGI does at startup (core/init.c).
    pub(crate) fn finish(self, processes: u32, w: &mut Vec<ConfigWarning>) -> Result<Option<Cheaper>, ConfigError> {
        let min_workers = match self.min_workers {
            Some((min_workers, _)) if min_workers > 0 => min_workers,
            // uWSGI: `cheaper` unset or 0 turns cheaper mode off, and its other options with it.
            _ => {
                for option in self.given.iter().chain(&self.busyness_given) {
                    w.push(ConfigWarning::new(
                        &option.origin,
                        format!("'{}' has no effect without 'cheaper' (at least 1), as in uWSGI", option.key),
                    ));
                }
                return Ok(None);
            }
        };
        if let Some((_, option)) = self.min_workers.filter(|_| min_workers >= processes) {
            return Err(values::invalid(
                option,
                format!("cheaper must be lower than processes ({processes}), which is the maximum number of workers"),
            ));
        }
        let initial = match self.initial {
            None | Some((0, _)) => min_workers,
            Some((initial, option)) if initial < min_workers => {
                w.push(ConfigWarning::new(
                    &option.origin,
                    format!(
                        "cheaper-initial ({initial}) must be at least cheaper ({min_workers}); starting \
                         {min_workers} workers, as uWSGI does"
                    ),
                ));
                min_workers
            }
            Some((initial, option)) if initial > processes => {
                w.push(ConfigWarning::new(
                    &option.origin,
                    format!(
                        "cheaper-initial ({initial}) must be at most processes ({processes}); starting \
                         {processes} workers, as uWSGI does"
                    ),
                ));
                processes
            }
            Some((initial, _)) => initial,
        };
        let soft = self.rss_limit_soft.map(|(bytes, _)| bytes);
        if let Some((hard, option)) = self.rss_limit_hard {
            match soft {
                None => {
                    return Err(values::invalid(
                        option,
                        "cheaper-rss-limit-hard needs cheaper-rss-limit-soft too (uWSGI refuses it alone)",
                    ))
                }
                Some(soft) if hard <= soft => {
                    return Err(values::invalid(
                        option,
                        format!("cheaper-rss-limit-hard must be higher than cheaper-rss-limit-soft ({soft})"),
                    ))
                }
                Some(_) => {}
            }
        }
        let algo = self.algo.map_or(CheaperAlgo::Spare, |(algo, _)| algo);
        if algo != CheaperAlgo::Busyness {
            for option in &self.busyness_given {
                w.push(ConfigWarning::new(
                    &option.origin,
                    format!("'{}' only has an effect with cheaper-algo = busyness", option.key),
                ));
            }
        }
        Ok(Some(Cheaper {
            min_workers,
            initial,
            step: self.step.unwrap_or(1).max(1),
            algo,
            overload: self.overload.unwrap_or(3),
            idle_cycles: self.idle_cycles.unwrap_or(10),
            rss_limit_soft: soft,
            rss_limit_hard: self.rss_limit_hard.map(|(bytes, _)| bytes),
            busyness: self.busyness,
        }))
    }
}

/// Reads one option of [`Tuning`]; `false` if `id` is not one.
pub(crate) fn apply_tuning(
    tuning: &mut Tuning,
    id: OptionId,
    option: &RawOption,
    w: &mut Vec<ConfigWarning>,
) -> Result<bool, ConfigError> {
    match id {
        OptionId::Idle => tuning.idle = values::seconds_or_off(option, w)?,
        OptionId::HarakiriQueueThreshold => tuning.harakiri_queue_threshold = values::whole_number(option, w)?,
        OptionId::CpuAffinity => tuning.cpu_affinity = values::whole_number(option, w)?,
        OptionId::NeverSwap => tuning.never_swap = values::boolean(option, w)?,
        OptionId::Ksm => tuning.ksm = values::whole_number(option, w)?,
        _ => return Ok(false),
    }
    Ok(true)
}
