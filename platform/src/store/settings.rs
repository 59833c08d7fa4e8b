//! Per-app settings and secrets (`app_settings`, migration 0010).
//!
//! The store keeps what it is given: the caller ([`crate::settings`]) checks names and
//! values and seals secrets before they arrive here. Every change is one transaction that
//! also bumps `apps.settings_revision` (so running servers reload the app) and writes an
//! audit row naming the settings, never their values.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Change};
use super::{Error, Result, Store};
use crate::ids::{AppId, TenantId};

/// A stored setting. For a secret, `value` is still sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSetting {
    /// Its name.
    pub name: String,
    /// Whether it is a secret.
    pub secret: bool,
    /// The plain value, or the sealed one for a secret.
    pub value: String,
    /// When it was last set (Unix ms).
    pub updated_at: i64,
    /// Who last set it (an audit actor).
    pub updated_by: String,
}

impl std::fmt::Debug for StoredSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No values: a plain setting may still be something the author would not print.
        f.debug_struct("StoredSetting")
            .field("name", &self.name)
            .field("secret", &self.secret)
            .field("updated_at", &self.updated_at)
            .field("updated_by", &self.updated_by)
            .finish_non_exhaustive()
    }
}

/// One setting to create or replace.
pub struct SettingWrite<'a> {
    /// Its name (already checked).
    pub name: &'a str,
    /// Whether it is a secret.
    pub secret: bool,
    /// The value to store: plain, or already sealed for a secret.
    pub stored_value: String,
}

/// What [`Store::update_app_setting`] does with the setting it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingUpdate {
    /// Nothing to write.
    Keep,
    /// Create or replace it as a plain setting with this value.
    Set(String),
    /// Remove it.
    Unset,
}

fn stored_setting(row: &sqlx::any::AnyRow) -> Result<StoredSetting> {
    let kind: String = row.try_get(1)?;
    Ok(StoredSetting {
        name: row.try_get(0)?,
        secret: match kind.as_str() {
            "secret" => true,
            "plain" => false,
            other => return Err(Error::Corrupt(format!("setting kind {other:?}"))),
        },
        value: row.try_get(2)?,
        updated_at: row.try_get(3)?,
        updated_by: row.try_get(4)?,
    })
}

