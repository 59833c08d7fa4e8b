//! Browser sessions kept in the database (when no Redis is configured), the per-user
//! session epoch behind "sign out everywhere", and audit rows for sign-in attempts.
//!
//! Only the sha256 of a session id is stored (migration 0013): whoever reads the table or a
//! backup learns no cookie to present.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Change, Result, Store, audit};
use crate::ids::{TenantId, UserId};
use crate::tenancy::Role;

/// What a session needs to know about its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionAccount {
    /// The user's session epoch: a session signed in under another one has ended.
    pub epoch: i64,
    /// Platform superadmin.
    pub superadmin: bool,
    /// The password must be changed before anything else.
    pub must_change: bool,
    /// Their role in each tenant they belong to.
    pub memberships: Vec<(TenantId, Role)>,
}

/// The key a session id is stored under: its sha256, hex. Shared with the Redis store.
pub fn session_key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

impl Store {
    /// The JSON record of session `id`, unless it has expired by `now`.
    pub async fn session_load(&self, id: &str, now: i64) -> Result<Option<String>> {
        let row = sqlx::query("select data from sessions where id = $1 and expiry_date > $2")
            .bind(session_key(id))
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Create or replace session `id`.
    pub async fn session_save(&self, id: &str, data: &str, expiry_date: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into sessions (id, data, expiry_date) values ($1, $2, $3) \
             on conflict (id) do update set data = excluded.data, expiry_date = excluded.expiry_date",
        )
        .bind(session_key(id))
        .bind(data)
        .bind(expiry_date)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forget session `id` (and, while at it, every session expired by `now`).
    pub async fn session_delete(&self, id: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("delete from sessions where id = $1 or expiry_date <= $2")
            .bind(session_key(id))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete every session expired by `now` (the periodic sweep); returns how many.
    pub async fn sweep_expired_sessions(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("delete from sessions where expiry_date <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// A user's session epoch, or `None` if the user does not exist or is disabled.
    pub async fn session_epoch(&self, user: UserId) -> Result<Option<i64>> {
        let row =
            sqlx::query("select session_epoch from users where id = $1 and disabled_at is null")
                .bind(user.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// What a session of `user` needs (two queries), or `None` if the user does not exist
    /// or is disabled.
    pub async fn session_account(&self, user: UserId) -> Result<Option<SessionAccount>> {
        let row = sqlx::query(
            "select session_epoch, superadmin, password_must_change from users \
             where id = $1 and disabled_at is null",
        )
        .bind(user.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(SessionAccount {
            epoch: row.try_get(0)?,
            superadmin: row.try_get::<i64, _>(1)? != 0,
            must_change: row.try_get::<i64, _>(2)? != 0,
            memberships: self.memberships_of(user).await?,
        }))
    }

    /// Raise a user's epoch so every session signed in before now ends ("sign out
    /// everywhere"); returns the new epoch.
    pub async fn bump_session_epoch(&self, user: UserId, change: &Change<'_>) -> Result<i64> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "update users set session_epoch = session_epoch + 1 where id = $1 returning session_epoch",
        )
        .bind(user.0)
        .fetch_one(&mut *tx)
        .await?;
        let epoch: i64 = row.try_get(0)?;
        audit::record(
            &mut tx,
            change,
            None,
            "user.sign_out_everywhere",
            &format!("user:{}", user.0),
            serde_json::json!({}),
        )
        .await?;
        // Sessions keep the account cached (`lookup::AccountCache`): this replica drops
        // it at once, the others through the change counter (migration 0031).
        self.commit_change(tx).await?;
        Ok(epoch)
    }

    /// Replace a user's password hash and clear the forced-change flag; every session of
    /// the user ends (epoch raised). Returns the new epoch, under which the caller keeps its
    /// own session signed in.
    pub async fn set_password(&self, user: UserId, hash: &str, change: &Change<'_>) -> Result<i64> {
        self.replace_password(
            user,
            hash,
            "password_must_change = 0, session_epoch = session_epoch + 1",
            "user.password_change",
            change,
        )
        .await
    }

    /// An operator's forced reset: a new (one-time) password hash that must be changed at
    /// the next sign-in, and every existing session of the user ends (epoch raised), in one
    /// transaction.
    pub async fn force_password_reset(
        &self,
        user: UserId,
        hash: &str,
        change: &Change<'_>,
    ) -> Result<()> {
        self.replace_password(
            user,
            hash,
            "password_must_change = 1, session_epoch = session_epoch + 1",
            "user.password_reset",
            change,
        )
        .await
        .map(|_| ())
    }

    /// The new hash plus `also` (fixed SQL assignments, never user input) and the audit row
    /// `action`, in one transaction; the user's session epoch after it.
    async fn replace_password(
        &self,
        user: UserId,
        hash: &str,
        also: &'static str,
        action: &str,
        change: &Change<'_>,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let epoch: i64 = sqlx::query(&format!(
            "update users set password_hash = $1, {also} where id = $2 returning session_epoch"
        ))
        .bind(hash)
        .bind(user.0)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        audit::record(
            &mut tx,
            change,
            None,
            action,
            &format!("user:{}", user.0),
            serde_json::json!({}),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(epoch)
    }

    /// Record a sign-in attempt (`auth.sign_in` or `auth.sign_in_failed`) on its own.
    pub async fn audit_sign_in(
        &self,
        change: &Change<'_>,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        audit::record(&mut tx, change, None, action, target, detail).await?;
        tx.commit().await?;
        Ok(())
    }
}
