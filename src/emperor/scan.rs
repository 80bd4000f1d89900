//! The vassal directory as it really is: a listing of `*.ini` files and each file's identity.
//!
//! File-system events only tell the emperor *when* to look; what it finds here is the truth. Editors save by
//! writing a temporary file and renaming it over the old one, `mv` into the directory produces no create
//! event, and inotify drops events when its queue overflows: comparing listings is the only robust way.
//!
//! A vassal's identity is `(device, inode, size, mtime_ns, ctime_ns)` of its file, symlinks followed. Any
//! change means "reload", with one exception that makes Kubernetes ConfigMaps work: there every file is a
//! symlink through a `..data` symlink that is swapped atomically to a new directory, so *every* file gets a
//! new inode at each update. When a symlinked file now resolves to a different target, the content decides:
//! same bytes, no reload. A `touch` of the file (same target) still reloads, as in uWSGI.

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What identifies one version of a vassal file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> Self {
        FileIdentity {
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.size(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec()),
            ctime_ns: i128::from(metadata.ctime()) * 1_000_000_000 + i128::from(metadata.ctime_nsec()),
        }
    }
}

/// One `NAME.ini` entry of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// The vassal's name: the file name without `.ini` (uWSGI's `%n`).
    pub name: String,
    /// `DIR/NAME.ini`, as listed (not resolved: `%n` and `%p` of a symlink keep the link's name).
    pub path: PathBuf,
    /// The identity, or why the entry cannot be a vassal (a directory, a dangling link, unreadable).
    pub identity: Result<FileIdentity, String>,
    /// Where a symlink resolves to (`None` for a regular file).
    pub target: Option<PathBuf>,
}

/// Lists the vassal files of `dir`: `*.ini`, not hidden (editors' swap files, ConfigMaps' `..data`), sorted
/// by name.
pub fn scan(dir: &Path) -> io::Result<BTreeMap<String, ScannedFile>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            tracing::debug!("ignoring a file name that is not UTF-8 in {}", dir.display());
            continue;
        };
        let Some(name) = vassal_name(file_name) else {
            continue;
        };
        let path = entry.path();
        files.insert(name.to_owned(), describe(name, path));
    }
    Ok(files)
}

/// The vassal files matching uWSGI's glob monitor pattern (`/etc/uwsgi/vassals/*/*.ini`, or one file): the
/// `*.ini` matches. A vassal is named by its file (`shop.ini` → `shop`) when that name is unique among the
/// matches; `apps/shop/uwsgi.ini` and `apps/blog/uwsgi.ini` (a common layout) become `apps-shop-uwsgi` and
/// `apps-blog-uwsgi`, their paths under `base` (the pattern's fixed directory). uWSGI names glob vassals by
/// their whole path, which cannot be a name in API paths and log file names.
pub fn scan_glob(pattern: &str, base: &Path) -> io::Result<BTreeMap<String, ScannedFile>> {
    let paths = glob::glob(pattern).map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err.to_string()))?;
    let mut matches = Vec::new();
    for path in paths {
        // A directory the walk cannot read hides what is in it, never the rest.
        match path {
            Ok(path) => {
                if let Some(stem) = path.file_name().and_then(|name| name.to_str()).and_then(vassal_name) {
                    matches.push((stem.to_owned(), path));
                }
            }
            Err(err) => tracing::debug!("vassal glob {pattern}: {err}"),
        }
    }
    let mut stems: BTreeMap<&str, usize> = BTreeMap::new();
    for (stem, _) in &matches {
        *stems.entry(stem.as_str()).or_default() += 1;
    }
    let mut files = BTreeMap::new();
    for (stem, path) in &matches {
        let name = if stems.get(stem.as_str()) == Some(&1) {
            stem.clone()
        } else {
            let relative = path.strip_prefix(base).unwrap_or(path).with_extension("");
            let parts: Vec<String> = relative
                .components()
                .filter_map(|part| match part {
                    std::path::Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect();
            parts.join("-")
        };
        files.insert(name.clone(), describe(&name, path.clone()));
    }
    Ok(files)
}

/// `app.ini` → `app`; hidden files and anything else → `None`.
pub fn vassal_name(file_name: &str) -> Option<&str> {
    if file_name.starts_with('.') {
        return None;
    }
    file_name.strip_suffix(".ini").filter(|stem| !stem.is_empty())
}

fn describe(name: &str, path: PathBuf) -> ScannedFile {
    let is_link = std::fs::symlink_metadata(&path).map(|m| m.file_type().is_symlink()).unwrap_or(false);
    let target = if is_link { std::fs::canonicalize(&path).ok() } else { None };
    let identity = match std::fs::metadata(&path) {
        Ok(metadata) if metadata.is_dir() => Err(format!("{} is a directory, not a vassal file", path.display())),
        Ok(metadata) if !metadata.is_file() => Err(format!("{} is not a regular file", path.display())),
        // access(2), not open(2): an open would be reported by inotify and wake the emperor again.
        Ok(metadata) => match nix::unistd::access(&path, nix::unistd::AccessFlags::R_OK) {
            Ok(()) => Ok(FileIdentity::of(&metadata)),
            Err(err) => Err(format!("cannot read {}: {}", path.display(), std::io::Error::from(err))),
        },
        Err(err) if is_link => Err(format!("{} is a symlink to nothing readable: {err}", path.display())),
        Err(err) => Err(format!("cannot read {}: {err}", path.display())),
    };
    ScannedFile { name: name.to_owned(), path, identity, target }
}

/// What the emperor last acted on for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownVersion {
    pub identity: Result<FileIdentity, String>,
    pub target: Option<PathBuf>,
    /// Hash of the content, read only when needed to tell a ConfigMap swap from a change.
    pub content_hash: Option<u64>,
}

