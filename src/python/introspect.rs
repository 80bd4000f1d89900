//! Looking at the running interpreter from outside a request, for two development tools of uWSGI's Python
//! plugin: the files of the loaded modules (`py-autoreload`) and the stack of every thread
//! (`py-tracebacker`). Both run on a thread of their own in the worker, each time taking the GIL briefly.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The source file of every module in `sys.modules`, except the modules named in `ignore`, as uWSGI's
/// `uwsgi_python_autoreloader_thread` finds them: a module's `__file__` if it is a string, with a compiled
/// `.pyc` / `.pyo` / `.pyd` name turned into its source name by dropping the last letter. Modules without a
/// file (built-ins, namespace packages) are skipped, and so is a module whose `__file__` cannot be read.
pub fn module_files(py: Python<'_>, ignore: &[String]) -> Vec<PathBuf> {
    // A copy: reading `__file__` may run a module's `__getattr__`, which may import and change the dict.
    let modules = match py.import("sys").and_then(|sys| sys.getattr("modules")).and_then(|m| m.call_method0("copy")) {
        Ok(modules) => modules,
        Err(_) => return Vec::new(),
    };
    let Ok(modules) = modules.cast_into::<PyDict>() else { return Vec::new() };
    let mut files = Vec::with_capacity(modules.len());
    for (name, module) in modules.iter() {
        if let Ok(name) = name.extract::<String>() {
            if ignore.contains(&name) {
                continue;
            }
        }
        let Ok(file) = module.getattr(pyo3::intern!(py, "__file__")) else { continue };
        let Ok(file) = file.extract::<String>() else { continue };
        files.push(PathBuf::from(source_name(file)));
    }
    files
}

/// Where the interpreter caches the bytecode of `source` (`__pycache__/x.cpython-311.pyc`), if it has a
/// cache for such a file.
pub fn bytecode_cache(py: Python<'_>, source: &std::path::Path) -> Option<PathBuf> {
    let util = py.import("importlib.util").ok()?;
    let cached = util.call_method1("cache_from_source", (source.to_str()?,)).ok()?;
    cached.extract::<String>().ok().map(PathBuf::from)
}

/// `x.pyc` → `x.py` (likewise `.pyo`, `.pyd`), anything else unchanged.
fn source_name(mut file: String) -> String {
    let compiled = file.rsplit_once('.').is_some_and(|(_, ext)| matches!(ext, "pyc" | "pyo" | "pyd"));
    if compiled {
        file.pop();
    }
    file
}

/// The `py-tracebacker` report (uWSGI's plugins/python/tracebacker.c, same layout): a title line, then for
/// each thread with Python frames (but the calling one) one line per frame, outermost first, and a blank
/// line.
pub fn thread_stacks(py: Python<'_>) -> PyResult<String> {
    let code = std::ffi::CString::new(include_str!("tracebacker.py"))
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("tracebacker.py contains a NUL byte"))?;
    let module = PyModule::from_code(py, &code, c"<liege tracebacker>", c"_liege_tracebacker")?;
    module.getattr("report")?.call0()?.extract()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_names_become_source_names() {
        assert_eq!(source_name("/a/b.pyc".into()), "/a/b.py");
        assert_eq!(source_name("/a/b.pyo".into()), "/a/b.py");
        assert_eq!(source_name("/a/b.pyd".into()), "/a/b.py");
        assert_eq!(source_name("/a/b.py".into()), "/a/b.py");
        assert_eq!(
            source_name("/a/_speedups.cpython-311-x86_64-linux-gnu.so".into()),
            "/a/_speedups.cpython-311-x86_64-linux-gnu.so"
        );
        assert_eq!(source_name("/a.pyc/README".into()), "/a.pyc/README");
    }
}
