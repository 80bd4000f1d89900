//! Spool files and the spoolers' shared table: what workers (through `uwsgi.spool`) and spooler processes
//! (`master::spooler`) share, in uWSGI's format (core/spooler.c).
//!
//! - A **spool file** is a uwsgi packet: a 4-byte header (modifier1 17, the size of the arguments as a
//!   little-endian u16, modifier2 0), the arguments as a uwsgi dict (for each pair a u16 LE length and the key,
//!   a u16 LE length and the value), then the optional body, to the end of the file. It is named as uWSGI
//!   names it, `uwsgi_spoolfile_on_HOST_PID_COUNTER_RAND_SEC_USEC`, in the spooler's directory or, with a
//!   `priority`, in its numbered subdirectory. uWSGI writes it under its final name holding an fcntl lock;
//!   liege writes a hidden temporary file and renames it, so a spooler never sees a half-written task. An
//!   `at` argument (unix time) becomes the file's modification time: a spooler skips files from the future.
//! - The **table** ([`SpoolBoard`]) is one `MAP_SHARED` anonymous mapping created by the master before it
//!   forks anything: a slot per spooler process (its pid, whether it runs a task, its tasks, its respawns,
//!   its harakiri deadline) and the frequency `uwsgi.set_spooler_frequency` sets. Workers read it to wake the
//!   spoolers of a directory (SIGUSR1) and for `uwsgi.spooler_pids()`; the master for the stats and harakiri.

pub mod file;

use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

/// One spooler process's shared slot.
#[repr(C)]
pub struct SpoolerSlot {
    /// 0 when not running.
    pub pid: AtomicI32,
    /// 1 while a task runs (uWSGI's `running`: a busy spooler is not woken).
    pub running: AtomicU32,
    /// Tasks run by the current process (reset when one starts).
    pub tasks: AtomicU64,
    /// Starts after the first.
    pub respawns: AtomicU64,
    /// Unix seconds after which the running task is killed (`spooler-harakiri`); 0 = none.
    pub harakiri_at: AtomicI64,
}

#[repr(C)]
struct Header {
    /// `uwsgi.set_spooler_frequency`: seconds, 0 = the configured `spooler-frequency`.
    frequency: AtomicU64,
}

/// A spooler directory with its real path.
#[derive(Debug, Clone)]
pub struct Dir {
    /// The real path (uWSGI resolves it with realpath; `spooler=` arguments are compared with it).
    pub path: PathBuf,
    /// As configured, also accepted as a `spooler=` argument.
    pub configured: PathBuf,
    pub external: bool,
}

/// The spoolers of this vassal: their directories and the shared table.
pub struct SpoolBoard {
    dirs: Vec<Dir>,
    /// Slot `i` belongs to directory `slot_dirs[i]`.
    slot_dirs: Vec<usize>,
    header: NonNull<Header>,
    slots: NonNull<SpoolerSlot>,
}

// SAFETY: the mapping is shared memory accessed only through atomics; `dirs` is immutable.
unsafe impl Send for SpoolBoard {}
// SAFETY: as for Send.
unsafe impl Sync for SpoolBoard {}

static GLOBAL: OnceLock<SpoolBoard> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("spooler directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("cannot map the spoolers' table: {0}")]
    Map(nix::Error),
}

