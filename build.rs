//! Links against the shared libpython that `PYO3_PYTHON` (or `python3`) names and embeds its directory as an
//! rpath, so `liege` runs without `LD_LIBRARY_PATH` (pyenv and other non-system Pythons live outside the
//! loader's default search path). `LIEGE_NO_RPATH=1` leaves the rpath out: a distribution package links the
//! system's libpython, which the loader finds by itself, from a build root the rpath must not name
//! (`packaging/build-deb`). Also records that interpreter's path: without a virtualenv, liege gives it to
//! CPython as `sys.executable`, so `sys.prefix` is found exactly as `python3` finds it.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    if std::env::var_os("LIEGE_NO_RPATH").is_none_or(|value| value.is_empty() || value == "0") {
        pyo3_build_config::add_libpython_rpath_link_args();
    }
    println!("cargo:rerun-if-env-changed=LIEGE_NO_RPATH");
    let config = pyo3_build_config::get();
    let executable = config.executable().unwrap_or_default();
    println!("cargo:rustc-env=LIEGE_PYTHON_EXECUTABLE={executable}");
    println!("cargo:rustc-env=LIEGE_PYTHON_VERSION={}.{}", config.version().major, config.version().minor);
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    embed_web_assets();
}

/// Embeds every file under `web/` (the dashboard) into the binary, so the emperor serves it offline and from
/// any working directory: writes `$OUT_DIR/web_assets.rs`, a table of `(relative path, bytes)`.
fn embed_web_assets() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect_files(&root, &root, &mut files);
    files.sort();
    let mut table = String::from("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (relative, absolute) in &files {
        println!("cargo:rerun-if-changed={}", absolute.display());
        table.push_str(&format!("    ({relative:?}, include_bytes!({:?})),\n", absolute.display().to_string()));
    }
    table.push_str("];\n");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("web_assets.rs");
    std::fs::write(out, table).expect("write web_assets.rs");
}

fn collect_files(root: &std::path::Path, dir: &std::path::Path, files: &mut Vec<(String, std::path::PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_files(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            files.push((relative.to_string_lossy().into_owned(), path));
        }
    }
}
