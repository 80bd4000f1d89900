//! Several apps per vassal (`mount`, `manage-script-name`, `no-default-app`) and shared caches (`cache2`,
//! the older `cache` + `cache-blocksize`): the values as uWSGI reads them, checked here so a mistake is an
//! error naming the file and line.
//!
//! uWSGI's meanings, from its source (core/uwsgi.c `uwsgi_init_all_apps`, plugins/python/pyloader.c,
//! core/cache.c `uwsgi_cache_create`):
//!
//! - `mount = MOUNTPOINT=APP` loads APP under MOUNTPOINT; an empty mountpoint means `/`. APP ending in `.py`
//!   or `.wsgi` is a file, `pkg.mod:callable` a module (`callable` may be a factory, `create_app()`); liege
//!   also accepts a bare `pkg.mod` (the `callable` option, default `application`), which uWSGI refuses with
//!   "unable to load app". APP ending in `.ini` is a PasteDeploy URI (`config:/etc/app/paste.ini`). A line
//!   without `=` is an error, as in uWSGI.
//! - `cache2 = name=NAME,items=N[,blocksize=B,keysize=K,...]`: one cache per line; `cache = N` creates the
//!   old-style cache named `default` with N items of `cache-blocksize` bytes (default 65536).

use crate::values;
use crate::{ConfigError, RawOption};

/// A mounted app, its callable resolved (the `callable` option applies to files and bare modules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedApp {
    pub mountpoint: String,
    pub app: crate::AppSpec,
}

/// One `mount` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// As written, `/` for an empty one (uWSGI's rule). A trailing slash is kept: uWSGI ignores it when
    /// matching `manage-script-name` prefixes but puts the mountpoint as written in `SCRIPT_NAME`.
    pub mountpoint: String,
    pub target: MountTarget,
}

/// What a mount loads; the callable of files and bare modules is resolved later with the `callable` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountTarget {
    /// `/x=app.py` or `/x=app.wsgi`.
    File(std::path::PathBuf),
    /// `/x=pkg.mod:callable`, or `/x=pkg.mod` (`callable: None`).
    Module { module: String, callable: Option<String> },
    /// `/x=config:/path/app.ini`: anything ending in `.ini` is a PasteDeploy URI, given to `loadapp` as
    /// written (uWSGI's `uwsgi_mount_loader`).
    Paste(String),
}

/// Parses one `mount` value.
pub fn mount(option: &RawOption) -> Result<Mount, ConfigError> {
    let Some((mountpoint, target)) = option.value.split_once('=') else {
        return Err(values::invalid(option, "expected MOUNTPOINT=APP (e.g. /blog=blog/wsgi.py or /api=api.app:app)"));
    };
    let mountpoint = if mountpoint.is_empty() { "/".to_owned() } else { mountpoint.to_owned() };
    if !mountpoint.starts_with('/') {
        return Err(values::invalid(option, "the mountpoint must be a URL path starting with '/'"));
    }
    let target = target.trim();
    if target.is_empty() {
        return Err(values::invalid(option, "nothing to mount after '='"));
    }
    let target = if target.ends_with(".py") || target.ends_with(".wsgi") {
        MountTarget::File(target.into())
    } else if target.ends_with(".ini") {
        MountTarget::Paste(target.to_owned())
    } else {
        let (module, callable) = split_module_value(option, target)?;
        MountTarget::Module { module, callable }
    };
    Ok(Mount { mountpoint, target })
}

/// `pkg.mod`, `pkg.mod:callable`, `pkg.mod:factory()` or `pkg.mod:factory(literal, key=literal)`.
///
/// The callable part is checked for shape only (a name, optionally followed by a parenthesised argument
/// list); the arguments are Python literals evaluated when the app loads.
pub fn split_module_value(option: &RawOption, value: &str) -> Result<(String, Option<String>), ConfigError> {
    let (module, callable) = match value.split_once(':') {
        Some((module, callable)) => (module.trim(), Some(callable.trim())),
        None => (value.trim(), None),
    };
    if module.is_empty() || module.chars().any(char::is_whitespace) {
        return Err(values::invalid(option, "expected a module name like pkg.module or pkg.module:callable"));
    }
    if let Some(callable) = callable {
        let name = callable.split_once('(').map_or(callable, |(name, _)| name).trim();
        let call_ok = !callable.contains('(') || callable.ends_with(')');
        if name.is_empty() || name.chars().any(|c| !(c.is_alphanumeric() || c == '_')) || !call_ok {
            return Err(values::invalid(
                option,
                "the callable after ':' must be a Python name, or a factory call like create_app() or \
                 create_app('prod', debug=False)",
            ));
        }
    }
    Ok((module.to_owned(), callable.map(str::to_owned)))
}