impl Store {
    /// Reads the setting `name` of `app` of `tenant` and writes what `decide` makes of it
    /// in the same transaction, under the app row's lock: two concurrent read-modify-write
    /// edits (an allowlist's `allow` and `deny`) cannot lose one. `decide`'s refusal
    /// writes nothing and is handed back as the inner error. Audited as
    /// `app.settings.set` / `app.settings.unset`.
    pub async fn update_app_setting<T, E>(
        &self,
        tenant: TenantId,
        app: AppId,
        name: &str,
        max_settings: usize,
        change: &Change<'_>,
        decide: impl FnOnce(Option<StoredSetting>) -> std::result::Result<(SettingUpdate, T), E>,
    ) -> Result<std::result::Result<T, E>> {
        let mut tx = self.begin().await?;
        let target = self.lock_app_row(&mut tx, tenant, app).await?;
        let row = sqlx::query(
            "select name, kind, value, updated_at, updated_by from app_settings \
             where app_id = $1 and name = $2",
        )
        .bind(app.0)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let current = row.as_ref().map(stored_setting).transpose()?;
        let (update, decided) = match decide(current) {
            Ok(decided) => decided,
            Err(refused) => return Ok(Err(refused)),
        };
        match &update {
            SettingUpdate::Keep => return Ok(Ok(decided)),
            SettingUpdate::Set(value) => {
                sqlx::query(
                    "insert into app_settings (app_id, name, kind, value, updated_at, updated_by) \
                     values ($1, $2, 'plain', $3, $4, $5) \
                     on conflict (app_id, name) do update set kind = excluded.kind, \
                     value = excluded.value, updated_at = excluded.updated_at, \
                     updated_by = excluded.updated_by",
                )
                .bind(app.0)
                .bind(name)
                .bind(value)
                .bind(change.at)
                .bind(change.actor)
                .execute(&mut *tx)
                .await?;
                let count: i64 = sqlx::query("select count(*) from app_settings where app_id = $1")
                    .bind(app.0)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                if usize::try_from(count).unwrap_or(usize::MAX) > max_settings {
                    return Err(Error::QuotaExceeded(format!(
                        "{target} would have {count} settings; at most {max_settings} are allowed"
                    )));
                }
            }
            SettingUpdate::Unset => {
                sqlx::query("delete from app_settings where app_id = $1 and name = $2")
                    .bind(app.0)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        bump_revision(&mut tx, app).await?;
        let (action, detail) = match update {
            SettingUpdate::Unset => ("app.settings.unset", json!({"names": [name]})),
            _ => (
                "app.settings.set",
                json!({"settings": [name], "secrets": Vec::<&str>::new()}),
            ),
        };
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            action,
            &format!("app:{target}"),
            detail,
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(Ok(decided))
    }

    /// The settings of `app`, by name.
    pub async fn app_settings(&self, app: AppId) -> Result<Vec<StoredSetting>> {
        let rows = sqlx::query(
            "select name, kind, value, updated_at, updated_by from app_settings \
             where app_id = $1 order by name",
        )
        .bind(app.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_setting).collect()
    }

    /// Creates or replaces `writes` on `app` of `tenant`, all or none. Refused when the app
    /// would have more than `max_settings`. Audited as `app.settings.set`.
    pub async fn set_app_settings(
        &self,
        tenant: TenantId,
        app: AppId,
        writes: &[SettingWrite<'_>],
        max_settings: usize,
        change: &Change<'_>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let target = self.lock_app_row(&mut tx, tenant, app).await?;
        for write in writes {
            sqlx::query(
                "insert into app_settings (app_id, name, kind, value, updated_at, updated_by) \
                 values ($1, $2, $3, $4, $5, $6) \
                 on conflict (app_id, name) do update set kind = excluded.kind, \
                 value = excluded.value, updated_at = excluded.updated_at, \
                 updated_by = excluded.updated_by",
            )
            .bind(app.0)
            .bind(write.name)
            .bind(if write.secret { "secret" } else { "plain" })
            .bind(&write.stored_value)
            .bind(change.at)
            .bind(change.actor)
            .execute(&mut *tx)
            .await?;
        }
        let count: i64 = sqlx::query("select count(*) from app_settings where app_id = $1")
            .bind(app.0)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if usize::try_from(count).unwrap_or(usize::MAX) > max_settings {
            return Err(Error::QuotaExceeded(format!(
                "{target} would have {count} settings; at most {max_settings} are allowed"
            )));
        }
        bump_revision(&mut tx, app).await?;
        let name_list = |secret: bool| -> Vec<&str> {
            writes
                .iter()
                .filter(|w| w.secret == secret)
                .map(|w| w.name)
                .collect()
        };
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "app.settings.set",
            &format!("app:{target}"),
            json!({"settings": name_list(false), "secrets": name_list(true)}),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(())
    }

    /// Removes `names` from `app` of `tenant` in one transaction and returns those the app
    /// had; a name it does not have is no error (removal is idempotent). Audited as
    /// `app.settings.unset` when something was removed.
    pub async fn unset_app_settings(
        &self,
        tenant: TenantId,
        app: AppId,
        names: &[&str],
        change: &Change<'_>,
    ) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let target = self.lock_app_row(&mut tx, tenant, app).await?;
        let mut removed = Vec::new();
        for name in names {
            let rows = sqlx::query("delete from app_settings where app_id = $1 and name = $2")
                .bind(app.0)
                .bind(*name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if rows > 0 {
                removed.push((*name).to_owned());
            }
        }
        if removed.is_empty() {
            return Ok(removed);
        }
        bump_revision(&mut tx, app).await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "app.settings.unset",
            &format!("app:{target}"),
            json!({"names": removed}),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(removed)
    }
}

async fn bump_revision(tx: &mut sqlx::Transaction<'static, sqlx::Any>, app: AppId) -> Result<()> {
    sqlx::query("update apps set settings_revision = settings_revision + 1 where id = $1")
        .bind(app.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
