//! A process-shared, robust mutex living in the cache's shared memory.
//!
//! Why a robust pthread mutex rather than a spinlock or a seqlock: workers are killed at any instant
//! (harakiri, `reload-on-rss`, the OOM killer, `kill -9` by an operator). With a plain lock, a worker dying
//! inside a cache update leaves the lock held forever and wedges every other worker. A seqlock avoids that
//! for readers, but writers still need mutual exclusion, and a dead writer's half-done update must still be
//! repaired. A robust mutex gives both in one mechanism: the kernel (through the robust futex list glibc
//! registers for every thread, re-registered in a forked child) releases the lock of a thread that dies
//! holding it, and the next locker is told so ([`Locked::Recovered`], from `EOWNERDEAD`) so it can repair
//! the data before calling `pthread_mutex_consistent`. The store is designed so that repair is always
//! possible from the slots alone (see `store.rs`).

use std::cell::UnsafeCell;

/// The mutex itself; `#[repr(C)]` placed inside the shared mapping, initialised once by the creator.
#[repr(C)]
pub struct RobustMutex {
    inner: UnsafeCell<libc::pthread_mutex_t>,
}

/// How the lock was taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Locked {
    /// The previous holder released it normally.
    Clean,
    /// The previous holder died holding it: the protected data may be half-updated and must be repaired
    /// before [`RobustMutex::mark_consistent`].
    Recovered,
}

#[derive(Debug, thiserror::Error)]
#[error("cache lock: {0}")]
pub struct LockError(std::io::Error);

impl RobustMutex {
    /// Initialises the mutex in place (process-shared, robust).
    ///
    /// # Safety
    /// `this` must point to writable memory for a `RobustMutex` that no other process or thread uses yet.
    pub unsafe fn init(this: *mut RobustMutex) -> Result<(), LockError> {
        let check =
            |code: i32| if code == 0 { Ok(()) } else { Err(LockError(std::io::Error::from_raw_os_error(code))) };
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: standard initialisation sequence of a mutex attribute, then of the mutex at `this`, which
        // the caller guarantees is ours alone.
        unsafe {
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
            let result = check(libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED))
                .and_then(|()| check(libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST)))
                .and_then(|()| check(libc::pthread_mutex_init((*this).inner.get(), attr.as_ptr())));
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            result
        }
    }

    /// Takes the lock, waiting if needed.
    pub fn lock(&self) -> Result<Locked, LockError> {
        // SAFETY: the mutex was initialised by `init` before the mapping was shared.
        match unsafe { libc::pthread_mutex_lock(self.inner.get()) } {
            0 => Ok(Locked::Clean),
            libc::EOWNERDEAD => Ok(Locked::Recovered),
            code => Err(LockError(std::io::Error::from_raw_os_error(code))),
        }
    }

    /// After a [`Locked::Recovered`] and the repair: the mutex is usable again.
    pub fn mark_consistent(&self) {
        // SAFETY: called by the current holder after EOWNERDEAD, as POSIX requires.
        unsafe { libc::pthread_mutex_consistent(self.inner.get()) };
    }

    pub fn unlock(&self) {
        // SAFETY: only called by the holder (the store's guard unlocks exactly once).
        unsafe { libc::pthread_mutex_unlock(self.inner.get()) };
    }
}
