//! One cache in one shared mapping: fixed-size slots, a chained hash index, a free-slot stack, and with
//! `bitmap` a bitmap of the value blocks.
//!
//! Layout (all in one `MAP_SHARED | MAP_ANONYMOUS` mapping made by the master before it forks, so every
//! worker sees the same bytes):
//!
//! ```text
//! Header | buckets: [u32; hashsize] | free: [u32; items] | slots: [Slot; items] | keys | [bitmap] | values
//! ```
//!
//! As in uWSGI (core/cache.c), item `i` owns key bytes `i * keysize..`. Its value starts at block
//! `Slot::first_block` of the value area. Without `bitmap` that is block `i` (one block of `blocksize` bytes
//! per item), so a value larger than `blocksize` cannot be stored (`set` fails, uWSGI's functions then return
//! `None`). With `bitmap` the value area has `blocks` blocks and a value takes as many consecutive ones as it
//! needs, found in the bitmap (see [`super::bitmap`]): values up to `blocks × blocksize` bytes fit, and a set
//! fails when no run of free blocks is long enough (fragmentation), after the same eviction rules as a cache
//! out of slots.
//!
//! Crash safety: every operation runs under the robust mutex in the header. The slots' `state` field is the
//! single source of truth; the buckets, the chains (`Slot::next`), the free stack, the item count and the
//! block bitmap are an index that can be rebuilt from it. A slot is marked `DIRTY` before its key or value
//! bytes are touched and `USED` only once they are complete; a delete unlinks first, then marks the slot
//! `FREE`; blocks are marked in the bitmap before a value is written to them and freed only once no `USED`
//! slot points at them. So when a worker dies at any point of an operation, the next locker (told by
//! `EOWNERDEAD`) rebuilds the index from the states, dropping the one `DIRTY` item the dead worker was
//! writing (and recomputing the bitmap from the `USED` slots): a cache may always lose an entry, never return
//! a torn one or lose its structure.
//!
//! Expiry is checked on access (an expired item is never returned, and is freed when met), and expired items
//! are swept before a set reports the cache full; so no sweeper process is needed and uWSGI's window in which
//! a `cache_get` returns a value past its expiry (until its sweeper thread runs) does not exist here.

use std::ptr::NonNull;

use super::bitmap;
use super::lock::{LockError, Locked, RobustMutex};
use liege_config::CacheSpec;

const MAGIC: u64 = 0x6c69_6567_6563_6163; // "liegecac"
const FREE: u32 = 0;
const USED: u32 = 1;
const DIRTY: u32 = 2;
/// `Slot::next` and bucket value meaning "none" (indexes are stored + 1).
const NONE: u32 = 0;

