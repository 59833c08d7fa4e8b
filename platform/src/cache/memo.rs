//! Platform memoization of callbacks an author marked `memoize(ttl)`: a repeated request
//! is answered from the [`Cache`](super::Cache) without running the guest.
//!
//! The key is the app (the cache scope), the live *version* id, the callback id and the
//! sha256 of the canonical JSON (object keys sorted at every level) of exactly what the
//! guest would be handed: inputs, state, outputs, `changedPropIds` and the path prefix.
//! A deploy makes a new version id, so it invalidates every memoized answer at once.
//!
//! Only a successful answer with outputs is stored (the response body Dash gets);
//! `PreventUpdate`, a callback without outputs and errors are not, so a failure is retried
//! by the next request. Concurrent misses of one key on one replica run the guest once:
//! the others wait for that run and share its outcome, error included (single flight).
//! Entries count under the tenant's cache quota like any other.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::{Cache, CacheScope};
use crate::dash::dependencies::Callback;
use crate::store::LiveVersion;

/// A callback's answer as the memo keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A 200 with this JSON body (stored).
    Json(String),
    /// Nothing to update: 204 (not stored).
    NoContent,
}

/// Counters for the metrics (issue 16) and the benchmark's hit ratio.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoStats {
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests that had to wait for or run the guest.
    pub misses: u64,
    /// Guest runs done for memoized callbacks.
    pub runs: u64,
}

type Flight<E> = Arc<OnceCell<Result<Answer, E>>>;

/// The memo: single-flight bookkeeping and counters; the entries live in the cache.
#[derive(Default)]
pub struct Memo {
    /// Runs in flight, by cache key; an entry lives only while its run does. The value is a
    /// `Box<dyn Any>` so the error type stays the caller's.
    in_flight: Mutex<HashMap<String, Arc<dyn std::any::Any + Send + Sync>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    runs: AtomicU64,
}

/// The cache key of one memoized request: `memo:v<version>:<sha256>` over the callback id
/// (length-prefixed) and the canonical request.
pub fn memo_key(version: &LiveVersion, callback_id: &str, guest_request_json: &str) -> String {
    let canonical = match serde_json::from_str::<Value>(guest_request_json) {
        Ok(value) => canonical_json(&value),
        // Not reached (the platform wrote it); hashing the text keeps it correct anyway.
        Err(_) => guest_request_json.to_owned(),
    };
    let mut hash = Sha256::new();
    hash.update((callback_id.len() as u64).to_be_bytes());
    hash.update(callback_id.as_bytes());
    hash.update(canonical.as_bytes());
    format!(
        "memo:v{}:{}",
        version.version_id.0,
        hex::encode(hash.finalize())
    )
}

/// JSON with object keys sorted at every level and no spaces: equal values, equal text.
pub fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(&map[key], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

impl Memo {
    /// The counters so far.
    pub fn stats(&self) -> MemoStats {
        MemoStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            runs: self.runs.load(Ordering::Relaxed),
        }
    }

    /// Answer one request for `callback` of `version`: through [`Memo::answer`] when the
    /// author marked it `memoize(ttl)`, else by `run` directly. `run` is told whether the
    /// call is memoized, so the sandbox call can refuse the viewer's identity to it.
    pub async fn run<E, F, Fut>(
        &self,
        cache: &Cache,
        version: &LiveVersion,
        callback: &Callback,
        guest_request_json: &str,
        run: F,
    ) -> Result<Answer, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce(bool) -> Fut,
        Fut: Future<Output = Result<Answer, E>>,
    {
        match callback.memoize {
            None => run(false).await,
            Some(ttl) => {
                self.answer(
                    cache,
                    version,
                    &callback.output,
                    guest_request_json,
                    ttl,
                    || run(true),
                )
                .await
            }
        }
    }

    /// Answer a memoized callback of `version`: from the cache when it holds the answer,
    /// else by `run` (once per key on this replica at a time), storing a `Json` answer for
    /// `ttl` (capped by the cache's TTL cap). The cache never makes this fail.
    pub async fn answer<E, F, Fut>(
        &self,
        cache: &Cache,
        version: &LiveVersion,
        callback_id: &str,
        guest_request_json: &str,
        ttl: Duration,
        run: F,
    ) -> Result<Answer, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Answer, E>>,
    {
        cache.set_tenant_quota(version.tenant_id, version.callback_quotas.cache_bytes);
        let scope = CacheScope {
            tenant: version.tenant_id,
            app: version.app_id,
        };
        let key = memo_key(version, callback_id, guest_request_json);
        if let Ok(Some(bytes)) = cache.get(scope, &key).await
            && let Ok(body) = String::from_utf8(bytes)
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Answer::Json(body));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let flight: Flight<E> = self.flight(&key);
        // Forgets the flight when this request ends, answered or dropped (a client gone
        // mid-run), so no finished or abandoned flight stays in the map.
        let _landing = Landing {
            memo: self,
            key: &key,
            flight: &flight,
        };
        flight
            .get_or_init(|| async {
                self.runs.fetch_add(1, Ordering::Relaxed);
                let outcome = run().await;
                if let Ok(Answer::Json(body)) = &outcome {
                    let ttl = ttl.min(cache.limits().max_ttl);
                    if let Err(e) = cache.set(scope, &key, body.as_bytes(), ttl).await {
                        // An answer over the value cap or the tenant's quota: served, not kept.
                        tracing::debug!(tenant = %version.tenant_id, app = %version.app_id, callback = callback_id, error = %e, "memoized answer not stored");
                    }
                }
                outcome
            })
            .await
            .clone()
    }

    /// The flight of `key`: the one in progress, or a new one.
    fn flight<E: Send + Sync + 'static>(&self, key: &str) -> Flight<E> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = in_flight.get(key)
            && let Ok(flight) = existing.clone().downcast::<OnceCell<Result<Answer, E>>>()
        {
            return flight;
        }
        let flight: Flight<E> = Arc::new(OnceCell::new());
        in_flight.insert(key.to_owned(), flight.clone());
        flight
    }

    /// Forget a finished flight, so the next request reads the cache again.
    fn land<E: Send + Sync + 'static>(&self, key: &str, flight: &Flight<E>) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = in_flight.get(key) {
            let same = existing
                .clone()
                .downcast::<OnceCell<Result<Answer, E>>>()
                .is_ok_and(|existing| Arc::ptr_eq(&existing, flight));
            if same {
                in_flight.remove(key);
            }
        }
    }
}

