//! Tenants, apps and app versions.

use std::collections::BTreeSet;

use sqlx::Row;

use super::AppAccess;
use super::audit::{self, Change};
use super::{Result, Store};
use crate::appdata::DataFile;
use crate::assets::AssetFile;
use crate::ids::{AppId, Slug, TenantId, UserId, VersionId};
use crate::tenancy::Visibility;

/// The live version of an app, without its component bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LiveVersion {
    /// The app.
    pub app_id: AppId,
    /// The version.
    pub version_id: VersionId,
    /// Its number within the app (1, 2, …).
    pub number: i64,
    /// Hex sha256 of the component.
    pub sha256: String,
    /// The app's tenant.
    pub tenant_id: TenantId,
    /// The tenant's callback quotas, read with the version so a change reaches running
    /// servers within the runtime's refresh interval.
    pub callback_quotas: CallbackQuotas,
    /// The app's settings revision: a change of settings changes it, so running servers
    /// load the app again with the new values.
    pub settings_revision: i64,
}

/// The quotas that govern running callbacks (and loads and background jobs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackQuotas {
    /// Callbacks running at once across the tenant's apps.
    pub max_concurrent: i64,
    /// Memory cap of one callback, MiB.
    pub memory_mb: i64,
    /// Deadline of one callback, ms.
    pub deadline_ms: i64,
    /// The tenant's CPU share (100 is the default).
    pub cpu_weight: i64,
    /// Background jobs queued or running at once across the tenant's apps.
    pub max_jobs: i64,
    /// Deadline of one background job, ms.
    pub job_deadline_ms: i64,
    /// Bytes of the shared cache, memoized answers included.
    pub cache_bytes: i64,
}

/// A version about to be stored.
#[derive(Debug)]
pub struct NewVersion<'a> {
    /// The component bytes (the store hashes them: their sha256 names them).
    pub component: &'a [u8],
    /// The app's title, as the component reported it.
    pub title: &'a str,
    /// Who made it: `cli`, `demo`, …
    pub source: &'a str,
    /// The app's visibility if this version creates it.
    pub visibility: crate::tenancy::Visibility,
}

/// What [`Store::publish_version`] stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedVersion {
    /// The tenant (created if it was missing).
    pub tenant_id: TenantId,
    /// The app (created if it was missing).
    pub app_id: AppId,
    /// The new version.
    pub version_id: VersionId,
    /// Its number within the app.
    pub number: i64,
}

/// One live app, for listings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSummary {
    /// Tenant slug.
    pub tenant: String,
    /// App name.
    pub name: String,
    /// Title of the live version.
    pub title: String,
    /// Number of the live version.
    pub version: i64,
    /// The tenant's id.
    pub tenant_id: TenantId,
    /// The app's id.
    pub app_id: AppId,
    /// Who may open it.
    pub visibility: Visibility,
}

