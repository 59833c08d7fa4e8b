//! Tenant data sources and their grants to apps (`data_sources`, `data_source_grants`,
//! migration 0019).
//!
//! The store keeps what it is given: [`crate::datasources`] checks names, settings and
//! limits and seals the connection before it arrives here. Every change writes its audit
//! row (names and kinds, never connection settings) in the same transaction, and bumps
//! the change counter there too (`Store::bump_change_counter`): replicas cache which
//! source an app may query under it (`lookup::GrantCache`), so a revocation, an edit or a
//! removal reaches them as a revoked app grant does.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Change};
use super::{Error, Result, Store, conflict_on_unique};
use crate::ids::{AppId, TenantId};

/// A stored source. `connection` is still sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredDataSource {
    /// Its row id.
    pub id: i64,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its name within the tenant.
    pub name: String,
    /// `postgres`, `mysql` or `sqlite`.
    pub kind: String,
    /// The sealed connection settings.
    pub connection: String,
    /// Per-source limits (`None`: the operator's).
    pub limits: StoredLimits,
    /// When it was registered (Unix ms).
    pub created_at: i64,
    /// When it last changed (Unix ms); also what tells pools of an old version apart.
    pub updated_at: i64,
    /// Who last changed it.
    pub updated_by: String,
    /// The names of the apps it is granted to, sorted.
    pub granted_to: Vec<String>,
}

impl std::fmt::Debug for StoredDataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredDataSource")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("limits", &self.limits)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// Optional per-source limits, as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredLimits {
    /// Statement timeout, ms.
    pub statement_timeout_ms: Option<i64>,
    /// Most rows of one result.
    pub max_rows: Option<i64>,
    /// Most bytes of one result.
    pub max_bytes: Option<i64>,
    /// Most pooled connections.
    pub pool_size: Option<i64>,
}

/// A source to create or replace (already checked and sealed).
pub struct DataSourceWrite<'a> {
    /// Its name.
    pub name: &'a str,
    /// `postgres`, `mysql` or `sqlite`.
    pub kind: &'a str,
    /// The sealed connection settings.
    pub connection: &'a str,
    /// Per-source limits.
    pub limits: StoredLimits,
}

const COLUMNS: &str = "s.id, s.tenant_id, s.name, s.kind, s.connection, s.statement_timeout_ms, \
                       s.max_rows, s.max_bytes, s.pool_size, s.created_at, s.updated_at, s.updated_by";

fn source(row: &sqlx::any::AnyRow) -> Result<StoredDataSource> {
    Ok(StoredDataSource {
        id: row.try_get(0)?,
        tenant_id: TenantId(row.try_get(1)?),
        name: row.try_get(2)?,
        kind: row.try_get(3)?,
        connection: row.try_get(4)?,
        limits: StoredLimits {
            statement_timeout_ms: row.try_get(5)?,
            max_rows: row.try_get(6)?,
            max_bytes: row.try_get(7)?,
            pool_size: row.try_get(8)?,
        },
        created_at: row.try_get(9)?,
        updated_at: row.try_get(10)?,
        updated_by: row.try_get(11)?,
        granted_to: Vec::new(),
    })
}

