//! Merges the command line and the ini files it names into one ordered list of raw options.
//!
//! uWSGI's rule is "top-bottom and expand asap": options are kept in the order they are read, and a config
//! file named by `--ini`, a bare `app.ini` argument or an `ini =` line is read *at that point*, its options
//! inserted in place. Scalars then take the last value, lists keep every value, so
//! `--processes 2 --ini app.ini` lets the file override the command line and `--ini app.ini --processes 2`
//! does the opposite. Each value is expanded as it is read ([`crate::expand`]).
//!
//! # Unknown keys and placeholders
//!
//! uWSGI accepts any key in an ini file: an unknown key becomes a *placeholder* that later values can use
//! (`project = shop` then `chdir = /srv/%(project)`). The cost is that a typo (`proceses = 4`) is silently
//! ignored, the most frequent uWSGI support question. liege keeps the useful half:
//!
//! - a key that is not an option is accepted **only if some later value refers to it** as `%(key)` (then it
//!   is a placeholder), or if it is defined explicitly with `set-placeholder = key=value` / `set-ph`;
//! - any other unknown key is an error naming the file and line, with a did-you-mean suggestion.
//!
//! Whether a key is referenced is only known at the end, so unknown keys are checked in
//! [`Collector::finish`]. On the command line there is no such leniency (uWSGI's getopt rejects unknown flags
//! too): use `--set-ph key=value` there.

use std::fs;
use std::path::{Path, PathBuf};

use crate::expand::{Expander, FileContext, UnknownReferences};
use crate::logic::{self, Block};
use crate::options::{self, OptionDef, OptionId, OptionKind};
use crate::{ini, uwsgi_names, ConfigError, ConfigWarning, Origin, RawOption};

/// The result of reading a command line or a file.
#[derive(Debug)]
pub struct Collected {
    pub raw: Vec<RawOption>,
    /// `%n` of the first config file read: the app's name.
    pub first_file_name: Option<String>,
    /// Unknown keys under `strict = false`, and the like (see [`ConfigWarning`]).
    pub warnings: Vec<ConfigWarning>,
}

/// A file being read, to detect `ini =` include cycles.
struct OpenFile {
    canonical: PathBuf,
    section: String,
    shown: String,
}

pub struct Collector<'env> {
    expander: Expander<'env>,
    cwd: PathBuf,
    raw: Vec<RawOption>,
    /// Files being read, outermost first.
    open_files: Vec<OpenFile>,
    /// The last file read (path, name as given), for `--ini :section`: another section of the same file.
    last_file: Option<(PathBuf, String)>,
    /// Unknown ini keys taken as placeholders, checked against references in [`Collector::finish`].
    undeclared_placeholders: Vec<(String, Origin)>,
    first_file_name: Option<String>,
    /// The open `if-*` / `for*` block, if any (see [`crate::logic`]).
    block: Option<Block>,
    /// Whether the last `if-*` failed, for `else`.
    last_if_failed: bool,
    /// The last `strict` value: `false` turns unknown keys into warnings, as uWSGI without `strict`.
    strict: bool,
    warnings: Vec<ConfigWarning>,
}

impl<'env> Collector<'env> {
    pub fn new(env: &'env dyn Fn(&str) -> Option<String>) -> Self {
        // Without a current directory (deleted under us) relative names still resolve through the kernel;
        // only `%v` and `%p` of relative files lose their absolute prefix.
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Collector {
            expander: Expander::new(env, cwd.clone()),
            cwd,
            raw: Vec::new(),
            open_files: Vec::new(),
            last_file: None,
            undeclared_placeholders: Vec::new(),
            first_file_name: None,
            block: None,
            last_if_failed: false,
            strict: true,
            warnings: Vec::new(),
        }
    }