impl Store {
    /// Every app that has a live version, ordered by tenant and name.
    pub async fn list_live_apps(&self) -> Result<Vec<AppSummary>> {
        let rows = sqlx::query(
            "select t.slug, a.name, v.title, v.number, a.tenant_id, a.id, a.visibility \
             from apps a \
             join tenants t on t.id = a.tenant_id \
             join app_versions v on v.id = a.live_version_id \
             order by t.slug, a.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(AppSummary {
                    tenant: row.try_get(0)?,
                    name: row.try_get(1)?,
                    title: row.try_get(2)?,
                    version: row.try_get(3)?,
                    tenant_id: TenantId(row.try_get(4)?),
                    app_id: AppId(row.try_get(5)?),
                    visibility: super::parse_stored(&row.try_get::<String, _>(6)?)?,
                })
            })
            .collect()
    }

    /// Create the tenant if it does not exist; return its id.
    pub async fn ensure_tenant(&self, slug: &Slug, now: i64) -> Result<TenantId> {
        sqlx::query(
            "insert into tenants (slug, name, created_at) values ($1, $1, $2) \
             on conflict (slug) do nothing",
        )
        .bind(slug.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("select id from tenants where slug = $1")
            .bind(slug.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(TenantId(row.try_get(0)?))
    }

    /// The live version of `tenant/app`, if the app exists and has one.
    pub async fn live_version(&self, tenant: &Slug, app: &Slug) -> Result<Option<LiveVersion>> {
        let row = sqlx::query(
            "select a.id, v.id, v.number, v.sha256, t.id, \
                    t.max_concurrent_callbacks, t.callback_memory_mb, t.callback_deadline_ms, \
                    a.settings_revision, t.cpu_weight, t.max_jobs, t.job_deadline_ms, t.cache_bytes \
             from apps a \
             join tenants t on t.id = a.tenant_id \
             join app_versions v on v.id = a.live_version_id \
             where t.slug = $1 and a.name = $2",
        )
        .bind(tenant.as_str())
        .bind(app.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(LiveVersion {
                app_id: AppId(row.try_get(0)?),
                version_id: VersionId(row.try_get(1)?),
                number: row.try_get(2)?,
                sha256: row.try_get(3)?,
                tenant_id: TenantId(row.try_get(4)?),
                callback_quotas: CallbackQuotas {
                    max_concurrent: row.try_get(5)?,
                    memory_mb: row.try_get(6)?,
                    deadline_ms: row.try_get(7)?,
                    cpu_weight: row.try_get(9)?,
                    max_jobs: row.try_get(10)?,
                    job_deadline_ms: row.try_get(11)?,
                    cache_bytes: row.try_get(12)?,
                },
                settings_revision: row.try_get(8)?,
            })
        })
        .transpose()
    }

    /// Locks the row of `app` (in `tenant`) for the rest of the transaction, so changes to
    /// one app (a rollback, its settings) happen one after the other: `for update` on
    /// PostgreSQL; SQLite's `begin immediate` already holds the write lock. Returns
    /// `tenant/app` for messages and audit rows; [`super::Error::NotFound`] for no such app.
    pub(super) async fn lock_app_row(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        tenant: TenantId,
        app: AppId,
    ) -> Result<String> {
        let lock = match self.backend {
            super::Backend::Postgres => " for update of a",
            super::Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "select t.slug, a.name from apps a join tenants t on t.id = a.tenant_id \
             where a.tenant_id = $1 and a.id = $2{lock}"
        ))
        .bind(tenant.0)
        .bind(app.0)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| super::Error::NotFound {
            what: "app",
            value: app.to_string(),
        })?;
        Ok(format!(
            "{}/{}",
            row.try_get::<String, _>(0)?,
            row.try_get::<String, _>(1)?
        ))
    }

    /// Store a new version of `tenant/app` and make it live, in one transaction: the tenant
    /// and the app are created if missing, the version gets the next number, and the
    /// switch of `live_version_id` is atomic for readers.
    pub async fn publish_version(
        &self,
        tenant: &Slug,
        app: &Slug,
        version: NewVersion<'_>,
        now: i64,
    ) -> Result<PublishedVersion> {
        self.publish_version_with_assets(tenant, app, version, &[], now)
            .await
    }

    /// Record the git commit version `number` of `tenant/app` was built from.
    pub async fn set_version_commit(
        &self,
        tenant: &Slug,
        app: &Slug,
        number: i64,
        commit_sha: &str,
    ) -> Result<()> {
        sqlx::query(
            "update app_versions set commit_sha = $1 where number = $2 and app_id = \
             (select a.id from apps a join tenants t on t.id = a.tenant_id \
              where t.slug = $3 and a.name = $4)",
        )
        .bind(commit_sha)
        .bind(number)
        .bind(tenant.as_str())
        .bind(app.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The git commit version `number` of `tenant/app` was built from, if any.
    pub async fn version_commit(
        &self,
        tenant: &Slug,
        app: &Slug,
        number: i64,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "select v.commit_sha from app_versions v join apps a on a.id = v.app_id \
             join tenants t on t.id = a.tenant_id \
             where t.slug = $1 and a.name = $2 and v.number = $3",
        )
        .bind(tenant.as_str())
        .bind(app.as_str())
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => None,
        })
    }

    /// [`Store::publish_version`] with the files of the app's `assets/` folder, stored
    /// with the version in the same transaction. The paths must have been checked
    /// ([`crate::assets::check`]).
    pub async fn publish_version_with_assets(
        &self,
        tenant: &Slug,
        app: &Slug,
        version: NewVersion<'_>,
        assets: &[AssetFile],
        now: i64,
    ) -> Result<PublishedVersion> {
        self.publish_version_with_files(tenant, app, version, assets, &[], now)
            .await
    }

    /// [`Store::publish_version_with_assets`] with the files of the app's data folder
    /// (checked by [`crate::appdata::check`]): blobs the tenant lacks are stored, counted
    /// with the component against its storage quota, and the version's manifest recorded,
    /// all in the same transaction.
    pub async fn publish_version_with_files(
        &self,
        tenant: &Slug,
        app: &Slug,
        version: NewVersion<'_>,
        assets: &[AssetFile],
        data: &[DataFile],
        now: i64,
    ) -> Result<PublishedVersion> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "insert into tenants (slug, name, created_at) values ($1, $1, $2) \
             on conflict (slug) do nothing",
        )
        .bind(tenant.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let tenant_id: i64 = sqlx::query("select id from tenants where slug = $1")
            .bind(tenant.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let sha256 = super::components::address(version.component);
        let component_is_new = check_quotas(
            &mut tx,
            tenant_id,
            app,
            (&sha256, version.component.len()),
            data,
        )
        .await?;
        sqlx::query(
            "insert into apps (tenant_id, name, visibility, created_at) values ($1, $2, $3, $4) \
             on conflict (tenant_id, name) do nothing",
        )
        .bind(tenant_id)
        .bind(app.as_str())
        .bind(version.visibility.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let app_id: i64 = sqlx::query("select id from apps where tenant_id = $1 and name = $2")
            .bind(tenant_id)
            .bind(app.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let number: i64 =
            sqlx::query("select coalesce(max(number), 0) + 1 from app_versions where app_id = $1")
                .bind(app_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if component_is_new {
            super::components::insert(&mut tx, tenant_id, &sha256, version.component).await?;
        }
        let size = i64::try_from(version.component.len()).unwrap_or(i64::MAX);
        let version_id: i64 = sqlx::query(
            "insert into app_versions \
             (app_id, number, sha256, size_bytes, title, source, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7) returning id",
        )
        .bind(app_id)
        .bind(number)
        .bind(sha256.as_str())
        .bind(size)
        .bind(version.title)
        .bind(version.source)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        for asset in assets {
            super::assets::insert(&mut tx, VersionId(version_id), asset).await?;
        }
        let data_sha256 =
            super::datafiles::insert(&mut tx, tenant_id, VersionId(version_id), data).await?;
        sqlx::query("update apps set live_version_id = $1 where id = $2")
            .bind(version_id)
            .bind(app_id)
            .execute(&mut *tx)
            .await?;
        let Pruned {
            numbers: pruned,
            components,
        } = prune(&mut tx, app_id, self.keep_versions).await?;
        let data_blobs_deleted = match pruned.is_empty() {
            true => 0,
            false => super::datafiles::delete_orphans(&mut tx, tenant_id).await?,
        };
        let components_deleted =
            super::components::delete_unused(&mut tx, tenant_id, &components).await?;
        let change = Change {
            actor: version.source,
            remote_addr: None,
            at: now,
        };
        audit::record(
            &mut tx,
            &change,
            Some(TenantId(tenant_id)),
            "app.deploy",
            &format!("app:{tenant}/{app}"),
            serde_json::json!({
                "version": number,
                "sha256": sha256,
                "component_stored": component_is_new,
                "components_deleted": components_deleted,
                "assets": assets.len(),
                "data_files": data.len(),
                "data_sha256": data_sha256,
                "data_blobs_deleted": data_blobs_deleted,
                "pruned": pruned,
            }),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(PublishedVersion {
            tenant_id: TenantId(tenant_id),
            app_id: AppId(app_id),
            version_id: VersionId(version_id),
            number,
        })
    }
}

/// What [`prune`] deleted.
struct Pruned {
    /// The pruned version numbers.
    numbers: Vec<i64>,
    /// Their components' hashes (the tenant may still use them elsewhere).
    components: BTreeSet<String>,
}

/// Delete the versions of `app_id` beyond the newest `keep`, with their assets; never the
/// live one. Runs inside the publishing transaction, after the live pointer moved, so the
/// app row is locked (PostgreSQL) or the database is (SQLite) and a concurrent rollback
/// cannot switch to a version this deletes.
async fn prune(conn: &mut sqlx::AnyConnection, app_id: i64, keep: i64) -> Result<Pruned> {
    let rows = sqlx::query(
        "select v.id, v.number, v.sha256 from app_versions v join apps a on a.id = v.app_id \
         where v.app_id = $1 and v.id <> coalesce(a.live_version_id, -1) \
           and v.number <= (select max(number) from app_versions where app_id = $1) - $2 \
         order by v.number",
    )
    .bind(app_id)
    .bind(keep)
    .fetch_all(&mut *conn)
    .await?;
    let mut pruned = Pruned {
        numbers: Vec::with_capacity(rows.len()),
        components: BTreeSet::new(),
    };
    for row in rows {
        let (id, number): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        pruned.components.insert(row.try_get(2)?);
        sqlx::query("delete from app_assets where version_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        super::datafiles::delete_version(&mut *conn, id).await?;
        sqlx::query("delete from app_versions where id = $1 and app_id = $2")
            .bind(id)
            .bind(app_id)
            .execute(&mut *conn)
            .await?;
        pruned.numbers.push(number);
    }
    Ok(pruned)
}

/// Refuse a version that would take the tenant over its number of apps (when `app` is
/// new) or its storage for versions. Runs inside the publishing transaction; on
/// PostgreSQL the tenant row is locked first so two deploys cannot both pass the check.
///
/// Storage is what the tenant stores: a component (like a data blob) counts once however
/// many versions and apps run it, so only a `component` (hash, size) the tenant lacks adds
/// its size. Returns whether it lacks it (asked under the tenant's lock, so a concurrent
/// app deletion cannot remove it before this publish commits).
async fn check_quotas(
    conn: &mut sqlx::AnyConnection,
    tenant_id: i64,
    app: &Slug,
    component: (&str, usize),
    data: &[DataFile],
) -> Result<bool> {
    let lock = match conn.backend_name() {
        "PostgreSQL" => " for update",
        _ => "",
    };
    let row = sqlx::query(&format!(
        "select max_apps, max_version_storage_bytes from tenants where id = $1{lock}"
    ))
    .bind(tenant_id)
    .fetch_one(&mut *conn)
    .await?;
    let (max_apps, max_storage): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let row = sqlx::query(
        "select (select count(*) from apps where tenant_id = $1), \
                (select count(*) from apps where tenant_id = $1 and name = $2)",
    )
    .bind(tenant_id)
    .bind(app.as_str())
    .fetch_one(&mut *conn)
    .await?;
    let (apps, exists): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let used: i64 = sqlx::query(super::components::STORED_BYTES_SQL)
        .bind(tenant_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    if exists == 0 && apps >= max_apps {
        return Err(super::Error::QuotaExceeded(format!(
            "the tenant has {apps} apps, its quota allows {max_apps}: delete an app or ask an operator to raise max_apps"
        )));
    }
    let (sha256, size) = component;
    let component_is_new = !super::components::is_stored(conn, tenant_id, sha256).await?;
    let size = match component_is_new {
        true => i64::try_from(size).unwrap_or(i64::MAX),
        false => 0,
    };
    // Data blobs count once per tenant: only those it does not store yet are new.
    let used = used.saturating_add(super::datafiles::used_bytes(conn, tenant_id).await?);
    let new_data = match data.is_empty() {
        true => 0,
        false => super::datafiles::new_bytes(conn, tenant_id, data).await?,
    };
    let after = used.saturating_add(size).saturating_add(new_data);
    if after > max_storage {
        let what = match (size, new_data) {
            (_, 0) => format!("this version's {size}-byte component"),
            (0, _) => format!("this version's {new_data} bytes of new data files"),
            _ => format!(
                "this version's {size}-byte component and {new_data} bytes of new data files"
            ),
        };
        return Err(super::Error::QuotaExceeded(format!(
            "storing {what} would bring the tenant's app versions to {after} bytes, over its quota of {max_storage} bytes"
        )));
    }
    Ok(component_is_new)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::testing::TestDatabase;

    /// A fresh store on every configured backend (SQLite, and PostgreSQL when set).
    async fn stores() -> Vec<(TestDatabase, Store)> {
        let mut out = Vec::new();
        for db in TestDatabase::all().await.expect("test databases") {
            eprintln!("backend: {:?}", db.backend);
            let store = db.store().await.expect("store connects");
            out.push((db, store));
        }
        out
    }

    fn slug(s: &str) -> Slug {
        Slug::parse(s).expect("valid slug")
    }

    #[tokio::test]
    async fn publishing_numbers_versions_and_moves_the_live_pointer() {
        for (_db, store) in stores().await {
            let (t, a) = (slug("demo"), slug("hello"));
            assert_eq!(store.live_version(&t, &a).await.expect("query"), None);
            let v1 = NewVersion {
                visibility: crate::tenancy::Visibility::Public,
                component: b"one",
                title: "Hello",
                source: "cli",
            };
            let first = store
                .publish_version(&t, &a, v1, 1)
                .await
                .expect("publish 1");
            let v2 = NewVersion {
                visibility: crate::tenancy::Visibility::Public,
                component: b"two",
                title: "Hello",
                source: "cli",
            };
            let second = store
                .publish_version(&t, &a, v2, 2)
                .await
                .expect("publish 2");
            assert_eq!((first.number, second.number), (1, 2));
            assert_eq!(first.app_id, second.app_id);
            let live = store
                .live_version(&t, &a)
                .await
                .expect("query")
                .expect("live");
            assert_eq!(live.version_id, second.version_id);
            assert_eq!(live.sha256, super::super::components::address(b"two"));
            let bytes = store
                .version_component(live.app_id, first.version_id)
                .await
                .expect("old version kept");
            assert_eq!(bytes, b"one");
        }
    }

    #[tokio::test]
    async fn a_version_id_of_another_app_is_not_readable() {
        for (_db, store) in stores().await {
            let v = |c: &'static [u8]| NewVersion {
                visibility: crate::tenancy::Visibility::Public,
                component: c,
                title: "t",
                source: "cli",
            };
            let a = store
                .publish_version(&slug("one"), &slug("app"), v(b"a"), 1)
                .await
                .expect("a");
            let b = store
                .publish_version(&slug("two"), &slug("app"), v(b"b"), 1)
                .await
                .expect("b");
            assert!(
                store
                    .version_component(a.app_id, b.version_id)
                    .await
                    .is_err()
            );
            assert_ne!(a.tenant_id, b.tenant_id);
        }
    }

    fn change() -> Change<'static> {
        Change {
            actor: "test",
            remote_addr: None,
            at: 9,
        }
    }

    #[tokio::test]
    async fn publishing_keeps_the_last_n_versions_and_prunes_their_assets() {
        for (_db, store) in stores().await {
            let store = store.with_keep_versions(3);
            let (t, a) = (slug("acme"), slug("sales"));
            let mut ids = Vec::new();
            for n in 1..=7u8 {
                let bytes = [n];
                let asset = AssetFile {
                    path: "site.css".to_owned(),
                    bytes: vec![n],
                };
                let version = NewVersion {
                    visibility: crate::tenancy::Visibility::Public,
                    component: &bytes,
                    title: "Sales",
                    source: "cli",
                };
                let published = store
                    .publish_version_with_assets(&t, &a, version, &[asset], i64::from(n))
                    .await
                    .expect("publish");
                ids.push(published.clone());
                let kept = store
                    .list_versions(published.tenant_id, published.app_id)
                    .await
                    .expect("list");
                assert_eq!(kept.len(), usize::from(n.min(3)), "after version {n}");
            }
            let last = ids.last().expect("published").clone();
            let numbers: Vec<i64> = store
                .list_versions(last.tenant_id, last.app_id)
                .await
                .expect("list")
                .iter()
                .map(|v| v.number)
                .collect();
            assert_eq!(numbers, [7, 6, 5]);
            assert_eq!(
                store.component_usage(last.tenant_id).await.expect("usage"),
                (3, 3),
                "the pruned versions' components went with them"
            );
            // The pruned versions' components and assets are gone, the kept ones remain.
            assert!(
                store
                    .version_component(last.app_id, ids[3].version_id)
                    .await
                    .is_err()
            );
            assert!(
                store
                    .version_assets(last.app_id, ids[3].version_id)
                    .await
                    .expect("assets")
                    .is_empty()
            );
            assert_eq!(
                store
                    .version_assets(last.app_id, ids[4].version_id)
                    .await
                    .expect("assets")
                    .len(),
                1
            );
            let deploys = store
                .filtered_audit_entries(
                    Some(last.tenant_id),
                    &super::super::AuditFilter {
                        action: Some("app.deploy"),
                        actor: None,
                    },
                    None,
                    1,
                )
                .await
                .expect("audit");
            assert_eq!(deploys[0].detail["pruned"], serde_json::json!([4]));

            // A pruned version and one never deployed are refused clearly; nothing moves.
            let err = store
                .rollback(last.tenant_id, last.app_id, Some(2), &change())
                .await
                .expect_err("pruned");
            let text = err.to_string();
            assert!(
                matches!(err, super::super::Error::VersionNotKept(_)),
                "{err:?}"
            );
            assert!(
                text.contains("version 2 of acme/sales is not kept")
                    && text.contains("pruned")
                    && text.contains("last 3 versions")
                    && text.contains("5 to 7"),
                "{text}"
            );
            let err = store
                .rollback(last.tenant_id, last.app_id, Some(8), &change())
                .await
                .expect_err("future");
            assert!(err.to_string().contains("never deployed"), "{err}");
            let live = store.live_version(&t, &a).await.expect("q").expect("live");
            assert_eq!(live.number, 7);
        }
    }

    #[tokio::test]
    async fn rollback_switches_to_a_kept_version_and_is_audited() {
        for (_db, store) in stores().await {
            let (t, a) = (slug("acme"), slug("sales"));
            let mut last = None;
            for n in 1..=3u8 {
                let bytes = [n];
                let version = NewVersion {
                    visibility: crate::tenancy::Visibility::Public,
                    component: &bytes,
                    title: "Sales",
                    source: "cli",
                };
                last = Some(
                    store
                        .publish_version(&t, &a, version, 1)
                        .await
                        .expect("publish"),
                );
            }
            let last = last.expect("published");
            let (tenant, app) = (last.tenant_id, last.app_id);
            let live = || async { store.live_version(&t, &a).await.expect("q").expect("live") };

            // Default: the version before the live one, then the one before that.
            let done = store
                .rollback(tenant, app, None, &change())
                .await
                .expect("back");
            assert_eq!((done.from, done.to, done.changed), (3, 2, true));
            assert_eq!(live().await.number, 2);
            let done = store
                .rollback(tenant, app, None, &change())
                .await
                .expect("back");
            assert_eq!((done.from, done.to), (2, 1));
            let err = store
                .rollback(tenant, app, None, &change())
                .await
                .expect_err("nothing older");
            assert!(matches!(err, super::super::Error::Refused(_)), "{err:?}");
            assert!(err.to_string().contains("nothing older"), "{err}");
            assert_eq!(live().await.number, 1);

            // Forward again to an explicit version; the live one again changes nothing.
            let done = store
                .rollback(tenant, app, Some(3), &change())
                .await
                .expect("fwd");
            assert_eq!((done.from, done.to, done.changed), (1, 3, true));
            let done = store
                .rollback(tenant, app, Some(3), &change())
                .await
                .expect("same");
            assert!(!done.changed);
            assert_eq!(live().await.sha256, super::super::components::address(&[3]));
            assert_eq!(live().await.number, 3);

            let audited = store
                .filtered_audit_entries(
                    Some(tenant),
                    &super::super::AuditFilter {
                        action: Some("app.rollback"),
                        actor: Some("test"),
                    },
                    None,
                    10,
                )
                .await
                .expect("audit");
            let moves: Vec<(i64, i64)> = audited
                .iter()
                .map(|e| {
                    (
                        e.detail["from"].as_i64().expect("from"),
                        e.detail["to"].as_i64().expect("to"),
                    )
                })
                .collect();
            assert_eq!(moves, [(1, 3), (2, 1), (3, 2)]);
            assert_eq!(audited[0].target, "app:acme/sales");

            // A publish after a rollback numbers on from the newest version.
            let version = NewVersion {
                visibility: crate::tenancy::Visibility::Public,
                component: b"four",
                title: "Sales",
                source: "cli",
            };
            store
                .rollback(tenant, app, Some(1), &change())
                .await
                .expect("back");
            let fourth = store
                .publish_version(&t, &a, version, 2)
                .await
                .expect("publish");
            assert_eq!(fourth.number, 4);
            assert_eq!(live().await.number, 4);
        }
    }

    #[tokio::test]
    async fn a_push_records_commit_author_and_build_log() {
        for (_db, store) in stores().await {
            let (t, a) = (slug("acme"), slug("sales"));
            let version = NewVersion {
                visibility: crate::tenancy::Visibility::Public,
                component: b"one",
                title: "Sales",
                source: "git 0123 pushed by token:x",
            };
            let published = store
                .publish_version(&t, &a, version, 1)
                .await
                .expect("publish");
            let details = VersionDetails {
                commit: "0123456789abcdef",
                author: "alice@example.org (token:x)",
                build_log: "tessera: building\ntessera: deployed\n",
            };
            store
                .set_version_details(&t, &a, published.number, details)
                .await
                .expect("details");
            let versions = store
                .list_versions(published.tenant_id, published.app_id)
                .await
                .expect("list");
            assert_eq!(versions[0].commit.as_deref(), Some("0123456789abcdef"));
            assert_eq!(
                versions[0].author.as_deref(),
                Some("alice@example.org (token:x)")
            );
            assert_eq!(
                versions[0].build_log.as_deref(),
                Some("tessera: building\ntessera: deployed\n")
            );
        }
    }

    #[tokio::test]
    async fn ensure_tenant_is_idempotent() {
        for (_db, store) in stores().await {
            let first = store.ensure_tenant(&slug("demo"), 1).await.expect("first");
            let again = store.ensure_tenant(&slug("demo"), 2).await.expect("again");
            assert_eq!(first, again);
        }
    }

    #[tokio::test]
    async fn unsupported_urls_are_refused_clearly() {
        let err = Store::connect("mysql://x:pw@db/t")
            .await
            .err()
            .expect("refused");
        let text = err.to_string();
        assert!(text.contains("unsupported database URL"), "{text}");
        assert!(!text.contains("pw"), "password leaked: {text}");
    }

    /// Pages this SQLite connection has read from the file so far (page cache misses).
    async fn pages_read(conn: &mut sqlx::sqlite::SqliteConnection) -> i32 {
        let mut handle = conn.lock_handle().await.expect("handle");
        let (mut current, mut highest) = (0, 0);
        // SAFETY: the handle stays locked for the call, so no other thread uses the
        // connection; `sqlite3_db_status` only copies two counters into the integers.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_db_status(
                handle.as_raw_handle().as_ptr(),
                libsqlite3_sys::SQLITE_DBSTATUS_CACHE_MISS,
                &mut current,
                &mut highest,
                0,
            )
        };
        assert_eq!(rc, libsqlite3_sys::SQLITE_OK);
        current
    }

    /// `sql`'s sum for `tenant` on a fresh connection to `url` (its page cache is empty,
    /// so every page the query needs is read), and how many pages that read.
    async fn summed(url: &str, sql: &str, tenant: i64) -> (i64, i32) {
        use sqlx::Connection;
        let mut conn = sqlx::sqlite::SqliteConnection::connect(url)
            .await
            .expect("connect");
        let before = pages_read(&mut conn).await;
        let used: i64 = sqlx::query(sql)
            .bind(tenant)
            .fetch_one(&mut conn)
            .await
            .expect("sum")
            .try_get(0)
            .expect("bytes");
        (used, pages_read(&mut conn).await - before)
    }

    /// The rows `sql` answers on a fresh connection to `url`, and the pages that read.
    async fn rows_read(url: &str, sql: &str) -> (usize, i32) {
        use sqlx::Connection;
        let mut conn = sqlx::sqlite::SqliteConnection::connect(url)
            .await
            .expect("connect");
        let before = pages_read(&mut conn).await;
        let rows = sqlx::query(sql).fetch_all(&mut conn).await.expect("rows");
        (rows.len(), pages_read(&mut conn).await - before)
    }

    #[tokio::test]
    async fn listing_the_kept_data_folders_reads_no_component_bytes() {
        let db = TestDatabase::sqlite().expect("sqlite");
        let store = db.store().await.expect("store");
        // 12 versions with a 256 KiB component (64 pages each) and a data file each.
        for i in 0..12u8 {
            let component = vec![i; 256 << 10];
            let data = [DataFile {
                path: "rows.csv".to_owned(),
                bytes: vec![i; 10],
            }];
            store
                .publish_version_with_files(
                    &slug("acme"),
                    &slug(&format!("app-{i}")),
                    NewVersion {
                        visibility: crate::tenancy::Visibility::Public,
                        component: &component,
                        title: "t",
                        source: "cli",
                    },
                    &[],
                    &data,
                    1,
                )
                .await
                .expect("publish");
        }
        let folders = store.data_folders().await.expect("folders");
        assert_eq!(folders.len(), 12, "{folders:?}");
        let (rows, pages) = rows_read(&db.url, super::super::datafiles::DATA_MANIFESTS_SQL).await;
        assert_eq!(rows, 12);
        assert!(pages < 50, "{pages} pages read");
        assert_component_pages_are_counted(&db.url).await;
    }

    /// The measure can tell: a column stored after a 256 KiB blob (the old layout of
    /// `app_versions`) costs its pages on a fresh connection. SQLite reads a blob that is
    /// itself selected straight into the result, outside the page cache, so it is the
    /// columns behind a blob that show.
    async fn assert_component_pages_are_counted(url: &str) {
        use sqlx::Connection;
        let mut conn = sqlx::sqlite::SqliteConnection::connect(url)
            .await
            .expect("connect");
        sqlx::query("create table old_layout (component blob not null, title text not null)")
            .execute(&mut conn)
            .await
            .expect("create");
        for i in 0..12u8 {
            sqlx::query("insert into old_layout (component, title) values ($1, 't')")
                .bind(vec![i; BIG])
                .execute(&mut conn)
                .await
                .expect("insert");
        }
        conn.close().await.expect("close");
        let (rows, pages) = rows_read(url, "select title from old_layout").await;
        assert_eq!(rows, 12);
        assert!(pages > 700, "{pages} pages read");
    }

    /// Two tenants of 12 apps, each app with its own 256 KiB component (64 pages each) and a
    /// title, author and source; returns the store, the database and the first tenant.
    async fn twelve_big_apps_each() -> (TestDatabase, Store, TenantId) {
        let db = TestDatabase::sqlite().expect("sqlite");
        let store = db.store().await.expect("store");
        let mut measured = None;
        for i in 0..24u8 {
            let tenant = if i % 2 == 0 { "measured" } else { "other" };
            let component = vec![i; BIG];
            let published = store
                .publish_version(
                    &slug(tenant),
                    &slug(&format!("app-{i}")),
                    NewVersion {
                        visibility: crate::tenancy::Visibility::Public,
                        component: &component,
                        title: "t",
                        source: "cli",
                    },
                    1,
                )
                .await
                .expect("publish");
            let details = VersionDetails {
                commit: "0123",
                author: "alice",
                build_log: "built",
            };
            store
                .set_version_details(&slug(tenant), &slug(&format!("app-{i}")), 1, details)
                .await
                .expect("details");
            if tenant == "measured" {
                measured = Some(published.tenant_id);
            }
        }
        (db, store, measured.expect("published"))
    }

    /// 256 KiB: 64 pages of 4 KiB.
    const BIG: usize = 256 << 10;

    #[tokio::test]
    async fn the_storage_quota_check_reads_no_component_bytes() {
        let (db, _store, tenant) = twelve_big_apps_each().await;
        let (used, pages) = summed(
            &db.url,
            super::super::components::STORED_BYTES_SQL,
            tenant.0,
        )
        .await;
        assert_eq!(used, 12 * BIG as i64);
        // Reading the 12 components would take 768 pages; the sizes' index a few.
        assert!(pages < 100, "{pages} pages read");
        assert_component_pages_are_counted(&db.url).await;
    }

    #[tokio::test]
    async fn version_columns_are_read_without_component_pages() {
        use sqlx::Connection;
        let (db, store, tenant) = twelve_big_apps_each().await;
        // Every column of every version (titles, authors, sources, sizes: app lists, the
        // version list, the gallery) in a few pages: no component sits in these rows.
        let (rows, pages) = rows_read(
            &db.url,
            "select v.id, v.app_id, v.number, v.sha256, v.size_bytes, v.title, v.source, \
                    v.created_at, v.commit_sha, v.author, v.build_log, v.data_sha256 \
             from app_versions v",
        )
        .await;
        assert_eq!(rows, 24);
        assert!(pages < 50, "{pages} pages read");

        // The gallery's search that matches nothing, as the home page runs it, reads every
        // live version's title.
        let mut conn = sqlx::sqlite::SqliteConnection::connect(&db.url)
            .await
            .expect("connect");
        let before = pages_read(&mut conn).await;
        let found = sqlx::query(GALLERY_SQL)
            .bind(1i64)
            .bind(0i64)
            .bind(contains_pattern("no-such-app"))
            .bind("")
            .bind("")
            .bind(100i64)
            .bind("")
            .fetch_all(&mut conn)
            .await
            .expect("gallery");
        assert!(found.is_empty());
        let pages = pages_read(&mut conn).await - before;
        assert!(pages < 50, "{pages} pages read");

        // A load still finds its bytes through the version.
        let live = store
            .live_version(&slug("measured"), &slug("app-0"))
            .await
            .expect("q")
            .expect("live");
        assert_eq!(live.tenant_id, tenant);
        let bytes = store
            .version_component(live.app_id, live.version_id)
            .await
            .expect("component");
        assert_eq!(bytes, vec![0u8; BIG]);
        assert_component_pages_are_counted(&db.url).await;
    }

    #[tokio::test]
    async fn a_tenant_stores_a_shared_component_once_until_its_last_version_goes() {
        for (_db, store) in stores().await {
            let store = store.with_keep_versions(2);
            let publish = |tenant: &'static str, app: &'static str, bytes: &'static [u8]| {
                let store = store.clone();
                async move {
                    store
                        .publish_version(
                            &slug(tenant),
                            &slug(app),
                            NewVersion {
                                visibility: crate::tenancy::Visibility::Public,
                                component: bytes,
                                title: "t",
                                source: "cli",
                            },
                            1,
                        )
                        .await
                        .expect("publish")
                }
            };
            let shared: &[u8] = b"the same component";
            let one = publish("acme", "one", shared).await;
            let two = publish("acme", "two", shared).await;
            let other = publish("other", "one", shared).await;
            let (acme, other_tenant) = (one.tenant_id, other.tenant_id);
            let usage = |tenant: TenantId| {
                let store = store.clone();
                async move { store.component_usage(tenant).await.expect("usage") }
            };
            // Stored once per tenant, never shared across tenants.
            assert_eq!(usage(acme).await, (1, shared.len() as i64));
            assert_eq!(usage(other_tenant).await, (1, shared.len() as i64));
            for (app, version) in [(one.app_id, one.version_id), (two.app_id, two.version_id)] {
                let bytes = store.version_component(app, version).await.expect("read");
                assert_eq!(bytes, shared);
            }

            // "one" moves on: its shared version is pruned, but "two" still runs it.
            publish("acme", "one", b"x".as_slice()).await;
            publish("acme", "one", b"y".as_slice()).await;
            assert_eq!(usage(acme).await.0, 3, "shared, x and y");
            publish("acme", "one", b"z".as_slice()).await;
            assert_eq!(usage(acme).await, (3, shared.len() as i64 + 2), "x went");

            // Deleting "two" deletes the shared bytes; the other tenant keeps its own.
            store
                .delete_app(acme, two.app_id, &change())
                .await
                .expect("delete");
            assert_eq!(usage(acme).await, (2, 2), "y and z");
            assert_eq!(usage(other_tenant).await.0, 1);
            let bytes = store
                .version_component(other.app_id, other.version_id)
                .await
                .expect("read");
            assert_eq!(bytes, shared);
            store
                .delete_app(acme, one.app_id, &change())
                .await
                .expect("delete");
            assert_eq!(usage(acme).await, (0, 0), "nothing left behind");
            let hashes = store.component_hashes().await.expect("hashes");
            let expected: std::collections::HashSet<String> =
                [super::super::components::address(shared)].into();
            assert_eq!(hashes, expected, "the other tenant's only");
        }
    }

    /// The migrations before `version` of `backend` applied to the empty database at `url`.
    async fn migrate_before(backend: super::super::Backend, url: &str, version: i64) {
        use sqlx::{Connection, Executor};
        sqlx::any::install_default_drivers();
        let mut migrator = match backend {
            super::super::Backend::Sqlite => sqlx::migrate!("../migrations/sqlite"),
            super::super::Backend::Postgres => sqlx::migrate!("../migrations/postgres"),
        };
        migrator.migrations = migrator
            .migrations
            .iter()
            .filter(|m| m.version < version)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        let url = match backend {
            super::super::Backend::Sqlite => super::super::prepare_sqlite_url(url).expect("url"),
            super::super::Backend::Postgres => url.to_owned(),
        };
        let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
        if backend == super::super::Backend::Sqlite {
            conn.execute("pragma foreign_keys = off")
                .await
                .expect("pragma");
        }
        migrator.run(&mut conn).await.expect("earlier migrations");
        conn.close().await.expect("close");
    }

    #[tokio::test]
    async fn migration_0032_moves_the_components_of_existing_versions() {
        use sqlx::{Connection, Executor};
        for db in TestDatabase::all().await.expect("test databases") {
            let backend = db.backend;
            migrate_before(backend, &db.url, 32).await;
            // Two tenants; "acme" has two apps with the same component, one of them in
            // two versions, and one with a component of its own; 256 KiB each.
            let shared = vec![7u8; BIG];
            let own = vec![9u8; BIG];
            let (shared_hash, own_hash) = (
                super::super::components::address(&shared),
                super::super::components::address(&own),
            );
            let mut conn = sqlx::AnyConnection::connect(&db.url)
                .await
                .expect("connect");
            conn.execute(
                "insert into tenants (id, slug, name, created_at) values \
                 (1, 'acme', 'Acme', 1), (2, 'other', 'Other', 1)",
            )
            .await
            .expect("tenants");
            conn.execute(
                "insert into apps (id, tenant_id, name, created_at) values \
                 (1, 1, 'one', 1), (2, 1, 'two', 1), (3, 1, 'three', 1), (4, 2, 'one', 1)",
            )
            .await
            .expect("apps");
            let versions: [(i64, i64, i64, &[u8], &str); 5] = [
                (1, 1, 1, &shared, &shared_hash),
                (2, 1, 2, &shared, &shared_hash),
                (3, 2, 1, &shared, &shared_hash),
                (4, 3, 1, &own, &own_hash),
                (5, 4, 1, &shared, &shared_hash),
            ];
            for (id, app, number, bytes, hash) in versions {
                sqlx::query(
                    "insert into app_versions \
                     (id, app_id, number, sha256, component, size_bytes, title, source, created_at) \
                     values ($1, $2, $3, $4, $5, $6, 'Title', 'cli', 1)",
                )
                .bind(id)
                .bind(app)
                .bind(number)
                .bind(hash)
                .bind(bytes)
                .bind(bytes.len() as i64)
                .execute(&mut conn)
                .await
                .expect("version");
                sqlx::query("update apps set live_version_id = $1 where id = $2")
                    .bind(id)
                    .bind(app)
                    .execute(&mut conn)
                    .await
                    .expect("live");
            }
            conn.close().await.expect("close");

            let store = db.store().await.expect("the upgrade runs");
            let upgraded = store.schema_version().await.expect("version");
            assert!(upgraded >= 32, "{backend:?}: upgraded to {upgraded} only");
            assert_eq!(
                store.component_usage(TenantId(1)).await.expect("usage"),
                (2, 2 * BIG as i64),
                "{backend:?}: acme stores each component once"
            );
            assert_eq!(
                store.component_usage(TenantId(2)).await.expect("usage"),
                (1, BIG as i64),
                "{backend:?}: other keeps its own copy"
            );
            for (id, app, _, bytes, _) in versions {
                let read = store
                    .version_component(AppId(app), VersionId(id))
                    .await
                    .expect("read");
                assert!(read == bytes, "{backend:?}: version {id}");
            }
            // No version row holds bytes any more.
            let still_held: Vec<String> = match backend {
                super::super::Backend::Sqlite => {
                    sqlx::query_scalar("select name from pragma_table_info('app_versions')")
                        .fetch_all(&store.pool)
                        .await
                        .expect("columns")
                }
                super::super::Backend::Postgres => sqlx::query_scalar(
                    "select cast(id as text) from app_versions where component is not null",
                )
                .fetch_all(&store.pool)
                .await
                .expect("rows"),
            };
            match backend {
                super::super::Backend::Sqlite => {
                    assert!(
                        !still_held.iter().any(|c| c == "component"),
                        "{still_held:?}"
                    )
                }
                super::super::Backend::Postgres => assert!(still_held.is_empty(), "{still_held:?}"),
            }
            if backend == super::super::Backend::Sqlite {
                // The rows were rewritten without their bytes: a title costs no component page.
                let (rows, pages) =
                    rows_read(&db.url, "select title, source from app_versions").await;
                assert_eq!(rows, 5);
                assert!(pages < 20, "{pages} pages read");
            } else {
                // A replica of the previous release still writes the column: its bytes move.
                let legacy = vec![5u8; 100];
                let hash = super::super::components::address(&legacy);
                sqlx::query(
                    "insert into app_versions \
                     (id, app_id, number, sha256, component, size_bytes, title, source, created_at) \
                     values (6, 3, 2, $1, $2, 100, 'Title', 'cli', 2)",
                )
                .bind(hash.as_str())
                .bind(legacy.as_slice())
                .execute(&store.pool)
                .await
                .expect("an old replica's insert");
                let read = store
                    .version_component(AppId(3), VersionId(6))
                    .await
                    .expect("read");
                assert_eq!(read, legacy);
            }
        }
    }
}

/// An app of a tenant, for the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRecord {
    /// Its id.
    pub id: AppId,
    /// Its name (the URL segment).
    pub name: String,
    /// Who may open it.
    pub visibility: Visibility,
    /// When it was created.
    pub created_at: i64,
    /// The live version's number, if any.
    pub live_version: Option<i64>,
    /// The live version's title, if any.
    pub title: Option<String>,
}