/// One shared cache (uWSGI's `struct uwsgi_cache` settings that liege implements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    pub name: String,
    /// Most items the cache holds (`items` / `max_items` / `maxitems`).
    pub items: u64,
    /// Size of a block (`blocksize`, default 65536): without `bitmap` a value is stored in one block, so this
    /// is also the largest value.
    pub blocksize: u64,
    /// Blocks of `blocksize` bytes (`blocks`, default `items`). Only `bitmap` uses more than `items` of them.
    pub blocks: u64,
    /// `bitmap`: a value spans as many consecutive blocks as it needs, found in a bitmap of the blocks, so
    /// values up to `blocks × blocksize` bytes fit (uWSGI's `use_blocks_bitmap`).
    pub bitmap: bool,
    /// `lastmod`: every change updates the cache's `last_modified_at` (in the stats); off, it stays 0.
    pub lastmod: bool,
    /// Largest key in bytes (`keysize`, default 2048).
    pub keysize: u64,
    /// Buckets of the hash table (`hashsize`, default 65536).
    pub hashsize: u64,
    /// Start value of a missing key for `cache_inc` & co (`math_initial`, default 0).
    pub math_initial: i64,
    /// When full, evict the least recently used item instead of failing the set (`purge_lru` / `lru`).
    pub purge_lru: bool,
    /// When full, clear the whole cache instead of failing the set (`clear_on_full`).
    pub clear_on_full: bool,
    /// Ignore the expiry of every set (`no_expire`).
    pub no_expire: bool,
    /// Do not log "cache full" (`ignore_full`).
    pub ignore_full: bool,
}

impl CacheSpec {
    fn new(name: String, items: u64) -> Self {
        Self {
            name,
            items,
            blocksize: 65536,
            blocks: items,
            bitmap: false,
            lastmod: false,
            keysize: 2048,
            hashsize: 65536,
            math_initial: 0,
            purge_lru: false,
            clear_on_full: false,
            no_expire: false,
            ignore_full: false,
        }
    }

    /// The old-style `cache = N` (named `default`); `blocksize` from `cache-blocksize`.
    pub fn old_style(items: u64, blocksize: Option<u64>) -> Self {
        let mut spec = Self::new("default".to_owned(), items);
        if let Some(blocksize) = blocksize {
            spec.blocksize = blocksize;
        }
        spec
    }
}

