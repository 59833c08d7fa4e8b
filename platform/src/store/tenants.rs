//! Tenants and their quotas.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Change};
use super::{Result, Store, conflict_on_unique};
use crate::ids::{Slug, TenantId, UserId};
use crate::tenancy::Role;

/// Per-tenant limits (stored with the tenant; the defaults are in the migration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Number of apps.
    pub max_apps: i64,
    /// Callbacks running at once across the tenant's apps.
    pub max_concurrent_callbacks: i64,
    /// Linear-memory cap of one callback instance, in MiB.
    pub callback_memory_mb: i64,
    /// Deadline of one callback, in milliseconds.
    pub callback_deadline_ms: i64,
    /// Bytes of stored app versions.
    pub max_version_storage_bytes: i64,
    /// CPU share when tenants compete (1 to 10,000; 100 is the default share).
    pub cpu_weight: i64,
    /// Background jobs queued or running at once across the tenant's apps (one app may
    /// have half of them, at least one).
    pub max_jobs: i64,
    /// Deadline of one background job, in milliseconds (the platform's job deadline
    /// still caps it).
    pub job_deadline_ms: i64,
    /// Bytes of the shared cache (memoized answers included); the operator's
    /// `[cache] tenant_max_mb` still caps it.
    pub cache_bytes: i64,
}

impl Quotas {
    /// The quotas that govern running code, as [`super::LiveVersion`] carries them.
    pub fn callback(&self) -> super::CallbackQuotas {
        super::CallbackQuotas {
            max_concurrent: self.max_concurrent_callbacks,
            memory_mb: self.callback_memory_mb,
            deadline_ms: self.callback_deadline_ms,
            cpu_weight: self.cpu_weight,
            max_jobs: self.max_jobs,
            job_deadline_ms: self.job_deadline_ms,
            cache_bytes: self.cache_bytes,
        }
    }

    /// The quotas of a new tenant: the defaults of the migrations (`0002`, `0016`, `0020`).
    pub const DEFAULT: Quotas = Quotas {
        max_apps: 100,
        max_concurrent_callbacks: 32,
        callback_memory_mb: 128,
        callback_deadline_ms: 5_000,
        max_version_storage_bytes: 1 << 30,
        cpu_weight: 100,
        max_jobs: 16,
        job_deadline_ms: 600_000,
        cache_bytes: 64 << 20,
    };
}

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Its slug (the URL segment).
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// When it was created.
    pub created_at: i64,
    /// Its quotas.
    pub quotas: Quotas,
    /// When a superadmin suspended it (its apps, pushes and tokens answer 503), if so.
    pub suspended_at: Option<i64>,
}

const COLUMNS: &str = "id, slug, name, created_at, max_apps, max_concurrent_callbacks, \
                       callback_memory_mb, callback_deadline_ms, max_version_storage_bytes, \
                       cpu_weight, max_jobs, job_deadline_ms, cache_bytes, suspended_at";

fn tenant(row: &sqlx::any::AnyRow) -> Result<Tenant> {
    Ok(Tenant {
        id: TenantId(row.try_get(0)?),
        slug: row.try_get(1)?,
        name: row.try_get(2)?,
        created_at: row.try_get(3)?,
        quotas: Quotas {
            max_apps: row.try_get(4)?,
            max_concurrent_callbacks: row.try_get(5)?,
            callback_memory_mb: row.try_get(6)?,
            callback_deadline_ms: row.try_get(7)?,
            max_version_storage_bytes: row.try_get(8)?,
            cpu_weight: row.try_get(9)?,
            max_jobs: row.try_get(10)?,
            job_deadline_ms: row.try_get(11)?,
            cache_bytes: row.try_get(12)?,
        },
        suspended_at: row.try_get(13)?,
    })
}

