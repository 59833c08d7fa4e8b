//! The files of app versions' `data/` folders: blobs keyed by (tenant, sha256), stored
//! once per tenant however many versions ship them, and each version's manifest of
//! (path, sha256, size). Blobs no kept version lists are deleted when versions are pruned.
//!
//! Sizes are columns: the storage quota sums them and never reads a blob's bytes.

use std::collections::{BTreeMap, HashSet};

use sqlx::{AnyConnection, Row};

use super::{Result, Store};
use crate::appdata::{DataFile, DataMeta};
use crate::ids::{AppId, TenantId, VersionId};

/// Every kept version's data files (the manifests' rows), without touching `app_versions`.
pub(super) const DATA_MANIFESTS_SQL: &str =
    "select version_id, tenant_id, path, sha256, size_bytes from app_version_data";

/// Bytes of `files` the tenant does not store yet (each distinct hash counted once).
pub(super) async fn new_bytes(
    conn: &mut AnyConnection,
    tenant: i64,
    files: &[DataFile],
) -> Result<i64> {
    let mut distinct = BTreeMap::new();
    for file in files {
        let meta = file.meta();
        distinct.insert(meta.sha256, meta.size);
    }
    let mut total = 0i64;
    for (sha256, size) in distinct {
        let stored =
            sqlx::query("select 1 from app_data_blobs where tenant_id = $1 and sha256 = $2")
                .bind(tenant)
                .bind(sha256.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        if stored.is_none() {
            total = total.saturating_add(size);
        }
    }
    Ok(total)
}

/// Bytes of data blobs the tenant stores.
pub(super) async fn used_bytes(conn: &mut AnyConnection, tenant: i64) -> Result<i64> {
    let row = sqlx::query(
        "select cast(coalesce(sum(size_bytes), 0) as bigint) from app_data_blobs where tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get(0)?)
}

/// Store the data files of a version being published (inside its transaction): the blobs
/// the tenant lacks, then the manifest. Returns the manifest's hash (`None`: no files).
pub(super) async fn insert(
    conn: &mut AnyConnection,
    tenant: i64,
    version: VersionId,
    files: &[DataFile],
) -> Result<Option<String>> {
    let mut metas = Vec::with_capacity(files.len());
    for file in files {
        let meta = file.meta();
        // Only the first of equal blobs is written; a version that kept a file adds nothing.
        sqlx::query(
            "insert into app_data_blobs (tenant_id, sha256, size_bytes, content) \
             values ($1, $2, $3, $4) on conflict (tenant_id, sha256) do nothing",
        )
        .bind(tenant)
        .bind(meta.sha256.as_str())
        .bind(meta.size)
        .bind(file.bytes.as_slice())
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "insert into app_version_data (version_id, tenant_id, path, sha256, size_bytes) \
             values ($1, $2, $3, $4, $5)",
        )
        .bind(version.0)
        .bind(tenant)
        .bind(meta.path.as_str())
        .bind(meta.sha256.as_str())
        .bind(meta.size)
        .execute(&mut *conn)
        .await?;
        metas.push(meta);
    }
    let manifest = crate::appdata::manifest_sha256(&metas);
    if let Some(hash) = &manifest {
        sqlx::query("update app_versions set data_sha256 = $1 where id = $2")
            .bind(hash.as_str())
            .bind(version.0)
            .execute(&mut *conn)
            .await?;
    }
    Ok(manifest)
}

/// Forget the manifest of a version being pruned (its blobs go in [`delete_orphans`]).
pub(super) async fn delete_version(conn: &mut AnyConnection, version: i64) -> Result<()> {
    sqlx::query("delete from app_version_data where version_id = $1")
        .bind(version)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Delete the tenant's blobs that no version lists any more. Runs in the publishing
/// transaction, which holds the tenant's row (PostgreSQL) or the database (SQLite), so no
/// concurrent publish can be counting on a blob this removes.
pub(super) async fn delete_orphans(conn: &mut AnyConnection, tenant: i64) -> Result<u64> {
    let done = sqlx::query(
        "delete from app_data_blobs where tenant_id = $1 and not exists \
         (select 1 from app_version_data d \
          where d.tenant_id = app_data_blobs.tenant_id and d.sha256 = app_data_blobs.sha256)",
    )
    .bind(tenant)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

impl Store {
    /// The data files of a version of `app`, ordered by path (empty: no data folder).
    pub async fn version_data(&self, app: AppId, version: VersionId) -> Result<Vec<DataMeta>> {
        let rows = sqlx::query(
            "select d.path, d.sha256, d.size_bytes from app_version_data d \
             join app_versions v on v.id = d.version_id \
             where d.version_id = $1 and v.app_id = $2 order by d.path",
        )
        .bind(version.0)
        .bind(app.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(DataMeta {
                    path: row.try_get(0)?,
                    sha256: row.try_get(1)?,
                    size: row.try_get(2)?,
                })
            })
            .collect()
    }

    /// The bytes of `tenant`'s data blob `sha256`.
    pub async fn data_blob(&self, tenant: TenantId, sha256: &str) -> Result<Vec<u8>> {
        let row =
            sqlx::query("select content from app_data_blobs where tenant_id = $1 and sha256 = $2")
                .bind(tenant.0)
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| super::Error::NotFound {
                    what: "data file",
                    value: sha256.to_owned(),
                })?;
        Ok(row.try_get(0)?)
    }

    /// How many data blobs `tenant` stores, and their bytes.
    pub async fn data_usage(&self, tenant: TenantId) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "select count(*), cast(coalesce(sum(size_bytes), 0) as bigint) \
             from app_data_blobs where tenant_id = $1",
        )
        .bind(tenant.0)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// The folder names ([`crate::appdata::AppDataDirs::folder_name`]) of every kept
    /// version's data: what a server's local copies must keep. Each manifest's hash is
    /// computed from its rows here rather than read from `app_versions.data_sha256`, which
    /// sits after the component in the row: on SQLite, reading it walked every stored
    /// component (issue 16), at every start and every hour.
    pub async fn data_folders(&self) -> Result<HashSet<String>> {
        let rows = sqlx::query(DATA_MANIFESTS_SQL)
            .fetch_all(&self.pool)
            .await?;
        let mut manifests: BTreeMap<i64, (i64, Vec<DataMeta>)> = BTreeMap::new();
        for row in &rows {
            let version: i64 = row.try_get(0)?;
            let tenant: i64 = row.try_get(1)?;
            manifests
                .entry(version)
                .or_insert_with(|| (tenant, Vec::new()))
                .1
                .push(DataMeta {
                    path: row.try_get(2)?,
                    sha256: row.try_get(3)?,
                    size: row.try_get(4)?,
                });
        }
        Ok(manifests
            .into_values()
            .filter_map(|(tenant, files)| {
                crate::appdata::manifest_sha256(&files)
                    .map(|hash| crate::appdata::AppDataDirs::folder_name(TenantId(tenant), &hash))
            })
            .collect())
    }
}
