//! The shared state every handler gets: `AppState(Arc<App>)`.

use std::ops::Deref;
use std::sync::Arc;

use anyhow::Context;
use sandbox::{Sandbox, SandboxConfig};

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::deploy::Deployer;
use crate::frontend::Frontend;
use crate::jobs::{JobStore, Jobs, MemoryJobs, RedisJobs};
use crate::runtime::Runtime;
use crate::store::Store;

/// Everything the platform holds while it runs.
pub struct App {
    /// The resolved configuration.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// Live apps and the sandbox they run in.
    pub runtime: Runtime,
    /// The Dash front end's files.
    pub frontend: Frontend,
    /// Wall-clock time.
    pub clock: SharedClock,
    /// The background-callback job queue.
    pub jobs: Jobs,
    /// Sign-in throttling (counted in the database, shared by replicas).
    pub throttle: crate::auth::session::Throttle,
    /// Where browser sessions are kept (Redis if configured, else the database).
    pub sessions: crate::auth::session::SessionBackend,
    /// Builds on `git push`: the per-app locks and the build slots.
    pub builds: crate::deploy::Builds,
    /// Seals and opens the secrets stored in the database (provider credentials, app
    /// secrets).
    pub secrets: crate::secretbox::SecretBox,
    /// OpenID providers' discovery documents and keys, cached per provider.
    pub oidc: crate::auth::oidc::Discovery,
    /// SAML identity providers' metadata, cached per provider.
    pub saml: crate::auth::saml::Saml,
    /// The platform's origin and the apps origin (checked apart at start).
    pub origins: crate::origin::Origins,
    /// The platform pages' Content-Security-Policy (it names the apps origin).
    pub platform_csp: axum::http::HeaderValue,
    /// Hand-off codes and app-session links (Redis if configured, else the database).
    pub handoffs: crate::auth::handoff::Handoffs,
    /// Turns for the host work of requests on the apps origin, fair between tenants.
    pub admission: Arc<crate::admission::Admission>,
    /// Tenants' data sources: their pools and the per-tenant cap on queries.
    pub datasources: Arc<crate::datasources::DataSources>,
    /// The shared cache (Redis if configured, else this process).
    pub cache: Arc<crate::cache::Cache>,
    /// Where the app log's latest lines are read (and, with Redis, shared by replicas).
    pub app_log: crate::applog::LogFeed,
    /// Memoized callbacks: single flight and counters over `cache`.
    pub memo: Arc<crate::cache::memo::Memo>,
    /// The database's change counter as this replica polls it.
    pub changes: Arc<crate::lookup::Changes>,
    /// Who may open which app, from memory while nothing changed.
    pub access: crate::lookup::AccessCache,
    /// The accounts behind sessions, from memory while nothing changed.
    pub accounts: crate::lookup::AccountCache,
    /// Which tenants are suspended, from memory while nothing changed.
    pub suspensions: crate::lookup::Suspensions,
    /// A web replica's way to its builder (`None`: this replica builds itself).
    pub forwarder: Option<crate::cluster::Forwarder>,
    /// Set on SIGTERM: `/readyz` answers 503 while in-flight requests finish.
    pub drain: crate::cluster::Drain,
    /// Open WebSocket-callback connections per tenant (their cap, `[limits]
    /// websocket_connections`).
    pub ws_connections: crate::dash::ws::Connections,
    /// Each app's usage per minute not yet added to the database (`usage`).
    pub usage: Arc<crate::usage::Usage>,
    /// Set by `tessera dev` only: its one app, hot reload and the build's failure.
    pub dev: std::sync::OnceLock<Arc<crate::dev::DevSession>>,
}

/// Cheap to clone; what axum hands to handlers.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