impl Store {
    /// Create a tenant and, when given, make `owner` its owner — one transaction, so a
    /// failure at any step (taken slug, unknown user) leaves nothing behind.
    pub async fn create_tenant(
        &self,
        slug: &Slug,
        name: &str,
        owner: Option<UserId>,
        change: &Change<'_>,
    ) -> Result<Tenant> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query(
            "insert into tenants (slug, name, created_at) values ($1, $2, $3) returning id",
        )
        .bind(slug.as_str())
        .bind(name)
        .bind(change.at)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_on_unique("tenant", slug.as_str()))?
        .try_get(0)?;
        let id = TenantId(id);
        audit::record(
            &mut tx,
            change,
            Some(id),
            "tenant.create",
            &format!("tenant:{slug}"),
            json!({"name": name}),
        )
        .await?;
        if let Some(owner) = owner {
            sqlx::query(
                "insert into memberships (tenant_id, user_id, role, created_at) \
                 values ($1, $2, $3, $4)",
            )
            .bind(id.0)
            .bind(owner.0)
            .bind(Role::Owner.as_str())
            .bind(change.at)
            .execute(&mut *tx)
            .await?;
            audit::record(
                &mut tx,
                change,
                Some(id),
                "membership.grant",
                &format!("user:{owner}"),
                json!({"role": Role::Owner.as_str()}),
            )
            .await?;
        }
        let row = sqlx::query(&format!("select {COLUMNS} from tenants where id = $1"))
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        let created = tenant(&row)?;
        self.commit_change(tx).await?;
        Ok(created)
    }

    /// The tenant with this slug.
    pub async fn tenant_by_slug(&self, slug: &Slug) -> Result<Option<Tenant>> {
        let row = sqlx::query(&format!(
            "select {COLUMNS} from tenants where slug = $1 and deleted_at is null"
        ))
        .bind(slug.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(tenant).transpose()
    }

    /// The tenant with this id.
    pub async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        let row = sqlx::query(&format!(
            "select {COLUMNS} from tenants where id = $1 and deleted_at is null"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(tenant).transpose()
    }

    /// Replace a tenant's quotas.
    pub async fn set_quotas(
        &self,
        tenant: TenantId,
        quotas: &Quotas,
        change: &Change<'_>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        write_quotas(&mut tx, tenant, quotas, change).await?;
        self.commit_change(tx).await?;
        Ok(())
    }
}

impl Store {
    /// Tenants ordered by slug, after the cursor `after` (a slug); only those `member`
    /// belongs to when given.
    pub async fn list_tenants(
        &self,
        member: Option<UserId>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Tenant>> {
        let columns = COLUMNS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows =
            match member {
                Some(user) => {
                    sqlx::query(&format!(
                        "select {columns} from tenants t \
                     join memberships m on m.tenant_id = t.id and m.user_id = $1 \
                     where t.slug > $2 and t.deleted_at is null order by t.slug limit $3"
                    ))
                    .bind(user.0)
                    .bind(after.unwrap_or(""))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                }
                None => sqlx::query(&format!(
                    "select {columns} from tenants t where t.slug > $1 and t.deleted_at is null \
                     order by t.slug limit $2"
                ))
                .bind(after.unwrap_or(""))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
            };
        rows.iter().map(tenant).collect()
    }

    /// Change a tenant's display name and/or quotas, in one transaction.
    pub async fn update_tenant(
        &self,
        tenant: TenantId,
        name: Option<&str>,
        quotas: Option<&Quotas>,
        change: &Change<'_>,
    ) -> Result<Tenant> {
        let mut tx = self.begin().await?;
        if let Some(name) = name {
            sqlx::query("update tenants set name = $2 where id = $1")
                .bind(tenant.0)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            audit::record(
                &mut tx,
                change,
                Some(tenant),
                "tenant.rename",
                &format!("tenant:{tenant}"),
                json!({"name": name}),
            )
            .await?;
        }
        if let Some(quotas) = quotas {
            write_quotas(&mut tx, tenant, quotas, change).await?;
        }
        let row = sqlx::query(&format!("select {COLUMNS} from tenants where id = $1"))
            .bind(tenant.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| super::Error::NotFound {
                what: "tenant",
                value: tenant.to_string(),
            })?;
        let updated = self::tenant(&row)?;
        self.commit_change(tx).await?;
        Ok(updated)
    }
}

async fn write_quotas(
    conn: &mut sqlx::AnyConnection,
    tenant: TenantId,
    quotas: &Quotas,
    change: &Change<'_>,
) -> Result<()> {
    let updated = sqlx::query(
        "update tenants set max_apps = $2, max_concurrent_callbacks = $3, \
             callback_memory_mb = $4, callback_deadline_ms = $5, max_version_storage_bytes = $6, \
             cpu_weight = $7, max_jobs = $8, job_deadline_ms = $9, cache_bytes = $10 \
             where id = $1",
    )
    .bind(tenant.0)
    .bind(quotas.max_apps)
    .bind(quotas.max_concurrent_callbacks)
    .bind(quotas.callback_memory_mb)
    .bind(quotas.callback_deadline_ms)
    .bind(quotas.max_version_storage_bytes)
    .bind(quotas.cpu_weight)
    .bind(quotas.max_jobs)
    .bind(quotas.job_deadline_ms)
    .bind(quotas.cache_bytes)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(super::Error::NotFound {
            what: "tenant",
            value: tenant.to_string(),
        });
    }
    audit::record(
        conn,
        change,
        Some(tenant),
        "tenant.set_quotas",
        &format!("tenant:{tenant}"),
        json!({
            "max_apps": quotas.max_apps,
            "max_concurrent_callbacks": quotas.max_concurrent_callbacks,
            "callback_memory_mb": quotas.callback_memory_mb,
            "callback_deadline_ms": quotas.callback_deadline_ms,
            "max_version_storage_bytes": quotas.max_version_storage_bytes,
            "cpu_weight": quotas.cpu_weight,
            "max_jobs": quotas.max_jobs,
            "job_deadline_ms": quotas.job_deadline_ms,
            "cache_bytes": quotas.cache_bytes,
        }),
    )
    .await?;
    Ok(())
}

/// What [`Store::delete_tenant`] removed, in rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeletedTenant {
    /// The tenant's slug (kept reserved by its tombstone).
    pub slug: String,
    /// Apps.
    pub apps: u64,
    /// App versions.
    pub versions: u64,
    /// Memberships (the users themselves stay).
    pub memberships: u64,
    /// Every other row: assets, components, data files, settings, grants, teams, tokens,
    /// invitations, identity providers and their links, data sources, usage minutes.
    pub other_rows: u64,
}

