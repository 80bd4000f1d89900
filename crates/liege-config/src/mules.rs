//! The mule family (`mule`, `mules`, `farm`, `mule-reload-mercy`, `mule-msg-size`, `mule-msg-recv-size`,
//! `touch-mules-reload`): side processes forked by the master after the app is loaded, read with uWSGI's
//! meaning (core/mule.c, plugins/python/python_plugin.c) so a mistake is an error naming the file and line.
//! What they do at run time is the master's business (`liege::master::mules`, `liege::python::mules`).
//!
//! uWSGI's meanings:
//!
//! - `mule = VALUE` adds one mule (ids count from 1 in the order given, `mules = N` lines included). With the
//!   Python plugin, a VALUE ending in `.py` is run as `__main__` in the mule; a VALUE with a `:`
//!   (`package.module:function`) names a callable that is imported and called with no arguments; an empty
//!   VALUE (a bare `mule`) gives a mule that waits for messages and hands each to `uwsgi.mule_msg_hook` and
//!   the hooks of `uwsgi.install_mule_msg_hook` (or logs it). uWSGI passes any other VALUE to its other
//!   plugins and, when none takes it, silently runs a message-only mule; liege refuses it instead.
//! - `mules = N`: N message-only mules.
//! - `farm = NAME:ID[,ID...]`: a named group of mules sharing one message queue (uWSGI exits at startup on an
//!   unknown mule id; so does liege's config check).
//! - `mule-reload-mercy = SECONDS` (default 60): how long a mule asked to stop (reload or stop) may take
//!   before it is killed.
//! - `mule-msg-size = BYTES`: the send and receive buffers of every mule queue (SO_SNDBUF/SO_RCVBUF; default:
//!   the kernel's). A message must fit in it; a full queue makes `uwsgi.mule_msg` return False.
//! - `mule-msg-recv-size = BYTES` (default 65536): the receive buffer of a message-only mule (longer messages
//!   are cut to it) and what `uwsgi.mule_msg_recv_size()` answers.
//! - `touch-mules-reload = PATH`: when PATH's modification time changes, only the mules are restarted.
//!
//! `mule-harakiri` times the uWSGI signal handlers a mule runs; liege has no uWSGI signals, so it is refused
//! (see [`HARAKIRI`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::{values, ConfigError, ConfigWarning, Origin, RawOption};

/// Why `mule-harakiri` is refused.
pub const HARAKIRI: &str = "uWSGI's mule-harakiri limits how long a mule may run a uWSGI signal handler \
     (register_signal, @signal, @timer); liege has no uWSGI signals, so a mule never runs one and there is \
     nothing to time: remove it (a mule script that must not hang can bound its own work, e.g. with \
     signal.alarm)";

/// What a mule runs (uWSGI's `mules[id].patch`, as the Python plugin reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuleProgram {
    /// A bare `mule` or `mules = N`: wait for messages, hand each to `uwsgi.mule_msg_hook`.
    Messages,
    /// `mule = script.py`: run as `__main__` (relative to the vassal's `chdir`).
    Script(PathBuf),
    /// `mule = package.module:function`: imported and called with no arguments.
    Callable { module: String, function: String },
}

/// One mule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuleSpec {
    /// 1-based, in the order given.
    pub id: u32,
    pub program: MuleProgram,
    /// The value as written (`uwsgi.mule_file()`; empty for a message-only mule).
    pub value: String,
    pub origin: Origin,
}

/// A named group of mules with a shared queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FarmSpec {
    pub name: String,
    /// Mule ids, as given (each exists).
    pub mules: Vec<u32>,
    pub origin: Origin,
}

/// The mule family as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mules {
    pub mules: Vec<MuleSpec>,
    pub farms: Vec<FarmSpec>,
    /// `mule-reload-mercy` (default 60 s).
    pub reload_mercy: Duration,
    /// `mule-msg-size`: SO_SNDBUF/SO_RCVBUF of the queues; `None`: the kernel's default.
    pub msg_size: Option<usize>,
    /// `mule-msg-recv-size` (default 65536).
    pub msg_recv_size: usize,
    /// `touch-mules-reload`.
    pub touch_reload: Vec<PathBuf>,
}

impl Default for Mules {
    fn default() -> Self {
        Mules {
            mules: Vec::new(),
            farms: Vec::new(),
            reload_mercy: Duration::from_secs(60),
            msg_size: None,
            msg_recv_size: 65536,
            touch_reload: Vec::new(),
        }
    }
}

/// Which option of the family (the table's `OptionId::Mule(..)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MuleOption {
    Mule,
    Mules,
    Farm,
    ReloadMercy,
    MsgSize,
    MsgRecvSize,
    TouchReload,
}