/// One stored version of an app, without its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRecord {
    /// Its number within the app.
    pub number: i64,
    /// Hex sha256 of the component.
    pub sha256: String,
    /// Component size in bytes.
    pub size_bytes: i64,
    /// The title it reported.
    pub title: String,
    /// Who deployed it.
    pub source: String,
    /// When.
    pub created_at: i64,
    /// Whether it is the live version.
    pub live: bool,
    /// The git commit it was pushed from (`None` for CLI and API deploys).
    pub commit: Option<String>,
    /// Who pushed it (`None` for CLI and API deploys: `source` names them).
    pub author: Option<String>,
    /// The build's output as the pusher saw it (`None` for CLI and API deploys).
    pub build_log: Option<String>,
}

/// What a push recorded about the version it produced.
#[derive(Clone, Copy, Debug)]
pub struct VersionDetails<'a> {
    /// The git commit.
    pub commit: &'a str,
    /// The pusher (the audit actor of their token).
    pub author: &'a str,
    /// The build's output.
    pub build_log: &'a str,
}

/// What [`Store::rollback`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolledBack {
    /// The number of the version that was live.
    pub from: i64,
    /// The number of the version that is live now.
    pub to: i64,
    /// False when `to` was already live (nothing changed, nothing audited).
    pub changed: bool,
}

