//! Expansion of option values: magic variables (`%n`), environment variables (`$(NAME)`) and references
//! to earlier options or placeholders (`%(name)`).
//!
//! Each value is expanded once, as it is read, in one left-to-right scan, so text that comes out of an
//! environment variable or a placeholder is never expanded again (uWSGI runs one pass per syntax, which
//! re-expands `%(x)` found inside `$(VAR)`; no real config relies on that, and single-pass is predictable).
//!
//! **Magic variables** (uWSGI's table, relative to the config file the line is in):
//!
//! | var | meaning | example for `/srv/apps/shop/app.ini` |
//! |-----|---------|---------|
//! | `%o` | the file name as given | `app.ini` |
//! | `%p` | absolute path of the file | `/srv/apps/shop/app.ini` |
//! | `%s` | file name | `app.ini` |
//! | `%n` | file name without extension | `app` |
//! | `%e` | extension | `ini` |
//! | `%d` | absolute directory, **with** trailing `/` | `/srv/apps/shop/` |
//! | `%c` | name of the directory | `shop` |
//! | `%x` | current section identifier (file as given, `:section`) | `app.ini:uwsgi` |
//! | `%i` | inode number of the file | |
//! | `%0`..`%9` | components of `%d` (missing ones are empty) | `%0`=`srv`, `%2`=`shop` |
//! | `%O %P %S %N %E %D %C %X %I` | the same for the *first* config file read (uWSGI: the first non-template file) | |
//! | `%v` | current directory | |
//! | `%h` | host name | |
//! | `%t` / `%T` | unix time in seconds / microseconds (one instant for the whole config) | |
//! | `%k` | number of CPUs | |
//! | `%u` / `%g` | real uid / gid | |
//! | `%U` / `%G` | user / group name (the number if it has no name) | |
//! | `%V` | liege version | |
//! | `%%` | a literal `%` | |
//!
//! On the command line, `%` followed by a letter is left as written, as in uWSGI, which applies its magic
//! table only to the contents of config files (there is no "current file" to be relative to, and the shell
//! already offers `$PWD`, `$(hostname)`...). `$(NAME)` and `%(name)` do work on the command line, as in
//! uWSGI, whose `$` and `%(` passes run over every option. An unknown magic letter in a file is an error:
//! uWSGI silently turns it into nothing, which hides typos.
//!
//! **`$(NAME)`** is the environment variable NAME, empty when unset (as in uWSGI).
//!
//! **`%(name)`** is the current (last) value of an option (any spelling: `%(workers)` = `%(processes)`) or of
//! a placeholder, set *before* this point. Anything else is an error naming it, except in `logformat`, whose
//! `%(status)`-style request variables are kept for the runtime. Unterminated `%(` or `$(` are kept
//! literally, as uWSGI does.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{host, options, ConfigError, Origin};

/// Where a config file is, computed once per file for its magic variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContext {
    /// The path the file was opened with; error messages show it.
    pub path: PathBuf,
    /// The file name as given to `--ini` or `ini =` (`%o`, and the start of `%x`).
    pub given: String,
    /// Absolute path (`%p`): the real path, except that a symlink keeps its own name, as in uWSGI (so a
    /// vassal symlinked into the emperor's directory is named after the link).
    pub absolute: PathBuf,
    pub section: String,
    pub inode: u64,
}

impl FileContext {
    /// Describes the file at `path` (opened from `cwd`), read for `section`.
    pub fn new(path: &Path, given: &str, section: &str, cwd: &Path) -> std::io::Result<FileContext> {
        use std::os::unix::fs::MetadataExt;
        let link_metadata = fs::symlink_metadata(path)?;
        let joined = if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) };
        let absolute = if link_metadata.file_type().is_symlink() {
            lexically_normal(&joined)
        } else {
            fs::canonicalize(path).unwrap_or_else(|_| lexically_normal(&joined))
        };
        let inode = fs::metadata(path)?.ino();
        Ok(FileContext {
            path: path.to_path_buf(),
            given: given.to_owned(),
            absolute,
            section: section.to_owned(),
            inode,
        })
    }

    /// The value of a per-file magic variable (lower-case letter or digit), `None` if `letter` is not one.
    fn magic(&self, letter: char) -> Option<String> {
        let directory = self.absolute.parent().unwrap_or(Path::new("/"));
        let value = match letter {
            'o' => self.given.clone(),
            'p' => self.absolute.display().to_string(),
            's' => file_name(&self.absolute),
            'n' => file_stem(&self.absolute),
            'e' => self.absolute.extension().map(|ext| ext.to_string_lossy().into_owned()).unwrap_or_default(),
            'd' => with_trailing_slash(directory),
            'c' => directory.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default(),
            'x' => format!("{}:{}", self.given, self.section),
            'i' => self.inode.to_string(),
            '0'..='9' => {
                let index = letter as usize - '0' as usize;
                directory_components(directory).into_iter().nth(index).unwrap_or_default()
            }
            _ => return None,
        };
        Some(value)
    }
}

