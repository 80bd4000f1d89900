//! Which program runs a liege process image, and on which Python.
//!
//! liege comes in two builds (see `docs/python.md`): the **binary** embeds the CPython it was linked against
//! and starts it itself (`python::interpreter`), and the **extension module** (`pip install`, the
//! `liege-py` crate) is loaded by an interpreter that is already running (`PYTHON -c <bootstrap>`). Each
//! vassal runs on the interpreter of its own environment: `python = PATH`, else its `virtualenv`'s
//! `bin/python`, else the one liege itself runs on. [`choose`] makes that decision from the configuration
//! alone (no I/O but reading `pyvenv.cfg` and checking that files exist), so it is unit-tested here; the
//! emperor, the command line and the master's re-exec all start the next image through [`Program`].
//!
//! This module sits at the bottom (it uses nothing of the crate): the emperor, which must stay free of
//! Python, and the master both use it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `major.minor` of the CPython this build was compiled for: the embedded one (binary), or the one the
/// extension module's ABI is for (the wheel's tag).
pub const BUILD_PYTHON_VERSION: &str = env!("LIEGE_PYTHON_VERSION");

/// Set in a vassal started through [`Program::Python`] (and by the master's re-exec): the interpreter was
/// already chosen, so the command line must not choose again (a wrapper script's path never equals the
/// `sys.executable` it reports, which would otherwise loop).
pub const CHOSEN_ENV: &str = "LIEGE_INTERPRETER_CHOSEN";

/// The interpreter that loaded the extension module (`sys.executable`), when this process runs hosted.
static HOSTED: OnceLock<Hosted> = OnceLock::new();

/// What the extension module's entry point records before anything else runs.
#[derive(Debug, Clone)]
pub struct Hosted {
    /// `sys.executable`: not resolved, so a virtualenv's `bin/python` symlink keeps its virtualenv.
    pub executable: PathBuf,
    /// `major.minor` of the running interpreter.
    pub version: String,
}

/// Records that this process runs inside an interpreter that loaded liege as an extension module. Called
/// once, by the extension's `main`, before the command line is read; later calls are ignored.
pub fn set_hosted(hosted: Hosted) {
    let _ = HOSTED.set(hosted);
}

/// The running interpreter, if liege was loaded as an extension module (`None` in the binary).
pub fn hosted() -> Option<&'static Hosted> {
    HOSTED.get()
}

/// A way to start a liege process image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// The liege binary with its embedded Python (`liege vassal ...`).
    Binary(PathBuf),
    /// An interpreter that imports liege's extension module (`PYTHON -c <bootstrap> vassal ...`).
    Python(PathBuf),
}

impl Program {
    /// The program of this very process: the binary, or (hosted) the interpreter that runs it.
    pub fn current() -> std::io::Result<Program> {
        match hosted() {
            Some(hosted) => Ok(Program::Python(hosted.executable.clone())),
            None => std::env::current_exe().map(Program::Binary),
        }
    }

    /// The executable and the arguments that come before liege's own.
    pub fn command_line(&self) -> (PathBuf, Vec<OsString>) {
        match self {
            Program::Binary(exe) => (exe.clone(), Vec::new()),
            Program::Python(python) => (python.clone(), vec!["-c".into(), bootstrap().into()]),
        }
    }

    /// The interpreter, for messages.
    pub fn describe(&self) -> String {
        match self {
            Program::Binary(exe) => format!("{} (embedded Python {BUILD_PYTHON_VERSION})", exe.display()),
            Program::Python(python) => python.display().to_string(),
        }
    }
}

/// The script an interpreter runs to become a liege process: import the runtime or say exactly what is
/// missing and how to install it, check it is the same liege as the one starting it (the emperor ⇄ vassal
/// channel is versioned with liege), then hand over the arguments. Exit status 78 (EX_CONFIG) for both
/// errors: retrying cannot help until someone installs something.
pub fn bootstrap() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        r#"import sys
v = "%d.%d" % sys.version_info[:2]
try:
    from liege import _liege
except ImportError as err:
    sys.stderr.write(
        "liege: the vassal's Python " + v + " (" + sys.executable + ") has no liege runtime (" + str(err) + "); "
        "liege {version} runs on Python {built} here. Fix: " + sys.executable + " -m pip install liege=={version} "
        "(or the liege wheel built for Python " + v + "), or point `python =`/`virtualenv =` at an environment "
        "that has it\n")
    raise SystemExit(78)
if _liege.__version__ != "{version}":
    sys.stderr.write(
        "liege: the vassal's Python " + v + " (" + sys.executable + ") has liege " + _liege.__version__ + ", "
        "but liege {version} starts it. Fix: " + sys.executable + " -m pip install liege=={version}\n")
    raise SystemExit(78)