struct Landing<'a, E: Send + Sync + 'static> {
    memo: &'a Memo,
    key: &'a str,
    flight: &'a Flight<E>,
}

impl<E: Send + Sync + 'static> Drop for Landing<'_, E> {
    fn drop(&mut self) {
        self.memo.land(self.key, self.flight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheLimits;
    use crate::ids::{AppId, TenantId, VersionId};
    use crate::store::Quotas;
    use serde_json::json;

    fn version(id: i64) -> LiveVersion {
        LiveVersion {
            app_id: AppId(7),
            version_id: VersionId(id),
            number: id,
            sha256: String::new(),
            tenant_id: TenantId(3),
            callback_quotas: Quotas::DEFAULT.callback(),
            settings_revision: 0,
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"y": [1, {"q": 2, "p": 1}], "x": "s"}});
        let b: Value =
            serde_json::from_str(r#"{"a": {"x": "s", "y": [1, {"p": 1, "q": 2}]}, "b": 1}"#)
                .expect("json");
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"s","y":[1,{"p":1,"q":2}]},"b":1}"#
        );
    }

    #[test]
    fn the_key_follows_version_callback_and_request() {
        let request = r#"{"inputs":[{"id":"a","property":"value","value":1}],"state":[]}"#;
        let reordered = r#"{"state":[],"inputs":[{"value":1,"property":"value","id":"a"}]}"#;
        let key = memo_key(&version(1), "out.children", request);
        assert_eq!(key, memo_key(&version(1), "out.children", reordered));
        assert_ne!(key, memo_key(&version(2), "out.children", request));
        assert_ne!(key, memo_key(&version(1), "other.children", request));
        let changed = request.replace("\"value\":1", "\"value\":2");
        assert_ne!(key, memo_key(&version(1), "out.children", &changed));
        assert!(key.starts_with("memo:v1:") && key.len() <= super::super::MAX_KEY_BYTES);
    }

    #[tokio::test]
    async fn concurrent_misses_run_once_and_failures_are_not_kept() {
        let cache = Arc::new(Cache::in_process(CacheLimits::default()));
        let memo = Arc::new(Memo::default());
        let runs = Arc::new(AtomicU64::new(0));
        let v = version(1);
        let mut waiting = Vec::new();
        for _ in 0..8 {
            let (memo, runs, v, cache) = (memo.clone(), runs.clone(), v.clone(), cache.clone());
            waiting.push(tokio::spawn(async move {
                memo.answer(
                    &cache,
                    &v,
                    "out.children",
                    "{}",
                    Duration::from_secs(60),
                    || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, String>(Answer::Json("{\"a\":1}".into()))
                    },
                )
                .await
            }));
        }
        for answer in waiting {
            assert_eq!(
                answer.await.expect("task"),
                Ok(Answer::Json("{\"a\":1}".into()))
            );
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one run for eight waiters");
        let again = memo
            .answer(
                &cache,
                &v,
                "out.children",
                "{}",
                Duration::from_secs(60),
                || async { Err::<Answer, _>("must not run".to_owned()) },
            )
            .await;
        assert_eq!(again, Ok(Answer::Json("{\"a\":1}".into())));
        assert_eq!(memo.stats().hits, 1);

        for _ in 0..2 {
            let failed = memo
                .answer(
                    &cache,
                    &v,
                    "fail.children",
                    "{}",
                    Duration::from_secs(60),
                    || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        Err::<Answer, _>("boom".to_owned())
                    },
                )
                .await;
            assert_eq!(failed, Err("boom".to_owned()));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3, "a failure is run again");
        assert!(memo.in_flight.lock().expect("lock").is_empty());

        // A request dropped mid-run (its client left) leaves no flight behind.
        let abandoned = memo.answer(
            &cache,
            &v,
            "slow.children",
            "{}",
            Duration::from_secs(60),
            || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, String>(Answer::NoContent)
            },
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(20), abandoned)
                .await
                .is_err()
        );
        assert!(memo.in_flight.lock().expect("lock").is_empty());
    }
}