    /// Adds an option from the command line (`value` not yet expanded).
    pub fn add_command_line_option(
        &mut self,
        def: &'static OptionDef,
        spelled: &str,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        let value = match def.kind {
            // `--master=` like a bare `master` line: true, as in uWSGI; `--chmod-socket=` is the default mode.
            OptionKind::Flag if value.is_empty() => "true",
            OptionKind::OptionalValue { default } if value.is_empty() => default,
            OptionKind::Scalar | OptionKind::List if value.is_empty() => {
                return Err(ConfigError::MissingValue { origin, name: spelled.to_owned() })
            }
            _ => value,
        };
        self.dispatch(def.name, Some(def), Some(value.to_owned()), origin, None)
    }

    /// Adds a bare `app.ini[:section]` argument: the same as `--ini`.
    pub fn add_command_line_ini(&mut self, spec: &str, origin: Origin) -> Result<(), ConfigError> {
        self.push("ini", spec.to_owned(), origin.clone());
        self.add_ini(spec, Some(origin))
    }

    /// Adds a bare `app.py` / `app.wsgi` argument: the same as `--wsgi-file`.
    pub fn add_command_line_app_file(&mut self, path: &str, origin: Origin) {
        self.expander.record("wsgi-file", path);
        self.push("wsgi-file", path.to_owned(), origin);
    }

    /// Adds the emperor's positional `DIR`: the same as `--emperor DIR`.
    pub fn add_command_line_emperor_dir(&mut self, dir: &str, origin: Origin) {
        self.expander.record("emperor", dir);
        self.push("emperor", dir.to_owned(), origin);
    }

    /// Reads an ini file (`file` or `file:section`) in place. `referenced_at` is where it was named
    /// (`None` when the caller asks directly, as the emperor does for a vassal file).
    pub fn add_ini(&mut self, spec: &str, referenced_at: Option<Origin>) -> Result<(), ConfigError> {
        self.include(spec, referenced_at, None)
    }

    /// Checks the unknown keys taken as placeholders (see the module docs) and returns the options.
    pub fn finish(mut self) -> Result<Collected, ConfigError> {
        for (name, origin) in self.undeclared_placeholders {
            if !self.expander.was_referenced(&name) {
                let suggestion = options::suggest(&name).map(str::to_owned);
                if self.strict {
                    return Err(ConfigError::UnknownOption { origin, name, suggestion });
                }
                let hint = suggestion.map(|name| format!(" (did you mean '{name}'?)")).unwrap_or_default();
                self.warnings.push(ConfigWarning::new(
                    &origin,
                    format!("unknown option '{name}'{hint} ignored, as uWSGI does, because strict = false"),
                ));
            }
        }
        Ok(Collected { raw: self.raw, first_file_name: self.first_file_name, warnings: self.warnings })
    }

    /// Every option, from a file or the command line, passes here: config logic first (blocks open, close,
    /// drop or repeat what they contain), then [`Collector::emit`].
    fn dispatch(
        &mut self,
        key: &str,
        def: Option<&'static OptionDef>,
        value: Option<String>,
        origin: Origin,
        file: Option<&FileContext>,
    ) -> Result<(), ConfigError> {
        if let Some(def) = def {
            match def.id {
                OptionId::EndIf | OptionId::EndFor => {
                    self.block = None;
                    self.last_if_failed = false;
                    return Ok(());
                }
                OptionId::Else => {
                    self.block = Some(logic::open_else(self.last_if_failed, &origin));
                    return Ok(());
                }
                id if logic::opens_block(id) => {
                    if let Some(open) = &self.block {
                        return Err(ConfigError::Syntax {
                            origin,
                            problem: format!(
                                "'{key}' inside the block opened at {}: config logic blocks do not nest (uWSGI \
                                 refuses them too); close that block with endif/endfor first",
                                open.origin
                            ),
                        });
                    }
                    let Some(argument) = value.filter(|value| !value.is_empty()) else {
                        return Err(ConfigError::MissingValue { origin, name: key.to_owned() });
                    };
                    let argument = self.expander.expand(&argument, file, &origin, UnknownReferences::Reject)?;
                    let block = logic::open(id, &argument, &origin, &mut self.expander)?;
                    self.last_if_failed = block.failed_if;
                    self.block = Some(block);
                    return Ok(());
                }
                _ => {}
            }
        }
        let Some(block) = self.block.clone() else {
            return self.emit(key, def, value, origin, file);
        };
        for item in &block.items {
            let value = match &value {
                Some(value) if block.substitutes => Some(logic::substitute(value, item)),
                other => other.clone(),
            };
            self.emit(key, def, value, origin.clone(), file)?;
        }
        Ok(())
    }