#[repr(C)]
struct Header {
    magic: u64,
    lock: RobustMutex,
    items: u64,
    /// Number of `USED` slots.
    used: u64,
    /// Entries of the free stack in use.
    free_top: u64,
    /// Increases on every access; `Slot::last_used` takes it, for `purge_lru`.
    clock: u64,
    hits: u64,
    miss: u64,
    full: u64,
    last_modified_at: u64,
    /// How many times the index was rebuilt after a worker died holding the lock.
    recoveries: u64,
    /// `bitmap`: where the next block search starts (the block after the last allocation), as uWSGI's
    /// `blocks_bitmap_pos`.
    next_block: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Slot {
    state: u32,
    keylen: u32,
    hash: u32,
    next: u32,
    vallen: u64,
    /// Unix seconds; 0 = never.
    expires: u64,
    last_used: u64,
    hits: u64,
    /// Block of the value area where the value starts (the slot's own index without `bitmap`).
    first_block: u64,
}

/// Why a set did not happen; all of them make uWSGI's Python functions return `None`.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("empty key or value")]
    Empty,
    #[error("key longer than keysize")]
    KeyTooLarge,
    #[error("value larger than blocksize (or, with bitmap, than blocks x blocksize)")]
    ValueTooLarge,
    #[error("key exists")]
    Exists,
    #[error("cache full")]
    Full,
    #[error("not a number (math operations need an 8-byte value)")]
    NotANumber,
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// What a set does, uWSGI's `UWSGI_CACHE_FLAG_*` in Rust terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// `cache_set`: only if the key is absent.
    Insert(&'a [u8]),
    /// `cache_update`: insert or overwrite.
    Upsert(&'a [u8]),
    /// `cache_inc` & co: the 64-bit number under the key (created from `math_initial`), its expiry kept.
    Math(MathOp, i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathOp {
    Inc,
    Dec,
    Mul,
    Div,
}

impl MathOp {
    fn apply(self, number: i64, delta: i64) -> i64 {
        match self {
            MathOp::Inc => number.wrapping_add(delta),
            MathOp::Dec => number.wrapping_sub(delta),
            MathOp::Mul => number.wrapping_mul(delta),
            // uWSGI: a division by zero gives 0.
            MathOp::Div => number.checked_div(delta).unwrap_or(0),
        }
    }
}

/// Counters for the stats document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub items: u64,
    /// Blocks no value occupies (`bitmap`; without it, the free slots).
    pub free_blocks: u64,
    pub hits: u64,
    pub miss: u64,
    pub full: u64,
    pub last_modified_at: u64,
    pub recoveries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("cache '{name}': {reason}")]
    Invalid { name: String, reason: &'static str },
    #[error("cache '{name}': cannot map {bytes} bytes of shared memory: {source}")]
    Map { name: String, bytes: usize, source: nix::Error },
    #[error("cache '{name}': {source}")]
    Lock { name: String, source: LockError },
}

/// A cache in shared memory. Cheap to use from any process that inherited the mapping.
pub struct Store {
    pub name: String,
    base: NonNull<u8>,
    len: usize,
    items: u32,
    keysize: usize,
    blocksize: usize,
    /// Blocks in the value area: `items` without `bitmap`.
    blocks: u64,
    hashsize: u32,
    math_initial: i64,
    purge_lru: bool,
    clear_on_full: bool,
    no_expire: bool,
    ignore_full: bool,
    lastmod: bool,
    buckets: usize,
    free: usize,
    slots: usize,
    keys: usize,
    /// Offset of the block bitmap (`bitmap` caches only).
    bitmap: Option<usize>,
    values: usize,
}

// SAFETY: all access to the shared bytes goes through the process-shared mutex in the header (see `Guard`);
// the struct's own fields are immutable after creation.
unsafe impl Send for Store {}
// SAFETY: as above.
unsafe impl Sync for Store {}

fn align(offset: usize, to: usize) -> usize {
    offset.div_ceil(to) * to
}

/// djb33x (Bernstein's hash, xor variant): cheap and good enough to spread keys over buckets.
fn hash(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &b| h.wrapping_mul(33) ^ u32::from(b))
}

impl Store {
    /// Maps and initialises a cache; the master does this before forking the workers.
    pub fn create(spec: &CacheSpec) -> Result<Self, CreateError> {
        let invalid = |reason| CreateError::Invalid { name: spec.name.clone(), reason };
        let items =
            u32::try_from(spec.items).ok().filter(|n| *n < u32::MAX).ok_or_else(|| invalid("too many items"))?;
        let hashsize = u32::try_from(spec.hashsize).map_err(|_| invalid("hashsize too large"))?;
        let keysize = usize::try_from(spec.keysize).map_err(|_| invalid("keysize too large"))?;
        let blocksize = usize::try_from(spec.blocksize).map_err(|_| invalid("blocksize too large"))?;
        let blocks = if spec.bitmap { spec.blocks.max(spec.items) } else { spec.items };
        let block_count = usize::try_from(blocks).map_err(|_| invalid("too many blocks"))?;
        let n = items as usize;
        let buckets = align(std::mem::size_of::<Header>(), 8);
        let free = align(buckets + 4 * hashsize as usize, 8);
        let slots = align(free + 4 * n, 8);
        let keys = slots + std::mem::size_of::<Slot>() * n;
        let after_keys = keys
            .checked_add(n.checked_mul(keysize).ok_or_else(|| invalid("too large"))?)
            .ok_or_else(|| invalid("too large"))?;
        let bitmap = spec.bitmap.then(|| align(after_keys, 8));
        let values = align(bitmap.map_or(after_keys, |at| at + 8 * bitmap::words_for(blocks)), 8);
        let len = values
            .checked_add(block_count.checked_mul(blocksize).ok_or_else(|| invalid("blocks x blocksize is too large"))?)
            .ok_or_else(|| invalid("too large"))?;
        let length = std::num::NonZeroUsize::new(len).ok_or_else(|| invalid("empty"))?;
        use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
        // SAFETY: a fresh anonymous mapping, zero-filled by the kernel; pages are only committed when touched,
        // so a large, mostly empty cache costs little memory.
        let base = unsafe {
            mmap_anonymous(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED | MapFlags::MAP_NORESERVE,
            )
        }
        .map_err(|source| CreateError::Map { name: spec.name.clone(), bytes: len, source })?
        .cast::<u8>();
        let store = Store {
            name: spec.name.clone(),
            base,
            len,
            items,
            keysize,
            blocksize,
            blocks,
            hashsize,
            math_initial: spec.math_initial,
            purge_lru: spec.purge_lru,
            clear_on_full: spec.clear_on_full,
            no_expire: spec.no_expire,
            ignore_full: spec.ignore_full,
            lastmod: spec.lastmod,
            buckets,
            free,
            slots,
            keys,
            bitmap,
            values,
        };
        let header = store.header_ptr();
        // SAFETY: the mapping is ours alone until the master forks; the header is at its aligned start.
        unsafe {
            RobustMutex::init(std::ptr::addr_of_mut!((*header).lock))
                .map_err(|source| CreateError::Lock { name: spec.name.clone(), source })?;
            (*header).items = u64::from(items);
        }
        let mut guard = store.lock().map_err(|source| CreateError::Lock { name: spec.name.clone(), source })?;
        guard.clear();
        // SAFETY: under the lock just taken.
        unsafe { (*header).magic = MAGIC };
        drop(guard);
        Ok(store)
    }

    pub fn blocksize(&self) -> usize {
        self.blocksize
    }

    /// Blocks of the value area (`items` without `bitmap`).
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The largest value a set accepts: `blocksize`, or `blocks × blocksize` with `bitmap` (uWSGI's
    /// `max_item_size`).
    pub fn max_value(&self) -> usize {
        if self.bitmap.is_some() {
            self.blocksize.saturating_mul(self.blocks as usize)
        } else {
            self.blocksize
        }
    }

    pub fn keysize(&self) -> usize {
        self.keysize
    }

    pub fn max_items(&self) -> u64 {
        u64::from(self.items)
    }

    pub fn hashsize(&self) -> u64 {
        u64::from(self.hashsize)
    }

    fn header_ptr(&self) -> *mut Header {
        self.base.as_ptr().cast::<Header>()
    }

    /// Takes the lock; repairs the index first if a process died holding it.
    fn lock(&self) -> Result<Guard<'_>, LockError> {
        // SAFETY: the header lives as long as the mapping (`self`).
        let mutex = unsafe { &(*self.header_ptr()).lock };
        let how = mutex.lock()?;
        let mut guard = Guard { store: self };
        if how == Locked::Recovered {
            tracing::warn!("cache '{}': a worker died while updating it; rebuilding its index", self.name);
            guard.rebuild();
            guard.header().recoveries += 1;
            mutex.mark_consistent();
        }
        Ok(guard)
    }

    pub fn get(&self, key: &[u8], now: u64) -> Result<Option<Vec<u8>>, LockError> {
        let mut guard = self.lock()?;
        Ok(match guard.find_live(key, now) {
            Some(index) => {
                let tick = guard.tick();
                let slot = guard.slot(index);
                slot.hits += 1;
                slot.last_used = tick;
                guard.header().hits += 1;
                Some(guard.value(index).to_vec())
            }
            None => {
                guard.header().miss += 1;
                None
            }
        })
    }

    pub fn exists(&self, key: &[u8], now: u64) -> Result<bool, LockError> {
        Ok(self.lock()?.find_live(key, now).is_some())
    }

    /// Sets `key`; `ttl` seconds from `now` (0 = never expires).
    pub fn set(&self, key: &[u8], write: Write<'_>, ttl: u64, now: u64) -> Result<(), SetError> {
        let value_len = match write {
            Write::Insert(value) | Write::Upsert(value) => value.len(),
            Write::Math(..) => 8,
        };
        if key.is_empty() || value_len == 0 {
            return Err(SetError::Empty);
        }
        if key.len() > self.keysize {
            return Err(SetError::KeyTooLarge);
        }
        if value_len > self.max_value() {
            return Err(SetError::ValueTooLarge);
        }
        let expires = if ttl == 0 || self.no_expire { 0 } else { now.saturating_add(ttl) };
        let mut guard = self.lock()?;
        let existing = guard.find_live(key, now);
        let index = match (existing, write) {
            (Some(_), Write::Insert(_)) => return Err(SetError::Exists),
            (Some(index), Write::Upsert(value)) => {
                let first_block = match self.bitmap {
                    Some(_) => match guard.relocate(index, value.len() as u64, now) {
                        Some(first) => first,
                        None => return Err(guard.refuse_full()),
                    },
                    None => u64::from(index),
                };
                guard.write_value(index, value, Some(expires), first_block);
                index
            }
            (Some(index), Write::Math(op, delta)) => {
                if guard.slot(index).vallen != 8 {
                    return Err(SetError::NotANumber);
                }
                // A number keeps its 8 bytes in place (uWSGI moves it to new blocks with `bitmap`, for nothing).
                let number = op.apply(guard.number(index), delta);
                let first_block = guard.slot(index).first_block;
                guard.write_value(index, &number.to_ne_bytes(), None, first_block);
                index
            }
            (None, write) => {
                let number;
                let value = match write {
                    Write::Insert(value) | Write::Upsert(value) => value,
                    Write::Math(op, delta) => {
                        number = op.apply(self.math_initial, delta).to_ne_bytes();
                        &number[..]
                    }
                };
                let Some(index) = guard.allocate(now) else {
                    return Err(guard.refuse_full());
                };
                let first_block = if self.bitmap.is_some() {
                    match guard.allocate_blocks(value.len() as u64, now, Some(index)) {
                        Some(first) => first,
                        None => {
                            guard.push_free(index);
                            return Err(guard.refuse_full());
                        }
                    }
                } else {
                    u64::from(index)
                };
                guard.insert(index, key, value, expires, first_block);
                index
            }
        };
        let tick = guard.tick();
        guard.slot(index).last_used = tick;
        guard.modified(now);
        Ok(())
    }

    /// The 64-bit number under `key` (`cache_num`): `None` if absent or not 8 bytes.
    pub fn number(&self, key: &[u8], now: u64) -> Result<Option<i64>, LockError> {
        let mut guard = self.lock()?;
        Ok(match guard.find_live(key, now) {
            Some(index) if guard.slot(index).vallen == 8 => Some(guard.number(index)),
            _ => None,
        })
    }

    /// Removes `key`; false if it was not there.
    pub fn delete(&self, key: &[u8], now: u64) -> Result<bool, LockError> {
        let mut guard = self.lock()?;
        Ok(match guard.find_live(key, now) {
            Some(index) => {
                guard.remove(index);
                guard.modified(now);
                true
            }
            None => false,
        })
    }

    pub fn clear(&self, now: u64) -> Result<(), LockError> {
        let mut guard = self.lock()?;
        guard.clear();
        guard.modified(now);
        Ok(())
    }

    /// The keys of the live items, in slot order.
    pub fn keys(&self, now: u64) -> Result<Vec<Vec<u8>>, LockError> {
        let mut guard = self.lock()?;
        let mut keys = Vec::new();
        for index in 0..self.items {
            let slot = *guard.slot(index);
            if slot.state == USED && !(slot.expires != 0 && slot.expires <= now) {
                keys.push(guard.key(index)[..slot.keylen as usize].to_vec());
            }
        }
        Ok(keys)
    }

    /// Frees every expired item; returns how many.
    #[cfg(test)]
    pub fn sweep(&self, now: u64) -> Result<u64, LockError> {
        Ok(self.lock()?.sweep(now))
    }

    pub fn stats(&self) -> Result<CacheStats, LockError> {
        let mut guard = self.lock()?;
        let free_blocks = guard.free_blocks();
        let header = guard.header();
        Ok(CacheStats {
            free_blocks,
            items: header.used,
            hits: header.hits,
            miss: header.miss,
            full: header.full,
            last_modified_at: header.last_modified_at,
            recoveries: header.recoveries,
        })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `create`, unmapped once (in this process only; others keep theirs).
        unsafe {
            let _ = nix::sys::mman::munmap(self.base.cast(), self.len);
        }
    }
}

/// Proof the lock is held; every access to the shared bytes goes through it. Unlocks on drop.
struct Guard<'a> {
    store: &'a Store,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // SAFETY: the header outlives the guard.
        unsafe { (*self.store.header_ptr()).lock.unlock() };
    }
}

