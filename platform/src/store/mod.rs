//! All SQL lives here: one `sqlx::AnyPool` over SQLite (default) or PostgreSQL, the same
//! portable queries for both, migrations chosen by the URL's scheme.
//!
//! Invariants: queries are lowercase and use `$n` placeholders; timestamps are Unix
//! milliseconds handed in by the caller (from [`crate::clock`]), never `now()` in SQL.
//! Every query on tenant-owned rows is filtered by the tenant's id (functions on such rows
//! take the [`TenantId`](crate::ids::TenantId) first); a change of several rows is one
//! transaction, and every change writes its audit row inside that same transaction.
//! Values arrive validated ([`crate::tenancy`]); the store does not judge names.

mod access;
mod apps;
mod assets;
mod audit;
pub mod backup;
mod cli_sign_ins;
mod components;
mod datafiles;
mod datasources;
mod handoffs;
mod invitations;
mod leases;
mod memberships;
mod providers;
mod sessions;
mod settings;
mod tenants;
pub mod testing;
mod throttle;
mod tokens;
mod usage;
mod users;

pub use access::{AppAccess, AppAccessLists};
pub use apps::{
    AppRecord, AppSummary, CallbackQuotas, DeletedApp, GalleryApp, GalleryQuery, LiveVersion,
    NewVersion, PublishedVersion, RolledBack, VersionDetails, VersionRecord,
};
pub use audit::{AuditEntry, AuditFilter, AuditSearch, Change};
pub use cli_sign_ins::{ApprovedToken, CliSignIn, NewCliSignIn};
pub use datasources::{DataSourceWrite, StoredDataSource, StoredLimits};
pub use invitations::{Acceptor, Invitation, NewInvitation};
pub use memberships::{Member, Team, ViewerFacts};
pub use providers::{
    ExternalSignIn, LinkKind, LinkRefusal, LinkableProvider, LinkedIdentity, NewProvider,
    ProviderRecord, ProviderRemoval, Provisioned, Refusal,
};
pub use sessions::{SessionAccount, session_key};
pub use settings::{SettingUpdate, SettingWrite, StoredSetting};
pub use tenants::{DeletedTenant, Quotas, Tenant};
pub use tokens::{NewToken, TokenRecord, TokenSummary};
pub use usage::UsageRow;
pub use users::{NewUser, User};

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused or failed a query.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names a database this build does not support.
    #[error("unsupported database URL {0:?}: use sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    /// A row with this unique name already exists.
    #[error("{what} {value:?} already exists")]
    Conflict {
        /// What kind of thing (`tenant`, `user`, `team`).
        what: &'static str,
        /// The name that is taken.
        value: String,
    },
    /// A row the change depends on does not exist.
    #[error("no {what} {value:?}")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// The name or id that was looked for.
        value: String,
    },
    /// The change would leave a tenant without an owner.
    #[error("a tenant must keep at least one owner")]
    LastOwner,
    /// A rollback target that is not among the app's kept versions (the message says why).
    #[error("{0}")]
    VersionNotKept(String),
    /// The change cannot be made in the current state (the message says why).
    #[error("{0}")]
    Refused(String),
    /// A tenant quota would be exceeded.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A value read back from the database is not one this build knows (e.g. a role).
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// Creating the SQLite file's directory failed.
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Creating the SQLite file or restricting its mode to 0600 failed.
    #[error("cannot create the database file {path} or make it private (0600): {source}")]
    DatabaseFile {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// Whether a query that expected a row found none (e.g. a version pruned meanwhile).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Database(sqlx::Error::RowNotFound))
    }
}

/// Result with the store's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which SQL dialect the pool speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The database handle.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Versions kept per app after a publish ([`Store::with_keep_versions`]).
    keep_versions: i64,
    /// Connections handed out by the pool: one per query or transaction.
    acquisitions: Arc<AtomicU64>,
    /// Transactions this process committed that change who may open which app, which
    /// version serves it or which data source it may query ([`Store::local_changes`]).
    local_changes: Arc<AtomicU64>,
}

/// Versions kept per app unless configured otherwise (`[deploy] keep_versions`).
pub const DEFAULT_KEEP_VERSIONS: i64 = 10;