/// The statements that empty a tenant, children before parents (not every foreign key
/// cascades in both backends' migrations). `$1` is the tenant's id. Each names its rows by
/// the tenant's own ids only, so no row of another tenant can match.
const TENANT_ROWS: [(&str, &str); 24] = [
    (
        "live pointers",
        "update apps set live_version_id = null where tenant_id = $1",
    ),
    (
        "assets",
        "delete from app_assets where version_id in (select v.id from app_versions v \
         join apps a on a.id = v.app_id where a.tenant_id = $1)",
    ),
    (
        "data-file manifests",
        "delete from app_version_data where tenant_id = $1 or version_id in \
         (select v.id from app_versions v join apps a on a.id = v.app_id where a.tenant_id = $1)",
    ),
    (
        "data-file blobs",
        "delete from app_data_blobs where tenant_id = $1",
    ),
    (
        "versions",
        "delete from app_versions where app_id in (select id from apps where tenant_id = $1)",
    ),
    (
        "components",
        "delete from app_components where tenant_id = $1",
    ),
    (
        "settings",
        "delete from app_settings where app_id in (select id from apps where tenant_id = $1)",
    ),
    (
        "data-source grants",
        "delete from data_source_grants \
         where app_id in (select id from apps where tenant_id = $1) \
            or source_id in (select id from data_sources where tenant_id = $1)",
    ),
    (
        "user grants",
        "delete from app_user_grants where tenant_id = $1",
    ),
    (
        "team grants",
        "delete from app_team_grants where tenant_id = $1",
    ),
    (
        "collaborators",
        "delete from app_collaborators where tenant_id = $1",
    ),
    ("usage", "delete from app_usage where tenant_id = $1"),
    ("apps", "delete from apps where tenant_id = $1"),
    (
        "data sources",
        "delete from data_sources where tenant_id = $1",
    ),
    (
        "provider team members",
        "delete from provider_team_members where tenant_id = $1",
    ),
    (
        "team members",
        "delete from team_members where tenant_id = $1",
    ),
    ("teams", "delete from teams where tenant_id = $1"),
    (
        "provider memberships",
        "delete from provider_memberships where tenant_id = $1",
    ),
    (
        "external identities",
        "delete from external_identities where provider_id in \
         (select id from identity_providers where tenant_id = $1)",
    ),
    (
        "identity providers",
        "delete from identity_providers where tenant_id = $1",
    ),
    (
        "command-line sign-ins",
        "delete from cli_sign_ins where tenant_id = $1",
    ),
    ("tokens", "delete from api_tokens where tenant_id = $1"),
    (
        "invitations",
        "delete from invitations where tenant_id = $1",
    ),
    (
        "memberships",
        "delete from memberships where tenant_id = $1",
    ),
];

