//! Short-lived keys of the apps-origin hand-off (`app_handoffs`, migration 0014): one-time
//! codes and the links between app sessions and the platform session that made them, and
//! the pending SAML sign-ins (`saml:` keys, [`crate::auth::saml`]). Keys
//! arrive already hashed; the rules (lifetimes, single use, binding) are
//! [`crate::auth::handoff`]'s.

use sqlx::Row;

use super::{Result, Store};

impl Store {
    /// Store `data` under `key` until `expires_at`, and drop the rows expired by `now`
    /// (few, and each lives a minute or a session, so the table stays small).
    pub async fn handoff_put(
        &self,
        key: &str,
        data: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("delete from app_handoffs where expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "insert into app_handoffs (key, data, expires_at) values ($1, $2, $3) \
             on conflict (key) do update set data = excluded.data, expires_at = excluded.expires_at",
        )
        .bind(key)
        .bind(data)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remove `key` and return its data if it had not expired by `now`: one statement, so
    /// of two replicas redeeming the same code at once only one gets it.
    pub async fn handoff_take(&self, key: &str, now: i64) -> Result<Option<String>> {
        let row = sqlx::query("delete from app_handoffs where key = $1 returning data, expires_at")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) if row.try_get::<i64, _>(1)? > now => Ok(Some(row.try_get(0)?)),
            _ => Ok(None),
        }
    }

    /// Is `key` there and unexpired at `now`?
    pub async fn handoff_alive(&self, key: &str, now: i64) -> Result<bool> {
        let row = sqlx::query("select 1 from app_handoffs where key = $1 and expires_at > $2")
            .bind(key)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Remove `key` (nothing if it is gone).
    pub async fn handoff_delete(&self, key: &str) -> Result<()> {
        sqlx::query("delete from app_handoffs where key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