    /// Adds one option (after config logic): a known option, a real uWSGI option liege lacks (an error), or
    /// an unknown key taken as a placeholder.
    fn emit(
        &mut self,
        key: &str,
        def: Option<&'static OptionDef>,
        value: Option<String>,
        origin: Origin,
        file: Option<&FileContext>,
    ) -> Result<(), ConfigError> {
        match (def, file) {
            (Some(def), Some(file)) => self.add_file_option(def, key, value, origin, file),
            (Some(def), None) => {
                let value = value.unwrap_or_default();
                let value = self.expander.expand(&value, None, &origin, unknown_references(def))?;
                self.add_option(def, value, origin, None)
            }
            (None, _) if uwsgi_names::is_uwsgi_option(key) => {
                Err(ConfigError::NotImplemented { origin, name: key.to_owned() })
            }
            (None, Some(file)) => self.add_placeholder_key(key, value, origin, file),
            (None, None) => Err(ConfigError::UnknownOption {
                origin,
                name: key.to_owned(),
                suggestion: options::suggest(key).map(str::to_owned),
            }),
        }
    }

    fn read_file(
        &mut self,
        path: &Path,
        given: &str,
        section: &str,
        referenced_at: Option<Origin>,
    ) -> Result<(), ConfigError> {
        let read_error =
            |source| ConfigError::ReadFile { path: path.to_path_buf(), referenced_at: referenced_at.clone(), source };
        let bytes = fs::read(path).map_err(read_error)?;
        let file = FileContext::new(path, given, section, &self.cwd).map_err(read_error)?;
        let syntax_error = |error: ini::IniSyntaxError| ConfigError::Syntax {
            origin: Origin::File { path: path.to_path_buf(), line: error.line },
            problem: error.problem,
        };
        let text = ini::decode(bytes).map_err(syntax_error)?;
        let parsed = ini::parse(&text, section).map_err(syntax_error)?;
        if !parsed.found {
            return Err(ConfigError::SectionNotFound {
                path: path.to_path_buf(),
                section: section.to_owned(),
                referenced_at,
            });
        }

        self.enter_file(&file, referenced_at)?;
        let outer_block = self.block.take();
        for entry in parsed.entries {
            let origin = Origin::File { path: path.to_path_buf(), line: entry.line };
            let def = options::lookup_long(&entry.key);
            self.dispatch(&entry.key, def, entry.value, origin, Some(&file))?;
        }
        // A block left open ends with its file (see crate::logic). A block around the `ini =` line that
        // included this file decided whether (and how often) it is read, and resumes after it.
        self.block = outer_block;
        self.open_files.pop();
        self.last_file = Some((path.to_path_buf(), given.to_owned()));
        Ok(())
    }

    /// Pushes `file` on the stack of files being read, refusing a file (and section) already on it.
    fn enter_file(&mut self, file: &FileContext, referenced_at: Option<Origin>) -> Result<(), ConfigError> {
        let canonical = fs::canonicalize(&file.path).unwrap_or_else(|_| file.absolute.clone());
        let shown = if file.section == ini::DEFAULT_SECTION {
            file.path.display().to_string()
        } else {
            format!("{}:{}", file.path.display(), file.section)
        };
        let already_open =
            self.open_files.iter().any(|open| open.canonical == canonical && open.section == file.section);
        if already_open {
            let chain: Vec<&str> = self.open_files.iter().map(|open| open.shown.as_str()).collect();
            return Err(ConfigError::IncludeCycle {
                origin: referenced_at.unwrap_or(Origin::File { path: file.path.clone(), line: 1 }),
                path: file.path.clone(),
                chain: format!("{} -> {shown}", chain.join(" -> ")),
            });
        }
        self.open_files.push(OpenFile { canonical, section: file.section.clone(), shown });
        if self.first_file_name.is_none() {
            self.first_file_name = Some(crate::expand::file_stem(&file.absolute));
        }
        self.expander.enter_file(file);
        Ok(())
    }

