//! The component bytes of app versions (migration 0032): keyed by (tenant, sha256), stored
//! once per tenant however many of its versions and apps run the same component, never
//! shared across tenants (a hash names nothing in another tenant). A version names its
//! component by `app_versions.sha256`; the bytes no kept version of the tenant names are
//! deleted when versions are pruned or an app is deleted.
//!
//! The store hashes the bytes itself: a content address a caller could choose would let one
//! version point at another's bytes.
//!
//! Sizes are columns before the bytes: the storage quota sums them without reading a
//! component, and `app_versions` rows (titles, authors, sources) carry no component pages.

use std::collections::{BTreeSet, HashSet};

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use super::{Result, Store};
use crate::ids::{AppId, TenantId, VersionId};

/// The bytes of the components a tenant (`$1`) stores, each counted once: the storage
/// quota's share of components. The `(tenant_id, size_bytes)` index answers it.
pub(super) const STORED_BYTES_SQL: &str = "select cast(coalesce(sum(size_bytes), 0) as bigint) \
     from app_components where tenant_id = $1";

/// Hex sha256 of `bytes`: the component's address within its tenant.
pub(super) fn address(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether the tenant already stores the component `sha256`.
pub(super) async fn is_stored(conn: &mut AnyConnection, tenant: i64, sha256: &str) -> Result<bool> {
    let row = sqlx::query("select 1 from app_components where tenant_id = $1 and sha256 = $2")
        .bind(tenant)
        .bind(sha256)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// Store `bytes` as the tenant's component `sha256` unless it has it already (inside the
/// publishing transaction).
pub(super) async fn insert(
    conn: &mut AnyConnection,
    tenant: i64,
    sha256: &str,
    bytes: &[u8],
) -> Result<()> {
    sqlx::query(
        "insert into app_components (tenant_id, sha256, size_bytes, content) \
         values ($1, $2, $3, $4) on conflict (tenant_id, sha256) do nothing",
    )
    .bind(tenant)
    .bind(sha256)
    .bind(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
    .bind(bytes)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Delete those of `candidates` (hashes of versions just deleted) that no version of the
/// tenant names any more; returns how many went. The caller holds the tenant's row
/// (PostgreSQL) or the database (SQLite), so no concurrent publish counts on a component
/// this removes. Each check reads the tenant's versions of that hash only.
pub(super) async fn delete_unused(
    conn: &mut AnyConnection,
    tenant: i64,
    candidates: &BTreeSet<String>,
) -> Result<u64> {
    let mut deleted = 0;
    for sha256 in candidates {
        let done = sqlx::query(
            "delete from app_components where tenant_id = $1 and sha256 = $2 and not exists \
             (select 1 from app_versions v join apps a on a.id = v.app_id \
              where v.sha256 = $2 and a.tenant_id = $1)",
        )
        .bind(tenant)
        .bind(sha256.as_str())
        .execute(&mut *conn)
        .await?;
        deleted += done.rows_affected();
    }
    Ok(deleted)
}

impl Store {
    /// The component bytes of a version of `app`.
    ///
    /// Taking the app id as well keeps a version id from one app from ever reading
    /// another app's component; the app's tenant picks the bytes.
    pub async fn version_component(&self, app: AppId, version: VersionId) -> Result<Vec<u8>> {
        let row = sqlx::query(
            "select c.content from app_versions v join apps a on a.id = v.app_id \
             join app_components c on c.tenant_id = a.tenant_id and c.sha256 = v.sha256 \
             where v.id = $1 and v.app_id = $2",
        )
        .bind(version.0)
        .bind(app.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// How many components `tenant` stores, and their bytes (what its storage quota
    /// counts of them).
    pub async fn component_usage(&self, tenant: TenantId) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "select count(*), cast(coalesce(sum(size_bytes), 0) as bigint) \
             from app_components where tenant_id = $1",
        )
        .bind(tenant.0)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// The hashes of every stored component: what the compiled-component cache must keep.
    pub async fn component_hashes(&self) -> Result<HashSet<String>> {
        let rows = sqlx::query("select distinct sha256 from app_components")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>(0)?))
            .collect()
    }
}