// The accessors below hand out `&mut` into the shared mapping. SAFETY (for all of them): the mutex is held
// for the guard's whole life, so no other thread or process touches these bytes meanwhile; the offsets were
// computed in `create` to lie inside the mapping, with the alignment of the type read.
impl Guard<'_> {
    fn header(&mut self) -> &mut Header {
        // SAFETY: see the impl comment.
        unsafe { &mut *self.store.header_ptr() }
    }

    fn at<T>(&self, offset: usize) -> *mut T {
        // SAFETY: `offset` is one of the offsets computed in `create`, inside the mapping.
        unsafe { self.store.base.as_ptr().add(offset).cast::<T>() }
    }

    fn bucket(&mut self, hash: u32) -> &mut u32 {
        let index = (hash % self.store.hashsize) as usize;
        // SAFETY: see the impl comment; index < hashsize.
        unsafe { &mut *self.at::<u32>(self.store.buckets).add(index) }
    }

    fn free_entry(&mut self, position: u64) -> &mut u32 {
        // SAFETY: see the impl comment; position < items.
        unsafe { &mut *self.at::<u32>(self.store.free).add(position as usize) }
    }

    fn slot(&mut self, index: u32) -> &mut Slot {
        // SAFETY: see the impl comment; index < items.
        unsafe { &mut *self.at::<Slot>(self.store.slots).add(index as usize) }
    }

    fn key(&mut self, index: u32) -> &mut [u8] {
        let size = self.store.keysize;
        // SAFETY: see the impl comment; item `index` owns these `keysize` bytes.
        unsafe { std::slice::from_raw_parts_mut(self.at::<u8>(self.store.keys).add(index as usize * size), size) }
    }

    /// The value bytes of a used item (`vallen` of them, from its first block).
    fn value(&mut self, index: u32) -> &mut [u8] {
        let Slot { first_block, vallen, .. } = *self.slot(index);
        self.blocks_at(first_block, vallen as usize)
    }

    /// `len` bytes of the value area from block `first_block`.
    fn blocks_at(&mut self, first_block: u64, len: usize) -> &mut [u8] {
        let size = self.store.blocksize;
        let offset = first_block as usize * size;
        debug_assert!(offset + len <= self.store.blocks as usize * size);
        // SAFETY: see the impl comment; the item owns these bytes: its own block without `bitmap` (len <=
        // blocksize), else the run of blocks marked for it (first_block + blocks_for(len) <= blocks).
        unsafe { std::slice::from_raw_parts_mut(self.at::<u8>(self.store.values).add(offset), len) }
    }

    /// The block bitmap (`bitmap` caches only; empty otherwise).
    fn bitmap(&mut self) -> &mut [u64] {
        let Some(offset) = self.store.bitmap else { return &mut [] };
        let words = bitmap::words_for(self.store.blocks);
        // SAFETY: see the impl comment; `words` u64s at an 8-aligned offset computed in `create`.
        unsafe { std::slice::from_raw_parts_mut(self.at::<u64>(offset), words) }
    }

    fn number(&mut self, index: u32) -> i64 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.value(index)[..8]);
        i64::from_ne_bytes(bytes)
    }

    /// uWSGI updates `last_modified_at` on every change only with `lastmod` (`cache-use-last-modified`).
    fn modified(&mut self, now: u64) {
        if self.store.lastmod {
            self.header().last_modified_at = now;
        }
    }

    fn free_blocks(&mut self) -> u64 {
        if self.store.bitmap.is_some() {
            let blocks = self.store.blocks;
            bitmap::free_blocks(self.bitmap(), blocks)
        } else {
            self.header().free_top
        }
    }

    fn tick(&mut self) -> u64 {
        let header = self.header();
        header.clock += 1;
        header.clock
    }

    /// The item under `key`, freeing it (and answering `None`) if it has expired.
    fn find_live(&mut self, key: &[u8], now: u64) -> Option<u32> {
        let index = self.find(key)?;
        let expires = self.slot(index).expires;
        if expires != 0 && expires <= now {
            self.remove(index);
            return None;
        }
        Some(index)
    }

    fn find(&mut self, key: &[u8]) -> Option<u32> {
        let hash = hash(key);
        let mut next = *self.bucket(hash);
        while next != NONE {
            let index = next - 1;
            let slot = *self.slot(index);
            if slot.hash == hash && slot.keylen as usize == key.len() && &self.key(index)[..key.len()] == key {
                return Some(index);
            }
            next = slot.next;
        }
        None
    }

    /// A free slot, sweeping expired items and then applying `purge_lru` / `clear_on_full` when none is.
    fn allocate(&mut self, now: u64) -> Option<u32> {
        if self.header().free_top == 0 && self.sweep(now) == 0 {
            self.cache_full(None);
        }
        let header = self.header();
        if header.free_top == 0 {
            return None;
        }
        header.free_top -= 1;
        let top = header.free_top;
        Some(*self.free_entry(top))
    }

    /// Gives back a slot taken by `allocate` and never used.
    fn push_free(&mut self, index: u32) {
        let header = self.header();
        let top = header.free_top;
        header.free_top += 1;
        *self.free_entry(top) = index;
    }

    /// uWSGI's `cache_full`: counted in the stats and logged (unless `ignore_full`); `purge_lru` evicts the
    /// least recently used item, `clear_on_full` empties the cache. `keep` is never evicted (the item being
    /// updated, or the slot just taken for a new one). Returns whether room was made.
    fn cache_full(&mut self, keep: Option<u32>) -> bool {
        self.header().full += 1;
        let store = self.store;
        if store.purge_lru {
            let victim = (0..store.items)
                .filter(|&i| Some(i) != keep)
                .map(|i| (i, *self.slot(i)))
                .filter(|(_, slot)| slot.state == USED)
                .min_by_key(|(_, slot)| slot.last_used)
                .map(|(i, _)| i);
            let Some(victim) = victim else { return false };
            if !store.ignore_full {
                tracing::info!("LRU item will be purged from cache \"{}\"", store.name);
            }
            self.remove(victim);
            return true;
        }
        if store.clear_on_full {
            let mut cleared = false;
            for index in (0..store.items).filter(|&i| Some(i) != keep) {
                if self.slot(index).state == USED {
                    self.remove(index);
                    cleared = true;
                }
            }
            return cleared;
        }
        false
    }

    /// The error of a set the cache had no room for (counted and logged by `cache_full` already).
    fn refuse_full(&mut self) -> SetError {
        if !self.store.ignore_full {
            tracing::warn!("*** DANGER cache \"{}\" is FULL !!! *** (set refused)", self.store.name);
        }
        SetError::Full
    }

    /// `bitmap`: marks a run of free blocks for a value of `len` bytes and returns its first block. When there
    /// is none, expired items are swept, then the `purge_lru` / `clear_on_full` rules make room (never by
    /// evicting `keep`), as often as they can; `None` when nothing helps.
    fn allocate_blocks(&mut self, len: u64, now: u64, keep: Option<u32>) -> Option<u64> {
        let blocks = self.store.blocks;
        let need = bitmap::blocks_for(len, self.store.blocksize as u64);
        let mut swept = false;
        loop {
            let start = self.header().next_block;
            if let Some(first) = bitmap::find_run(self.bitmap(), blocks, start, need) {
                bitmap::set_run(self.bitmap(), first, need, true);
                self.header().next_block = if first + need >= blocks { 0 } else { first + need };
                return Some(first);
            }
            if !swept {
                swept = true;
                if self.sweep(now) > 0 {
                    continue;
                }
            }
            if !self.cache_full(keep) {
                return None;
            }
        }
    }

    /// `bitmap`, before an item's value is overwritten with one of `len` bytes: frees its blocks and marks a
    /// run for the new value (possibly the same blocks), whose first block `write_value` then takes. On
    /// failure its blocks are marked again and nothing changed. (uWSGI looks for the new run while the old
    /// blocks are still held; here the old blocks count.)
    ///
    /// The slot is not touched: it stays USED with its old blocks and bytes until `write_value` marks it
    /// DIRTY, so a crash in between leaves it intact (the rebuild marks its blocks again and frees the run).
    fn relocate(&mut self, index: u32, len: u64, now: u64) -> Option<u64> {
        let blocksize = self.store.blocksize as u64;
        let Slot { first_block, vallen, .. } = *self.slot(index);
        let held = bitmap::blocks_for(vallen, blocksize);
        bitmap::set_run(self.bitmap(), first_block, held, false);
        self.header().next_block = first_block;
        let found = self.allocate_blocks(len, now, Some(index));
        if found.is_none() {
            bitmap::set_run(self.bitmap(), first_block, held, true);
        }
        found
    }

    fn insert(&mut self, index: u32, key: &[u8], value: &[u8], expires: u64, first_block: u64) {
        let hash = hash(key);
        self.slot(index).state = DIRTY;
        self.key(index)[..key.len()].copy_from_slice(key);
        self.blocks_at(first_block, value.len()).copy_from_slice(value);
        let head = *self.bucket(hash);
        *self.slot(index) = Slot {
            state: DIRTY,
            keylen: key.len() as u32,
            hash,
            next: head,
            vallen: value.len() as u64,
            expires,
            last_used: 0,
            hits: 0,
            first_block,
        };
        *self.bucket(hash) = index + 1;
        self.header().used += 1;
        self.slot(index).state = USED;
    }

    /// Overwrites the value of a live item, from `first_block` (its own, or with `bitmap` the run `relocate`
    /// marked); `expires: None` keeps its expiry (math operations).
    fn write_value(&mut self, index: u32, value: &[u8], expires: Option<u64>, first_block: u64) {
        self.slot(index).state = DIRTY;
        self.blocks_at(first_block, value.len()).copy_from_slice(value);
        let slot = self.slot(index);
        slot.first_block = first_block;
        slot.vallen = value.len() as u64;
        if let Some(expires) = expires {
            slot.expires = expires;
        }
        slot.state = USED;
    }

    fn remove(&mut self, index: u32) {
        let Slot { hash, next, .. } = *self.slot(index);
        // Unlink first: a crash after this leaves a USED slot outside the index, which a rebuild relinks.
        let mut cursor = *self.bucket(hash);
        if cursor == index + 1 {
            *self.bucket(hash) = next;
        } else {
            while cursor != NONE {
                let current = cursor - 1;
                let following = self.slot(current).next;
                if following == index + 1 {
                    self.slot(current).next = next;
                    break;
                }
                cursor = following;
            }
        }
        self.slot(index).state = FREE;
        if self.store.bitmap.is_some() {
            let Slot { first_block, vallen, .. } = *self.slot(index);
            let held = bitmap::blocks_for(vallen, self.store.blocksize as u64);
            bitmap::set_run(self.bitmap(), first_block, held, false);
        }
        let header = self.header();
        header.used -= 1;
        let top = header.free_top;
        header.free_top += 1;
        *self.free_entry(top) = index;
    }

    fn sweep(&mut self, now: u64) -> u64 {
        let mut freed = 0;
        for index in 0..self.store.items {
            let slot = *self.slot(index);
            if slot.state == USED && slot.expires != 0 && slot.expires <= now {
                self.remove(index);
                freed += 1;
            }
        }
        freed
    }

    fn clear(&mut self) {
        for index in 0..self.store.items {
            self.slot(index).state = FREE;
        }
        self.rebuild();
    }

    /// Rebuilds buckets, chains, free stack, count and block bitmap from the slot states; a `DIRTY` slot (an
    /// update cut short by a dying worker) is dropped.
    fn rebuild(&mut self) {
        for bucket in 0..self.store.hashsize {
            *self.bucket(bucket) = NONE;
        }
        self.bitmap().fill(0);
        self.header().next_block = 0;
        let blocksize = self.store.blocksize as u64;
        let (mut used, mut free) = (0u64, 0u64);
        // Descending, so the free stack pops low indexes first.
        for index in (0..self.store.items).rev() {
            let slot = *self.slot(index);
            if slot.state == USED {
                let head = *self.bucket(slot.hash);
                self.slot(index).next = head;
                *self.bucket(slot.hash) = index + 1;
                if self.store.bitmap.is_some() {
                    bitmap::set_run(self.bitmap(), slot.first_block, bitmap::blocks_for(slot.vallen, blocksize), true);
                }
                used += 1;
            } else {
                self.slot(index).state = FREE;
                *self.free_entry(free) = index;
                free += 1;
            }
        }
        let header = self.header();
        header.used = used;
        header.free_top = free;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(items: u64, blocksize: u64) -> CacheSpec {
        let option = liege_config::RawOption {
            key: "cache2".into(),
            value: format!("name=t,items={items},blocksize={blocksize},keysize=32,hashsize=7"),
            origin: liege_config::Origin::CommandLine { index: 0 },
        };
        liege_config::apps::cache2(&option).unwrap()
    }

    fn bitmap_spec(items: u64, blocks: u64, blocksize: u64, extra: &str) -> CacheSpec {
        let option = liege_config::RawOption {
            key: "cache2".into(),
            value: format!(
                "name=b,items={items},blocks={blocks},blocksize={blocksize},keysize=16,hashsize=7,bitmap=1{extra}"
            ),
            origin: liege_config::Origin::CommandLine { index: 0 },
        };
        liege_config::apps::cache2(&option).unwrap()
    }

    fn free_blocks(store: &Store) -> u64 {
        store.stats().unwrap().free_blocks
    }

    #[test]
    fn bitmap_values_span_consecutive_blocks() {
        let store = Store::create(&bitmap_spec(8, 10, 4, "")).unwrap();
        assert_eq!((store.blocks(), store.max_value()), (10, 40));
        let big: Vec<u8> = (0..25u8).collect();
        store.set(b"big", Write::Insert(&big), 0, 0).unwrap();
        assert_eq!(free_blocks(&store), 3, "25 bytes take 7 blocks of 4");
        store.set(b"one", Write::Insert(b"x"), 0, 0).unwrap();
        assert_eq!(store.get(b"big", 0).unwrap(), Some(big.clone()));
        assert_eq!(store.get(b"one", 0).unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(free_blocks(&store), 2);
        // Over blocks x blocksize: refused whatever is free.
        assert!(matches!(store.set(b"huge", Write::Insert(&[0; 41]), 0, 0), Err(SetError::ValueTooLarge)));
        // Room for 2 blocks, not 3: full.
        assert!(matches!(store.set(b"three", Write::Insert(&[1; 9]), 0, 0), Err(SetError::Full)));
        store.set(b"two", Write::Insert(&[2; 8]), 0, 0).unwrap();
        assert_eq!(free_blocks(&store), 0);
        // A delete gives its blocks back.
        assert!(store.delete(b"big", 0).unwrap());
        assert_eq!(free_blocks(&store), 7);
        store.set(b"again", Write::Insert(&[3; 28]), 0, 0).unwrap();
        assert_eq!(store.get(b"again", 0).unwrap(), Some(vec![3; 28]));
        assert_eq!(store.get(b"two", 0).unwrap(), Some(vec![2; 8]));
        let stats = store.stats().unwrap();
        assert_eq!((stats.items, stats.full), (3, 1));
    }

    #[test]
    fn bitmap_fragmentation_needs_a_free_run() {
        let store = Store::create(&bitmap_spec(8, 8, 4, "")).unwrap();
        for i in 0..8u8 {
            store.set(&[b'k', i], Write::Insert(&[i; 4]), 0, 0).unwrap();
        }
        // Free every other block: 4 free, none adjacent.
        for i in (0..8u8).step_by(2) {
            assert!(store.delete(&[b'k', i], 0).unwrap());
        }
        assert_eq!(free_blocks(&store), 4);
        assert!(matches!(store.set(b"pair", Write::Insert(&[9; 5]), 0, 0), Err(SetError::Full)));
        store.set(b"single", Write::Insert(&[9; 4]), 0, 0).unwrap();
        // Freeing a neighbour of a hole makes a run of two.
        assert!(store.delete(&[b'k', 3], 0).unwrap());
        store.set(b"pair", Write::Insert(&[7; 8]), 0, 0).unwrap();
        assert_eq!(store.get(b"pair", 0).unwrap(), Some(vec![7; 8]));
        for i in [1u8, 5, 7] {
            assert_eq!(store.get(&[b'k', i], 0).unwrap(), Some(vec![i; 4]));
        }
    }

    #[test]
    fn bitmap_updates_move_values_and_keep_them_on_failure() {
        let store = Store::create(&bitmap_spec(4, 6, 4, "")).unwrap();
        store.set(b"a", Write::Insert(&[1; 4]), 0, 0).unwrap();
        store.set(b"b", Write::Insert(&[2; 4]), 0, 0).unwrap();
        // Grows from 1 to 4 blocks (a's own block counts).
        store.set(b"a", Write::Upsert(&[3; 16]), 0, 0).unwrap();
        assert_eq!(free_blocks(&store), 1);
        assert_eq!(store.get(b"a", 0).unwrap(), Some(vec![3; 16]));
        // No run of 6 blocks: refused, a unchanged.
        assert!(matches!(store.set(b"a", Write::Upsert(&[4; 24]), 0, 0), Err(SetError::Full)));
        assert_eq!(store.get(b"a", 0).unwrap(), Some(vec![3; 16]));
        assert_eq!(free_blocks(&store), 1);
        // Shrinks back, and math keeps its 8 bytes in place.
        store.set(b"a", Write::Upsert(&[5; 2]), 0, 0).unwrap();
        assert_eq!(free_blocks(&store), 4);
        store.set(b"n", Write::Math(MathOp::Inc, 41), 0, 0).unwrap();
        store.set(b"n", Write::Math(MathOp::Inc, 1), 0, 0).unwrap();
        assert_eq!(store.number(b"n", 0).unwrap(), Some(42));
        assert_eq!(free_blocks(&store), 2);
        assert_eq!(store.get(b"b", 0).unwrap(), Some(vec![2; 4]));
    }

    #[test]
    fn bitmap_full_sweeps_expired_then_evicts_lru_until_the_value_fits() {
        let store = Store::create(&bitmap_spec(4, 4, 4, "")).unwrap();
        store.set(b"old", Write::Insert(&[1; 8]), 5, 100).unwrap();
        store.set(b"kept", Write::Insert(&[2; 8]), 0, 100).unwrap();
        assert!(matches!(store.set(b"x", Write::Insert(&[3; 8]), 0, 104), Err(SetError::Full)));
        // `old` expired at 105: its blocks are swept for the new value.
        store.set(b"x", Write::Insert(&[3; 8]), 0, 105).unwrap();
        assert_eq!(store.get(b"kept", 105).unwrap(), Some(vec![2; 8]));

        let lru = Store::create(&bitmap_spec(4, 4, 4, ",purge_lru=1")).unwrap();
        for key in [&b"a"[..], b"b", b"c", b"d"] {
            lru.set(key, Write::Insert(&[0; 4]), 0, 0).unwrap();
        }
        lru.get(b"a", 0).unwrap();
        lru.get(b"d", 0).unwrap();
        // Three consecutive blocks needed: b and c (least recently used), then a go, in that order.
        lru.set(b"big", Write::Insert(&[9; 12]), 0, 0).unwrap();
        assert_eq!(lru.keys(0).unwrap().len(), 2);
        assert!(lru.exists(b"d", 0).unwrap() && lru.exists(b"big", 0).unwrap());
        // The item being updated is never the one evicted for its own new value.
        lru.set(b"big", Write::Upsert(&[8; 16]), 0, 0).unwrap();
        assert_eq!(lru.keys(0).unwrap(), vec![b"big".to_vec()]);

        let clearing = Store::create(&bitmap_spec(4, 4, 4, ",clear_on_full=1")).unwrap();
        clearing.set(b"a", Write::Insert(&[0; 8]), 0, 0).unwrap();
        clearing.set(b"b", Write::Insert(&[0; 4]), 0, 0).unwrap();
        clearing.set(b"c", Write::Insert(&[0; 12]), 0, 0).unwrap();
        assert_eq!(clearing.keys(0).unwrap(), vec![b"c".to_vec()]);
    }

    #[test]
    fn bitmap_rebuild_recomputes_the_blocks_from_the_slots() {
        let store = Store::create(&bitmap_spec(8, 8, 4, "")).unwrap();
        store.set(b"a", Write::Insert(&[1; 8]), 0, 0).unwrap();
        store.set(b"b", Write::Insert(&[2; 8]), 0, 0).unwrap();
        {
            let mut guard = store.lock().unwrap();
            // As if a worker died after marking blocks for a new value, and in the middle of rewriting b.
            let fresh = guard.allocate(0).unwrap();
            guard.allocate_blocks(12, 0, Some(fresh)).unwrap();
            let b = guard.find(b"b").unwrap();
            guard.slot(b).state = DIRTY;
            guard.rebuild();
        }
        assert_eq!(store.get(b"a", 0).unwrap(), Some(vec![1; 8]));
        assert!(!store.exists(b"b", 0).unwrap());
        assert_eq!(free_blocks(&store), 6);
        {
            // As if a worker died right after choosing new blocks for a's next value, before writing it.
            let mut guard = store.lock().unwrap();
            let a = guard.find(b"a").unwrap();
            guard.relocate(a, 20, 0).unwrap();
            guard.rebuild();
        }
        assert_eq!(store.get(b"a", 0).unwrap(), Some(vec![1; 8]), "the old value, whole");
        assert_eq!(free_blocks(&store), 6);
        store.set(b"c", Write::Insert(&[3; 24]), 0, 0).unwrap();
        assert_eq!(store.get(b"c", 0).unwrap(), Some(vec![3; 24]));
        assert_eq!(free_blocks(&store), 0);
    }

    /// The bitmap variant of the SIGKILL test below: the child dies holding the lock with blocks marked for a
    /// half-written value; the parent recovers them.
    #[test]
    fn bitmap_blocks_of_a_process_killed_mid_set_come_back() {
        let store = Store::create(&bitmap_spec(4, 8, 4, "")).unwrap();
        store.set(b"kept", Write::Insert(&[1; 8]), 0, 0).unwrap();
        let (read_fd, write_fd) = nix::unistd::pipe().unwrap();
        // SAFETY: as in the test below: the child only takes the lock, marks blocks, writes a byte and sleeps.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let mut guard = store.lock().unwrap();
                let index = guard.allocate(0).unwrap();
                guard.allocate_blocks(20, 0, Some(index)).unwrap();
                guard.slot(index).state = DIRTY;
                let _ = nix::unistd::write(&write_fd, b"x");
                std::mem::forget(guard);
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(write_fd);
                let mut byte = [0u8; 1];
                assert_eq!(nix::unistd::read(&read_fd, &mut byte).unwrap(), 1);
                nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(store.get(b"kept", 0).unwrap(), Some(vec![1; 8]));
                let stats = store.stats().unwrap();
                assert_eq!((stats.recoveries, stats.free_blocks, stats.items), (1, 6, 1));
                store.set(b"all", Write::Insert(&[2; 24]), 0, 0).unwrap();
                assert_eq!(store.get(b"all", 0).unwrap(), Some(vec![2; 24]));
            }
        }
    }

    #[test]
    fn last_modified_only_with_lastmod() {
        let plain = Store::create(&spec(4, 8)).unwrap();
        plain.set(b"a", Write::Insert(b"1"), 0, 50).unwrap();
        assert_eq!(plain.stats().unwrap().last_modified_at, 0);
        let mut with = spec(4, 8);
        with.lastmod = true;
        let with = Store::create(&with).unwrap();
        with.set(b"a", Write::Insert(b"1"), 0, 50).unwrap();
        assert_eq!(with.stats().unwrap().last_modified_at, 50);
        with.delete(b"a", 60).unwrap();
        assert_eq!(with.stats().unwrap().last_modified_at, 60);
    }

    #[test]
    fn set_get_update_delete() {
        let store = Store::create(&spec(4, 16)).unwrap();
        assert_eq!(store.get(b"a", 0).unwrap(), None);
        store.set(b"a", Write::Insert(b"one"), 0, 0).unwrap();
        assert!(matches!(store.set(b"a", Write::Insert(b"two"), 0, 0), Err(SetError::Exists)));
        assert_eq!(store.get(b"a", 0).unwrap().as_deref(), Some(&b"one"[..]));
        store.set(b"a", Write::Upsert(b"three"), 0, 0).unwrap();
        assert_eq!(store.get(b"a", 0).unwrap().as_deref(), Some(&b"three"[..]));
        assert!(store.exists(b"a", 0).unwrap());
        assert!(store.delete(b"a", 0).unwrap());
        assert!(!store.delete(b"a", 0).unwrap());
        assert!(!store.exists(b"a", 0).unwrap());
        let stats = store.stats().unwrap();
        assert_eq!((stats.items, stats.hits, stats.miss), (0, 2, 1));
    }

    #[test]
    fn sizes_are_limited_like_uwsgi() {
        let store = Store::create(&spec(2, 8)).unwrap();
        assert!(matches!(store.set(b"k", Write::Insert(b"123456789"), 0, 0), Err(SetError::ValueTooLarge)));
        store.set(b"k", Write::Insert(b"12345678"), 0, 0).unwrap();
        assert!(matches!(store.set(&[b'x'; 33], Write::Insert(b"v"), 0, 0), Err(SetError::KeyTooLarge)));
        assert!(matches!(store.set(b"", Write::Insert(b"v"), 0, 0), Err(SetError::Empty)));
        assert!(matches!(store.set(b"e", Write::Insert(b""), 0, 0), Err(SetError::Empty)));
        store.set(b"l", Write::Insert(b"v"), 0, 0).unwrap();
        assert!(matches!(store.set(b"m", Write::Insert(b"v"), 0, 0), Err(SetError::Full)));
        assert_eq!(store.stats().unwrap().full, 1);
    }

    #[test]
    fn many_keys_collide_in_few_buckets_and_survive_deletes() {
        let store = Store::create(&spec(50, 8)).unwrap();
        for i in 0..50u32 {
            store.set(format!("k{i}").as_bytes(), Write::Insert(&i.to_ne_bytes()), 0, 0).unwrap();
        }
        for i in (0..50u32).step_by(3) {
            assert!(store.delete(format!("k{i}").as_bytes(), 0).unwrap());
        }
        for i in 0..50u32 {
            let got = store.get(format!("k{i}").as_bytes(), 0).unwrap();
            assert_eq!(got, (i % 3 != 0).then(|| i.to_ne_bytes().to_vec()), "k{i}");
        }
        assert_eq!(store.keys(0).unwrap().len(), 50 - 17);
        store.clear(0).unwrap();
        assert!(store.keys(0).unwrap().is_empty());
        assert_eq!(store.stats().unwrap().items, 0);
    }

    #[test]
    fn expired_items_are_gone_and_make_room() {
        let store = Store::create(&spec(2, 8)).unwrap();
        store.set(b"a", Write::Insert(b"1"), 10, 100).unwrap();
        store.set(b"b", Write::Insert(b"2"), 0, 100).unwrap();
        assert!(store.exists(b"a", 109).unwrap());
        assert_eq!(store.keys(110).unwrap(), vec![b"b".to_vec()]);
        // Full, but `a` has expired: the set sweeps it.
        store.set(b"c", Write::Insert(b"3"), 0, 110).unwrap();
        assert_eq!(store.get(b"a", 110).unwrap(), None);
        // An update sets a new expiry; math keeps it.
        store.set(b"b", Write::Upsert(b"x"), 5, 200).unwrap();
        assert_eq!(store.get(b"b", 205).unwrap(), None);
        assert_eq!(store.sweep(1000).unwrap(), 0);
    }

    #[test]
    fn math_operations() {
        let store = Store::create(&spec(4, 8)).unwrap();
        store.set(b"n", Write::Math(MathOp::Inc, 5), 0, 0).unwrap();
        store.set(b"n", Write::Math(MathOp::Inc, 1), 0, 0).unwrap();
        store.set(b"n", Write::Math(MathOp::Mul, 7), 0, 0).unwrap();
        store.set(b"n", Write::Math(MathOp::Dec, 2), 0, 0).unwrap();
        assert_eq!(store.number(b"n", 0).unwrap(), Some(40));
        store.set(b"n", Write::Math(MathOp::Div, 0), 0, 0).unwrap();
        assert_eq!(store.number(b"n", 0).unwrap(), Some(0));
        store.set(b"s", Write::Insert(b"abc"), 0, 0).unwrap();
        assert!(matches!(store.set(b"s", Write::Math(MathOp::Inc, 1), 0, 0), Err(SetError::NotANumber)));
        assert_eq!(store.number(b"s", 0).unwrap(), None);
    }

    #[test]
    fn purge_lru_evicts_the_least_recently_used() {
        let mut spec = spec(2, 8);
        spec.purge_lru = true;
        let store = Store::create(&spec).unwrap();
        store.set(b"a", Write::Insert(b"1"), 0, 0).unwrap();
        store.set(b"b", Write::Insert(b"2"), 0, 0).unwrap();
        store.get(b"a", 0).unwrap();
        store.set(b"c", Write::Insert(b"3"), 0, 0).unwrap();
        assert!(store.exists(b"a", 0).unwrap() && store.exists(b"c", 0).unwrap());
        assert!(!store.exists(b"b", 0).unwrap());
    }

    #[test]
    fn rebuild_drops_only_the_half_written_item() {
        let store = Store::create(&spec(8, 8)).unwrap();
        for key in [&b"a"[..], b"b", b"c"] {
            store.set(key, Write::Insert(b"v"), 0, 0).unwrap();
        }
        {
            let mut guard = store.lock().unwrap();
            let index = guard.find(b"b").unwrap();
            // As if a worker died in the middle of overwriting b's value, and of linking a new item.
            guard.slot(index).state = DIRTY;
            let fresh = guard.allocate(0).unwrap();
            guard.slot(fresh).state = DIRTY;
            guard.rebuild();
        }
        assert!(store.exists(b"a", 0).unwrap() && store.exists(b"c", 0).unwrap());
        assert!(!store.exists(b"b", 0).unwrap());
        assert_eq!(store.stats().unwrap().items, 2);
        for i in 0..6u8 {
            store.set(&[b'x', i], Write::Insert(b"v"), 0, 0).unwrap();
        }
        assert!(matches!(store.set(b"y", Write::Insert(b"v"), 0, 0), Err(SetError::Full)));
    }

    /// A forked child takes the lock and is SIGKILLed while holding it: the parent must get the lock
    /// (EOWNERDEAD), repair, and keep working.
    #[test]
    fn a_process_killed_holding_the_lock_does_not_wedge_the_cache() {
        let store = Store::create(&spec(8, 8)).unwrap();
        store.set(b"kept", Write::Insert(b"yes"), 0, 0).unwrap();
        let (read_fd, write_fd) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only takes the lock, marks a slot dirty, writes one byte and sleeps; no
        // allocation-heavy or lock-taking Rust runtime code that another thread might hold.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let mut guard = store.lock().unwrap();
                let index = guard.allocate(0).unwrap();
                guard.slot(index).state = DIRTY;
                let _ = nix::unistd::write(&write_fd, b"x");
                std::mem::forget(guard);
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(write_fd);
                let mut byte = [0u8; 1];
                assert_eq!(nix::unistd::read(&read_fd, &mut byte).unwrap(), 1);
                nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(store.get(b"kept", 0).unwrap().as_deref(), Some(&b"yes"[..]));
                assert_eq!(store.stats().unwrap().recoveries, 1);
                for i in 0..7u8 {
                    store.set(&[b'n', i], Write::Insert(b"v"), 0, 0).unwrap();
                }
                assert_eq!(store.stats().unwrap().items, 8);
            }
        }
    }
}
