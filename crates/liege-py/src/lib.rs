//! `liege._liege`: the whole of liege (command line, emperor, vassal master and workers) as a CPython
//! extension module, run by the interpreter of the app's own environment (`PYTHON -m liege`, the `liege`
//! console script, or the emperor's `PYTHON -c <bootstrap> vassal ...`). See `docs/python.md`.
//!
//! Python is initialised first here: [`main`] records the running interpreter (`liege::launch::set_hosted`)
//! so `liege::python::interpreter` adopts it instead of starting one, then runs the same command line as
//! the binary, on this thread and holding the GIL (as the embedded build holds it after initialising): the
//! master forks workers with CPython's at-fork hooks, and workers release the GIL where the embedded build
//! does. The emperor never runs Python code; no other Python thread exists for it to starve.

use std::ffi::OsString;

use pyo3::prelude::*;

/// `_liege.main(argv)`: runs liege with `argv` (without the program name) and returns its exit status.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<OsString>) -> PyResult<u8> {
    let sys = py.import("sys")?;
    let executable: std::path::PathBuf = sys.getattr("executable")?.extract()?;
    let (major, minor): (u8, u8) = sys.getattr("version_info")?.get_item(0)?.extract::<u8>().and_then(|major| {
        let minor = sys.getattr("version_info")?.get_item(1)?.extract::<u8>()?;
        Ok((major, minor))
    })?;
    liege::launch::set_hosted(liege::launch::Hosted { executable, version: format!("{major}.{minor}") });
    // Flush what Python buffered so far before liege's own output (it writes to fd 1/2 directly).
    for name in ["stdout", "stderr"] {
        let stream = sys.getattr(name)?;
        if !stream.is_none() {
            stream.call_method0("flush")?;
        }
    }
    Ok(liege::cli::run(argv))
}

#[pymodule]
fn _liege(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(main, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The Python this module was compiled for (its ABI): the wheel's tag says it too.
    module.add("PYTHON_VERSION", liege::launch::BUILD_PYTHON_VERSION)?;
    Ok(())
}
