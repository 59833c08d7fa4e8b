//! The shared cache's latency: `get` and `set` of 1 KiB values, p50 and p99, in this process
//! and through Redis (issue 14). A quick run, a few thousand operations each:
//!
//! ```text
//! TESSERA_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo test --release --workspace --bench cache
//! ```
//!
//! Without `TESSERA_TEST_REDIS_URL` only the in-process figures are printed (said so).
//! `CACHE_BENCH_OPS` (default 2000) sets the operations per measurement.

use std::time::{Duration, Instant};

use platform::cache::{Cache, CacheLimits, CacheScope};
use platform::ids::{AppId, TenantId};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn measure(cache: &Cache, ops: usize) {
    let scope = CacheScope {
        tenant: TenantId(1),
        app: AppId(1),
    };
    let value = vec![7u8; 1024];
    let ttl = Duration::from_secs(60);
    let mut sets = Vec::with_capacity(ops);
    for i in 0..ops {
        let started = Instant::now();
        cache
            .set(scope, &format!("key-{i}"), &value, ttl)
            .await
            .expect("set");
        sets.push(started.elapsed());
    }
    let mut gets = Vec::with_capacity(ops);
    for i in 0..ops {
        let started = Instant::now();
        let got = cache.get(scope, &format!("key-{i}")).await.expect("get");
        gets.push(started.elapsed());
        assert_eq!(got.as_deref(), Some(&value[..]), "every value reads back");
    }
    sets.sort();
    gets.sort();
    println!(
        "cache {:>6}: set p50 {:>9.1?} p99 {:>9.1?} | get p50 {:>9.1?} p99 {:>9.1?} ({ops} ops of 1 KiB)",
        cache.backend_name(),
        percentile(&sets, 0.5),
        percentile(&sets, 0.99),
        percentile(&gets, 0.5),
        percentile(&gets, 0.99),
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let ops: usize = std::env::var("CACHE_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    measure(&Cache::in_process(CacheLimits::default()), ops).await;
    match std::env::var("TESSERA_TEST_REDIS_URL") {
        Ok(url) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let namespace = format!("{:016x}", nanos as u64);
            let cache = Cache::connect_redis(&url, &namespace, CacheLimits::default())
                .await
                .expect("Redis answers");
            measure(&cache, ops).await;
        }
        Err(_) => println!("cache  redis: skipped, TESSERA_TEST_REDIS_URL is not set"),
    }
}