impl App {
    /// Connect to the database, start the sandbox and check the front end.
    pub async fn start(config: Config) -> anyhow::Result<AppState> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`App::start`] with another clock (tests move time with
    /// [`crate::clock::ShiftedClock`]).
    pub async fn start_with_clock(
        config: Config,
        clock: crate::clock::SharedClock,
    ) -> anyhow::Result<AppState> {
        // First, so a configuration that would serve apps on the platform's origin stops
        // the start before anything else happens.
        let origins =
            crate::origin::Origins::resolve(&config.public_url, config.apps_origin.as_deref())?;
        let platform_csp = axum::http::HeaderValue::from_str(&origins.platform_csp())
            .context("the Content-Security-Policy of the platform's pages")?;
        let secrets = crate::secretbox::SecretBox::load(
            config.secret_key.as_deref(),
            &config.secret_key_file,
        )
        .context("loading the secret key")?;
        let frontend = Frontend::open(&config.frontend_dir)?;
        let store = Store::connect(&config.database_url)
            .await
            .with_context(|| {
                format!(
                    "opening {}",
                    crate::config::redact_url(&config.database_url)
                )
            })?
            .with_keep_versions(config.deploy.keep_versions);
        let sandbox = open_sandbox(&config)?;
        let admission = crate::admission::Admission::for_this_machine(sandbox.clone());
        let job_store = match &config.redis_url {
            Some(url) => JobStore::Redis(RedisJobs::connect(url).await.with_context(|| {
                format!("connecting to Redis at {}", crate::config::redact_url(url))
            })?),
            None => JobStore::Memory(Arc::new(MemoryJobs::default())),
        };
        let usage = Arc::new(crate::usage::Usage::new(clock.clone()));
        let sessions = match &config.redis_url {
            Some(url) => crate::auth::session::SessionBackend::Redis(
                crate::auth::session::RedisSessionStore::connect(url, clock.clone())
                    .await
                    .with_context(|| {
                        format!("connecting to Redis at {}", crate::config::redact_url(url))
                    })?,
            ),
            None => crate::auth::session::SessionBackend::Database(
                crate::auth::session::DbSessionStore::new(store.clone(), clock.clone()),
            ),
        };
        let handoffs = match &config.redis_url {
            Some(url) => crate::auth::handoff::Handoffs::connect_redis(url)
                .await
                .with_context(|| {
                    format!("connecting to Redis at {}", crate::config::redact_url(url))
                })?,
            None => crate::auth::handoff::Handoffs::Database(store.clone()),
        };
        let cache = match &config.redis_url {
            Some(url) => crate::cache::Cache::connect_redis(
                url,
                &crate::cache::namespace_for(&secrets),
                config.cache.limits(),
            )
            .await
            .with_context(|| {
                format!("connecting to Redis at {}", crate::config::redact_url(url))
            })?,
            None => crate::cache::Cache::in_process(config.cache.limits()),
        };
        let app_log = match &config.redis_url {
            Some(url) => {
                crate::applog::LogFeed::connect_redis(url, &crate::cache::namespace_for(&secrets))
                    .await
                    .with_context(|| {
                        format!("connecting to Redis at {}", crate::config::redact_url(url))
                    })?
            }
            None => crate::applog::LogFeed::Local,
        };
        let jobs = Jobs::new(job_store, config.jobs.options(), app_log.clone());
        let builds = crate::deploy::Builds::new(&config, store.clone());
        let throttle = crate::auth::session::Throttle::new(store.clone());
        // A web replica never builds: it has no build directories to clean (and writes none).
        let stale = match config.cluster.role.builds() {
            true => builds
                .recover()
                .context("cleaning up builds of a stopped server")?,
            false => 0,
        };
        let forwarder = crate::cluster::Forwarder::for_config(&config)?;
        if stale > 0 {
            tracing::warn!(stale, "removed what a stopped server's builds left behind");
        }
        // Read once now, so lookups are cached from the first request, then polled.
        let changes = Arc::new(crate::lookup::Changes::new(store.clone()));
        if let Err(error) = changes.poll().await {
            tracing::warn!(%error, "reading the change counter failed");
        }
        changes.spawn_polling();
        let datasources = Arc::new(
            crate::datasources::DataSources::new(
                store.clone(),
                secrets.clone(),
                config.data_sources.clone(),
                config.sources_dir(),
            )
            .with_changes(changes.clone()),
        );
        let cache = Arc::new(cache.with_usage(usage.clone()));
        let capabilities = crate::capabilities::PlatformCapabilities::new(
            datasources.clone(),
            cache.clone(),
            tokio::runtime::Handle::current(),
        );
        crate::observe::install();
        let runtime = Runtime::new(
            sandbox,
            store.clone(),
            secrets.clone(),
            config.limits.to_sandbox(),
        )
        .with_app_data(crate::appdata::AppDataDirs::new(config.app_data_dir()))
        .with_python(crate::python::PythonHost::new(
            &config.builds,
            config.python_apps_dir(),
        ))
        .with_outbound(config.outbound.to_policy()?)
        .with_capabilities(Arc::new(capabilities))
        .with_changes(changes.clone());
        Ok(AppState(Arc::new(App {
            datasources,
            builds,
            sessions,
            jobs,
            config,
            store,
            runtime,
            frontend,
            clock,
            throttle,
            secrets,
            oidc: Default::default(),
            saml: Default::default(),
            origins,
            platform_csp,
            handoffs,
            admission,
            cache,
            app_log,
            memo: Default::default(),
            access: crate::lookup::AccessCache::new(changes.clone()),
            accounts: crate::lookup::AccountCache::new(changes.clone()),
            suspensions: crate::lookup::Suspensions::new(changes.clone()),
            changes,
            forwarder,
            drain: Default::default(),
            ws_connections: Default::default(),
            usage,
            dev: std::sync::OnceLock::new(),
        })))
    }

    /// The deploy pipeline bound to this app's store, sandbox and limits.
    pub fn deployer(&self) -> Deployer<'_> {
        Deployer {
            store: &self.store,
            sandbox: self.runtime.sandbox(),
            limits: self.runtime.limits().clone(),
            max_component_bytes: self.config.max_component_bytes,
            secrets: &self.secrets,
            // Callers that create apps for people (git push) choose `tenant`.
            new_app_visibility: crate::tenancy::Visibility::Public,
            app_data: self.runtime.app_data(),
            python: self.runtime.python().clone(),
        }
    }
}

