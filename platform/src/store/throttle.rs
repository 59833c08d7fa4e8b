//! Sign-in throttling rows (`sign_in_throttle`, migration 0012), shared by every replica.
//! The policy (how many failures, how long a wait) is [`crate::auth::session::Throttle`]'s;
//! this module only counts and stores.

use sqlx::Row;

use super::{Result, Store};

impl Store {
    /// The latest `blocked_until` of `keys` (Unix ms), 0 when none is blocked.
    pub async fn sign_in_blocked_until(&self, keys: &[String]) -> Result<i64> {
        let mut latest = 0;
        for key in keys {
            let row = sqlx::query("select blocked_until from sign_in_throttle where key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                latest = latest.max(row.try_get::<i64, _>(0)?);
            }
        }
        Ok(latest)
    }

    /// Counts one more failure for `key` at `now`; returns the failures since the last
    /// success. One statement, so concurrent failures on several replicas all count.
    pub async fn count_sign_in_failure(&self, key: &str, now: i64) -> Result<i64> {
        let row = sqlx::query(
            "insert into sign_in_throttle (key, failures, blocked_until, last_failure_at) \
             values ($1, 1, 0, $2) \
             on conflict (key) do update set failures = sign_in_throttle.failures + 1, \
             last_failure_at = excluded.last_failure_at \
             returning failures",
        )
        .bind(key)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Refuses attempts for `key` until `until` (Unix ms); never shortens a longer wait.
    pub async fn block_sign_ins(&self, key: &str, until: i64) -> Result<()> {
        sqlx::query(
            "update sign_in_throttle set blocked_until = $2 \
             where key = $1 and blocked_until < $2",
        )
        .bind(key)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the failures of `key` (after a successful sign-in).
    pub async fn clear_sign_in_failures(&self, key: &str) -> Result<()> {
        sqlx::query("delete from sign_in_throttle where key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes the rows whose last failure and wait both ended before `before`.
    pub async fn sweep_sign_in_failures(&self, before: i64) -> Result<u64> {
        let done = sqlx::query(
            "delete from sign_in_throttle where last_failure_at < $1 and blocked_until < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
