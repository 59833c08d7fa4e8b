//! The cache in this process: one `moka` cache per tenant, its capacity the tenant's quota
//! in bytes (each entry weighs key + value + [`super::ENTRY_OVERHEAD`]), LRU eviction
//! (not TinyLFU: a new entry is always admitted and the least recently used go first) and
//! each entry's own TTL. A tenant's entries can only push out its own.
//!
//! A change of the tenant's quota starts its cache afresh (entries are dropped; it is a
//! cache). Eviction is applied before `set` returns (`run_pending_tasks`), so a tenant's
//! weight is at most its quota once a write has returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::policy::EvictionPolicy;

use crate::ids::TenantId;

struct Entry {
    value: Vec<u8>,
    ttl: Duration,
    size: u32,
}

/// Each entry expires after its own TTL, counted from its last write.
struct EntryTtl;

impl Expiry<String, Arc<Entry>> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Arc<Entry>,
        _updated_at: Instant,
        _until_now: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

type TenantEntries = moka::sync::Cache<String, Arc<Entry>>;

struct TenantCache {
    quota: u64,
    entries: TenantEntries,
}

/// The per-tenant caches of this process.
#[derive(Default)]
pub struct MemoryCache {
    tenants: Mutex<HashMap<TenantId, TenantCache>>,
}

impl MemoryCache {
    fn entries(&self, tenant: TenantId) -> Option<TenantEntries> {
        let tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants.get(&tenant).map(|t| t.entries.clone())
    }

    /// The tenant's cache with capacity `quota`, made (or made afresh) as needed.
    fn entries_with_quota(&self, tenant: TenantId, quota: u64) -> TenantEntries {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        match tenants.get(&tenant) {
            Some(existing) if existing.quota == quota => existing.entries.clone(),
            _ => {
                let entries = moka::sync::Cache::builder()
                    .max_capacity(quota)
                    .weigher(|_name: &String, entry: &Arc<Entry>| entry.size)
                    .expire_after(EntryTtl)
                    .eviction_policy(EvictionPolicy::lru())
                    .build();
                tenants.insert(
                    tenant,
                    TenantCache {
                        quota,
                        entries: entries.clone(),
                    },
                );
                entries
            }
        }
    }

    pub(super) fn get(&self, tenant: TenantId, name: &str) -> Option<Vec<u8>> {
        self.entries(tenant)?
            .get(name)
            .map(|entry| entry.value.clone())
    }

    pub(super) fn set(
        &self,
        tenant: TenantId,
        quota: u64,
        name: String,
        value: &[u8],
        size: u64,
        ttl: Duration,
    ) {
        let entries = self.entries_with_quota(tenant, quota);
        entries.insert(
            name,
            Arc::new(Entry {
                value: value.to_vec(),
                ttl,
                size: u32::try_from(size).unwrap_or(u32::MAX),
            }),
        );
        entries.run_pending_tasks();
    }

    pub(super) fn delete(&self, tenant: TenantId, name: &str) {
        if let Some(entries) = self.entries(tenant) {
            entries.invalidate(name);
        }
    }

    /// Forget every entry of `tenant`; how many there were.
    pub(super) fn purge(&self, tenant: TenantId) -> u64 {
        let removed = self
            .tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&tenant);
        removed.map_or(0, |t| {
            t.entries.run_pending_tasks();
            let count = t.entries.entry_count();
            t.entries.invalidate_all();
            count
        })
    }

    pub(super) fn usage(&self, tenant: TenantId) -> u64 {
        self.entries(tenant).map_or(0, |entries| {
            entries.run_pending_tasks();
            entries.weighted_size()
        })
    }
}
