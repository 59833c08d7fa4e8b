//! The shared cache: byte values with a TTL, namespaced by tenant and app, under a
//! per-tenant byte quota. In Redis when `TESSERA_REDIS_URL` is set (shared by every
//! replica, [`redis`]), else in this process ([`memory`], an LRU per tenant).
//!
//! A key is the author's string; the stored name is built from the installation's
//! namespace, the tenant id, the app id and the sha256 of that string, so no key can name
//! another app's or tenant's entry (nor another installation's sharing the Redis).
//!
//! The cache is an optimisation: when Redis does not answer (down, slow, full), `get`
//! misses, `set` and `delete` are skipped, a warning is logged at most every
//! [`WARNING_INTERVAL`] and [`Cache::unavailable_count`] rises; the caller never sees an
//! error for it. Only the caller's own mistakes (key too long, value too large, TTL out of
//! range, value over the tenant's quota) are [`CacheError`]s.
//!
//! [`memo`] builds platform memoization of callbacks on top of it.

pub mod memo;
pub mod memory;
pub mod redis;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::ids::{AppId, TenantId};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Bytes an entry costs beyond its key and value (bookkeeping), so tiny entries count.
pub const ENTRY_OVERHEAD: u64 = 64;
/// At most one "cache unavailable" warning per this interval.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Whose entry: the tenant and the app. Every operation takes one; entries of another
/// scope are unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheScope {
    /// The tenant (its quota is charged).
    pub tenant: TenantId,
    /// The app.
    pub app: AppId,
}

/// A refused operation: always the caller's mistake, never the cache's trouble.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// The key is empty or longer than [`MAX_KEY_BYTES`].
    #[error("a cache key must be 1 to {max} bytes long (got {len})")]
    BadKey {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is over the platform's value cap.
    #[error("a cache value may be at most {max} bytes (got {len})")]
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The TTL is zero or over the platform's TTL cap.
    #[error("a cache TTL must be between 1 ms and {max_secs} s (got {got_ms} ms)")]
    BadTtl {
        /// What was asked, in ms.
        got_ms: u128,
        /// The cap, in s.
        max_secs: u64,
    },
    /// The entry alone is larger than the tenant's whole cache quota.
    #[error("a cache entry of {size} bytes does not fit the tenant's cache quota of {quota} bytes")]
    OverQuota {
        /// The entry's size (key + value + overhead).
        size: u64,
        /// The tenant's quota.
        quota: u64,
    },
}

/// The operator's caps (`[cache]` in the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Longest TTL.
    pub max_ttl: Duration,
    /// No tenant's quota counts above this, in bytes.
    pub tenant_max_bytes: u64,
    /// Each Redis call gives up after this long (then the cache is bypassed).
    pub redis_timeout: Duration,
    /// A tenant whose quota was never told (see [`Cache::set_tenant_quota`]) gets this.
    pub default_tenant_bytes: u64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_value_bytes: 1 << 20,
            max_ttl: Duration::from_secs(86_400),
            tenant_max_bytes: 1 << 30,
            redis_timeout: Duration::from_millis(250),
            default_tenant_bytes: u64::try_from(crate::store::Quotas::DEFAULT.cache_bytes)
                .unwrap_or(0),
        }
    }
}

enum Backend {
    Memory(memory::MemoryCache),
    Redis(redis::RedisCache),
}

/// The cache; one per process, shared by every request.
pub struct Cache {
    backend: Backend,
    /// This installation's part of every name (see [`Cache::connect_redis`]).
    namespace: String,
    limits: CacheLimits,
    /// The tenants' quotas as last seen with their live versions.
    quotas: Mutex<HashMap<TenantId, u64>>,
    unavailable: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
    /// Where each app's hits and misses are counted (the platform's; none in tests of
    /// the cache alone).
    usage: Option<Arc<crate::usage::Usage>>,
}

