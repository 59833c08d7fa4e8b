//! The files of an app version's `assets/` folder.
//!
//! Rows belong to one version; readers pass the app id as well, so a version id of
//! another app never reads its files.

use sqlx::{AnyConnection, Row};

use super::{Result, Store};
use crate::assets::{self, AssetFile, AssetMeta};
use crate::ids::{AppId, VersionId};

/// Store one file of a version being published (inside its transaction).
pub(super) async fn insert(
    conn: &mut AnyConnection,
    version: VersionId,
    asset: &AssetFile,
) -> Result<()> {
    sqlx::query(
        "insert into app_assets (version_id, path, sha256, size_bytes, content) \
         values ($1, $2, $3, $4, $5)",
    )
    .bind(version.0)
    .bind(asset.path.as_str())
    .bind(assets::sha256(&asset.bytes))
    .bind(i64::try_from(asset.bytes.len()).unwrap_or(i64::MAX))
    .bind(asset.bytes.as_slice())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Path, sha256 and size of every asset of a version of `app`, ordered by path.
    pub async fn version_assets(&self, app: AppId, version: VersionId) -> Result<Vec<AssetMeta>> {
        let rows = sqlx::query(
            "select s.path, s.sha256, s.size_bytes from app_assets s \
             join app_versions v on v.id = s.version_id \
             where s.version_id = $1 and v.app_id = $2 order by s.path",
        )
        .bind(version.0)
        .bind(app.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(AssetMeta {
                    path: row.try_get(0)?,
                    sha256: row.try_get(1)?,
                    size: row.try_get(2)?,
                })
            })
            .collect()
    }

    /// The bytes of one asset of a version of `app`, if it has that path.
    pub async fn version_asset(
        &self,
        app: AppId,
        version: VersionId,
        path: &str,
    ) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query(
            "select s.content from app_assets s \
             join app_versions v on v.id = s.version_id \
             where s.version_id = $1 and v.app_id = $2 and s.path = $3",
        )
        .bind(version.0)
        .bind(app.0)
        .bind(path)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok(row.try_get(0)?)).transpose()
    }
}