/// A file's name without its extension (`%n`); the whole name when it has none.
pub fn file_stem(path: &Path) -> String {
    path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default()
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

fn with_trailing_slash(directory: &Path) -> String {
    let text = directory.display().to_string();
    if text.ends_with('/') {
        text
    } else {
        text + "/"
    }
}

fn directory_components(directory: &Path) -> Vec<String> {
    directory
        .components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

/// Removes `.` and resolves `..` without touching the filesystem (used where symlinks must not be resolved).
fn lexically_normal(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

/// `@(FILE)`: the contents of FILE without one final newline, as uWSGI's `uwsgi_at_file_read`;
/// `@(exec://COMMAND)` runs COMMAND with `/bin/sh -c` and takes its standard output the same way.
fn read_at(target: &str, origin: &Origin) -> Result<String, ConfigError> {
    let unreadable = |reason: String| ConfigError::InvalidValue {
        origin: origin.clone(),
        name: "@()".to_owned(),
        value: target.to_owned(),
        reason,
    };
    let bytes = if let Some(command) = target.strip_prefix("exec://") {
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|error| unreadable(format!("cannot run the command: {error}")))?;
        if !output.status.success() {
            return Err(unreadable(format!("the command failed ({})", output.status)));
        }
        output.stdout
    } else {
        fs::read(target).map_err(|error| unreadable(format!("cannot read the file: {error}")))?
    };
    let mut text = String::from_utf8(bytes).map_err(|_| unreadable("the contents are not UTF-8".to_owned()))?;
    if text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    Ok(text)
}

impl crate::logic::Facts for Expander<'_> {
    fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    fn option(&mut self, name: &str) -> Option<String> {
        self.resolve_reference(name)
    }
}

/// What to do with `%(name)` when nothing called `name` has been set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownReferences {
    Reject,
    /// Keep `%(name)` as written (request-log templates, see [`options::OptionDef::keeps_unknown_references`]).
    Keep,
}

/// The most bytes all the values of one configuration may expand to, together.
///
/// `%(name)` copies a value, so each line can double the one before (`b = %(a)%(a)`, `c = %(b)%(b)`...): thirty
/// lines would ask for gigabytes, and the emperor, which reads every vassal file itself before starting it,
/// would die of one hostile or mistaken file. Real configurations expand to kilobytes.
pub const MAX_EXPANDED_BYTES: usize = 16 * 1024 * 1024;

/// Expands values in reading order and remembers what has been set, for later `%(name)` references.
pub struct Expander<'env> {
    env: &'env dyn Fn(&str) -> Option<String>,
    cwd: PathBuf,
    /// One instant for `%t`/`%T`, so two values in one config never disagree.
    now: SystemTime,
    /// The last value of every option (by canonical name) and placeholder set so far.
    values: HashMap<String, String>,
    /// Every name a `%(name)` has resolved to, so undeclared placeholders can be told from typos.
    referenced: HashSet<String>,
    first_file: Option<FileContext>,
    /// Bytes of every value expanded so far, against [`MAX_EXPANDED_BYTES`].
    expanded_bytes: usize,
}

impl<'env> Expander<'env> {
    pub fn new(env: &'env dyn Fn(&str) -> Option<String>, cwd: PathBuf) -> Self {
        Expander {
            env,
            cwd,
            now: SystemTime::now(),
            values: HashMap::new(),
            referenced: HashSet::new(),
            first_file: None,
            expanded_bytes: 0,
        }
    }

    /// Registers a file about to be read; the first one becomes the target of `%N`, `%P`...
    pub fn enter_file(&mut self, file: &FileContext) {
        if self.first_file.is_none() {
            self.first_file = Some(file.clone());
        }
    }