impl Store {
    /// Connect to `url`, creating a SQLite file (and its directory) when needed, and run
    /// the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::UnsupportedUrl(crate::config::redact_url(url)));
        };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let acquisitions = Arc::new(AtomicU64::new(0));
        let (on_acquire, on_connect) = (acquisitions.clone(), acquisitions.clone());
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // One writer at a time is all SQLite allows; a few readers help the
                // per-request live-version lookups.
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            // Every acquisition is counted, whether the connection was idle or new.
            .before_acquire(move |_conn, _meta| {
                on_acquire.fetch_add(1, Ordering::Relaxed);
                Box::pin(async { Ok(true) })
            })
            .after_connect(move |conn, _meta| {
                on_connect.fetch_add(1, Ordering::Relaxed);
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "pragma journal_mode = wal; pragma busy_timeout = 5000; \
                             pragma foreign_keys = on; pragma synchronous = normal;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => {
                // Migrations run with foreign keys off, as SQLite asks for a table rebuild
                // (a DROP with them on would cascade: migration 0017), and the keys are
                // checked before the connection goes back to the pool.
                let mut conn = pool.acquire().await?;
                conn.execute("pragma foreign_keys = off").await?;
                let migrated = sqlx::migrate!("../migrations/sqlite").run(&mut *conn).await;
                let violations = sqlx::query("pragma foreign_key_check")
                    .fetch_all(&mut *conn)
                    .await;
                conn.execute("pragma foreign_keys = on").await?;
                migrated?;
                if !violations?.is_empty() {
                    return Err(Error::Migrate(sqlx::migrate::MigrateError::Execute(
                        sqlx::Error::Protocol(
                            "foreign keys broken after the migrations (pragma foreign_key_check)"
                                .into(),
                        ),
                    )));
                }
            }
            Backend::Postgres => sqlx::migrate!("../migrations/postgres").run(&pool).await?,
        }
        Ok(Self {
            pool,
            backend,
            keep_versions: DEFAULT_KEEP_VERSIONS,
            acquisitions,
            local_changes: Arc::default(),
        })
    }

    /// The newest migration applied to this database (0 before any).
    pub async fn schema_version(&self) -> Result<i64> {
        let version: Option<i64> =
            sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    /// Keep only the newest `keep` versions of an app after each publish (at least 1; the
    /// live version is always among them). Older ones are pruned with their assets.
    pub fn with_keep_versions(mut self, keep: u32) -> Self {
        self.keep_versions = i64::from(keep.max(1));
        self
    }

    /// How many versions of an app a publish keeps.
    pub fn keep_versions(&self) -> i64 {
        self.keep_versions
    }

    /// The dialect in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Start a transaction. On SQLite it takes the write lock at once (`begin immediate`):
    /// a deferred transaction that reads and then writes fails with "database is locked"
    /// (without waiting for the busy timeout) when another writer got in between.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("begin immediate").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Commit `tx`, a change to who may open which app, which version serves it or which
    /// data source it may query: this process's cached lookups see it at once
    /// ([`Store::local_changes`]), other replicas through the change counter.
    async fn commit_change(&self, tx: sqlx::Transaction<'static, sqlx::Any>) -> Result<()> {
        tx.commit().await?;
        self.local_changes.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Bumps the database's change counter inside `tx`, for changes no trigger of
    /// migration 0023 sees (data sources and their grants). Run it last, just before
    /// [`Store::commit_change`]: the counter's row is then locked only at the end, after
    /// every other lock of the transaction, as the triggers' deferred updates are.
    async fn bump_change_counter(tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> Result<()> {
        sqlx::query("update change_counter set n = n + 1 where id = 1")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// How many access or live-version changes this process committed (read it before a
    /// lookup: a different number after means the answer may be stale).
    pub fn local_changes(&self) -> u64 {
        self.local_changes.load(Ordering::Acquire)
    }

    /// The database's change counter, bumped by trigger in every transaction that changes
    /// tenants, apps, memberships, team members, grants or collaborators (migration 0023)
    /// or users (0031), and by `store::datasources` in every change of a data source or its
    /// grants.
    pub async fn change_counter(&self) -> Result<i64> {
        let row = sqlx::query("select n from change_counter where id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(sqlx::Row::try_get(&row, 0)?)
    }

    /// How many times the pool handed out a connection (one per query or transaction):
    /// what a request cost the database, for tests and the metrics.
    pub fn acquisitions(&self) -> u64 {
        self.acquisitions.load(Ordering::Relaxed)
    }

    /// The pool's open connections and how many of them are idle.
    pub fn pool_size(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Cheap liveness probe for `/healthz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Close the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Turn a unique-constraint violation into [`Error::Conflict`]; other errors pass through.
fn conflict_on_unique(what: &'static str, value: &str) -> impl FnOnce(sqlx::Error) -> Error {
    move |error| match error.as_database_error() {
        Some(db) if db.is_unique_violation() => Error::Conflict {
            what,
            value: value.to_owned(),
        },
        _ => Error::Database(error),
    }
}

/// Parse a stored enum spelling (role, visibility), reporting an unknown one as corrupt.
fn parse_stored<T: std::str::FromStr>(raw: &str) -> Result<T> {
    raw.parse()
        .map_err(|_| Error::Corrupt(format!("unknown value {raw:?}")))
}

/// A computed boolean column: PostgreSQL answers `bool`, SQLite an integer.
fn flag(row: &sqlx::any::AnyRow, index: usize) -> Result<bool> {
    use sqlx::Row;
    match row.try_get::<bool, _>(index) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<i64, _>(index)? != 0),
    }
}

/// Make sure the SQLite file can be created: `mode=rwc` and an existing directory.
fn prepare_sqlite_url(url: &str) -> Result<String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parent = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = parent.filter(|_| path != ":memory:") {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    if path != ":memory:" && !path.is_empty() && !query.contains("mode=memory") {
        owner_only_files(Path::new(path)).map_err(|source| Error::DatabaseFile {
            path: path.to_owned(),
            source,
        })?;
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// The database file readable by the server's user only: created 0600 before SQLite opens
/// it (SQLite gives its `-wal` and `-shm` files the database file's mode), and an existing
/// file and its companions tightened at every start.
fn owner_only_files(db: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        match std::fs::metadata(&file) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