/// Parses a `cache2` value: comma-separated `key=value` pairs, uWSGI's keys and their synonyms.
///
/// uWSGI's kvlist reader ignores an item without `=` and turns a flag on for any value it is given, `0`
/// included (`bitmap=0` is a bitmap cache there); both would silently differ from what was written, so liege
/// refuses them with the way to say it.
pub fn cache2(option: &RawOption) -> Result<CacheSpec, ConfigError> {
    let mut name = None;
    let mut items = None;
    let mut blocks = None;
    let mut settings: Vec<(&str, &str)> = Vec::new();
    for pair in option.value.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
        let Some((key, value)) = pair.split_once('=').map(|(k, v)| (k.trim(), v.trim())) else {
            return Err(values::invalid(
                option,
                format!("'{pair}' has no value: uWSGI ignores a cache2 key without '=' (write {pair}=1)"),
            ));
        };
        match key {
            "name" => name = Some(value),
            "items" | "max_items" | "maxitems" => items = Some(number(option, key, value)?),
            "blocks" => blocks = Some(number(option, key, value)?),
            _ => settings.push((key, value)),
        }
    }
    let name = name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| values::invalid(option, "a cache needs a name (name=NAME)"))?;
    let items = items
        .filter(|items| *items > 0)
        .ok_or_else(|| values::invalid(option, "a cache needs its maximum number of items (items=N, N > 0)"))?;
    let mut spec = CacheSpec::new(name.to_owned(), items);
    let flag = |key: &str, value: &str| -> Result<bool, ConfigError> {
        if matches!(value.to_ascii_lowercase().as_str(), "0" | "false" | "no" | "off") {
            return Err(values::invalid(
                option,
                format!("uWSGI turns '{key}' on for any value, '{value}' included: remove the key to leave it off"),
            ));
        }
        Ok(true)
    };
    for (key, value) in settings {
        match key {
            "blocksize" => spec.blocksize = positive(option, key, value)?,
            "keysize" | "key_size" => {
                spec.keysize = positive(option, key, value)?;
                if spec.keysize >= 65535 {
                    return Err(values::invalid(option, "keysize must be below 65535"));
                }
            }
            "hashsize" | "hash_size" => spec.hashsize = positive(option, key, value)?,
            // The hash function only spreads keys over buckets; liege uses its own, with the same effect.
            "hash" => match value {
                "djb33x" | "murmur2" => {}
                _ => return Err(values::invalid(option, format!("unknown cache hash '{value}' (djb33x, murmur2)"))),
            },
            "math_initial" => {
                spec.math_initial = value
                    .parse()
                    .map_err(|_| values::invalid(option, format!("math_initial must be an integer, not '{value}'")))?
            }
            "purge_lru" | "lru" => spec.purge_lru = flag(key, value)?,
            "clear_on_full" => spec.clear_on_full = flag(key, value)?,
            "no_expire" => spec.no_expire = flag(key, value)?,
            "ignore_full" => spec.ignore_full = flag(key, value)?,
            "bitmap" => spec.bitmap = flag(key, value)?,
            "lastmod" => spec.lastmod = flag(key, value)?,
            // liege always expires lazily (an expired item is never returned), which is what this asks for; uWSGI
            // turns it on for any value, `0` included, so every value means what liege does.
            "lazy_expire" | "lazy" => {}
            // uWSGI: sweep expired items (at most every N seconds) when the cache is full; liege frees expired
            // items before it reports a cache full, every time.
            "sweep_on_full" => {
                number(option, key, value)?;
            }
            "store" | "store_sync" | "storesync" | "store_delete" | "storedelete" => {
                return Err(values::invalid(
                    option,
                    format!("'{key}' (a cache persisted to a file) is not supported: liege's caches live in memory"),
                ))
            }
            "node" | "nodes" | "sync" | "udp" | "udp_servers" | "udp_server" | "udpservers" | "udpserver" => {
                return Err(values::invalid(
                    option,
                    format!("'{key}' (cache replication between servers) is not supported; use a shared store such as Redis"),
                ))
            }
            _ => return Err(values::invalid(option, format!("unknown cache setting '{key}'"))),
        }
    }
    // uWSGI requires `blocks >= items` in both modes; without `bitmap` item i uses block i, so the extra
    // blocks are unused (liege does not map them).
    if let Some(blocks) = blocks {
        if blocks < items {
            return Err(values::invalid(option, format!("blocks ({blocks}) must be at least items ({items})")));
        }
        spec.blocks = blocks;
    }
    if !spec.bitmap {
        spec.blocks = items;
    }
    Ok(spec)
}

fn number(option: &RawOption, key: &str, value: &str) -> Result<u64, ConfigError> {
    parse_size(value).ok_or_else(|| values::invalid(option, format!("{key} must be a whole number, not '{value}'")))
}

fn positive(option: &RawOption, key: &str, value: &str) -> Result<u64, ConfigError> {
    match number(option, key, value)? {
        0 => Err(values::invalid(option, format!("{key} must be above 0"))),
        n => Ok(n),
    }
}

