//! Test support: a fresh, empty database per test, on SQLite always and on PostgreSQL
//! when `TESSERA_TEST_POSTGRES_URL` is set, so one test suite runs on both backends.
//!
//! Each PostgreSQL test database is created under a unique name and dropped when its
//! [`TestDatabase`] is dropped, so tests run in parallel without seeing each other. With
//! `TESSERA_REQUIRE_POSTGRES=1` (set by `scripts/test.sh`), a missing URL fails the test
//! instead of quietly running on SQLite alone. Used by the store's own tests and by the
//! platform's integration tests; nothing in the server calls it.

use std::str::FromStr;

use sqlx::{ConnectOptions, Connection, Executor};

use super::{Backend, Result, Store};

/// The variable naming the PostgreSQL server tests may create databases on.
pub const POSTGRES_URL_VAR: &str = "TESSERA_TEST_POSTGRES_URL";
/// Set to `1` to make a missing [`POSTGRES_URL_VAR`] an error.
pub const REQUIRE_POSTGRES_VAR: &str = "TESSERA_REQUIRE_POSTGRES";

/// One throwaway database; dropping it removes the database (PostgreSQL) or its
/// directory (SQLite).
pub struct TestDatabase {
    /// Which backend.
    pub backend: Backend,
    /// The URL a [`Store`] (or `tessera` itself) connects to.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(
        #[expect(dead_code, reason = "held only to delete the directory on drop")]
        tempfile::TempDir,
    ),
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDatabase {
    /// A fresh SQLite database in a temporary directory.
    pub fn sqlite() -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("tessera.db").display());
        Ok(Self {
            backend: Backend::Sqlite,
            url,
            cleanup: Cleanup::Sqlite(dir),
        })
    }

    /// A fresh PostgreSQL database on the server of [`POSTGRES_URL_VAR`]; `None` when the
    /// variable is unset (a panic instead when [`REQUIRE_POSTGRES_VAR`] is `1`).
    pub async fn postgres() -> Result<Option<Self>> {
        let Some(admin_url) = std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|u| !u.is_empty())
        else {
            assert!(
                std::env::var(REQUIRE_POSTGRES_VAR).as_deref() != Ok("1"),
                "{REQUIRE_POSTGRES_VAR}=1 but {POSTGRES_URL_VAR} is not set: \
                 the PostgreSQL half of the suite would be skipped"
            );
            return Ok(None);
        };
        let name = format!(
            "tessera_test_{}_{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let mut admin = sqlx::postgres::PgConnectOptions::from_str(&admin_url)?
            .connect()
            .await?;
        admin
            .execute(format!("create database {name}").as_str())
            .await?;
        admin.close().await?;
        let url = with_database(&admin_url, &name);
        Ok(Some(Self {
            backend: Backend::Postgres,
            url,
            cleanup: Cleanup::Postgres { admin_url, name },
        }))
    }

    /// SQLite, and PostgreSQL when configured: the databases a backend-agnostic test
    /// runs on.
    pub async fn all() -> Result<Vec<Self>> {
        let mut databases = vec![Self::sqlite().map_err(sqlx::Error::Io)?];
        if let Some(pg) = Self::postgres().await? {
            databases.push(pg);
        }
        Ok(databases)
    }

    /// Connect a store (running the migrations).
    pub async fn store(&self) -> Result<Store> {
        Store::connect(&self.url).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on; a helper thread
        // with its own small runtime does the asynchronous work.
        let dropped = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| super::Error::Database(sqlx::Error::Io(e)))?;
            runtime.block_on(async {
                let mut admin = sqlx::postgres::PgConnectOptions::from_str(&admin_url)?
                    .connect()
                    .await?;
                admin
                    .execute(format!("drop database if exists {name} with (force)").as_str())
                    .await?;
                admin.close().await?;
                Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.url);
        }
    }
}

/// `url` with its database (path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t3"),
            "postgres://h:5432/t3"
        );
    }
}

/// How much [`seed_bulk`] writes.
#[derive(Clone, Copy, Debug)]
pub struct BulkSeed {
    /// Tenants `tenant-1` … `tenant-N`.
    pub tenants: i64,
    /// Apps: the first `big_tenant_apps` in `tenant-1`, the rest spread over the others.
    pub apps: i64,
    /// Apps of `tenant-1`.
    pub big_tenant_apps: i64,
    /// Audit rows: a tenth in `tenant-1`, the rest spread over all tenants.
    pub audit_rows: i64,
}

/// Fill an empty database fast for the benchmarks: one set-based `insert … select` per
/// table over a recursive counter (portable between SQLite and PostgreSQL), then
/// `analyze` so the planner knows the sizes.
pub async fn seed_bulk(store: &Store, seed: BulkSeed) -> Result<()> {
    let pool = &store.pool;
    let counter = "with recursive n(i) as (select 1 union all select i + 1 from n where i < $1)";
    sqlx::query(&format!(
        "{counter} insert into tenants (slug, name, created_at) \
         select 'tenant-' || i, 'Tenant ' || i, i from n"
    ))
    .bind(seed.tenants)
    .execute(pool)
    .await?;
    // Tenant ids are 1..=tenants in a fresh database.
    sqlx::query(&format!(
        "{counter} insert into apps (tenant_id, name, visibility, created_at) \
         select case when i <= $2 then 1 else 2 + ((i - $2) % ($3 - 1)) end, \
                'app-' || i, 'tenant', i from n"
    ))
    .bind(seed.apps)
    .bind(seed.big_tenant_apps)
    .bind(seed.tenants)
    .execute(pool)
    .await?;
    sqlx::query(&format!(
        "{counter} insert into audit_log (at, tenant_id, actor, action, target, remote_addr, detail) \
         select i, case when i % 10 = 0 then 1 else 1 + (i % $2) end, 'system', \
                case when i % 3 = 0 then 'app.deploy' else 'membership.grant' end, \
                'app:' || i, null, '{{}}' from n"
    ))
    .bind(seed.audit_rows)
    .bind(seed.tenants)
    .execute(pool)
    .await?;
    pool.execute("analyze").await?;
    Ok(())
}

/// Give every app of `tenant` one live version (a one-byte component; for pages that list
/// live apps), then `analyze`.
pub async fn seed_live_versions(store: &Store, tenant: i64) -> Result<()> {
    let pool = &store.pool;
    // One stored component, named by every version (migration 0032).
    sqlx::query(
        "insert into app_components (tenant_id, sha256, size_bytes, content) \
         values ($1, 'seed', 1, $2) on conflict (tenant_id, sha256) do nothing",
    )
    .bind(tenant)
    .bind(vec![0u8])
    .execute(pool)
    .await?;
    sqlx::query(
        "insert into app_versions (app_id, number, sha256, size_bytes, title, source, \
                                   created_at) \
         select id, 1, 'seed', 1, 'App ' || name, 'seed', created_at \
         from apps where tenant_id = $1",
    )
    .bind(tenant)
    .execute(pool)
    .await?;
    sqlx::query(
        "update apps set live_version_id = \
             (select v.id from app_versions v where v.app_id = apps.id and v.number = 1) \
         where tenant_id = $1",
    )
    .bind(tenant)
    .execute(pool)
    .await?;
    pool.execute("analyze").await?;
    Ok(())
}