/// The program that compiles components (`tessera compile-component`), set by the `tessera`
/// binary at start. Unset (in tests that run the router in process) components compile in
/// process without a limit.
static COMPILER_PROGRAM: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Compile new components by running `program compile-component` under the `[limits]`
/// compile limits. Only the first call counts.
pub fn set_compiler_program(program: std::path::PathBuf) {
    let _ = COMPILER_PROGRAM.set(program);
}

/// The sandbox with its compiled-component cache in the data directory.
pub fn open_sandbox(config: &Config) -> anyhow::Result<Sandbox> {
    let cache_dir = config.cache_dir();
    std::fs::create_dir_all(&cache_dir)
        .with_context(|| format!("creating {}", cache_dir.display()))?;
    let compiler = COMPILER_PROGRAM.get().map(|program| sandbox::Compiler {
        program: program.clone(),
        args: vec!["compile-component".to_owned()],
        time_limit: std::time::Duration::from_secs(config.limits.compile_secs.max(1)),
        memory_bytes: config.limits.compile_memory_mb << 20,
    });
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(cache_dir),
        compiler,
        cpu_slots: match config.limits.cpu_slots {
            0 => SandboxConfig::default().cpu_slots,
            slots => slots,
        },
        idle_expiry: std::time::Duration::from_secs(config.limits.idle_expiry_secs.max(1)),
        park_long_calls: match config.limits.park_long_calls_ms {
            0 => None,
            ms => Some(std::time::Duration::from_millis(ms)),
        },
        spared_cores: config.limits.spared_cores,
        explicit_bounds_checks: config.limits.explicit_bounds_checks,
        ..SandboxConfig::default()
    })?;
    // Heavy apps' log lines are written where their calls run.
    crate::applog::init(&sandbox.long_work());
    Ok(sandbox)
}
