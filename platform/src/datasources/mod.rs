//! Tenant data sources: named PostgreSQL, MySQL/MariaDB and SQLite databases a tenant's
//! admins register and grant to apps, which the apps' guests query read-only through the
//! host (issue 14). The guest never holds a credential, a host name or a socket.
//!
//! One [`DataSources`] per process holds the lazily created pools (one per source,
//! small, idle connections closed) and the per-tenant cap on queries at once. Its
//! methods are the domain functions behind both the CLI (`tessera sources …`) and the
//! REST API (`/api/v1/tenants/{tenant}/data-sources`), and [`DataSources::query`] is what
//! the guest capability calls.
//!
//! Errors handed to a guest name the source and never its host, user, password or file:
//! a connection that fails is "cannot be reached" (the cause goes to the server log);
//! a database's message about the statement is passed on with every credential string of
//! the source (host, user, password, database, path) replaced by `***`, since messages
//! about a statement (a missing column, a syntax error, a permission) can only echo
//! what the query named, and the scrub catches the rest.

mod arrow;
pub mod connection;
mod exec;
pub mod statement;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub use arrow::Cell;
pub use connection::{Connection, ConnectionInput, TlsMode};

use crate::config::DataSourcesConfig;
use crate::ids::{AppId, TenantId, UserId};
use crate::secretbox::SecretBox;
use crate::store::{self, Change, DataSourceWrite, Store, StoredDataSource, StoredLimits, Tenant};
use exec::{Bounds, RunError, SourcePool};

/// Which database a source is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
    /// A SQLite file in the tenant's folder of the sources directory.
    Sqlite,
}

impl Kind {
    /// Its spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
            Kind::Sqlite => "sqlite",
        }
    }

    /// The kind spelt `raw` (`mariadb` and `postgresql` too).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Some(Kind::Postgres),
            "mysql" | "mariadb" => Some(Kind::Mysql),
            "sqlite" => Some(Kind::Sqlite),
            _ => None,
        }
    }
}

/// Who is looking at the dashboard, for row-level security in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    /// Their user id.
    pub user_id: UserId,
    /// Their email.
    pub email: String,
    /// Their teams (group names).
    pub groups: Vec<String>,
}

/// Who is querying: the app of a tenant, for a viewer (none: anonymous or background).
#[derive(Clone, Debug)]
pub struct QueryContext {
    /// The calling app's tenant.
    pub tenant: TenantId,
    /// The calling app.
    pub app: AppId,
    /// The viewer, if signed in.
    pub viewer: Option<Viewer>,
}

/// A bound parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// NULL (bound as a text NULL).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(String),
}

/// A result: an Arrow IPC stream of one record batch.
#[derive(Clone, Debug)]
pub struct QueryOutput {
    /// The stream's bytes.
    pub arrow_ipc: Vec<u8>,
    /// Rows in it.
    pub rows: u64,
    /// The size of the stream.
    pub bytes: u64,
}

/// Why a query gave no result; each carries a sentence for the app's authors that never
/// contains a credential, a host or a path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No such source for this app: missing, another tenant's or not granted (the same).
    #[error("{0}")]
    NotGranted(String),
    /// The statement is not one that may run (a write, two statements, too long).
    #[error("{0}")]
    Refused(String),
    /// A timeout, a row or byte cap, or too many queries at once.
    #[error("{0}")]
    Limit(String),
    /// The database failed the statement.
    #[error("{0}")]
    Failed(String),
    /// The source cannot be reached.
    #[error("{0}")]
    Unavailable(String),
}

/// Most parameters of one query.
pub const MAX_PARAMS: usize = 256;
/// Most bytes of all text parameters of one query.
pub const MAX_PARAM_BYTES: usize = 1 << 20;
/// Longest source name.
pub const MAX_NAME_CHARS: usize = 63;