impl Mules {
    /// Reads one option of the family.
    pub fn apply(
        &mut self,
        which: MuleOption,
        option: &RawOption,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<(), ConfigError> {
        match which {
            MuleOption::Mule => {
                let program = program(option)?;
                self.push(program, option.value.trim().to_owned(), option);
            }
            MuleOption::Mules => {
                let count: u32 = values::whole_number(option, warnings)?;
                if count > 1000 {
                    return Err(values::invalid(option, "at most 1000 mules"));
                }
                for _ in 0..count {
                    self.push(MuleProgram::Messages, String::new(), option);
                }
            }
            MuleOption::Farm => self.farms.push(farm(option)?),
            MuleOption::ReloadMercy => self.reload_mercy = values::seconds(option, warnings)?,
            MuleOption::MsgSize => {
                let size: usize = values::whole_number(option, warnings)?;
                self.msg_size = (size > 0).then_some(size);
            }
            MuleOption::MsgRecvSize => self.msg_recv_size = values::positive(option, warnings)?,
            MuleOption::TouchReload => self.touch_reload.push(values::path(option)?),
        }
        Ok(())
    }

    fn push(&mut self, program: MuleProgram, value: String, option: &RawOption) {
        let id = self.mules.len() as u32 + 1;
        self.mules.push(MuleSpec { id, program, value, origin: option.origin.clone() });
    }

    /// Checks what needs every option read: each farm's mule ids exist (a farm may come before its mules,
    /// as in uWSGI, which builds the farms after reading every option), farm names are unique.
    pub fn finish(&self) -> Result<(), ConfigError> {
        for (index, farm) in self.farms.iter().enumerate() {
            let invalid = |reason: String| ConfigError::InvalidValue {
                origin: farm.origin.clone(),
                name: "farm".to_owned(),
                value: format!("{}:{}", farm.name, join(&farm.mules)),
                reason,
            };
            if let Some(id) = farm.mules.iter().find(|&&id| id == 0 || id as usize > self.mules.len()) {
                return Err(invalid(format!(
                    "there is no mule {id} ({} mule(s) configured: mule = ... or mules = N)",
                    self.mules.len()
                )));
            }
            if self.farms[..index].iter().any(|other| other.name == farm.name) {
                return Err(invalid(format!("a farm named '{}' is already defined", farm.name)));
            }
        }
        Ok(())
    }

    /// The farms mule `id` belongs to, by index into [`Self::farms`].
    pub fn farms_of(&self, id: u32) -> Vec<usize> {
        self.farms.iter().enumerate().filter(|(_, f)| f.mules.contains(&id)).map(|(i, _)| i).collect()
    }
}

fn join(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// `mule = VALUE`, as the Python plugin reads it (`uwsgi_python_mule`).
fn program(option: &RawOption) -> Result<MuleProgram, ConfigError> {
    let value = option.value.trim();
    if value.is_empty() {
        return Ok(MuleProgram::Messages);
    }
    if value.ends_with(".py") {
        return Ok(MuleProgram::Script(PathBuf::from(value)));
    }
    if let Some((module, function)) = value.split_once(':') {
        let module = module.trim();
        let function = function.trim();
        let identifier =
            |s: &str| !s.is_empty() && s.split('.').all(|part| !part.is_empty() && !part.contains(char::is_whitespace));
        if !identifier(module) || !identifier(function) {
            return Err(values::invalid(option, "expected package.module:function"));
        }
        return Ok(MuleProgram::Callable { module: module.to_owned(), function: function.to_owned() });
    }
    Err(values::invalid(
        option,
        "a mule runs a Python script (a path ending in .py), a callable (package.module:function), or nothing \
         (a bare 'mule' waits for messages); uWSGI hands any other value to its other plugins",
    ))
}

/// `farm = NAME:ID[,ID...]`.
fn farm(option: &RawOption) -> Result<FarmSpec, ConfigError> {
    let value = values::non_empty(option)?;
    let Some((name, list)) = value.split_once(':') else {
        return Err(values::invalid(option, "expected NAME:MULE[,MULE...] (e.g. farm = workers:1,2)"));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(values::invalid(option, "the farm has no name (expected NAME:MULE[,MULE...])"));
    }
    let mut mules = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u32>() {
            Ok(id) if id > 0 => {
                if !mules.contains(&id) {
                    mules.push(id);
                }
            }
            _ => return Err(values::invalid(option, format!("'{part}' is not a mule id (1, 2, ...)"))),
        }
    }
    if mules.is_empty() {
        return Err(values::invalid(option, "the farm names no mule (expected NAME:MULE[,MULE...])"));
    }
    Ok(FarmSpec { name: name.to_owned(), mules, origin: option.origin.clone() })
}