raise SystemExit(_liege.main(sys.argv[1:]))
"#,
        built = BUILD_PYTHON_VERSION,
    )
}

/// Why no program could be chosen for a vassal (reported as the vassal's error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("python = {0}: no such interpreter")]
    NoInterpreter(PathBuf),
    #[error("virtualenv '{0}' has no bin/python (make it with: python3 -m venv {0})")]
    NoVirtualenvPython(PathBuf),
}

/// The Python a `virtualenv` was made with (`major.minor` from its `pyvenv.cfg`), if it says.
pub fn venv_version(venv: &Path) -> Option<String> {
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).ok()?;
    let full = cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_owned())
    })?;
    Some(major_minor(&full))
}

/// `3.13.5` -> `3.13`.
pub fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The program that runs a vassal with these options, given the program of this process.
///
/// - `python = PATH` wins: that interpreter (a vassal that also names a `virtualenv` of another Python is
///   refused by the vassal itself, which knows its own version; see `python::interpreter`).
/// - `virtualenv = DIR`: the binary when DIR was made for its embedded Python (as liege always did), else
///   `DIR/bin/python`, which puts the environment's `sys.prefix` and site-packages in place exactly as
///   running it by hand does.
/// - neither: this process's own program.
pub fn choose(python: Option<&Path>, virtualenv: Option<&Path>, current: &Program) -> Result<Program, ChoiceError> {
    if let Some(python) = python {
        if !python.exists() {
            return Err(ChoiceError::NoInterpreter(python.to_owned()));
        }
        return Ok(Program::Python(python.to_owned()));
    }
    if let Some(venv) = virtualenv {
        let venv_python = venv.join("bin").join("python");
        if !venv_python.exists() {
            return Err(ChoiceError::NoVirtualenvPython(venv.to_owned()));
        }
        return Ok(match current {
            Program::Binary(_) if venv_version(venv).is_none_or(|found| found == BUILD_PYTHON_VERSION) => {
                current.clone()
            }
            Program::Python(running) if running == &venv_python => current.clone(),
            _ => Program::Python(venv_python),
        });
    }
    Ok(current.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venv(dir: &Path, version: &str) -> PathBuf {
        let venv = dir.join(format!("venv{version}"));
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/python"), "").unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), format!("home = /usr/bin\nversion = {version}.2\n")).unwrap();
        venv
    }

    #[test]
    fn python_option_wins_over_everything() {
        let dir = tempfile::tempdir().unwrap();
        let other = venv(dir.path(), "3.99");
        let python = dir.path().join("python3.99");
        std::fs::write(&python, "").unwrap();
        let binary = Program::Binary("/usr/bin/liege".into());
        assert_eq!(choose(Some(&python), Some(&other), &binary), Ok(Program::Python(python.clone())));
        let missing = dir.path().join("nope");
        assert_eq!(choose(Some(&missing), None, &binary), Err(ChoiceError::NoInterpreter(missing)));
    }

    #[test]
    fn binary_keeps_a_virtualenv_of_its_own_python_and_hands_others_to_their_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        let binary = Program::Binary("/usr/bin/liege".into());
        let same = venv(dir.path(), BUILD_PYTHON_VERSION);
        assert_eq!(choose(None, Some(&same), &binary), Ok(binary.clone()));
        let other = venv(dir.path(), "3.99");
        assert_eq!(choose(None, Some(&other), &binary), Ok(Program::Python(other.join("bin/python"))));
        assert_eq!(choose(None, None, &binary), Ok(binary.clone()));
        let empty = dir.path().join("empty");
        assert_eq!(choose(None, Some(&empty), &binary), Err(ChoiceError::NoVirtualenvPython(empty)));
    }

    #[test]
    fn hosted_runs_each_virtualenv_on_its_own_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        let own = venv(dir.path(), "3.98");
        let hosted = Program::Python(own.join("bin/python"));
        assert_eq!(choose(None, Some(&own), &hosted), Ok(hosted.clone()));
        let same_version = venv(dir.path(), BUILD_PYTHON_VERSION);
        assert_eq!(choose(None, Some(&same_version), &hosted), Ok(Program::Python(same_version.join("bin/python"))));
        assert_eq!(choose(None, None, &hosted), Ok(hosted.clone()));
    }

    #[test]
    fn bootstrap_names_the_fix_and_both_versions() {
        let script = bootstrap();
        assert!(script.contains("-m pip install liege=="));
        assert!(script.contains(&format!("runs on Python {BUILD_PYTHON_VERSION}")));
        assert!(script.contains("_liege.main(sys.argv[1:])"));
    }

    #[test]
    fn venv_version_reads_major_minor() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(venv_version(&venv(dir.path(), "3.13")), Some("3.13".into()));
        assert_eq!(venv_version(dir.path()), None);
        assert_eq!(major_minor("3.11.2"), "3.11");
    }
}