    fn add_file_option(
        &mut self,
        def: &'static OptionDef,
        key: &str,
        value: Option<String>,
        origin: Origin,
        file: &FileContext,
    ) -> Result<(), ConfigError> {
        let value = match (def.kind, value) {
            // uWSGI: a bare flag line and an empty flag value both mean true.
            (OptionKind::Flag, None) => "true".to_owned(),
            (OptionKind::Flag, Some(value)) if value.is_empty() => "true".to_owned(),
            (OptionKind::OptionalValue { default }, None) => default.to_owned(),
            (OptionKind::OptionalValue { default }, Some(value)) if value.is_empty() => default.to_owned(),
            (OptionKind::Scalar | OptionKind::List, None) => {
                return Err(ConfigError::MissingValue { origin, name: key.to_owned() })
            }
            (OptionKind::Scalar | OptionKind::List, Some(value)) if value.is_empty() => {
                return Err(ConfigError::MissingValue { origin, name: key.to_owned() })
            }
            (_, Some(value)) => value,
        };
        let value = self.expander.expand(&value, Some(file), &origin, unknown_references(def))?;
        self.add_option(def, value, origin, Some(file))
    }

    /// An ini key that is no option: a placeholder if something refers to it later (checked in `finish`).
    fn add_placeholder_key(
        &mut self,
        name: &str,
        value: Option<String>,
        origin: Origin,
        file: &FileContext,
    ) -> Result<(), ConfigError> {
        let value = match value {
            Some(value) => self.expander.expand(&value, Some(file), &origin, UnknownReferences::Reject)?,
            None => "true".to_owned(),
        };
        self.expander.record(name, &value);
        self.undeclared_placeholders.push((name.to_owned(), origin.clone()));
        self.push("set-placeholder", format!("{name}={value}"), origin);
        Ok(())
    }

    /// Records an expanded option and acts on the options that shape reading itself.
    fn add_option(
        &mut self,
        def: &'static OptionDef,
        value: String,
        origin: Origin,
        including_file: Option<&FileContext>,
    ) -> Result<(), ConfigError> {
        match def.id {
            OptionId::SetPlaceholder => {
                let (name, placeholder_value) = split_placeholder(&value, &origin)?;
                self.expander.record(name, placeholder_value);
            }
            _ => self.expander.record(def.name, &value),
        }
        if def.id == OptionId::Strict {
            // uWSGI's rule for flags: anything but false/off/no/0 is true.
            self.strict = !matches!(value.to_ascii_lowercase().as_str(), "false" | "off" | "no" | "0");
        }
        self.push(def.name, value.clone(), origin.clone());
        match def.id {
            OptionId::Ini => self.include(&value, Some(origin), including_file)?,
            OptionId::Include => {
                let (file, _section) = ini::split_spec(&value);
                let extension =
                    Path::new(file).extension().and_then(|ext| ext.to_str()).unwrap_or("").to_ascii_lowercase();
                if matches!(extension.as_str(), "xml" | "yml" | "yaml" | "json" | "js" | "toml") {
                    return Err(ConfigError::InvalidValue {
                        origin,
                        name: "include".to_owned(),
                        value,
                        reason: format!("liege reads ini files only, not .{extension}: convert it to ini"),
                    });
                }
                self.include(&value, Some(origin), including_file)?
            }
            // --- Python plugin options (py) ---
            OptionId::IniPaste | OptionId::IniPasteLogged => self.ini_paste(def, &value, origin, including_file)?,
            // --- end Python plugin options ---
            _ => {}
        }
        Ok(())
    }