    /// Remembers the value of an option (canonical name) or placeholder for later `%(name)`.
    pub fn record(&mut self, name: &str, value: &str) {
        self.values.insert(name.to_owned(), value.to_owned());
    }

    pub fn was_referenced(&self, name: &str) -> bool {
        self.referenced.contains(name)
    }

    /// Expands one value read at `origin`; `file` is the config file it is in (`None` on the command line).
    pub fn expand(
        &mut self,
        text: &str,
        file: Option<&FileContext>,
        origin: &Origin,
        unknown: UnknownReferences,
    ) -> Result<String, ConfigError> {
        let mut expanded = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(position) = rest.find(['%', '$', '@']) {
            expanded.push_str(&rest[..position]);
            let marker = &rest[position..position + 1];
            let after = &rest[position + 1..];
            // `%(name)`, `$(NAME)` and `@(FILE)`: the name runs to the first `)`.
            if let Some((name, remainder)) = after.strip_prefix('(').and_then(|inner| inner.split_once(')')) {
                if marker == "$" {
                    expanded.push_str(&self.env_with_default(name));
                } else if marker == "@" {
                    let target = self.expand(name, file, origin, UnknownReferences::Reject)?;
                    expanded.push_str(&read_at(&target, origin)?);
                } else if name.contains(' ') {
                    let expression = self.expand(name, file, origin, UnknownReferences::Reject)?;
                    expanded.push_str(&self.pipeline(&expression, origin)?);
                } else {
                    match self.resolve_reference(name) {
                        Some(value) => {
                            self.check_budget(expanded.len() + value.len(), origin)?;
                            expanded.push_str(&value);
                        }
                        None if unknown == UnknownReferences::Keep => {
                            expanded.push_str("%(");
                            expanded.push_str(name);
                            expanded.push(')');
                        }
                        None => {
                            return Err(ConfigError::UnknownReference { origin: origin.clone(), name: name.to_owned() })
                        }
                    }
                }
                rest = remainder;
                continue;
            }
            let mut after_chars = after.chars();
            match (marker, file, after_chars.next()) {
                ("%", Some(file), Some(letter)) => {
                    expanded.push_str(&self.magic(letter, file, origin)?);
                    rest = after_chars.as_str();
                }
                // A lone `$` or `@`, a `%` at the end, an unterminated `%(`/`$(`, or `%x` on the command line.
                _ => {
                    expanded.push_str(marker);
                    rest = after;
                }
            }
        }
        expanded.push_str(rest);
        self.check_budget(expanded.len(), origin)?;
        self.expanded_bytes += expanded.len();
        Ok(expanded)
    }

    /// Refuses a value of `len` bytes if, with everything expanded before it, it passes [`MAX_EXPANDED_BYTES`].
    /// Checked before each `%(name)` copy, so the refusal comes before the allocation, not after.
    fn check_budget(&self, len: usize, origin: &Origin) -> Result<(), ConfigError> {
        if self.expanded_bytes.saturating_add(len) > MAX_EXPANDED_BYTES {
            return Err(ConfigError::Syntax {
                origin: origin.clone(),
                problem: format!(
                    "the configuration expands to more than {} MiB (a %(name) that copies itself again on every \
                     line?)",
                    MAX_EXPANDED_BYTES / (1024 * 1024)
                ),
            });
        }
        Ok(())
    }

    /// `$(NAME)`, `$(NAME:-DEFAULT)` (DEFAULT when unset or empty) and `$(NAME-DEFAULT)` (DEFAULT when
    /// unset), as uWSGI's `uwsgi_getenv_with_default`. uWSGI cuts DEFAULT at its next `:` or `-` (strtok);
    /// liege keeps all of it.
    fn env_with_default(&self, name: &str) -> String {
        if let Some((variable, default)) = name.split_once(":-") {
            return (self.env)(variable).filter(|value| !value.is_empty()).unwrap_or_else(|| default.to_owned());
        }
        if let Some((variable, default)) = name.split_once('-') {
            return (self.env)(variable).unwrap_or_else(|| default.to_owned());
        }
        (self.env)(name).unwrap_or_default()
    }

