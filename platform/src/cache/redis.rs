//! The cache in Redis, shared by every replica.
//!
//! Per tenant, beside its entries (`tessera:cache:<namespace>:{t<id>}:a<app>:<hash>`, each with a Redis TTL):
//! `…{t<id>}:expiry`, a sorted set of its entry names scored by expiry time (ms, Redis's
//! clock), `…{t<id>}:sizes`, a hash of their sizes, and `…{t<id>}:bytes`, their sum. A write
//! runs [`SET_SCRIPT`] atomically: it forgets the entry's old size, drops from the count the
//! entries whose time is up (Redis has expired them or is about to), then evicts the
//! tenant's soonest-expiring entries until the new one fits its quota, then writes. Another
//! tenant's names are never touched: every name the script reaches is under the tenant's
//! own prefix (the same hash tag, so it also holds on one Cluster slot).
//!
//! Accuracy: the count is exact for everything written through here. An entry that Redis
//! itself drops early (its `maxmemory` eviction, a manual `DEL`) stays counted until its
//! expiry time passes, so a tenant may briefly get less than its quota, never more. The
//! bookkeeping keys expire one TTL cap after the tenant's last write, when every entry they
//! count has expired too.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::ids::TenantId;

/// Redis did not answer in time or answered with an error: the cache is bypassed.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// Redis answered with an error (or the connection is down).
    #[error("Redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// No answer within the cache's Redis timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// What a write did.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// Written (after evicting what had to go).
    Yes,
    /// Not written: still over the quota after the most evictions one write may do.
    NoRoom,
}

/// Most entries one write evicts; more is a sign of inconsistent bookkeeping.
const MAX_EVICTIONS: u32 = 10_000;

/// KEYS: entry, expiry set, sizes, bytes. ARGV: value, ttl ms, quota, size, keep ms,
/// max evictions. Returns the number of evicted entries, or -1 when it could not make room.
pub const SET_SCRIPT: &str = r#"
local entry, expiry, sizes, bytes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl, quota, size = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local keep, max_evictions = tonumber(ARGV[5]), tonumber(ARGV[6])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local function forget(name)
  local old = redis.call('HGET', sizes, name)
  if old then
    redis.call('DECRBY', bytes, old)
    redis.call('HDEL', sizes, name)
  end
  redis.call('ZREM', expiry, name)
  redis.call('DEL', name)
end
forget(entry)
local expired = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, 1000)
for _, name in ipairs(expired) do forget(name) end
local used = tonumber(redis.call('GET', bytes) or '0')
local evicted = 0
while used + size > quota and evicted < max_evictions do
  local first = redis.call('ZRANGE', expiry, 0, 0)
  if #first == 0 then break end
  forget(first[1])
  evicted = evicted + 1
  used = tonumber(redis.call('GET', bytes) or '0')
end
if used + size > quota then
  if #redis.call('ZRANGE', expiry, 0, 0) == 0 then
    -- Nothing left to evict: the count is stale (entries deleted behind our back). Reset it.
    redis.call('SET', bytes, 0)
    used = 0
  else
    return -1
  end
end
redis.call('SET', entry, ARGV[1], 'PX', ttl)
redis.call('ZADD', expiry, now + ttl, entry)
redis.call('HSET', sizes, entry, size)
redis.call('INCRBY', bytes, size)
redis.call('PEXPIRE', expiry, keep)
redis.call('PEXPIRE', sizes, keep)
redis.call('PEXPIRE', bytes, keep)
return evicted
"#;

/// KEYS: entry, expiry set, sizes, bytes.
const DELETE_SCRIPT: &str = r#"
local entry, expiry, sizes, bytes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local old = redis.call('HGET', sizes, entry)
if old then
  redis.call('DECRBY', bytes, old)
  redis.call('HDEL', sizes, entry)
end
redis.call('ZREM', expiry, entry)
return redis.call('DEL', entry)
"#;

/// The cache's connection to Redis.
pub struct RedisCache {
    connection: ConnectionManager,
    timeout: Duration,
}