/// Why an admin action was refused (the message says what to do).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name, a setting or a limit that cannot be stored.
    #[error("{0}")]
    Invalid(String),
    /// No such source in the tenant.
    #[error("the tenant has no data source {0:?}")]
    NotFound(String),
    /// The settings do not open (sealed under another key, or altered).
    #[error(
        "the settings of data source {0:?} cannot be decrypted: sealed under another key \
         (do all replicas share TESSERA_SECRET_KEY?) or altered; register it again"
    )]
    Unreadable(String),
    /// The database failed, or a grant names a missing app.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Per-source limits an admin asks for; each at most the operator's.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceLimits {
    /// Statement timeout, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout_ms: Option<u64>,
    /// Most rows of one result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// Most bytes of one result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Most pooled connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u64>,
}

/// A source as admins see it: everything but the password.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SourceView {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Host (PostgreSQL, MySQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// User.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Whether a password is stored (it is never shown).
    pub password_set: bool,
    /// TLS mode.
    pub tls: String,
    /// SQLite: the file in the tenant's folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its own limits (absent: the operator's).
    pub limits: SourceLimits,
    /// The apps it is granted to.
    pub granted_to: Vec<String>,
    /// Last change, Unix ms.
    pub updated_at: i64,
    /// Who made it.
    pub updated_by: String,
}

/// What `test` found.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TestReport {
    /// Whether a trivial query ran.
    pub ok: bool,
    /// A sentence saying what happened.
    pub message: String,
}

/// The data sources of every tenant, as one process uses them.
pub struct DataSources {
    store: Store,
    sealer: SecretBox,
    config: DataSourcesConfig,
    sources_dir: PathBuf,
    /// By source id: the version (`updated_at`) the pool was built for, and the pool.
    pools: Mutex<HashMap<i64, (i64, Arc<SourcePool>)>>,
    /// Queries at once, per tenant.
    tenants: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
    /// Which source each app may query, cached under the change counter (the server's);
    /// `None`: every query asks the store (the CLI, a test's own instance).
    grants: Option<crate::lookup::GrantCache>,
}

impl std::fmt::Debug for DataSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataSources")
            .field("config", &self.config)
            .field("sources_dir", &self.sources_dir)
            .finish_non_exhaustive()
    }
}

/// Checks a source name: lowercase letters, digits, `-` and `_`, starting with a letter.
pub fn check_name(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= MAX_NAME_CHARS;
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid data source name {name:?}: a lowercase letter, then lowercase letters, \
             digits, '-' and '_', at most {MAX_NAME_CHARS} characters"
        )))
    }
}