    /// uWSGI's placeholder pipeline (`uwsgi_manage_placeholder`): `%(processes cores + 2)` is read word by
    /// word (words separated by spaces); a number is itself, any other word the value of that option or
    /// placeholder; consecutive values are concatenated, and `+ - * /` between two values do 64-bit integer
    /// arithmetic (strtoll of each side, division by zero gives 0); `++` / `--` add or subtract one. There is
    /// no precedence: `%(2 + 3 * 4)` is 20, as in uWSGI. A word naming nothing is an error here (uWSGI reads
    /// it as an empty string).
    fn pipeline(&mut self, expression: &str, origin: &Origin) -> Result<String, ConfigError> {
        #[derive(Clone, Copy)]
        enum Operation {
            Concat,
            Add,
            Subtract,
            Multiply,
            Divide,
        }
        fn number(text: &str) -> i64 {
            let text = text.trim_start();
            let sign_length = usize::from(text.starts_with(['-', '+']));
            let digits = text[sign_length..].bytes().take_while(u8::is_ascii_digit).count();
            text[..sign_length + digits].parse().unwrap_or(0)
        }
        let mut current: Option<String> = None;
        let mut operation = Operation::Concat;
        for word in expression.split(' ').filter(|word| !word.is_empty()) {
            let value = match word {
                "+" | "-" | "*" | "/" => {
                    operation = match word {
                        "+" => Operation::Add,
                        "-" => Operation::Subtract,
                        "*" => Operation::Multiply,
                        _ => Operation::Divide,
                    };
                    continue;
                }
                "++" | "--" => {
                    if let Some(value) = &current {
                        let step = if word == "++" { 1 } else { -1 };
                        current = Some(number(value).wrapping_add(step).to_string());
                    }
                    operation = Operation::Concat;
                    continue;
                }
                _ if word.bytes().all(|byte| byte.is_ascii_digit()) => word.to_owned(),
                _ => self
                    .resolve_reference(word)
                    .ok_or_else(|| ConfigError::UnknownReference { origin: origin.clone(), name: word.to_owned() })?,
            };
            let left = current.as_deref().map_or(0, number);
            let right = number(&value);
            current = Some(match operation {
                Operation::Concat => format!("{}{value}", current.as_deref().unwrap_or("")),
                Operation::Add => left.wrapping_add(right).to_string(),
                Operation::Subtract => left.wrapping_sub(right).to_string(),
                Operation::Multiply => left.wrapping_mul(right).to_string(),
                Operation::Divide => left.checked_div(right).unwrap_or(0).to_string(),
            });
            operation = Operation::Concat;
        }
        Ok(current.unwrap_or_default())
    }

    fn resolve_reference(&mut self, name: &str) -> Option<String> {
        let key = options::lookup_long(name).map_or(name, |def| def.name);
        let value = self.values.get(key)?.clone();
        self.referenced.insert(key.to_owned());
        Some(value)
    }

    fn magic(&self, letter: char, file: &FileContext, origin: &Origin) -> Result<String, ConfigError> {
        let unavailable = |reason: String| ConfigError::MagicUnavailable { origin: origin.clone(), letter, reason };
        if let Some(value) = file.magic(letter) {
            return Ok(value);
        }
        let value = match letter {
            '%' => "%".to_owned(),
            'O' | 'P' | 'S' | 'N' | 'E' | 'D' | 'C' | 'X' | 'I' => {
                let first = self.first_file.as_ref().unwrap_or(file);
                first.magic(letter.to_ascii_lowercase()).unwrap_or_default()
            }
            'v' => self.cwd.display().to_string(),
            'V' => crate::VERSION.to_owned(),
            'h' => host::hostname().map_err(unavailable)?,
            'k' => host::cpu_count().to_string(),
            't' => self.unix_time(origin)?.as_secs().to_string(),
            'T' => self.unix_time(origin)?.as_micros().to_string(),
            'u' => host::real_ids().map_err(unavailable)?.0.to_string(),
            'g' => host::real_ids().map_err(unavailable)?.1.to_string(),
            'U' => {
                let uid = host::real_ids().map_err(unavailable)?.0;
                host::user_name(uid).unwrap_or_else(|| uid.to_string())
            }
            'G' => {
                let gid = host::real_ids().map_err(unavailable)?.1;
                host::group_name(gid).unwrap_or_else(|| gid.to_string())
            }
            _ => return Err(ConfigError::UnknownMagic { origin: origin.clone(), letter }),
        };
        Ok(value)
    }