/// Where an entry lives: `tessera:cache:<namespace>:{t<tenant>}:a<app>:<sha256 of the key>`.
/// The namespace is hex, the ids are integers and the key is hashed, so no key string can
/// reach another name; the `{…}` hash tag keeps one tenant's entries and bookkeeping on one
/// Redis Cluster slot.
pub fn entry_name(namespace: &str, scope: CacheScope, key: &str) -> String {
    format!(
        "{}a{}:{}",
        tenant_prefix(namespace, scope.tenant),
        scope.app.0,
        hex::encode(Sha256::digest(key.as_bytes()))
    )
}

/// The prefix of every name of `tenant`'s entries and bookkeeping.
pub fn tenant_prefix(namespace: &str, tenant: TenantId) -> String {
    format!("tessera:cache:{namespace}:{{t{}}}:", tenant.0)
}

/// The namespace of an installation: derived from its secret key, which every replica
/// shares, so two installations on one Redis (their own databases, the same tenant ids)
/// never read each other's entries.
pub fn namespace_for(secrets: &crate::secretbox::SecretBox) -> String {
    hex::encode(&secrets.derive(b"tessera cache namespace")[..8])
}

/// What an entry costs under the tenant's quota.
pub fn entry_size(key: &str, value: &[u8]) -> u64 {
    (key.len() as u64)
        .saturating_add(value.len() as u64)
        .saturating_add(ENTRY_OVERHEAD)
}

impl Cache {
    /// A cache in this process.
    pub fn in_process(limits: CacheLimits) -> Self {
        Self::with_backend(
            Backend::Memory(memory::MemoryCache::default()),
            String::new(),
            limits,
        )
    }