fn to_stored(limit: Option<u64>) -> Option<i64> {
    limit.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn from_stored(limit: Option<i64>) -> Option<u64> {
    limit.and_then(|v| u64::try_from(v).ok())
}

impl DataSources {
    /// The data sources over `store`, sealed with `sealer`, under the operator's limits;
    /// SQLite files live in `sources_dir`.
    pub fn new(
        store: Store,
        sealer: SecretBox,
        config: DataSourcesConfig,
        sources_dir: PathBuf,
    ) -> Self {
        Self {
            store,
            sealer,
            config,
            sources_dir,
            pools: Mutex::new(HashMap::new()),
            tenants: Mutex::new(HashMap::new()),
            grants: None,
        }
    }

    /// The same, remembering which source each app may query while `changes` (polled
    /// by the server) says nothing changed.
    pub fn with_changes(mut self, changes: Arc<crate::lookup::Changes>) -> Self {
        self.grants = Some(crate::lookup::GrantCache::new(changes));
        self
    }

    /// The source `name` of `tenant` if it is granted to `app`: from the grant cache when
    /// there is one.
    async fn granted(
        &self,
        tenant: TenantId,
        app: AppId,
        name: &str,
    ) -> store::Result<Option<StoredDataSource>> {
        match &self.grants {
            Some(grants) => grants.granted_data_source(tenant, app, name).await,
            None => self.store.granted_data_source(tenant, app, name).await,
        }
    }

    /// The directory of tenants' SQLite sources.
    pub fn sources_dir(&self) -> &std::path::Path {
        &self.sources_dir
    }

    fn check_limits(&self, limits: &SourceLimits) -> Result<(), Error> {
        let c = &self.config;
        for (what, asked, operator) in [
            (
                "statement_timeout_ms",
                limits.statement_timeout_ms,
                c.statement_timeout_ms,
            ),
            ("max_rows", limits.max_rows, c.max_rows),
            ("max_bytes", limits.max_bytes, c.max_bytes),
            ("pool_size", limits.pool_size, u64::from(c.pool_size)),
        ] {
            if let Some(v) = asked
                && (v == 0 || v > operator)
            {
                return Err(Error::Invalid(format!(
                    "{what} must be 1 to {operator} (the operator's limit); got {v}"
                )));
            }
        }
        Ok(())
    }

    /// Registers or replaces the source `name` of `tenant`; `true` when created. The
    /// settings are checked (the SQLite file in the tenant's folder; the host, once
    /// resolved, not private unless the operator allows it) and sealed.
    pub async fn put(
        &self,
        tenant: &Tenant,
        name: &str,
        kind: Kind,
        input: &ConnectionInput,
        limits: &SourceLimits,
        change: &Change<'_>,
    ) -> Result<(bool, SourceView), Error> {
        check_name(name)?;
        self.check_limits(limits)?;
        let connection = connection::parse(kind, input).map_err(Error::Invalid)?;
        match kind {
            Kind::Sqlite => {
                let path = connection.path.as_deref().unwrap_or_default();
                connection::sqlite_file(&self.sources_dir, &tenant.slug, path)
                    .map_err(Error::Invalid)?;
            }
            Kind::Postgres | Kind::Mysql => {
                let host = connection.host.as_deref().unwrap_or_default();
                connection::check_host(
                    host,
                    connection::port(kind, &connection),
                    self.config.allow_private_hosts,
                )
                .await
                .map_err(Error::Invalid)?;
            }
        }
        let sealed = connection::seal(&self.sealer, tenant.id, name, &connection);
        let write = DataSourceWrite {
            name,
            kind: kind.as_str(),
            connection: &sealed,
            limits: StoredLimits {
                statement_timeout_ms: to_stored(limits.statement_timeout_ms),
                max_rows: to_stored(limits.max_rows),
                max_bytes: to_stored(limits.max_bytes),
                pool_size: to_stored(limits.pool_size),
            },
        };
        let created = self
            .store
            .put_data_source(tenant.id, &write, change)
            .await?;
        Ok((created, self.show(tenant.id, name).await?))
    }

    fn view(&self, stored: StoredDataSource) -> Result<SourceView, Error> {
        let kind = Kind::parse(&stored.kind)
            .ok_or_else(|| Error::Store(store::Error::Corrupt(stored.kind.clone())))?;
        let c = connection::open(
            &self.sealer,
            stored.tenant_id,
            &stored.name,
            &stored.connection,
        )
        .ok_or_else(|| Error::Unreadable(stored.name.clone()))?;
        Ok(SourceView {
            name: stored.name,
            kind,
            host: c.host,
            port: c.port,
            database: c.database,
            user: c.user,
            password_set: c.password.is_some(),
            tls: c.tls.as_str().to_owned(),
            path: c.path,
            limits: SourceLimits {
                statement_timeout_ms: from_stored(stored.limits.statement_timeout_ms),
                max_rows: from_stored(stored.limits.max_rows),
                max_bytes: from_stored(stored.limits.max_bytes),
                pool_size: from_stored(stored.limits.pool_size),
            },
            granted_to: stored.granted_to,
            updated_at: stored.updated_at,
            updated_by: stored.updated_by,
        })
    }

    /// The tenant's sources, without passwords.
    pub async fn list(&self, tenant: TenantId) -> Result<Vec<SourceView>, Error> {
        self.store
            .data_sources(tenant)
            .await?
            .into_iter()
            .map(|s| self.view(s))
            .collect()
    }

    /// One source, without its password.
    pub async fn show(&self, tenant: TenantId, name: &str) -> Result<SourceView, Error> {
        let stored = self
            .store
            .data_source(tenant, name)
            .await?
            .ok_or_else(|| Error::NotFound(name.to_owned()))?;
        self.view(stored)
    }

    /// Removes a source and its grants; `false` when there was none.
    pub async fn remove(
        &self,
        tenant: TenantId,
        name: &str,
        change: &Change<'_>,
    ) -> Result<bool, Error> {
        let stored = self.store.data_source(tenant, name).await?;
        let removed = self.store.remove_data_source(tenant, name, change).await?;
        if let Some(stored) = stored {
            self.forget_pool(stored.id);
        }
        Ok(removed)
    }

    /// Grants (`granted`) or revokes a source to the app named `app` of the same tenant;
    /// `true` when something changed. Revoking from a source that is gone is a no-op.
    pub async fn set_grant(
        &self,
        tenant: TenantId,
        name: &str,
        app: &str,
        granted: bool,
        change: &Change<'_>,
    ) -> Result<bool, Error> {
        let unknown_app = || {
            Error::Store(store::Error::NotFound {
                what: "app",
                value: app.to_owned(),
            })
        };
        let slug = crate::ids::Slug::parse(app).map_err(|_| unknown_app())?;
        let app = self
            .store
            .app_id(tenant, &slug)
            .await?
            .ok_or_else(unknown_app)?;
        match self
            .store
            .set_data_source_grant(tenant, name, app, granted, change)
            .await
        {
            Err(store::Error::NotFound {
                what: "data source",
                ..
            }) if granted => Err(Error::NotFound(name.to_owned())),
            Err(store::Error::NotFound {
                what: "data source",
                ..
            }) => Ok(false),
            other => Ok(other?),
        }
    }

    /// Connects to a source and runs `select 1`: a sentence for the admin (who may see
    /// the connection's error, with the password scrubbed).
    pub async fn test(&self, tenant: TenantId, name: &str) -> Result<TestReport, Error> {
        let stored = self
            .store
            .data_source(tenant, name)
            .await?
            .ok_or_else(|| Error::NotFound(name.to_owned()))?;
        let started = Instant::now();
        let deadline = started + Duration::from_millis(self.config.statement_timeout_ms.max(1));
        let result = match self.pool_for(&stored).await {
            Ok((pool, secrets)) => {
                let bounds = self.bounds(&stored, deadline);
                exec::run(&pool, "select 1", &[], None, bounds)
                    .await
                    .map_err(|e| scrub(&run_error_detail(&e), &secrets))
            }
            Err(detail) => Err(detail),
        };
        Ok(match result {
            Ok(_) => TestReport {
                ok: true,
                message: format!(
                    "connected to the data source `{name}` and ran a query in {} ms",
                    started.elapsed().as_millis()
                ),
            },
            Err(detail) => TestReport {
                ok: false,
                message: format!("the data source `{name}` cannot be used: {detail}"),
            },
        })
    }

    fn bounds(&self, stored: &StoredDataSource, deadline: Instant) -> Bounds {
        let c = &self.config;
        let pick = |own: Option<i64>, operator: u64| {
            from_stored(own)
                .map_or(operator, |v| v.min(operator))
                .max(1)
        };
        let timeout = Duration::from_millis(pick(
            stored.limits.statement_timeout_ms,
            c.statement_timeout_ms,
        ));
        let until = deadline.min(Instant::now() + timeout);
        let left = until.saturating_duration_since(Instant::now());
        Bounds {
            until,
            timeout_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1),
            max_rows: pick(stored.limits.max_rows, c.max_rows),
            max_bytes: pick(stored.limits.max_bytes, c.max_bytes),
        }
    }

    fn forget_pool(&self, id: i64) {
        let removed = self
            .pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some((_, pool)) = removed {
            tokio::spawn(async move { close(&pool).await });
        }
    }

    /// The pool built for version `version` of source `id`, if there is one.
    fn cached_pool(&self, id: i64, version: i64) -> Option<Arc<SourcePool>> {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .get(&id)
            .filter(|(built_for, _)| *built_for == version)
            .map(|(_, pool)| pool.clone())
    }

    /// Inserts the pool of a source, closing the one it replaces.
    fn keep_pool(&self, id: i64, version: i64, pool: Arc<SourcePool>) {
        let old = self
            .pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (version, pool));
        if let Some((_, old)) = old {
            tokio::spawn(async move { close(&old).await });
        }
    }

    /// The pool of a source (created at first use, or again after a change) and the
    /// strings to scrub from its errors. The error is a detail for the log and admins.
    async fn pool_for(
        &self,
        stored: &StoredDataSource,
    ) -> Result<(Arc<SourcePool>, Vec<String>), String> {
        let c = connection::open(
            &self.sealer,
            stored.tenant_id,
            &stored.name,
            &stored.connection,
        )
        .ok_or_else(|| "its settings cannot be decrypted".to_owned())?;
        let secrets: Vec<String> = [&c.host, &c.user, &c.password, &c.database, &c.path]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        if let Some(pool) = self.cached_pool(stored.id, stored.updated_at) {
            return Ok((pool, secrets));
        }
        let kind = Kind::parse(&stored.kind).ok_or("an unknown kind")?;
        let size = from_stored(stored.limits.pool_size)
            .map_or(self.config.pool_size, |v| {
                u32::try_from(v)
                    .unwrap_or(u32::MAX)
                    .min(self.config.pool_size)
            })
            .max(1);
        let connect_timeout =
            Duration::from_millis(self.config.statement_timeout_ms.clamp(1, 10_000));
        let idle = Duration::from_secs(60);
        let pool = match kind {
            Kind::Postgres | Kind::Mysql => {
                let host = c.host.clone().unwrap_or_default();
                let port = connection::port(kind, &c);
                connection::check_host(&host, port, self.config.allow_private_hosts).await?;
                if kind == Kind::Postgres {
                    use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
                    let mut options = PgConnectOptions::new_without_pgpass()
                        .host(&host)
                        .port(port)
                        .username(c.user.as_deref().unwrap_or_default())
                        .database(c.database.as_deref().unwrap_or_default())
                        .application_name("tessera data source")
                        .ssl_mode(match c.tls {
                            TlsMode::Disable => PgSslMode::Disable,
                            TlsMode::Prefer => PgSslMode::Prefer,
                            TlsMode::Require => PgSslMode::Require,
                            TlsMode::VerifyFull => PgSslMode::VerifyFull,
                        })
                        // Read-only by default too, behind the read-only transaction.
                        .options([("default_transaction_read_only", "on")]);
                    if let Some(p) = &c.password {
                        options = options.password(p);
                    }
                    SourcePool::Postgres(
                        PgPoolOptions::new()
                            .max_connections(size)
                            .min_connections(0)
                            .idle_timeout(idle)
                            .acquire_timeout(connect_timeout)
                            // Ends the query's transaction; sqlx then pings the
                            // connection, so a ping before each use is one round trip
                            // too many (a connection lost meanwhile is retried, `exec::run`).
                            .after_release(exec::pg_release)
                            .test_before_acquire(false)
                            .connect_lazy_with(options),
                    )
                } else {
                    use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlSslMode};
                    let mut options = MySqlConnectOptions::new()
                        .host(&host)
                        .port(port)
                        .username(c.user.as_deref().unwrap_or_default())
                        .database(c.database.as_deref().unwrap_or_default())
                        .ssl_mode(match c.tls {
                            TlsMode::Disable => MySqlSslMode::Disabled,
                            TlsMode::Prefer => MySqlSslMode::Preferred,
                            TlsMode::Require => MySqlSslMode::Required,
                            TlsMode::VerifyFull => MySqlSslMode::VerifyIdentity,
                        });
                    if let Some(p) = &c.password {
                        options = options.password(p);
                    }
                    SourcePool::Mysql(
                        MySqlPoolOptions::new()
                            .max_connections(size)
                            .min_connections(0)
                            .idle_timeout(idle)
                            .acquire_timeout(connect_timeout)
                            .after_release(exec::mysql_release)
                            .test_before_acquire(false)
                            .connect_lazy_with(options),
                    )
                }
            }
            Kind::Sqlite => {
                use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
                let slug = self.tenant_slug(stored.tenant_id).await?;
                let file = connection::sqlite_file(
                    &self.sources_dir,
                    &slug,
                    c.path.as_deref().unwrap_or_default(),
                )?;
                let options = SqliteConnectOptions::new()
                    .filename(file)
                    .read_only(true)
                    .create_if_missing(false)
                    .busy_timeout(Duration::from_secs(1))
                    .pragma("query_only", "on");
                SourcePool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(size)
                        .min_connections(0)
                        .idle_timeout(idle)
                        .acquire_timeout(connect_timeout)
                        .connect_lazy_with(options),
                )
            }
        };
        let pool = Arc::new(pool);
        self.keep_pool(stored.id, stored.updated_at, pool.clone());
        Ok((pool, secrets))
    }

    async fn tenant_slug(&self, tenant: TenantId) -> Result<String, String> {
        self.store
            .data_source_tenant_slug(tenant)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "its tenant is gone".to_owned())
    }

    fn tenant_slot(&self, tenant: TenantId) -> Arc<Semaphore> {
        let queries = usize::try_from(self.config.tenant_queries.max(1)).unwrap_or(1);
        self.tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant)
            .or_insert_with(|| Arc::new(Semaphore::new(queries)))
            .clone()
    }

    /// Runs `sql` with `params` on the source `source` for the app and viewer of `call`,
    /// read-only, by `deadline` and under the limits; the result as Arrow IPC.
    pub async fn query(
        &self,
        call: QueryContext,
        source: &str,
        sql: &str,
        params: &[Param],
        deadline: Instant,
    ) -> Result<QueryOutput, QueryError> {
        let not_granted = || {
            QueryError::NotGranted(format!(
                "this app has no data source `{}`",
                source.chars().take(MAX_NAME_CHARS).collect::<String>()
            ))
        };
        if check_name(source).is_err() {
            return Err(not_granted());
        }
        let stored = self
            .granted(call.tenant, call.app, source)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, source, "looking up a data source failed");
                QueryError::Unavailable(format!("the data source `{source}` cannot be reached"))
            })?
            .ok_or_else(not_granted)?;
        let kind = Kind::parse(&stored.kind).ok_or_else(not_granted)?;
        statement::check(kind, sql).map_err(QueryError::Refused)?;
        if params.len() > MAX_PARAMS {
            return Err(QueryError::Refused(format!(
                "a query takes at most {MAX_PARAMS} parameters (got {})",
                params.len()
            )));
        }
        let param_bytes: usize = params
            .iter()
            .map(|p| match p {
                Param::Text(t) => t.len(),
                _ => 8,
            })
            .sum();
        if param_bytes > MAX_PARAM_BYTES {
            return Err(QueryError::Refused(format!(
                "the parameters are {param_bytes} bytes; at most {MAX_PARAM_BYTES} are allowed"
            )));
        }
        let slot = self.tenant_slot(call.tenant);
        let _turn = tokio::time::timeout_at(deadline, slot.acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                QueryError::Limit(format!(
                    "too many data-source queries of this tenant are running (at most {} at once); try again",
                    self.config.tenant_queries
                ))
            })?;
        let unavailable =
            || QueryError::Unavailable(format!("the data source `{source}` cannot be reached"));
        let (pool, secrets) = self.pool_for(&stored).await.map_err(|detail| {
            tracing::warn!(source, tenant = %call.tenant, %detail, "data source unavailable");
            unavailable()
        })?;
        let bounds = self.bounds(&stored, deadline);
        if bounds.until <= Instant::now() {
            return Err(QueryError::Limit(format!(
                "no time was left for the query on `{source}` before the callback's deadline"
            )));
        }
        let started = Instant::now();
        let outcome = exec::run(&pool, sql, params, call.viewer.as_ref(), bounds).await;
        let (columns, _) = outcome.map_err(|e| {
            let detail = run_error_detail(&e);
            tracing::info!(source, tenant = %call.tenant, app = %call.app, %detail, "data-source query failed");
            match e {
                RunError::Connect(_) | RunError::Lost(_) => unavailable(),
                RunError::Timeout => QueryError::Limit(format!(
                    "the query on `{source}` ran longer than {} ms and was stopped",
                    started.elapsed().as_millis().max(u128::from(bounds.timeout_ms))
                )),
                RunError::Rows => QueryError::Limit(format!(
                    "the query on `{source}` returned more than {} rows; narrow it or aggregate",
                    bounds.max_rows
                )),
                RunError::Bytes => QueryError::Limit(format!(
                    "the result of the query on `{source}` is larger than {} bytes; narrow it",
                    bounds.max_bytes
                )),
                RunError::ReadOnly(m) => QueryError::Refused(format!(
                    "the data source `{source}` is read-only: {}",
                    scrub(&m, &secrets)
                )),
                RunError::Database(m) => QueryError::Failed(format!(
                    "the data source `{source}` failed the query: {}",
                    scrub(&m, &secrets)
                )),
                RunError::Decode(m) => QueryError::Failed(scrub(&m, &secrets)),
            }
        })?;
        let rows = columns.rows() as u64;
        let arrow_ipc = columns.into_ipc().map_err(|e| {
            QueryError::Failed(format!(
                "the result of `{source}` could not be encoded: {e}"
            ))
        })?;
        let bytes = arrow_ipc.len() as u64;
        if bytes > bounds.max_bytes {
            return Err(QueryError::Limit(format!(
                "the result of the query on `{source}` is larger than {} bytes; narrow it",
                bounds.max_bytes
            )));
        }
        Ok(QueryOutput {
            arrow_ipc,
            rows,
            bytes,
        })
    }
}

