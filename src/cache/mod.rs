//! uWSGI's caching framework (`cache2`, `cache`): named key/value caches in shared memory that every worker
//! of a vassal reads and writes, used from Python through `uwsgi.cache_get`, `cache_set` and friends.
//!
//! The master creates the caches ([`install`]) before it loads the app and forks, so they are inherited by
//! every worker (and seen by code that runs at import time in the master, as in uWSGI). A reload re-executes
//! the master, which starts with empty caches, as uWSGI does without `cache-store`.
//!
//! [`store`] holds the data structure and explains why it survives a worker killed mid-update; [`lock`] the
//! robust process-shared mutex that makes that possible.

pub mod lock;
pub mod store;

use std::sync::OnceLock;

use liege_config::CacheSpec;
pub use store::{CacheStats, MathOp, SetError, Store, Write};

static CACHES: OnceLock<Vec<Store>> = OnceLock::new();

/// Creates the vassal's caches (once per process; the master calls it before forking).
pub fn install(specs: &[CacheSpec]) -> Result<(), store::CreateError> {
    if specs.is_empty() || CACHES.get().is_some() {
        return Ok(());
    }
    let mut stores = Vec::with_capacity(specs.len());
    for spec in specs {
        let store = Store::create(spec)?;
        tracing::info!(
            "cache '{}': {} items of up to {} bytes (keys up to {} bytes)",
            spec.name,
            spec.items,
            spec.blocksize,
            spec.keysize
        );
        stores.push(store);
    }
    let _ = CACHES.set(stores);
    Ok(())
}

/// Every cache, in configuration order.
pub fn all() -> &'static [Store] {
    CACHES.get().map_or(&[], Vec::as_slice)
}

/// The cache named `name`, or the first one for `None`, as uWSGI's `uwsgi_cache_by_name(NULL)`.
pub fn by_name(name: Option<&str>) -> Option<&'static Store> {
    let caches = all();
    match name {
        None => caches.first(),
        Some(name) => caches.iter().find(|store| store.name == name),
    }
}

/// Seconds since the epoch, the unit of cache expiry.
pub fn now() -> u64 {
    crate::process::unix_now()
}