const APP_COLUMNS: &str = "a.id, a.name, a.visibility, a.created_at, v.number, v.title";

fn app_record(row: &sqlx::any::AnyRow) -> Result<AppRecord> {
    Ok(AppRecord {
        id: AppId(row.try_get(0)?),
        name: row.try_get(1)?,
        visibility: super::parse_stored(&row.try_get::<String, _>(2)?)?,
        created_at: row.try_get(3)?,
        live_version: row.try_get(4)?,
        title: row.try_get(5)?,
    })
}

impl Store {
    /// `tenant`'s apps ordered by name, after the cursor `after` (a name), each with how
    /// `user` relates to it (for the policy to filter the page).
    pub async fn list_apps(
        &self,
        tenant: TenantId,
        user: Option<UserId>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(AppRecord, AppAccess)>> {
        let rows = sqlx::query(&format!(
            "select {APP_COLUMNS}, \
               exists (select 1 from app_collaborators c \
                       where c.app_id = a.id and c.tenant_id = a.tenant_id and c.user_id = $4), \
               exists (select 1 from app_user_grants g \
                       where g.app_id = a.id and g.tenant_id = a.tenant_id and g.user_id = $4) \
               or exists (select 1 from app_team_grants tg \
                          join team_members tm on tm.team_id = tg.team_id and tm.tenant_id = tg.tenant_id \
                          where tg.app_id = a.id and tg.tenant_id = a.tenant_id and tm.user_id = $4) \
             from apps a \
             left join app_versions v on v.id = a.live_version_id \
             where a.tenant_id = $1 and a.name > $2 order by a.name limit $3"
        ))
        .bind(tenant.0)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .bind(user.map(|u| u.0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let record = app_record(row)?;
                let access = AppAccess {
                    tenant_id: tenant,
                    app_id: record.id,
                    visibility: record.visibility,
                    collaborator: super::flag(row, 6)?,
                    granted: super::flag(row, 7)?,
                };
                Ok((record, access))
            })
            .collect()
    }

    /// `tenant`'s app with this id.
    pub async fn app_record(&self, tenant: TenantId, app: AppId) -> Result<Option<AppRecord>> {
        let row = sqlx::query(&format!(
            "select {APP_COLUMNS} from apps a \
             left join app_versions v on v.id = a.live_version_id \
             where a.tenant_id = $1 and a.id = $2"
        ))
        .bind(tenant.0)
        .bind(app.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(app_record).transpose()
    }

    /// The versions of `tenant`'s app, newest first.
    pub async fn list_versions(&self, tenant: TenantId, app: AppId) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query(
            "select v.number, v.sha256, v.size_bytes, v.title, v.source, v.created_at, \
                    a.live_version_id = v.id, v.commit_sha, v.author, v.build_log \
             from app_versions v join apps a on a.id = v.app_id \
             where a.tenant_id = $1 and a.id = $2 order by v.number desc",
        )
        .bind(tenant.0)
        .bind(app.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(VersionRecord {
                    number: row.try_get(0)?,
                    sha256: row.try_get(1)?,
                    size_bytes: row.try_get(2)?,
                    title: row.try_get(3)?,
                    source: row.try_get(4)?,
                    created_at: row.try_get(5)?,
                    live: super::flag(row, 6).unwrap_or(false),
                    commit: row.try_get(7)?,
                    author: row.try_get(8)?,
                    build_log: row.try_get(9)?,
                })
            })
            .collect()
    }

