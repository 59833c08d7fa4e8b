//! `TestApp`: a platform on a temporary data directory.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use platform::config::{Config, LimitsConfig};
use platform::ids::Slug;
use platform::state::{App, AppState};
use platform::store::testing::TestDatabase;
use serde_json::Value;
use tower::ServiceExt;

/// The checkout root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What `script` (in tests/differential/python, run by the dash venv's Python: real
/// `dash` 4.4.1, `scripts/differential-venv.sh`) prints as JSON for `input` on its stdin.
pub fn python_dash(script: &str, input: &Value) -> Value {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let venv = Command::new(repo_root().join("scripts/differential-venv.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/differential-venv.sh runs");
    assert!(
        venv.status.success(),
        "scripts/differential-venv.sh installs dash==4.4.1 into target/dash-venv"
    );
    let python = String::from_utf8(venv.stdout).expect("a path");
    // -B: no __pycache__ in the source tree.
    let mut child = Command::new(python.trim())
        .args(["-B", script])
        .current_dir(repo_root().join("tests/differential/python"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the venv's python starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write the cases");
    let output = child.wait_with_output().expect("python ends");
    assert!(output.status.success(), "{script} failed");
    serde_json::from_slice(&output.stdout).expect("python prints JSON")
}

/// A built guest component, or a panic saying how to build it.
pub fn guest_wasm(file: &str) -> Vec<u8> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("wasm32-wasip2/guest").join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}); build the guests first with scripts/build-guests.sh",
            path.display()
        )
    })
}

/// The compiled-component cache these tests share (kept between runs): a component is
/// compiled once per run instead of once per test. Its entries are keyed by the component's
/// bytes and the engine, so sharing changes no answer; a test about the cache itself gives
/// its platform a cache of its own.
pub fn shared_component_cache() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("tessera-test-component-cache")
}