    /// A cache in Redis at `url`, its names under `namespace` (hex digits, see
    /// [`namespace_for`]); fails if Redis does not answer now (later outages are bypassed,
    /// see the module's documentation).
    pub async fn connect_redis(
        url: &str,
        namespace: &str,
        limits: CacheLimits,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !namespace.is_empty() && namespace.bytes().all(|b| b.is_ascii_hexdigit()),
            "the cache namespace must be hex digits"
        );
        let backend = redis::RedisCache::connect(url, limits.redis_timeout).await?;
        Ok(Self::with_backend(
            Backend::Redis(backend),
            namespace.to_owned(),
            limits,
        ))
    }

    /// Count each app's hits and misses into `usage` too.
    pub fn with_usage(mut self, usage: Arc<crate::usage::Usage>) -> Self {
        self.usage = Some(usage);
        self
    }

    fn with_backend(backend: Backend, namespace: String, limits: CacheLimits) -> Self {
        Self {
            backend,
            namespace,
            limits,
            quotas: Mutex::new(HashMap::new()),
            unavailable: AtomicU64::new(0),
            last_warning: Mutex::new(None),
            usage: None,
        }
    }

    /// Which backend serves: `memory` or `redis`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// The operator's caps.
    pub fn limits(&self) -> &CacheLimits {
        &self.limits
    }

    /// Record `tenant`'s cache quota (`store::Quotas::cache_bytes`, read with each live
    /// version); the operator's cap still applies. Callers pass it before each use so a
    /// change reaches the cache with the runtime's refresh.
    pub fn set_tenant_quota(&self, tenant: TenantId, bytes: i64) {
        let bytes = u64::try_from(bytes).unwrap_or(0);
        let mut quotas = self.quotas.lock().unwrap_or_else(|e| e.into_inner());
        if quotas.get(&tenant) != Some(&bytes) {
            quotas.insert(tenant, bytes);
        }
    }

    /// The quota `tenant`'s entries live under, in bytes.
    pub fn tenant_quota(&self, tenant: TenantId) -> u64 {
        let quotas = self.quotas.lock().unwrap_or_else(|e| e.into_inner());
        quotas
            .get(&tenant)
            .copied()
            .unwrap_or(self.limits.default_tenant_bytes)
            .min(self.limits.tenant_max_bytes)
    }

    /// `Some(answers)` when the cache is in Redis: whether it answers a PING now.
    pub async fn redis_up(&self) -> Option<bool> {
        match &self.backend {
            Backend::Memory(_) => None,
            Backend::Redis(redis) => Some(redis.ping().await),
        }
    }

    /// How often Redis did not answer and the cache was bypassed (a metric).
    pub fn unavailable_count(&self) -> u64 {
        self.unavailable.load(Ordering::Relaxed)
    }

    /// Bytes `tenant`'s entries count now (the Redis counter or the in-process weights).
    pub async fn tenant_usage(&self, tenant: TenantId) -> u64 {
        match &self.backend {
            Backend::Memory(memory) => memory.usage(tenant),
            Backend::Redis(redis) => match redis.usage(&self.namespace, tenant).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    self.bypassed(&e);
                    0
                }
            },
        }
    }

    /// Remove every entry of `tenant` (a deleted tenant); how many were removed. With Redis
    /// down nothing is removed: the entries then expire with their TTLs, and no new tenant
    /// can reach them (a deleted tenant's id is never reused).
    pub async fn purge_tenant(&self, tenant: TenantId) -> u64 {
        match &self.backend {
            Backend::Memory(memory) => memory.purge(tenant),
            Backend::Redis(redis) => match redis.purge(&self.namespace, tenant).await {
                Ok(removed) => removed,
                Err(e) => {
                    self.bypassed(&e);
                    0
                }
            },
        }
    }

    /// The value of `key`, if present and not expired. Redis trouble is a miss.
    pub async fn get(&self, scope: CacheScope, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        check_key(key)?;
        let name = entry_name(&self.namespace, scope, key);
        let value = match &self.backend {
            Backend::Memory(memory) => memory.get(scope.tenant, &name),
            Backend::Redis(redis) => match redis.get(&name).await {
                Ok(value) => value,
                Err(e) => {
                    self.bypassed(&e);
                    None
                }
            },
        };
        crate::observe::cache_lookup("shared", value.is_some());
        if let Some(usage) = &self.usage {
            usage.cache_lookup(scope.tenant, scope.app, value.is_some());
        }
        Ok(value)
    }

    /// Store `value` under `key` for `ttl`, evicting the tenant's own entries as needed to
    /// stay under its quota. Redis trouble skips the write.
    pub async fn set(
        &self,
        scope: CacheScope,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), CacheError> {
        check_key(key)?;
        if value.len() > self.limits.max_value_bytes {
            return Err(CacheError::ValueTooLarge {
                len: value.len(),
                max: self.limits.max_value_bytes,
            });
        }
        if ttl.is_zero() || ttl > self.limits.max_ttl {
            return Err(CacheError::BadTtl {
                got_ms: ttl.as_millis(),
                max_secs: self.limits.max_ttl.as_secs(),
            });
        }
        // Whole milliseconds, at least one (Redis expires by the millisecond).
        let ttl = Duration::from_millis(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        let quota = self.tenant_quota(scope.tenant);
        let size = entry_size(key, value);
        if size > quota {
            return Err(CacheError::OverQuota { size, quota });
        }
        let name = entry_name(&self.namespace, scope, key);
        match &self.backend {
            Backend::Memory(memory) => {
                memory.set(scope.tenant, quota, name, value, size, ttl);
                Ok(())
            }
            Backend::Redis(redis) => {
                let keep = self.limits.max_ttl + Duration::from_secs(60);
                match redis
                    .set(
                        &self.namespace,
                        scope.tenant,
                        &name,
                        value,
                        size,
                        ttl,
                        quota,
                        keep,
                    )
                    .await
                {
                    Ok(redis::Stored::Yes) => Ok(()),
                    // Only when the tenant's bookkeeping is inconsistent beyond what one
                    // write may repair (see `redis::SET_SCRIPT`); treated like trouble.
                    Ok(redis::Stored::NoRoom) => {
                        tracing::debug!(tenant = %scope.tenant, size, "cache entry skipped: no room after eviction");
                        Ok(())
                    }
                    Err(e) => {
                        self.bypassed(&e);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Remove `key`'s entry, if any. Redis trouble skips it (the entry then expires).
    pub async fn delete(&self, scope: CacheScope, key: &str) -> Result<(), CacheError> {
        check_key(key)?;
        let name = entry_name(&self.namespace, scope, key);
        match &self.backend {
            Backend::Memory(memory) => memory.delete(scope.tenant, &name),
            Backend::Redis(redis) => {
                if let Err(e) = redis.delete(&self.namespace, scope.tenant, &name).await {
                    self.bypassed(&e);
                }
            }
        }
        Ok(())
    }

    /// Count a bypass and warn, at most once per [`WARNING_INTERVAL`].
    fn bypassed(&self, error: &redis::Unavailable) {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= WARNING_INTERVAL) {
            *last = Some(Instant::now());
            tracing::warn!(
                error = %error,
                bypassed_so_far = self.unavailable_count(),
                "the cache's Redis does not answer: cache reads miss and writes are skipped"
            );
        }
    }
}

fn check_key(key: &str) -> Result<(), CacheError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(CacheError::BadKey {
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(tenant: i64, app: i64) -> CacheScope {
        CacheScope {
            tenant: TenantId(tenant),
            app: AppId(app),
        }
    }

    #[test]
    fn names_cannot_be_forged_across_apps_or_tenants() {
        // A key that spells another app's or tenant's prefix stays inside its own scope.
        let name = |scope, key: &str| entry_name("ab", scope, key);
        let forged = name(scope(1, 2), "x");
        let attempt = "}:a2:x";
        assert!(name(scope(1, 3), attempt).starts_with("tessera:cache:ab:{t1}:a3:"));
        assert_ne!(name(scope(1, 3), attempt), forged);
        assert_ne!(name(scope(12, 3), "k"), name(scope(1, 23), "k"));
        assert_ne!(name(scope(1, 2), "k"), name(scope(2, 1), "k"));
        assert_ne!(name(scope(1, 2), "k"), entry_name("ac", scope(1, 2), "k"));
        let tail = name(scope(1, 2), &"a".repeat(MAX_KEY_BYTES));
        assert_eq!(tail.len(), "tessera:cache:ab:{t1}:a2:".len() + 64);
    }

    #[tokio::test]
    async fn caps_on_key_value_and_ttl_are_clear_errors() {
        let limits = CacheLimits {
            max_value_bytes: 10,
            max_ttl: Duration::from_secs(60),
            ..CacheLimits::default()
        };
        let cache = Cache::in_process(limits);
        let s = scope(1, 1);
        let minute = Duration::from_secs(60);
        assert!(matches!(
            cache.set(s, "", b"v", minute).await,
            Err(CacheError::BadKey { .. })
        ));
        assert!(matches!(
            cache.get(s, &"k".repeat(MAX_KEY_BYTES + 1)).await,
            Err(CacheError::BadKey { .. })
        ));
        assert_eq!(
            cache.set(s, "k", &[0; 11], minute).await,
            Err(CacheError::ValueTooLarge { len: 11, max: 10 })
        );
        assert!(matches!(
            cache.set(s, "k", b"v", Duration::ZERO).await,
            Err(CacheError::BadTtl { .. })
        ));
        assert!(matches!(
            cache.set(s, "k", b"v", minute * 2).await,
            Err(CacheError::BadTtl { .. })
        ));
        cache.set_tenant_quota(TenantId(1), 10);
        assert!(matches!(
            cache.set(s, "k", b"v", minute).await,
            Err(CacheError::OverQuota { quota: 10, .. })
        ));
        cache
            .set(scope(2, 1), "k", b"v", minute)
            .await
            .expect("another tenant's default quota");
    }

    #[test]
    fn the_operator_cap_bounds_every_tenant_quota() {
        let cache = Cache::in_process(CacheLimits {
            tenant_max_bytes: 1000,
            ..CacheLimits::default()
        });
        cache.set_tenant_quota(TenantId(1), 1 << 40);
        assert_eq!(cache.tenant_quota(TenantId(1)), 1000);
        cache.set_tenant_quota(TenantId(1), -5);
        assert_eq!(cache.tenant_quota(TenantId(1)), 0);
    }
}
