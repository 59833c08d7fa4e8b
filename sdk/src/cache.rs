//! A key-value cache shared by every instance and replica serving this app, namespaced by
//! tenant and app: another app never sees these keys. Values are bytes with a
//! time-to-live; the platform may evict a value before its time (a per-tenant byte quota),
//! so treat a miss as normal and recompute.
//!
//! ```no_run
//! let key = "totals:2026";
//! let totals = match sdk::cache::get(key)? {
//!     Some(bytes) => bytes,
//!     None => {
//!         let bytes = b"expensive".to_vec();
//!         sdk::cache::set(key, &bytes, 300)?;
//!         bytes
//!     }
//! };
//! # let _ = totals;
//! # Ok::<(), sdk::cache::CacheError>(())
//! ```
//!
//! Natively (`cargo test` of an app) the cache is an in-memory map of the current thread
//! that honours the time-to-live, so callbacks that use it can be unit-tested; each test
//! (its own thread) starts empty.

use std::fmt;

/// Why the cache did not answer (unavailable, a key or value over its limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheError(pub String);

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache: {}", self.0)
    }
}

impl std::error::Error for CacheError {}

/// The value stored under `key`, or `None` (never set, expired, deleted or evicted).
///
/// # Errors
///
/// When the cache is unavailable or the key is over its limit.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, CacheError> {
    #[cfg(target_arch = "wasm32")]
    return crate::export::cache_get(key).map_err(CacheError);
    #[cfg(not(target_arch = "wasm32"))]
    return Ok(native::get(key));
}

/// Stores `value` under `key` for `ttl_seconds` (at least 1).
///
/// # Errors
///
/// When the cache is unavailable, the time-to-live is zero, or the key or value is over
/// its limit.
pub fn set(key: &str, value: &[u8], ttl_seconds: u32) -> Result<(), CacheError> {
    #[cfg(target_arch = "wasm32")]
    return crate::export::cache_set(key, value, ttl_seconds).map_err(CacheError);
    #[cfg(not(target_arch = "wasm32"))]
    {
        if ttl_seconds == 0 {
            return Err(CacheError(
                "the time-to-live must be at least one second".to_owned(),
            ));
        }
        native::set(key, value, ttl_seconds);
        Ok(())
    }
}

/// Removes `key` (removing a missing key is not an error).
///
/// # Errors
///
/// When the cache is unavailable or the key is over its limit.
pub fn delete(key: &str) -> Result<(), CacheError> {
    #[cfg(target_arch = "wasm32")]
    return crate::export::cache_delete(key).map_err(CacheError);
    #[cfg(not(target_arch = "wasm32"))]
    {
        native::delete(key);
        Ok(())
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    thread_local! {
        static MAP: RefCell<HashMap<String, (Vec<u8>, Instant)>> = RefCell::new(HashMap::new());
    }

    pub(super) fn get(key: &str) -> Option<Vec<u8>> {
        MAP.with_borrow_mut(|map| match map.get(key) {
            Some((_, until)) if *until <= Instant::now() => {
                map.remove(key);
                None
            }
            found => found.map(|(value, _)| value.clone()),
        })
    }

    pub(super) fn set(key: &str, value: &[u8], ttl_seconds: u32) {
        let until = Instant::now() + Duration::from_secs(ttl_seconds.into());
        MAP.with_borrow_mut(|map| map.insert(key.to_owned(), (value.to_vec(), until)));
    }

    pub(super) fn delete(key: &str) {
        MAP.with_borrow_mut(|map| map.remove(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natively_the_cache_is_a_map_of_the_test_thread() {
        assert_eq!(get("k"), Ok(None));
        set("k", b"v", 60).expect("set");
        assert_eq!(get("k"), Ok(Some(b"v".to_vec())));
        delete("k").expect("delete");
        assert_eq!(get("k"), Ok(None));
        assert!(set("k", b"v", 0).is_err());
    }
}