pub struct TestApp {
    pub state: AppState,
    _dir: tempfile::TempDir,
    _db: Option<TestDatabase>,
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `{"error": {"code"}}` of an error reply.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_limits(LimitsConfig::default()).await
    }

    pub async fn with_limits(limits: LimitsConfig) -> Self {
        Self::build(limits, None).await
    }

    /// A platform on `db` (SQLite or PostgreSQL), which it keeps alive.
    pub async fn on(db: TestDatabase) -> Self {
        Self::build(LimitsConfig::default(), Some(db)).await
    }

    /// A platform whose job queue lives in the test Redis (`TESSERA_TEST_REDIS_URL`,
    /// which `scripts/test.sh` sets); fails loudly without it.
    pub async fn with_redis() -> Self {
        let url = std::env::var("TESSERA_TEST_REDIS_URL").expect(
            "TESSERA_TEST_REDIS_URL is not set: start Redis and export it (scripts/test.sh does)",
        );
        Self::build_with(LimitsConfig::default(), None, Some(url)).await
    }

    /// A platform whose Redis (jobs, sessions, cache) is at `url`: a server the test runs
    /// itself, to stop it.
    pub async fn with_redis_url(url: String) -> Self {
        Self::build_with(LimitsConfig::default(), None, Some(url)).await
    }

    /// A second replica of `app`: the same configuration, database and Redis.
    pub async fn replica_of(app: &TestApp) -> Self {
        let state = App::start(app.state.config.clone())
            .await
            .expect("replica starts");
        Self {
            state,
            _dir: tempfile::tempdir().expect("tempdir"),
            _db: None,
        }
    }

    /// A platform (SQLite) whose apps' outbound HTTP is bounded by `outbound`.
    pub async fn with_outbound(outbound: platform::config::OutboundConfig) -> Self {
        Self::new()
            .await
            .restarted(|config| config.outbound = outbound)
            .await
    }

    /// This platform started again on its data directory with a compiled-component cache
    /// of its own in it, for the tests of the cache itself.
    pub async fn with_own_component_cache(self) -> Self {
        self.restarted(|config| config.component_cache_dir = None)
            .await
    }

    /// This platform started again on its data directory and database with `change` made
    /// to its configuration.
    async fn restarted(self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.state.config.clone();
        change(&mut config);
        let state = App::start(config).await.expect("platform starts");
        Self {
            state,
            _dir: self._dir,
            _db: self._db,
        }
    }

    /// A platform whose `git push` builds run under `builds`.
    pub async fn with_builds(builds: platform::config::BuildsConfig) -> Self {
        Self::build_full(
            LimitsConfig::default(),
            None,
            None,
            builds,
            Default::default(),
        )
        .await
    }

    /// A platform (SQLite) that keeps `keep` versions per app.
    pub async fn keeping_versions(keep: u32) -> Self {
        Self::build_full(
            LimitsConfig::default(),
            None,
            None,
            Default::default(),
            platform::config::DeployConfig {
                keep_versions: keep,
            },
        )
        .await
    }

    /// A platform (SQLite) on these origins, or the start-up error.
    pub async fn with_origins(public_url: &str, apps_origin: Option<&str>) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            data_dir: dir.path().to_path_buf(),
            component_cache_dir: Some(shared_component_cache()),
            database_url: format!("sqlite://{}", dir.path().join("tessera.db").display()),
            demo_dir: dir.path().join("no-demo"),
            frontend_dir: repo_root().join("admin-ui/node_modules"),
            admin_email: "admin@localhost".to_owned(),
            max_component_bytes: 64 << 20,
            limits: LimitsConfig::default(),
            redis_url: None,
            jobs: platform::config::JobsConfig::default(),
            outbound: platform::config::OutboundConfig::default(),
            cache: platform::config::CacheConfig::default(),
            sessions: platform::config::SessionsConfig::default(),
            builds: platform::config::BuildsConfig::default(),
            deploy: platform::config::DeployConfig::default(),
            public_url: public_url.to_owned(),
            apps_origin: apps_origin.map(str::to_owned),
            secret_key: None,
            secret_key_file: dir.path().join("secret.key"),
            cluster: Default::default(),
            data_sources: Default::default(),
            metrics: Default::default(),
            log: Default::default(),
        };
        let state = App::start(config).await.map_err(|e| format!("{e:#}"))?;
        Ok(Self {
            state,
            _dir: dir,
            _db: None,
        })
    }

    async fn build(limits: LimitsConfig, db: Option<TestDatabase>) -> Self {
        Self::build_with(limits, db, None).await
    }

    async fn build_with(
        limits: LimitsConfig,
        db: Option<TestDatabase>,
        redis_url: Option<String>,
    ) -> Self {
        Self::build_full(
            limits,
            db,
            redis_url,
            Default::default(),
            Default::default(),
        )
        .await
    }

    async fn build_full(
        limits: LimitsConfig,
        db: Option<TestDatabase>,
        redis_url: Option<String>,
        builds: platform::config::BuildsConfig,
        deploy: platform::config::DeployConfig,
    ) -> Self {
        Self::build_jobs(limits, db, redis_url, builds, deploy, Default::default()).await
    }

    /// A platform (SQLite) whose background jobs run as `jobs` says.
    pub async fn with_jobs(jobs: platform::config::JobsConfig) -> Self {
        Self::build_jobs(
            LimitsConfig::default(),
            None,
            None,
            Default::default(),
            Default::default(),
            jobs,
        )
        .await
    }

    async fn build_jobs(
        limits: LimitsConfig,
        db: Option<TestDatabase>,
        redis_url: Option<String>,
        builds: platform::config::BuildsConfig,
        deploy: platform::config::DeployConfig,
        jobs: platform::config::JobsConfig,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let frontend_dir = repo_root().join("admin-ui/node_modules");
        assert!(
            frontend_dir.join("dash-renderer").is_dir(),
            "the Dash front end is not installed in {}: run `npm ci` in admin-ui",
            frontend_dir.display()
        );
        let database_url = match &db {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", dir.path().join("tessera.db").display()),
        };
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            data_dir: dir.path().to_path_buf(),
            component_cache_dir: Some(shared_component_cache()),
            database_url,
            demo_dir: dir.path().join("no-demo"),
            frontend_dir,
            admin_email: "admin@localhost".to_owned(),
            max_component_bytes: 64 << 20,
            limits,
            redis_url,
            jobs,
            outbound: platform::config::OutboundConfig::default(),
            cache: platform::config::CacheConfig::default(),
            sessions: platform::config::SessionsConfig::default(),
            builds,
            deploy,
            public_url: "http://127.0.0.1:8080".to_owned(),
            apps_origin: None,
            secret_key: None,
            secret_key_file: dir.path().join("secret.key"),
            cluster: Default::default(),
            data_sources: Default::default(),
            metrics: Default::default(),
            log: Default::default(),
        };
        let state = App::start(config).await.expect("platform starts");
        Self {
            state,
            _dir: dir,
            _db: db,
        }
    }

    /// A platform (SQLite) whose data sources are configured by `data_sources`.
    pub async fn with_data_sources(data_sources: platform::config::DataSourcesConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            data_dir: dir.path().to_path_buf(),
            component_cache_dir: Some(shared_component_cache()),
            database_url: format!("sqlite://{}", dir.path().join("tessera.db").display()),
            demo_dir: dir.path().join("no-demo"),
            frontend_dir: repo_root().join("admin-ui/node_modules"),
            admin_email: "admin@localhost".to_owned(),
            max_component_bytes: 64 << 20,
            limits: LimitsConfig::default(),
            redis_url: None,
            jobs: platform::config::JobsConfig::default(),
            sessions: platform::config::SessionsConfig::default(),
            builds: platform::config::BuildsConfig::default(),
            deploy: platform::config::DeployConfig::default(),
            public_url: "http://127.0.0.1:8080".to_owned(),
            apps_origin: None,
            secret_key: None,
            secret_key_file: dir.path().join("secret.key"),
            cluster: Default::default(),
            data_sources,
            metrics: Default::default(),
            log: Default::default(),
            outbound: platform::config::OutboundConfig::default(),
            cache: platform::config::CacheConfig::default(),
        };
        let state = App::start(config).await.expect("platform starts");
        Self {
            state,
            _dir: dir,
            _db: None,
        }
    }

    /// A platform serving on a real loopback port (for flows through another server,
    /// such as an OpenID provider's redirects), with a clock the test can move. Returns
    /// the base URL (also the configured `public_url`).
    pub async fn served(clock: std::sync::Arc<platform::clock::ShiftedClock>) -> (Self, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port");
        let address = listener.local_addr().expect("address");
        let base = format!("http://{address}");
        let config = Config {
            listen: address,
            data_dir: dir.path().to_path_buf(),
            component_cache_dir: Some(shared_component_cache()),
            database_url: format!("sqlite://{}", dir.path().join("tessera.db").display()),
            demo_dir: dir.path().join("no-demo"),
            frontend_dir: repo_root().join("admin-ui/node_modules"),
            admin_email: "admin@localhost".to_owned(),
            max_component_bytes: 64 << 20,
            limits: LimitsConfig::default(),
            redis_url: None,
            jobs: platform::config::JobsConfig::default(),
            outbound: platform::config::OutboundConfig::default(),
            cache: platform::config::CacheConfig::default(),
            sessions: platform::config::SessionsConfig::default(),
            builds: platform::config::BuildsConfig::default(),
            deploy: platform::config::DeployConfig::default(),
            public_url: base.clone(),
            apps_origin: None,
            secret_key: None,
            secret_key_file: dir.path().join("secret.key"),
            cluster: Default::default(),
            data_sources: Default::default(),
            metrics: Default::default(),
            log: Default::default(),
        };
        let state = App::start_with_clock(config, clock)
            .await
            .expect("platform starts");
        let router = platform::http::router(state.clone())
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        (
            Self {
                state,
                _dir: dir,
                _db: None,
            },
            base,
        )
    }

    /// Deploy a built guest as `tenant/app`.
    pub async fn deploy(&self, tenant: &str, app: &str, file: &str) {
        let tenant = Slug::parse(tenant).expect("tenant");
        let app = Slug::parse(app).expect("app");
        self.state
            .deployer()
            .deploy(&tenant, &app, guest_wasm(file), "test", 1, false)
            .await
            .expect("deploy succeeds");
    }

    /// Deploy a built guest as `tenant/app` with asset files.
    pub async fn deploy_with_assets(
        &self,
        tenant: &str,
        app: &str,
        file: &str,
        assets: Vec<platform::assets::AssetFile>,
    ) -> Result<platform::deploy::Deployed, platform::deploy::Error> {
        let tenant = Slug::parse(tenant).expect("tenant");
        let app = Slug::parse(app).expect("app");
        self.state
            .deployer()
            .deploy_with_assets(&tenant, &app, guest_wasm(file), assets, "test", 1, false)
            .await
    }

    pub async fn request(&self, request: Request<Body>) -> Reply {
        request_on(&self.state, request).await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.request(Request::get(uri).body(Body::empty()).expect("request"))
            .await
    }

    /// GET with `Authorization: Bearer <token>`.
    pub async fn get_with_token(&self, uri: &str, token: &str) -> Reply {
        self.request(
            Request::get(uri)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
    }

    /// POST of a JSON body with `Authorization: Bearer <token>`.
    pub async fn post_json_with_token(
        &self,
        uri: &str,
        body: impl Into<String>,
        token: &str,
    ) -> Reply {
        self.request(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::from(body.into()))
                .expect("request"),
        )
        .await
    }

    pub async fn post_json(&self, uri: &str, body: impl Into<String>) -> Reply {
        self.request(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.into()))
                .expect("request"),
        )
        .await
    }
}