    fn unix_time(&self, origin: &Origin) -> Result<std::time::Duration, ConfigError> {
        self.now.duration_since(UNIX_EPOCH).map_err(|_| ConfigError::MagicUnavailable {
            origin: origin.clone(),
            letter: 't',
            reason: "the system clock is before 1970".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn origin() -> Origin {
        Origin::File { path: PathBuf::from("test.ini"), line: 1 }
    }

    fn context(path: &Path, section: &str) -> FileContext {
        FileContext::new(path, &path.display().to_string(), section, Path::new("/")).unwrap()
    }

    #[test]
    fn file_magic_variables() {
        let root = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(root.path()).unwrap();
        let directory = root.join("apps").join("shop");
        fs::create_dir_all(&directory).unwrap();
        let file = directory.join("app.ini");
        fs::write(&file, "").unwrap();
        let file_context = FileContext::new(&file, "app.ini", "prod", Path::new("/")).unwrap();
        let mut expander = Expander::new(&no_env, PathBuf::from("/somewhere"));
        let mut expand = |text: &str| expander.expand(text, Some(&file_context), &origin(), UnknownReferences::Reject);

        assert_eq!(expand("%n").unwrap(), "app");
        assert_eq!(expand("%e").unwrap(), "ini");
        assert_eq!(expand("%s").unwrap(), "app.ini");
        assert_eq!(expand("%o").unwrap(), "app.ini");
        assert_eq!(expand("%p").unwrap(), file.display().to_string());
        assert_eq!(expand("%d").unwrap(), format!("{}/", directory.display()));
        assert_eq!(expand("%c").unwrap(), "shop");
        assert_eq!(expand("%x").unwrap(), "app.ini:prod");
        assert_eq!(expand("%v").unwrap(), "/somewhere");
        assert_eq!(expand("/tmp/%n.sock").unwrap(), "/tmp/app.sock");
        assert_eq!(expand("100%%").unwrap(), "100%");
        assert_eq!(expand("%").unwrap(), "%");
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(expand("%i").unwrap(), fs::metadata(&file).unwrap().ino().to_string());
        }
        let components: Vec<String> = directory_components(&directory);
        assert!(components.len() >= 3);
        for (index, component) in components.iter().enumerate().take(10) {
            assert_eq!(&expand(&format!("%{index}")).unwrap(), component);
        }
        assert_eq!(expand("%9").unwrap(), components.get(9).cloned().unwrap_or_default());
    }

    #[test]
    fn first_file_twins_refer_to_the_first_file() {
        let directory = tempfile::tempdir().unwrap();
        let first = directory.path().join("first.conf.ini");
        let second = directory.path().join("second.ini");
        fs::write(&first, "").unwrap();
        fs::write(&second, "").unwrap();
        let first = context(&first, "uwsgi");
        let second = context(&second, "other");
        let mut expander = Expander::new(&no_env, PathBuf::from("/"));
        expander.enter_file(&first);
        expander.enter_file(&second);
        let mut expand = |text: &str| expander.expand(text, Some(&second), &origin(), UnknownReferences::Reject);
        assert_eq!(expand("%n %N").unwrap(), "second first.conf");
        assert_eq!(expand("%e %E").unwrap(), "ini ini");
        assert_eq!(expand("%s|%S").unwrap(), "second.ini|first.conf.ini");
        assert_eq!(expand("%P").unwrap(), first.absolute.display().to_string());
        assert_eq!(expand("%D").unwrap(), expand("%d").unwrap());
        assert_eq!(expand("%C").unwrap(), expand("%c").unwrap());
        assert!(expand("%X").unwrap().ends_with("first.conf.ini:uwsgi"));
        assert!(expand("%x").unwrap().ends_with("second.ini:other"));
        assert_eq!(expand("%O").unwrap(), first.given);
        assert_eq!(expand("%I").unwrap(), first.inode.to_string());
    }

    #[test]
    fn process_magic_variables() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("x.ini");
        fs::write(&file, "").unwrap();
        let file_context = context(&file, "uwsgi");
        let mut expander = Expander::new(&no_env, PathBuf::from("/"));
        let mut expand = |text: &str| expander.expand(text, Some(&file_context), &origin(), UnknownReferences::Reject);

        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let seconds: u64 = expand("%t").unwrap().parse().unwrap();
        let micros: u128 = expand("%T").unwrap().parse().unwrap();
        assert!(seconds.abs_diff(before) <= 5);
        assert_eq!((micros / 1_000_000) as u64, seconds, "%t and %T are one instant");
        assert_eq!(expand("%h").unwrap(), host::hostname().unwrap());
        assert_eq!(expand("%k").unwrap(), host::cpu_count().to_string());
        assert_eq!(expand("%V").unwrap(), crate::VERSION);

        use std::os::unix::fs::MetadataExt;
        let created = fs::metadata(&file).unwrap();
        assert_eq!(expand("%u").unwrap(), created.uid().to_string());
        assert_eq!(expand("%g").unwrap(), created.gid().to_string());
        let user = std::process::Command::new("id").arg("-un").output().unwrap();
        let user = String::from_utf8(user.stdout).unwrap().trim().to_owned();
        assert_eq!(expand("%U").unwrap(), user);
        let group = std::process::Command::new("id").arg("-gn").output().unwrap();
        let group = String::from_utf8(group.stdout).unwrap().trim().to_owned();
        assert_eq!(expand("%G").unwrap(), group);
    }

    #[test]
    fn unknown_magic_is_an_error_in_files() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("x.ini");
        fs::write(&file, "").unwrap();
        let file_context = context(&file, "uwsgi");
        let mut expander = Expander::new(&no_env, PathBuf::from("/"));
        let error = expander.expand("a%zb", Some(&file_context), &origin(), UnknownReferences::Reject).unwrap_err();
        assert_eq!(error.to_string(), "test.ini:1: unknown magic variable '%z' (write %% for a literal %)");
    }