/// uWSGI's `uwsgi_n64` numbers, with the k/m/g suffixes its size options accept.
fn parse_size(value: &str) -> Option<u64> {
    let (digits, factor) = match value.chars().last()? {
        'k' | 'K' => (&value[..value.len() - 1], 1024),
        'm' | 'M' => (&value[..value.len() - 1], 1024 * 1024),
        'g' | 'G' => (&value[..value.len() - 1], 1024 * 1024 * 1024),
        _ => (value, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Origin;

    fn raw(key: &str, value: &str) -> RawOption {
        RawOption { key: key.into(), value: value.into(), origin: Origin::CommandLine { index: 0 } }
    }

    #[test]
    fn mounts_parse_like_uwsgi() {
        let m = mount(&raw("mount", "/blog=blog/app.py")).unwrap();
        assert_eq!(m, Mount { mountpoint: "/blog".into(), target: MountTarget::File("blog/app.py".into()) });
        let m = mount(&raw("mount", "=site.wsgi")).unwrap();
        assert_eq!(m.mountpoint, "/");
        assert_eq!(m.target, MountTarget::File("site.wsgi".into()));
        let m = mount(&raw("mount", "/api/=api.main:create_app()")).unwrap();
        assert_eq!(m.mountpoint, "/api/");
        assert_eq!(m.target, MountTarget::Module { module: "api.main".into(), callable: Some("create_app()".into()) });
        let m = mount(&raw("mount", "/x=pkg.mod")).unwrap();
        assert_eq!(m.target, MountTarget::Module { module: "pkg.mod".into(), callable: None });
        assert!(mount(&raw("mount", "/x")).is_err());
        assert!(mount(&raw("mount", "x=app.py")).is_err());
        assert!(mount(&raw("mount", "/x=")).is_err());
        assert_eq!(
            mount(&raw("mount", "/x=config:/etc/paste.ini")).unwrap().target,
            MountTarget::Paste("config:/etc/paste.ini".into())
        );
        assert!(mount(&raw("mount", "/x=mod:bad name")).is_err());
        assert!(mount(&raw("mount", "/x=mod:f(")).is_err());
    }

    #[test]
    fn factory_callables_keep_their_arguments() {
        let o = raw("module", "");
        assert_eq!(
            split_module_value(&o, "app:make(1, name='x')").unwrap(),
            ("app".into(), Some("make(1, name='x')".into()))
        );
        assert!(split_module_value(&o, "app:").is_err());
        assert!(split_module_value(&o, ":app").is_err());
    }

    #[test]
    fn cache2_reads_uwsgi_keys() {
        let spec = cache2(&raw("cache2", "name=hash,items=10240,blocksize=32")).unwrap();
        assert_eq!((spec.name.as_str(), spec.items, spec.blocksize, spec.keysize), ("hash", 10240, 32, 2048));
        let spec = cache2(&raw("cache2", "name=a,maxitems=10,keysize=64,hashsize=16,math_initial=-3,lru=1")).unwrap();
        assert_eq!((spec.keysize, spec.hashsize, spec.math_initial, spec.purge_lru), (64, 16, -3, true));
        let spec = cache2(&raw("cache2", "name=k,items=1k,blocks=2k,lazy_expire=1")).unwrap();
        assert_eq!((spec.items, spec.blocks, spec.bitmap), (1024, 1024, false), "without bitmap, one block per item");
        let spec = cache2(&raw("cache2", "name=searxcache,items=2000,blocks=3000,blocksize=4096,bitmap=1")).unwrap();
        assert_eq!((spec.items, spec.blocks, spec.blocksize, spec.bitmap), (2000, 3000, 4096, true));
        let spec = cache2(&raw("cache2", "name=b,items=20,bitmap=yes,lastmod=1,sweep_on_full=5")).unwrap();
        assert_eq!((spec.blocks, spec.bitmap, spec.lastmod), (20, true, true));
        for bad in [
            "items=10",
            "name=a",
            "name=a,items=0",
            "name=a,items=x",
            "name=a,items=10,blocks=5",
            "name=a,items=10,store=/tmp/c",
            "name=a,items=10,nodes=127.0.0.1:3031",
            "name=a,items=10,bitmap=0",
            "name=a,items=10,lru",
            "name=a,items=10,purge_lru=false",
            "name=a,items=10,lastmod=off",
            "name=a,items=10,sweep_on_full=x",
            "name=a,items=10,bitmap=1,blocks=9",
            "name=a,items=10,blocksize=0",
            "name=a,items=10,keysize=70000",
            "name=a,items=10,color=blue",
            "name=a,items=10,hash=md5",
        ] {
            assert!(cache2(&raw("cache2", bad)).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn old_style_cache_is_named_default() {
        let spec = CacheSpec::old_style(100, Some(1024));
        assert_eq!((spec.name.as_str(), spec.items, spec.blocksize), ("default", 100, 1024));
        assert_eq!(CacheSpec::old_style(5, None).blocksize, 65536);
    }
}