    /// Record what a push knew about version `number` of `tenant/app`: its commit, its
    /// pusher and its build log.
    pub async fn set_version_details(
        &self,
        tenant: &Slug,
        app: &Slug,
        number: i64,
        details: VersionDetails<'_>,
    ) -> Result<()> {
        sqlx::query(
            "update app_versions set commit_sha = $1, author = $2, build_log = $3 \
             where number = $4 and app_id = \
             (select a.id from apps a join tenants t on t.id = a.tenant_id \
              where t.slug = $5 and a.name = $6)",
        )
        .bind(details.commit)
        .bind(details.author)
        .bind(details.build_log)
        .bind(number)
        .bind(tenant.as_str())
        .bind(app.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Make a kept version of `tenant`'s app live again: `to`, or by default the newest
    /// version older than the live one. One transaction: the app row is locked
    /// (PostgreSQL; SQLite's `begin immediate` locks the database), the target is looked
    /// up, and the live pointer moves in one `update`, audited as `app.rollback`. A target
    /// that is not kept (pruned, or never deployed) is [`super::Error::VersionNotKept`]; no
    /// older version to fall back to is [`super::Error::Refused`].
    pub async fn rollback(
        &self,
        tenant: TenantId,
        app: AppId,
        to: Option<i64>,
        change: &Change<'_>,
    ) -> Result<RolledBack> {
        let mut tx = self.begin().await?;
        let name = self.lock_app_row(&mut tx, tenant, app).await?;
        let from = sqlx::query(
            "select v.number from apps a join app_versions v on v.id = a.live_version_id \
             where a.id = $1",
        )
        .bind(app.0)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get::<i64, _>(0))
        .transpose()?;
        let Some(from) = from else {
            return Err(super::Error::Refused(format!(
                "{name} has no live version to roll back from"
            )));
        };
        let target = match to {
            Some(number) => number,
            None => sqlx::query(
                "select max(number) from app_versions where app_id = $1 and number < $2",
            )
            .bind(app.0)
            .bind(from)
            .fetch_one(&mut *tx)
            .await?
            .try_get::<Option<i64>, _>(0)?
            .ok_or_else(|| {
                super::Error::Refused(format!(
                    "version {from} is the oldest kept version of {name}: there is nothing older to roll back to"
                ))
            })?,
        };
        let found = sqlx::query("select id from app_versions where app_id = $1 and number = $2")
            .bind(app.0)
            .bind(target)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(found) = found else {
            let kept =
                sqlx::query("select min(number), max(number) from app_versions where app_id = $1")
                    .bind(app.0)
                    .fetch_one(&mut *tx)
                    .await?;
            let (oldest, newest): (Option<i64>, Option<i64>) = (kept.try_get(0)?, kept.try_get(1)?);
            let why = match newest {
                Some(newest) if target > 0 && target < newest => format!(
                    "it was pruned: only the last {} versions are kept, {} to {newest} here",
                    self.keep_versions,
                    oldest.unwrap_or(newest)
                ),
                _ => "it was never deployed".to_owned(),
            };
            return Err(super::Error::VersionNotKept(format!(
                "version {target} of {name} is not kept: {why}"
            )));
        };
        let version_id: i64 = found.try_get(0)?;
        if target == from {
            return Ok(RolledBack {
                from,
                to: target,
                changed: false,
            });
        }
        sqlx::query("update apps set live_version_id = $1 where id = $2 and tenant_id = $3")
            .bind(version_id)
            .bind(app.0)
            .bind(tenant.0)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "app.rollback",
            &format!("app:{name}"),
            serde_json::json!({"from": from, "to": target}),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(RolledBack {
            from,
            to: target,
            changed: true,
        })
    }
}

/// What [`Store::delete_app`] removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedApp {
    /// `tenant/app`.
    pub name: String,
    /// How many versions went with it.
    pub versions: i64,
}