async fn close(pool: &SourcePool) {
    match pool {
        SourcePool::Postgres(p) => p.close().await,
        SourcePool::Mysql(p) => p.close().await,
        SourcePool::Sqlite(p) => p.close().await,
    }
}

fn run_error_detail(e: &RunError) -> String {
    match e {
        RunError::Connect(d)
        | RunError::Lost(d)
        | RunError::ReadOnly(d)
        | RunError::Database(d)
        | RunError::Decode(d) => d.clone(),
        RunError::Timeout => "timed out".into(),
        RunError::Rows => "too many rows".into(),
        RunError::Bytes => "too many bytes".into(),
    }
}

/// `message` with every secret string replaced by `***` (longest first, so a password
/// containing the user name goes whole).
fn scrub(message: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = message.to_owned();
    for s in sorted {
        out = out.replace(s.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Handlers and the guest capability await these on a multi-threaded runtime, for
    /// any lifetime of the borrows (a function generic over the executor breaks this).
    #[allow(dead_code)]
    fn futures_are_send(d: Arc<DataSources>, call: QueryContext) {
        fn send<T: Send + 'static>(_: T) {}
        let e = d.clone();
        send(async move {
            let _ = e.test(TenantId(1), "x").await;
        });
        send(async move {
            let _ = d.query(call, "x", "select 1", &[], Instant::now()).await;
        });
    }

    #[test]
    fn names_are_lowercase_slugs() {
        for good in ["sales", "s-1", "a_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Sales", "1abc", "a b", "../x", &"a".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scrub_removes_every_secret() {
        let s = scrub(
            "password authentication failed for user \"ro\" at db.internal (pw ro-secret)",
            &["ro".into(), "ro-secret".into(), "db.internal".into()],
        );
        assert!(
            !s.contains("ro-secret") && !s.contains("db.internal") && !s.contains("\"ro\""),
            "{s}"
        );
    }
}
