//! Links against the shared libpython that `PYO3_PYTHON` (or `python3`) names and embeds its directory as an
//! rpath, so `liege` runs without `LD_LIBRARY_PATH` (pyenv and other non-system Pythons live outside the
//! loader's default search path). Also records that interpreter's path: without a virtualenv, liege gives it to
//! CPython as `sys.executable`, so `sys.prefix` is found exactly as `python3` finds it.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    pyo3_build_config::add_libpython_rpath_link_args();
    let config = pyo3_build_config::get();
    let executable = config.executable().unwrap_or_default();
    println!("cargo:rustc-env=LIEGE_PYTHON_EXECUTABLE={executable}");
    println!("cargo:rustc-env=LIEGE_PYTHON_VERSION={}.{}", config.version().major, config.version().minor);
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