impl Store {
    /// Delete `tenant`'s app with its versions, assets, data-file manifests (and the
    /// tenant's blobs and components no other version lists), settings, grants, collaborators and data
    /// source grants, audited as `app.delete`; one transaction. Every child table is
    /// emptied explicitly rather than through `on delete cascade`, because not every
    /// foreign key in both backends' migrations cascades.
    pub async fn delete_app(
        &self,
        tenant: TenantId,
        app: AppId,
        change: &Change<'_>,
    ) -> Result<DeletedApp> {
        let mut tx = self.begin().await?;
        // The tenant's row before the app's, in the order a publish takes them: no publish
        // of the tenant may count on a component or blob this deletes.
        if self.backend == super::Backend::Postgres {
            sqlx::query("select id from tenants where id = $1 for update")
                .bind(tenant.0)
                .fetch_optional(&mut *tx)
                .await?;
        }
        let name = self.lock_app_row(&mut tx, tenant, app).await?;
        sqlx::query("update apps set live_version_id = null where id = $1 and tenant_id = $2")
            .bind(app.0)
            .bind(tenant.0)
            .execute(&mut *tx)
            .await?;
        let versions = sqlx::query("select id, sha256 from app_versions where app_id = $1")
            .bind(app.0)
            .fetch_all(&mut *tx)
            .await?;
        let mut components = BTreeSet::new();
        for row in &versions {
            let id: i64 = row.try_get(0)?;
            components.insert(row.try_get::<String, _>(1)?);
            sqlx::query("delete from app_assets where version_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            super::datafiles::delete_version(&mut tx, id).await?;
        }
        sqlx::query("delete from app_versions where app_id = $1")
            .bind(app.0)
            .execute(&mut *tx)
            .await?;
        super::datafiles::delete_orphans(&mut tx, tenant.0).await?;
        super::components::delete_unused(&mut tx, tenant.0, &components).await?;
        for table in [
            "app_settings",
            "data_source_grants",
            "app_user_grants",
            "app_team_grants",
            "app_collaborators",
            "app_usage",
        ] {
            sqlx::query(&format!("delete from {table} where app_id = $1"))
                .bind(app.0)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("delete from apps where id = $1 and tenant_id = $2")
            .bind(app.0)
            .bind(tenant.0)
            .execute(&mut *tx)
            .await?;
        let versions = versions.len() as i64;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "app.delete",
            &format!("app:{name}"),
            serde_json::json!({"versions": versions}),
        )
        .await?;
        // This replica's cached lookups must forget the app at once, not at the next poll.
        self.commit_change(tx).await?;
        Ok(DeletedApp { name, versions })
    }
}

/// One live app as a person's home page lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GalleryApp {
    /// The tenant's slug.
    pub tenant: String,
    /// The tenant's display name.
    pub tenant_name: String,
    /// The app's name.
    pub name: String,
    /// The live version's title.
    pub title: String,
    /// The live version's number.
    pub version: i64,
    /// When the live version was deployed.
    pub deployed_at: i64,
    /// Who deployed it (the pusher, or the deploy's source).
    pub deployed_by: String,
    /// How the asking user relates to it, for the policy.
    pub access: AppAccess,
}

