//! Leases (`leases`, migration 0011): named locks across every process sharing the
//! database. A lease is held until `expires_at` (Unix ms); its holder renews it while it
//! works and deletes it when done. Expiry, not a connection, ends the lease of a holder
//! that died, so the same code works on SQLite files shared by several processes and on
//! PostgreSQL.

use super::{Result, Store};

impl Store {
    /// Takes the lease `name` for `holder` until `now + ttl_ms` when it is free, expired or
    /// already `holder`'s (then it is renewed). Returns whether `holder` holds it now.
    pub async fn try_take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        let taken = sqlx::query(
            "insert into leases (name, holder, expires_at) values ($1, $2, $3) \
             on conflict (name) do update set holder = excluded.holder, \
             expires_at = excluded.expires_at \
             where leases.expires_at <= $4 or leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(ttl_ms))
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Gives the lease `name` up if `holder` still holds it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("delete from leases where name = $1 and holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