impl Store {
    /// The slug of `tenant` (where its SQLite sources live).
    pub async fn data_source_tenant_slug(&self, tenant: TenantId) -> Result<Option<String>> {
        Ok(sqlx::query("select slug from tenants where id = $1")
            .bind(tenant.0)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.try_get(0))
            .transpose()?)
    }

    /// The sources of `tenant`, by name, with the apps each is granted to.
    pub async fn data_sources(&self, tenant: TenantId) -> Result<Vec<StoredDataSource>> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from data_sources s where s.tenant_id = $1 order by s.name"
        ))
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        let mut sources = rows.iter().map(source).collect::<Result<Vec<_>>>()?;
        let grants = sqlx::query(
            "select g.source_id, a.name from data_source_grants g \
             join data_sources s on s.id = g.source_id \
             join apps a on a.id = g.app_id and a.tenant_id = s.tenant_id \
             where s.tenant_id = $1 order by a.name",
        )
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        for row in &grants {
            let id: i64 = row.try_get(0)?;
            if let Some(s) = sources.iter_mut().find(|s| s.id == id) {
                s.granted_to.push(row.try_get(1)?);
            }
        }
        Ok(sources)
    }

    /// One source of `tenant` by name.
    pub async fn data_source(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<StoredDataSource>> {
        Ok(self
            .data_sources(tenant)
            .await?
            .into_iter()
            .find(|s| s.name == name))
    }

    /// The source `name` of `tenant` if it is granted to `app` of that same tenant; `None`
    /// otherwise (missing, another tenant's, or not granted: the caller cannot tell).
    pub async fn granted_data_source(
        &self,
        tenant: TenantId,
        app: AppId,
        name: &str,
    ) -> Result<Option<StoredDataSource>> {
        let row = sqlx::query(&format!(
            "select {COLUMNS} from data_sources s \
             join data_source_grants g on g.source_id = s.id \
             join apps a on a.id = g.app_id \
             where s.tenant_id = $1 and a.tenant_id = $1 and g.app_id = $2 and s.name = $3"
        ))
        .bind(tenant.0)
        .bind(app.0)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(source).transpose()
    }

    /// Creates or replaces the source `write.name` of `tenant`; `true` when created.
    /// Audited as `data_source.create` or `data_source.update` (name and kind only).
    pub async fn put_data_source(
        &self,
        tenant: TenantId,
        write: &DataSourceWrite<'_>,
        change: &Change<'_>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let existing: Option<i64> =
            sqlx::query("select id from data_sources where tenant_id = $1 and name = $2")
                .bind(tenant.0)
                .bind(write.name)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        let l = write.limits;
        match existing {
            Some(id) => {
                sqlx::query(
                    "update data_sources set kind = $1, connection = $2, \
                     statement_timeout_ms = $3, max_rows = $4, max_bytes = $5, pool_size = $6, \
                     updated_at = $7, updated_by = $8 where id = $9 and tenant_id = $10",
                )
                .bind(write.kind)
                .bind(write.connection)
                .bind(l.statement_timeout_ms)
                .bind(l.max_rows)
                .bind(l.max_bytes)
                .bind(l.pool_size)
                .bind(change.at)
                .bind(change.actor)
                .bind(id)
                .bind(tenant.0)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "insert into data_sources (tenant_id, name, kind, connection, \
                     statement_timeout_ms, max_rows, max_bytes, pool_size, created_at, \
                     updated_at, updated_by) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
                )
                .bind(tenant.0)
                .bind(write.name)
                .bind(write.kind)
                .bind(write.connection)
                .bind(l.statement_timeout_ms)
                .bind(l.max_rows)
                .bind(l.max_bytes)
                .bind(l.pool_size)
                .bind(change.at)
                .bind(change.actor)
                .execute(&mut *tx)
                .await
                .map_err(conflict_on_unique("data source", write.name))?;
            }
        }
        let action = if existing.is_some() {
            "data_source.update"
        } else {
            "data_source.create"
        };
        let target = self.source_target(&mut tx, tenant, write.name).await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            action,
            &target,
            json!({"kind": write.kind, "limits": {
                "statement_timeout_ms": l.statement_timeout_ms, "max_rows": l.max_rows,
                "max_bytes": l.max_bytes, "pool_size": l.pool_size}}),
        )
        .await?;
        Self::bump_change_counter(&mut tx).await?;
        self.commit_change(tx).await?;
        Ok(existing.is_none())
    }

    /// Removes the source `name` of `tenant` and its grants; `false` when there was none.
    /// Audited as `data_source.remove`.
    pub async fn remove_data_source(
        &self,
        tenant: TenantId,
        name: &str,
        change: &Change<'_>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let target = self.source_target(&mut tx, tenant, name).await?;
        let Some(id) = self.source_id(&mut tx, tenant, name).await? else {
            return Ok(false);
        };
        sqlx::query("delete from data_source_grants where source_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("delete from data_sources where id = $1 and tenant_id = $2")
            .bind(id)
            .bind(tenant.0)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "data_source.remove",
            &target,
            json!({}),
        )
        .await?;
        Self::bump_change_counter(&mut tx).await?;
        self.commit_change(tx).await?;
        Ok(true)
    }

    /// Grants (`granted`) or revokes the source `name` of `tenant` to `app` of the same
    /// tenant; `true` when something changed. Audited as `data_source.grant` or
    /// `data_source.revoke` when it did.
    pub async fn set_data_source_grant(
        &self,
        tenant: TenantId,
        name: &str,
        app: AppId,
        granted: bool,
        change: &Change<'_>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let app_name = self.lock_app_row(&mut tx, tenant, app).await?;
        let target = self.source_target(&mut tx, tenant, name).await?;
        let id = self
            .source_id(&mut tx, tenant, name)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "data source",
                value: name.to_owned(),
            })?;
        let changed = if granted {
            let exists = sqlx::query(
                "select 1 from data_source_grants where source_id = $1 and app_id = $2",
            )
            .bind(id)
            .bind(app.0)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
            if !exists {
                sqlx::query(
                    "insert into data_source_grants (source_id, app_id, granted_at, granted_by) \
                     values ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(app.0)
                .bind(change.at)
                .bind(change.actor)
                .execute(&mut *tx)
                .await?;
            }
            !exists
        } else {
            sqlx::query("delete from data_source_grants where source_id = $1 and app_id = $2")
                .bind(id)
                .bind(app.0)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0
        };
        if changed {
            let action = if granted {
                "data_source.grant"
            } else {
                "data_source.revoke"
            };
            audit::record(
                &mut tx,
                change,
                Some(tenant),
                action,
                &target,
                json!({"app": app_name}),
            )
            .await?;
            Self::bump_change_counter(&mut tx).await?;
            self.commit_change(tx).await?;
        } else {
            tx.commit().await?;
        }
        Ok(changed)
    }

    async fn source_id(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<i64>> {
        Ok(
            sqlx::query("select id from data_sources where tenant_id = $1 and name = $2")
                .bind(tenant.0)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?,
        )
    }

    /// `data_source:{tenant}/{name}`, the audit target.
    async fn source_target(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        tenant: TenantId,
        name: &str,
    ) -> Result<String> {
        let slug: String = sqlx::query("select slug from tenants where id = $1")
            .bind(tenant.0)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "tenant",
                value: tenant.to_string(),
            })?
            .try_get(0)?;
        Ok(format!("data_source:{slug}/{name}"))
    }
}