/// Which live apps [`Store::gallery`] reads.
#[derive(Clone, Copy, Debug)]
pub struct GalleryQuery<'a> {
    /// Whose relations (`None`: anonymous).
    pub user: Option<UserId>,
    /// Every tenant's apps (a superadmin), not only public ones and the user's tenants'.
    pub every_tenant: bool,
    /// Only this tenant's (a slug).
    pub tenant: Option<&'a str>,
    /// Text the name or title contains (case-insensitive; empty: all).
    pub search: &'a str,
    /// Start after this `(tenant, app)` (keyset pagination).
    pub after: (&'a str, &'a str),
    /// Most rows.
    pub limit: i64,
}

/// `text` as a `like` pattern that matches it anywhere, `\` escaping the wildcards.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The gallery's one query: `$1` every tenant (1/0), `$2` the user (0: anonymous), `$3` the
/// search pattern, `$4`/`$5` the cursor, `$6` the limit, `$7` a tenant slug (empty: all).
// The page is chosen first; how the user relates to each app is asked only for the page's
// rows (PostgreSQL would otherwise evaluate the three subqueries for every candidate before
// sorting: 70 ms at 10,000 apps).
const GALLERY_SQL: &str = "select p.p_slug, p.p_tenant_name, p.p_name, p.p_title, p.p_number, p.p_created, \
                    p.p_by, p.p_id, p.p_tenant_id, p.p_visibility, \
               exists (select 1 from app_collaborators c \
                       where c.app_id = p.p_id and c.tenant_id = p.p_tenant_id and c.user_id = $2), \
               exists (select 1 from app_user_grants g \
                       where g.app_id = p.p_id and g.tenant_id = p.p_tenant_id and g.user_id = $2) \
               or exists (select 1 from app_team_grants tg \
                          join team_members tm on tm.team_id = tg.team_id and tm.tenant_id = tg.tenant_id \
                          where tg.app_id = p.p_id and tg.tenant_id = p.p_tenant_id and tm.user_id = $2) \
             from (select t.slug as p_slug, t.name as p_tenant_name, a.name as p_name, \
                          v.title as p_title, v.number as p_number, v.created_at as p_created, \
                          coalesce(v.author, v.source) as p_by, a.id as p_id, \
                          a.tenant_id as p_tenant_id, a.visibility as p_visibility \
                   from apps a join tenants t on t.id = a.tenant_id \
                   join app_versions v on v.id = a.live_version_id \
                   where ($1 = 1 or a.visibility = 'public' or exists \
                          (select 1 from memberships m where m.tenant_id = a.tenant_id and m.user_id = $2)) \
                     and ($3 = '%%' or lower(a.name) like $3 escape '\\' or lower(v.title) like $3 escape '\\') \
                     and (t.slug > $4 or (t.slug = $4 and a.name > $5)) \
                     and ($7 = '' or t.slug = $7) \
                     and t.suspended_at is null \
                   order by t.slug, a.name limit $6) p \
             order by p.p_slug, p.p_name";