impl Store {
    /// Suspend (`true`) or resume a tenant, audited `tenant.suspend` / `tenant.resume`.
    /// Suspending a suspended tenant keeps the first time. The change counter moves with
    /// the tenants row, so every replica sees it within one poll.
    pub async fn set_tenant_suspended(
        &self,
        tenant: TenantId,
        suspended: bool,
        change: &Change<'_>,
    ) -> Result<Tenant> {
        let mut tx = self.begin().await?;
        let updated = if suspended {
            sqlx::query(
                "update tenants set suspended_at = coalesce(suspended_at, $2) \
                 where id = $1 and deleted_at is null",
            )
            .bind(tenant.0)
            .bind(change.at)
        } else {
            sqlx::query(
                "update tenants set suspended_at = null where id = $1 and deleted_at is null",
            )
            .bind(tenant.0)
        }
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(super::Error::NotFound {
                what: "tenant",
                value: tenant.to_string(),
            });
        }
        let action = if suspended {
            "tenant.suspend"
        } else {
            "tenant.resume"
        };
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            action,
            &format!("tenant:{tenant}"),
            json!({}),
        )
        .await?;
        let row = sqlx::query(&format!("select {COLUMNS} from tenants where id = $1"))
            .bind(tenant.0)
            .fetch_one(&mut *tx)
            .await?;
        let changed = self::tenant(&row)?;
        self.commit_change(tx).await?;
        Ok(changed)
    }

    /// Delete everything of a tenant in one transaction: its apps with their versions,
    /// assets, data files, settings and grants; its teams, members' memberships, tokens,
    /// invitations, identity providers (and the identities linked through them) and data
    /// sources. The users stay (an account may belong to other tenants, or to nobody
    /// until someone invites it again). The tenant's row stays as a tombstone
    /// (`deleted_at`, suspended): its id and slug are never reused. Audited
    /// `tenant.delete` in the platform's log (no tenant: nobody reads a deleted tenant's
    /// log but superadmins).
    pub async fn delete_tenant(
        &self,
        tenant: TenantId,
        change: &Change<'_>,
    ) -> Result<DeletedTenant> {
        let mut tx = self.begin().await?;
        // Lock the tenant's row first: a concurrent deploy or invitation of it waits, then
        // finds no tenant.
        let slug: Option<String> = sqlx::query(
            "update tenants set deleted_at = $2, suspended_at = coalesce(suspended_at, $2) \
             where id = $1 and deleted_at is null returning slug",
        )
        .bind(tenant.0)
        .bind(change.at)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        let slug = slug.ok_or_else(|| super::Error::NotFound {
            what: "tenant",
            value: tenant.to_string(),
        })?;
        let mut deleted = DeletedTenant {
            slug: slug.clone(),
            ..DeletedTenant::default()
        };
        for (what, sql) in TENANT_ROWS {
            let rows = sqlx::query(sql)
                .bind(tenant.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            match what {
                "live pointers" => {}
                "apps" => deleted.apps = rows,
                "versions" => deleted.versions = rows,
                "memberships" => deleted.memberships = rows,
                _ => deleted.other_rows += rows,
            }
        }
        audit::record(
            &mut tx,
            change,
            None,
            "tenant.delete",
            &format!("tenant:{slug}"),
            json!({
                "tenant_id": tenant.0,
                "apps": deleted.apps,
                "versions": deleted.versions,
                "memberships": deleted.memberships,
                "other_rows": deleted.other_rows,
            }),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(deleted)
    }

    /// The ids and slugs of every suspended tenant (deleted ones included: they are
    /// suspended too, and have nothing left to serve).
    pub async fn suspended_tenants(&self) -> Result<Vec<(TenantId, String)>> {
        let rows = sqlx::query("select id, slug from tenants where suspended_at is not null")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((TenantId(row.try_get(0)?), row.try_get(1)?)))
            .collect()
    }
}