    /// `ini-paste = FILE` (uWSGI's `uwsgi_opt_ini_paste`): FILE's `[uwsgi]` section is read in place, as by
    /// `ini`, then FILE itself becomes the paste app, `paste = config:<absolute FILE>`, set after what the
    /// file said (so it wins over a `paste` line inside it, as in uWSGI); `ini-paste-logged` adds
    /// `paste-logger`.
    fn ini_paste(
        &mut self,
        def: &'static OptionDef,
        value: &str,
        origin: Origin,
        including_file: Option<&FileContext>,
    ) -> Result<(), ConfigError> {
        let (file, _section) = ini::split_spec(value);
        if file.is_empty() {
            return Err(ConfigError::InvalidValue {
                origin,
                name: def.name.to_owned(),
                value: value.to_owned(),
                reason: "expected the path of a paste config file".to_owned(),
            });
        }
        let path = match including_file {
            Some(including) => ini::resolve_include(file, Some(&including.path), &self.cwd),
            None => PathBuf::from(file),
        };
        self.include(value, Some(origin.clone()), including_file)?;
        let absolute = if path.is_absolute() { path } else { self.cwd.join(path) };
        let paste = format!("config:{}", absolute.display());
        self.expander.record("paste", &paste);
        self.push("paste", paste, origin.clone());
        if def.id == OptionId::IniPasteLogged {
            self.expander.record("paste-logger", "true");
            self.push("paste-logger", "true".to_owned(), origin);
        }
        Ok(())
    }

    /// Reads the file named by `--ini`, a bare argument or an `ini =` line inside `including_file`.
    ///
    /// On the command line a relative name is relative to the current directory (and error messages show it
    /// as given); inside a file it is resolved by [`ini::resolve_include`]. A spec that is only `:section`
    /// reads another section of the including (or, on the command line, the previous) file, as in uWSGI.
    fn include(
        &mut self,
        spec: &str,
        referenced_at: Option<Origin>,
        including_file: Option<&FileContext>,
    ) -> Result<(), ConfigError> {
        let (file, section) = ini::split_spec(spec);
        if !file.is_empty() {
            let path = match including_file {
                Some(including) => ini::resolve_include(file, Some(&including.path), &self.cwd),
                None => PathBuf::from(file),
            };
            return self.read_file(&path, file, section, referenced_at);
        }
        let same_file = match including_file {
            Some(including) => Some((including.path.clone(), including.given.clone())),
            None => self.last_file.clone(),
        };
        let Some((path, given)) = same_file else {
            return Err(ConfigError::InvalidValue {
                origin: referenced_at.unwrap_or(Origin::CommandLine { index: 0 }),
                name: "ini".to_owned(),
                value: spec.to_owned(),
                reason: "':section' means another section of the previous file, and no file was read yet".to_owned(),
            });
        };
        self.read_file(&path, &given, section, referenced_at)
    }

    fn push(&mut self, key: &'static str, value: String, origin: Origin) {
        self.raw.push(RawOption { key: key.to_owned(), value, origin });
    }
}

fn unknown_references(def: &OptionDef) -> UnknownReferences {
    if def.keeps_unknown_references() {
        UnknownReferences::Keep
    } else {
        UnknownReferences::Reject
    }
}

/// Splits `name=value` of `set-placeholder`; a name that is an option is refused, as uWSGI does, since
/// `%(name)` would be ambiguous.
fn split_placeholder<'v>(value: &'v str, origin: &Origin) -> Result<(&'v str, &'v str), ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidValue {
        origin: origin.clone(),
        name: "set-placeholder".to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let (name, placeholder_value) = value.split_once('=').ok_or_else(|| invalid("expected NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid("the placeholder name before '=' is empty"));
    }
    if options::lookup_long(name).is_some() {
        return Err(invalid("this name is an option; a placeholder needs a name of its own"));
    }
    Ok((name, placeholder_value.trim()))
}