impl Store {
    /// Live apps ordered by tenant and name, one page in one query, each with how the
    /// user relates to it. The `where` only narrows the candidates (public apps and the
    /// user's tenants'); the caller asks the policy about each row.
    pub async fn gallery(&self, query: GalleryQuery<'_>) -> Result<Vec<GalleryApp>> {
        let rows = sqlx::query(GALLERY_SQL)
            .bind(i64::from(query.every_tenant))
            .bind(query.user.map_or(0, |u| u.0))
            .bind(contains_pattern(query.search))
            .bind(query.after.0)
            .bind(query.after.1)
            .bind(query.limit)
            .bind(query.tenant.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(GalleryApp {
                    tenant: row.try_get(0)?,
                    tenant_name: row.try_get(1)?,
                    name: row.try_get(2)?,
                    title: row.try_get(3)?,
                    version: row.try_get(4)?,
                    deployed_at: row.try_get(5)?,
                    deployed_by: row.try_get(6)?,
                    access: AppAccess {
                        app_id: AppId(row.try_get(7)?),
                        tenant_id: TenantId(row.try_get(8)?),
                        visibility: super::parse_stored(&row.try_get::<String, _>(9)?)?,
                        collaborator: super::flag(row, 10)?,
                        granted: super::flag(row, 11)?,
                    },
                })
            })
            .collect()
    }
}