/// One request to the router of `state` (a handle a spawned task can own).
/// The `endId` the index page of `tenant/app` gives page load `page` (signed for that app
/// with the platform's key, as `_dash-config` carries it).
pub fn end_id(app: &TestApp, tenant: &str, name: &str, page: &str) -> String {
    platform::dash::background::sign_end_id(&app.state.secrets, tenant, name, page)
}

pub async fn request_on(state: &AppState, mut request: Request<Body>) -> Reply {
    // Apps are served on their own origin only: a request for an app path without a
    // Host goes there, as a browser following the platform's redirect would.
    if !request.headers().contains_key(header::HOST)
        && let Some(host) = apps_host(state, request.uri().path())
    {
        request
            .headers_mut()
            .insert(header::HOST, host.parse().expect("host header"));
    }
    let response = platform::http::router(state.clone())
        .oneshot(request)
        .await
        .expect("router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

/// The apps origin's `host:port` serving `path` (an app path) on `state`'s platform.
pub fn apps_host(state: &AppState, path: &str) -> Option<String> {
    let tenant = platform::origin::Origins::app_path_tenant(path)?;
    let url = state.origins.apps_url(&tenant);
    Some(
        url.split_once("://")
            .map_or(url.clone(), |(_, h)| h.to_owned()),
    )
}

/// The `Host` to send for `path` to a `tessera serve` at `address` (`127.0.0.1:port`) with
/// the default origins: `{tenant}.localhost:port` for an app path, else the address.
pub fn host_for(address: &str, path: &str) -> String {
    match platform::origin::Origins::app_path_tenant(path) {
        Some(tenant) => {
            let port = address.rsplit(':').next().unwrap_or_default();
            format!("{tenant}.localhost:{port}")
        }
        None => address.to_owned(),
    }
}

/// A reqwest client builder that reaches `{tenant}.localhost` at `address` (the apps
/// origins of a `tessera serve` on loopback; the system resolver does not know `*.localhost`,
/// browsers and curl do).
pub fn reaching_apps(
    builder: reqwest::ClientBuilder,
    address: &str,
    tenants: &[&str],
) -> reqwest::ClientBuilder {
    let socket: std::net::SocketAddr = address.parse().expect("socket address");
    tenants.iter().fold(builder, |b, tenant| {
        b.resolve(&format!("{tenant}.localhost"), socket)
    })
}

/// A resolver for reqwest that sends `localhost` and every `*.localhost` (the apps origins
/// on loopback) to 127.0.0.1, as browsers and curl do; other names go to the system.
pub struct LoopbackResolver;

impl reqwest::dns::Resolve for LoopbackResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if host == "localhost" || host.ends_with(".localhost") {
                let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                return Ok(Box::new(std::iter::once(loopback)) as reqwest::dns::Addrs);
            }
            let found = tokio::task::spawn_blocking(move || {
                use std::net::ToSocketAddrs;
                (host.as_str(), 0)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>())
            })
            .await??;
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Starts `command` (a `tessera serve --listen 127.0.0.1:0`, stdout piped) and returns the
/// child with the address it announced; its stdout is drained from then on so the server
/// never blocks on a full pipe.
/// The `_dash-update-component` body for the hostile guest's callback `callback`
/// (tests/guests/hostile: every callback writes `{callback}.children` on a click of `go`).
pub fn hostile_request(callback: &str) -> String {
    serde_json::json!({
        "output": format!("{callback}.children"),
        "outputs": {"id": callback, "property": "children"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["go.n_clicks"]
    })
    .to_string()
}

/// The `tessera` binary on `data_dir` (SQLite and the key file in it), with the Dash front
/// end of this checkout and warnings-only logs, and none of the caller's `TESSERA_*`
/// settings that would point it elsewhere.
pub fn tessera_command(data_dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    for inherited in [
        "TESSERA_CONFIG",
        "TESSERA_DATABASE_URL",
        "TESSERA_REDIS_URL",
        "TESSERA_KEEP_VERSIONS",
        "TESSERA_SECRET_KEY",
        "TESSERA_METRICS_TOKEN",
    ] {
        command.env_remove(inherited);
    }
    command
        .env("TESSERA_DATA_DIR", data_dir)
        .env("TESSERA_COMPONENT_CACHE_DIR", shared_component_cache())
        .env(
            "TESSERA_FRONTEND_DIR",
            repo_root().join("admin-ui/node_modules"),
        )
        .env("RUST_LOG", "warn");
    command
}

pub fn spawn_listening(command: &mut std::process::Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = command.spawn().expect("start tessera serve");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("tessera serve exited before listening")
            .expect("read line");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim_end_matches('/').to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}