impl KnownVersion {
    pub fn of(file: &ScannedFile) -> Self {
        KnownVersion {
            identity: file.identity.clone(),
            target: file.target.clone(),
            content_hash: content_hash(&file.path),
        }
    }
}

/// What a rescan means for a vassal already known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    /// A different version: reload (or start, if the previous one was unusable).
    Changed(KnownVersion),
    /// The same content behind a new symlink target (a ConfigMap update that did not touch this file):
    /// remember the new identity, do nothing else.
    Relinked(KnownVersion),
}

/// Compares a fresh listing entry with the version last acted on.
pub fn compare(known: &KnownVersion, file: &ScannedFile) -> Change {
    if known.identity == file.identity && known.target == file.target {
        return Change::Unchanged;
    }
    let new = KnownVersion::of(file);
    let retargeted = known.target.is_some() && file.target.is_some() && known.target != file.target;
    if retargeted
        && known.identity.is_ok()
        && file.identity.is_ok()
        && known.content_hash.is_some()
        && known.content_hash == new.content_hash
    {
        return Change::Relinked(new);
    }
    Change::Changed(new)
}

fn content_hash(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    // FNV-1a: stable, no keys, plenty for telling two small config files apart.
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    hasher.write(&bytes);
    Some(hasher.finish())
}

struct Fnv1a(u64);

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn lists_only_visible_ini_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["a.ini", ".hidden.ini", "b.ini~", "c.ini.swp", "notes.txt", ".ini", "4913"] {
            std::fs::write(dir.path().join(name), "[uwsgi]\n").expect("write");
        }
        std::fs::create_dir(dir.path().join("d.ini")).expect("mkdir");
        let files = scan(dir.path()).expect("scan");
        assert_eq!(files.keys().collect::<Vec<_>>(), ["a", "d"]);
        assert!(files["a"].identity.is_ok());
        assert!(files["d"].identity.as_ref().unwrap_err().contains("is a directory"));
    }

    #[test]
    fn a_glob_lists_matching_ini_files_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["a", "b", "c"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        for file in ["a/shop.ini", "b/blog.ini", "b/notes.txt", "c/shop.ini", "b/.hidden.ini"] {
            std::fs::write(dir.path().join(file), "[uwsgi]\n").expect("write");
        }
        let pattern = format!("{}/*/*.ini", dir.path().display());
        let files = scan_glob(&pattern, dir.path()).expect("glob");
        assert_eq!(files.keys().collect::<Vec<_>>(), ["a-shop", "blog", "c-shop"]);
        assert_eq!(files["a-shop"].path, dir.path().join("a/shop.ini"));
        let one = scan_glob(&format!("{}/b/blog.ini", dir.path().display()), dir.path()).expect("one file");
        assert_eq!(one.keys().collect::<Vec<_>>(), ["blog"]);
        assert!(scan_glob(&format!("{}/b/gone.ini", dir.path().display()), dir.path()).expect("none").is_empty());
    }

    #[test]
    fn touch_and_rename_are_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.ini");
        std::fs::write(&path, "[uwsgi]\n").expect("write");
        let known = KnownVersion::of(&scan(dir.path()).expect("scan")["a"]);
        // Same content, new inode (an editor's rename-save).
        let tmp = dir.path().join(".a.ini.tmp");
        std::fs::write(&tmp, "[uwsgi]\n").expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
        let file = scan(dir.path()).expect("scan")["a"].clone();
        assert!(matches!(compare(&known, &file), Change::Changed(_)));
        let known = KnownVersion::of(&file);
        assert_eq!(compare(&known, &file), Change::Unchanged);
    }

    #[test]
    fn configmap_swap_reloads_only_changed_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let v1 = root.join("..v1");
        std::fs::create_dir(&v1).expect("mkdir");
        std::fs::write(v1.join("a.ini"), "[uwsgi]\nprocesses = 1\n").expect("write");
        std::fs::write(v1.join("b.ini"), "[uwsgi]\nprocesses = 1\n").expect("write");
        symlink("..v1", root.join("..data")).expect("symlink");
        symlink("..data/a.ini", root.join("a.ini")).expect("symlink");
        symlink("..data/b.ini", root.join("b.ini")).expect("symlink");
        let first = scan(root).expect("scan");
        let known_a = KnownVersion::of(&first["a"]);
        let known_b = KnownVersion::of(&first["b"]);

        let v2 = root.join("..v2");
        std::fs::create_dir(&v2).expect("mkdir");
        std::fs::write(v2.join("a.ini"), "[uwsgi]\nprocesses = 1\n").expect("write");
        std::fs::write(v2.join("b.ini"), "[uwsgi]\nprocesses = 2\n").expect("write");
        symlink("..v2", root.join("..data.tmp")).expect("symlink");
        std::fs::rename(root.join("..data.tmp"), root.join("..data")).expect("swap");
        let second = scan(root).expect("scan");
        assert!(matches!(compare(&known_a, &second["a"]), Change::Relinked(_)));
        assert!(matches!(compare(&known_b, &second["b"]), Change::Changed(_)));
    }
}
