//! uWSGI's caching framework (`cache2`, `cache`): named key/value caches in shared memory that every worker
//! of a vassal reads and writes, used from Python through `uwsgi.cache_get`, `cache_set` and friends.
//!
//! The master creates the caches ([`install`]) before it loads the app and forks, so they are inherited by
//! every worker (and seen by code that runs at import time in the master, as in uWSGI). A reload re-executes
//! the master, which starts with empty caches, as uWSGI does without `cache-store`.
//!
//! [`store`] holds the data structure and explains why it survives a worker killed mid-update; [`lock`] the
//! robust process-shared mutex that makes that possible.

pub mod bitmap;
pub mod lock;
pub mod store;

use std::sync::OnceLock;

use liege_config::CacheSpec;
pub use store::{MathOp, SetError, Store, Write};

static CACHES: OnceLock<Vec<Store>> = OnceLock::new();

/// Creates the vassal's caches (once per process; the master calls it before forking).
pub fn install(specs: &[CacheSpec]) -> Result<(), store::CreateError> {
    if specs.is_empty() || CACHES.get().is_some() {
        return Ok(());
    }
    let mut stores = Vec::with_capacity(specs.len());
    for spec in specs {
        let store = Store::create(spec)?;
        if spec.bitmap {
            tracing::info!(
                "cache '{}': {} items in {} blocks of {} bytes, a value up to {} bytes (keys up to {} bytes)",
                spec.name,
                spec.items,
                store.blocks(),
                spec.blocksize,
                store.max_value(),
                spec.keysize
            );
        } else {
            tracing::info!(
                "cache '{}': {} items of up to {} bytes (keys up to {} bytes)",
                spec.name,
                spec.items,
                spec.blocksize,
                spec.keysize
            );
        }
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

/// One cache in the stats document, uWSGI's `caches` entries field for field (core/master_utils.c).
#[derive(Debug, serde::Serialize)]
pub struct StatsEntry {
    pub name: String,
    pub hash: &'static str,
    pub hashsize: u64,
    pub keysize: u64,
    pub max_items: u64,
    pub blocks: u64,
    pub blocksize: u64,
    pub items: u64,
    pub hits: u64,
    pub miss: u64,
    pub full: u64,
    pub last_modified_at: u64,
}

/// The `caches` list of the stats document; `None` without caches (uWSGI then leaves the key out).
pub fn stats_entries() -> Option<Vec<StatsEntry>> {
    let caches = all();
    if caches.is_empty() {
        return None;
    }
    Some(
        caches
            .iter()
            .map(|store| {
                let stats = store.stats().unwrap_or_default();
                StatsEntry {
                    name: store.name.clone(),
                    hash: "djb33x",
                    hashsize: store.hashsize(),
                    keysize: store.keysize() as u64,
                    max_items: store.max_items(),
                    blocks: store.blocks(),
                    blocksize: store.blocksize() as u64,
                    items: stats.items,
                    hits: stats.hits,
                    miss: stats.miss,
                    full: stats.full,
                    last_modified_at: stats.last_modified_at,
                }
            })
            .collect(),
    )
}