impl SpoolBoard {
    /// Creates each directory if missing (mode 0750, as uWSGI), resolves it, maps the table (slot `i` for
    /// directory `slot_dirs[i]`) and installs it as this process's (inherited by every child forked after).
    pub fn install(dirs: &[(PathBuf, bool)], slot_dirs: Vec<usize>) -> Result<&'static SpoolBoard, InstallError> {
        if let Some(existing) = GLOBAL.get() {
            return Ok(existing);
        }
        let mut resolved = Vec::new();
        for (path, external) in dirs {
            let error = |source| InstallError::Dir { path: path.clone(), source };
            if !path.is_dir() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new().mode(0o750).create(path).map_err(error)?;
            }
            let real = std::fs::canonicalize(path).map_err(error)?;
            resolved.push(Dir { path: real, configured: path.clone(), external: *external });
        }
        let bytes = std::mem::size_of::<Header>().next_multiple_of(8)
            + slot_dirs.len().max(1) * std::mem::size_of::<SpoolerSlot>();
        let length = std::num::NonZeroUsize::new(bytes).ok_or(InstallError::Map(nix::Error::EINVAL))?;
        use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
        // SAFETY: a fresh anonymous mapping; zeroed memory is a valid initial state for every atomic in it.
        let base =
            unsafe { mmap_anonymous(None, length, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED) }
                .map_err(InstallError::Map)?;
        let header = base.cast::<Header>();
        // SAFETY: the header's size rounded up to 8 is within the mapping, and page-aligned base + a multiple
        // of 8 is aligned for the slots' atomics.
        let slots = unsafe {
            NonNull::new_unchecked(base.as_ptr().cast::<u8>().add(std::mem::size_of::<Header>().next_multiple_of(8)))
        }
        .cast::<SpoolerSlot>();
        Ok(GLOBAL.get_or_init(|| SpoolBoard { dirs: resolved, slot_dirs, header, slots }))
    }

    /// The spoolers of this vassal, if it has any.
    pub fn global() -> Option<&'static SpoolBoard> {
        GLOBAL.get()
    }

    pub fn dirs(&self) -> &[Dir] {
        &self.dirs
    }

    /// Number of slots (spooler processes, external directories included as uWSGI lists them).
    pub fn len(&self) -> usize {
        self.slot_dirs.len()
    }

    pub fn slot(&self, index: usize) -> Option<&SpoolerSlot> {
        // SAFETY: bounds checked; the mapping lives as long as the process.
        (index < self.slot_dirs.len()).then(|| unsafe { &*self.slots.as_ptr().add(index) })
    }

    /// The directory of slot `index`.
    pub fn slot_dir(&self, index: usize) -> Option<&Dir> {
        self.dirs.get(*self.slot_dirs.get(index)?)
    }

    /// Every slot with its directory.
    pub fn slots(&self) -> impl Iterator<Item = (&SpoolerSlot, &Dir)> + '_ {
        (0..self.len()).filter_map(|i| Some((self.slot(i)?, self.slot_dir(i)?)))
    }

    /// `uwsgi.set_spooler_frequency`'s value (0 = none).
    pub fn frequency(&self) -> u64 {
        // SAFETY: valid for the life of the process.
        unsafe { self.header.as_ref() }.frequency.load(Relaxed)
    }

    pub fn set_frequency(&self, seconds: u64) {
        // SAFETY: valid for the life of the process.
        unsafe { self.header.as_ref() }.frequency.store(seconds, Relaxed);
    }

    /// The directory a `spooler` argument names (uWSGI's `uwsgi_get_spooler_by_name`), else the first.
    pub fn dir_named(&self, name: Option<&[u8]>) -> Option<&Dir> {
        use std::os::unix::ffi::OsStrExt;
        match name.filter(|n| !n.is_empty()) {
            None => self.dirs.first(),
            Some(name) => self
                .dirs
                .iter()
                .find(|dir| dir.path.as_os_str().as_bytes() == name || dir.configured.as_os_str().as_bytes() == name),
        }
    }

    /// Wakes the idle spoolers of `dir` (SIGUSR1), as uWSGI does after writing a task.
    pub fn wake(&self, dir: &Path) {
        for (slot, slot_dir) in self.slots() {
            let pid = slot.pid.load(Relaxed);
            if slot_dir.path == dir && pid > 0 && slot.running.load(Relaxed) == 0 {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGUSR1);
            }
        }
    }
}

/// Whose process this is: set in a spooler process right after its fork.
static I_AM: OnceLock<usize> = OnceLock::new();

/// Marks this process as the spooler of slot `index`.
pub fn set_current_spooler(index: usize) {
    let _ = I_AM.set(index);
}

/// The slot of this spooler process, if it is one.
pub fn current_spooler() -> Option<usize> {
    I_AM.get().copied()
}
