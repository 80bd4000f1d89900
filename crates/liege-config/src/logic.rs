//! uWSGI's config logic: `if-*` / `else` / `endif` blocks and `for*` / `endfor` loops.
//!
//! uWSGI 2.0 (core/config.c) evaluates them while reading, option by option: an `if-env = VAR` line opens a
//! block, and every following option until `endif` (or `end-if`) is kept once if the condition holds and
//! dropped otherwise; a `for = a b c` line repeats every following option until `endfor` (`end-for`) once per
//! item. In the kept copies `%(_)` is the item: the loop word, the environment variable's value, the path
//! tested. liege reproduces that, with two deliberate differences, both turning silent surprises into errors
//! or predictable behaviour:
//!
//! - blocks do not nest in uWSGI (an `if-*` inside a kept block aborts with "recursive logic in options is
//!   not supported"); liege says so for any nested block, kept or not, naming both lines;
//! - a block still open at the end of the file that opened it ends there (uWSGI would carry it into the
//!   next file or the command line).
//!
//! This module decides (which items a block yields); the collector applies the result.

use std::path::Path;

use crate::options::OptionId;
use crate::{host, ConfigError, Origin};

/// What the collector needs to look up while evaluating a condition.
pub trait Facts {
    fn env(&self, name: &str) -> Option<String>;
    /// The current value of an option (any spelling) or placeholder set so far.
    /// Marks it as referenced, so a placeholder only tested by `if-opt` is not taken for a typo.
    fn option(&mut self, name: &str) -> Option<String>;
}

/// An open block: the values of `%(_)` for each copy of every option inside it (none when the condition
/// failed, one for a true `if-*`, one per item for a loop).
#[derive(Debug, Clone)]
pub struct Block {
    pub items: Vec<String>,
    /// Where the block was opened, for "nested block" errors and to close it at the end of its file.
    pub origin: Origin,
    /// For `else`: whether this was an `if-*` whose condition failed.
    pub failed_if: bool,
    /// Whether `%(_)` is replaced in the copies (not after `else`, as in uWSGI).
    pub substitutes: bool,
}

/// True for the options that open a block.
pub fn opens_block(id: OptionId) -> bool {
    use OptionId::*;
    matches!(
        id,
        IfEnv
            | IfNotEnv
            | IfExists
            | IfNotExists
            | IfFile
            | IfNotFile
            | IfDir
            | IfNotDir
            | IfOpt
            | IfNotOpt
            | IfHostname
            | IfNotHostname
            | For
            | ForGlob
            | ForTimes
            | ForReadline
    )
}

/// Evaluates the block opened by `id` with the (expanded) argument `argument`.
pub fn open(id: OptionId, argument: &str, origin: &Origin, facts: &mut dyn Facts) -> Result<Block, ConfigError> {
    use OptionId::*;
    let condition = |holds: bool, item: String| if holds { vec![item] } else { Vec::new() };
    let items = match id {
        IfEnv => {
            let (name, expected) = split_expected(argument);
            match facts.env(name) {
                Some(value) if expected.is_none_or(|expected| expected == value) => vec![value],
                _ => Vec::new(),
            }
        }
        IfNotEnv => {
            let (name, expected) = split_expected(argument);
            match (facts.env(name), expected) {
                (None, _) => vec![String::new()],
                (Some(value), Some(expected)) if value != expected => vec![value],
                _ => Vec::new(),
            }
        }
        IfOpt => {
            let (name, expected) = split_expected(argument);
            match facts.option(name) {
                Some(value) if expected.is_none_or(|expected| expected == value) => vec![value],
                _ => Vec::new(),
            }
        }
        IfNotOpt => {
            let (name, expected) = split_expected(argument);
            match (facts.option(name), expected) {
                (None, _) => vec![String::new()],
                (Some(value), Some(expected)) if value != expected => vec![value],
                _ => Vec::new(),
            }
        }
        IfExists => condition(Path::new(argument).exists(), argument.to_owned()),
        IfNotExists => condition(!Path::new(argument).exists(), argument.to_owned()),
        IfFile => condition(Path::new(argument).is_file(), argument.to_owned()),
        IfNotFile => condition(!Path::new(argument).is_file(), argument.to_owned()),
        IfDir => condition(Path::new(argument).is_dir(), argument.to_owned()),
        IfNotDir => condition(!Path::new(argument).is_dir(), argument.to_owned()),
        IfHostname | IfNotHostname => {
            let hostname = host::hostname().map_err(|reason| invalid(origin, "if-hostname", argument, reason))?;
            condition((hostname == argument) == (id == IfHostname), argument.to_owned())
        }
        // uWSGI splits at single spaces and skips empty words.
        For => argument.split(' ').filter(|word| !word.is_empty()).map(str::to_owned).collect(),
        ForGlob => glob_items(argument, origin)?,
        ForTimes => {
            // atoi, as uWSGI: leading digits, nothing (or a negative count) means no iteration.
            let digits: String = argument.trim_start().chars().take_while(char::is_ascii_digit).collect();
            let count: u32 = if digits.is_empty() {
                0
            } else {
                digits.parse().map_err(|_| invalid(origin, "for-times", argument, "count too large".to_owned()))?
            };
            (1..=count).map(|number| number.to_string()).collect()
        }
        ForReadline => {
            let text = std::fs::read_to_string(argument)
                .map_err(|error| invalid(origin, "for-readline", argument, format!("cannot read the file: {error}")))?;
            text.lines().map(|line| line.strip_suffix('\r').unwrap_or(line).to_owned()).collect()
        }
        _ => Vec::new(),
    };
    let is_if = !matches!(id, For | ForGlob | ForTimes | ForReadline);
    Ok(Block { failed_if: is_if && items.is_empty(), items, origin: origin.clone(), substitutes: true })
}

/// The block after `else`: one copy (with `%(_)` left as written, as uWSGI's `else` does not substitute)
/// when the preceding `if-*` failed, none otherwise.
pub fn open_else(previous_failed: bool, origin: &Origin) -> Block {
    Block {
        items: if previous_failed { vec![String::new()] } else { Vec::new() },
        origin: origin.clone(),
        failed_if: false,
        substitutes: false,
    }
}

/// `NAME=VALUE` or `NAME`.
fn split_expected(argument: &str) -> (&str, Option<&str>) {
    match argument.split_once('=') {
        Some((name, expected)) => (name, Some(expected)),
        None => (argument, None),
    }
}

/// glob(3) with `GLOB_MARK | GLOB_NOCHECK`, as uWSGI: directories get a trailing `/`, and a pattern that
/// matches nothing yields itself.
fn glob_items(pattern: &str, origin: &Origin) -> Result<Vec<String>, ConfigError> {
    let paths = glob::glob(pattern)
        .map_err(|error| invalid(origin, "for-glob", pattern, format!("invalid pattern: {error}")))?;
    let mut items = Vec::new();
    for path in paths.flatten() {
        let mut item = path.display().to_string();
        if path.is_dir() && !item.ends_with('/') {
            item.push('/');
        }
        items.push(item);
    }
    if items.is_empty() {
        items.push(pattern.to_owned());
    }
    Ok(items)
}

fn invalid(origin: &Origin, name: &str, value: &str, reason: String) -> ConfigError {
    ConfigError::InvalidValue { origin: origin.clone(), name: name.to_owned(), value: value.to_owned(), reason }
}

/// Puts `item` in place of every `%(_)` of a value inside a block.
pub fn substitute(value: &str, item: &str) -> String {
    value.replace("%(_)", item)
}