    #[test]
    fn command_line_keeps_magic_letters_literally() {
        let mut expander = Expander::new(&no_env, PathBuf::from("/"));
        let command_line = Origin::CommandLine { index: 0 };
        let value = expander.expand("/tmp/%n-%z-%%.sock", None, &command_line, UnknownReferences::Reject).unwrap();
        assert_eq!(value, "/tmp/%n-%z-%%.sock");
    }

    #[test]
    fn environment_variables() {
        let env = |name: &str| (name == "HOME_DIR").then(|| "/home/web".to_owned());
        let mut expander = Expander::new(&env, PathBuf::from("/"));
        let command_line = Origin::CommandLine { index: 0 };
        let mut expand = |text: &str| expander.expand(text, None, &command_line, UnknownReferences::Reject);
        assert_eq!(expand("$(HOME_DIR)/app").unwrap(), "/home/web/app");
        assert_eq!(expand("[$(UNSET)]").unwrap(), "[]");
        assert_eq!(expand("cost $5 $(unterminated").unwrap(), "cost $5 $(unterminated");
    }

    #[test]
    fn references_use_the_last_value_set_before() {
        let mut expander = Expander::new(&no_env, PathBuf::from("/"));
        let command_line = Origin::CommandLine { index: 0 };
        expander.record("processes", "2");
        expander.record("processes", "4");
        expander.record("project", "shop");
        let value = expander
            .expand("/srv/%(project)/%(workers)/%(processes)", None, &command_line, UnknownReferences::Reject)
            .unwrap();
        assert_eq!(value, "/srv/shop/4/4");
        assert!(expander.was_referenced("project"));
        assert!(expander.was_referenced("processes"));
        let error = expander.expand("%(nothing)", None, &command_line, UnknownReferences::Reject).unwrap_err();
        assert!(matches!(&error, ConfigError::UnknownReference { name, .. } if name == "nothing"), "{error}");
        let kept = expander.expand("%(method) %(project) %(", None, &command_line, UnknownReferences::Keep).unwrap();
        assert_eq!(kept, "%(method) shop %(");
    }

    #[test]
    fn expanded_text_is_not_expanded_again() {
        let env = |_: &str| Some("%(project)".to_owned());
        let mut expander = Expander::new(&env, PathBuf::from("/"));
        expander.record("project", "shop");
        let command_line = Origin::CommandLine { index: 0 };
        assert_eq!(expander.expand("$(X)", None, &command_line, UnknownReferences::Reject).unwrap(), "%(project)");
    }
}