fn bookkeeping(namespace: &str, tenant: TenantId) -> [String; 3] {
    let prefix = super::tenant_prefix(namespace, tenant);
    [
        format!("{prefix}expiry"),
        format!("{prefix}sizes"),
        format!("{prefix}bytes"),
    ]
}

impl RedisCache {
    /// Connect to `url`; fails if Redis does not answer now. Reconnects by itself later.
    pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = ::redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // Retries would hold a callback up; the next call tries again anyway.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut connection = ConnectionManager::new_with_config(client, config).await?;
        let _: String = ::redis::cmd("PING").query_async(&mut connection).await?;
        Ok(Self {
            connection,
            timeout,
        })
    }

    async fn run<T: ::redis::FromRedisValue>(&self, cmd: ::redis::Cmd) -> Result<T, Unavailable> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async(&mut connection)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(Unavailable::Timeout(self.timeout)),
        }
    }

    /// Whether Redis answers a PING within the cache's timeout.
    pub(super) async fn ping(&self) -> bool {
        self.run::<String>(::redis::cmd("PING")).await.is_ok()
    }

    pub(super) async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(name);
        self.run(cmd).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn set(
        &self,
        namespace: &str,
        tenant: TenantId,
        name: &str,
        value: &[u8],
        size: u64,
        ttl: Duration,
        quota: u64,
        keep: Duration,
    ) -> Result<Stored, Unavailable> {
        let [expiry, sizes, bytes] = bookkeeping(namespace, tenant);
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(SET_SCRIPT)
            .arg(4)
            .arg(name)
            .arg(expiry)
            .arg(sizes)
            .arg(bytes)
            .arg(value)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .arg(quota)
            .arg(size)
            .arg(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX))
            .arg(MAX_EVICTIONS);
        let evicted: i64 = self.run(cmd).await?;
        Ok(if evicted < 0 {
            Stored::NoRoom
        } else {
            Stored::Yes
        })
    }

    pub(super) async fn delete(
        &self,
        namespace: &str,
        tenant: TenantId,
        name: &str,
    ) -> Result<(), Unavailable> {
        let [expiry, sizes, bytes] = bookkeeping(namespace, tenant);
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(DELETE_SCRIPT)
            .arg(4)
            .arg(name)
            .arg(expiry)
            .arg(sizes)
            .arg(bytes);
        let _: i64 = self.run(cmd).await?;
        Ok(())
    }

    /// Remove every entry of `tenant` and its bookkeeping: the entries' names come from
    /// the `sizes` hash, a bounded batch per round trip (HSCAN), so Redis is never held
    /// by one long command. Returns how many entries were removed.
    pub(super) async fn purge(
        &self,
        namespace: &str,
        tenant: TenantId,
    ) -> Result<u64, Unavailable> {
        const BATCH: usize = 500;
        let [expiry, sizes, bytes] = bookkeeping(namespace, tenant);
        let mut removed = 0u64;
        let mut cursor = 0u64;
        loop {
            let mut scan = ::redis::cmd("HSCAN");
            scan.arg(&sizes).arg(cursor).arg("COUNT").arg(BATCH);
            let (next, pairs): (u64, Vec<String>) = self.run(scan).await?;
            // Field, value, field, value…: the fields are the entries' names.
            let names: Vec<&String> = pairs.iter().step_by(2).collect();
            if !names.is_empty() {
                let mut unlink = ::redis::cmd("UNLINK");
                for name in &names {
                    unlink.arg(name.as_str());
                }
                let _: i64 = self.run(unlink).await?;
                removed += names.len() as u64;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut unlink = ::redis::cmd("UNLINK");
        unlink.arg(expiry).arg(sizes).arg(bytes);
        let _: i64 = self.run(unlink).await?;
        Ok(removed)
    }

    pub(super) async fn usage(
        &self,
        namespace: &str,
        tenant: TenantId,
    ) -> Result<u64, Unavailable> {
        let [_, _, bytes] = bookkeeping(namespace, tenant);
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(bytes);
        let used: Option<i64> = self.run(cmd).await?;
        Ok(u64::try_from(used.unwrap_or(0)).unwrap_or(0))
    }
}
