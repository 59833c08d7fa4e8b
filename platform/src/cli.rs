//! The subcommands: `serve`, `deploy`, `admin`, `apps` and the rest; `new`, `login` and the
//! author commands run without a server configuration.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::{
    AdminCommand, AppsCommand, Cli, Command, Config, DeployArgs, IdpCommand, OutboundCommand,
    ServeArgs, SettingsCommand, SourcesCommand, TokenCommand,
};
use crate::deploy::Deployer;
use crate::ids::Slug;
use crate::state::{App, open_sandbox};
use crate::store::{Change, Store};

/// Run the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // An author's machine has no server configuration: these commands never load one.
    match &cli.command {
        Command::Login(args) => return crate::login::login(args).await,
        Command::Logout(args) => return crate::login::logout(args).await,
        Command::Credential { operation } => return crate::login::credential(operation),
        Command::New(args) => return new_project(args),
        Command::Apps(args) if matches!(args.command, AppsCommand::Logs { .. }) => {
            return crate::login::app_logs(&args.command).await;
        }
        _ => {}
    }
    let config = Config::load(&cli)?;
    match &cli.command {
        Command::Login(_) | Command::Logout(_) | Command::Credential { .. } | Command::New(_) => {
            Ok(())
        }
        Command::Serve(args) => serve(config, args).await,
        Command::Dev(args) => dev(config, args).await,
        Command::Deploy(args) => deploy(config, args).await,
        Command::Admin(args) => admin(config, &args.command).await,
        Command::Apps(args) => apps(config, &args.command).await,
        Command::Sources(args) => sources(config, &args.command).await,
        Command::Migrate => migrate(config).await,
        Command::Backup(args) => backup(config, &args.dir, false).await,
        Command::Restore(args) => backup(config, &args.dir, true).await,
        Command::CompileComponent {
            component,
            artifact,
        } => sandbox::compile_artifact(component, artifact).map_err(anyhow::Error::msg),
    }
}

/// `tessera new`: the project's files, then `git init` on `main` (unless `--no-git`), then
/// what to type next.
fn new_project(args: &crate::config::NewArgs) -> anyhow::Result<()> {
    use crate::scaffold::{self, Kind};
    let kind = if args.python {
        Kind::Python
    } else {
        Kind::Rust
    };
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let written = scaffold::create(&dir, &args.name, kind)?;
    let names: Vec<String> = written
        .iter()
        .filter_map(|path| path.strip_prefix(&dir).ok())
        .map(|path| path.display().to_string())
        .collect();
    println!(
        "Created {} ({}) in {}: {}",
        args.name,
        if args.python { "Python" } else { "Rust" },
        dir.display(),
        names.join(", ")
    );
    let mut git_ready = false;
    if !args.no_git {
        match std::process::Command::new("git")
            .args(["init", "--quiet", "--initial-branch", "main"])
            .current_dir(&dir)
            .status()
        {
            Ok(status) if status.success() => git_ready = true,
            Ok(status) => eprintln!("tessera: git init failed ({status}); the files are written"),
            Err(error) => eprintln!("tessera: git not run ({error}); the files are written"),
        }
    }
    println!("Next:");
    println!("  cd {}", dir.display());
    if !git_ready {
        println!("  git init --initial-branch main");
    }
    println!("  git add -A && git commit -m \"First version\"");
    println!(
        "  git push https://YOUR-SERVER/git/YOUR-TENANT/{}.git main   # after `tessera login https://YOUR-SERVER`",
        args.name
    );
    Ok(())
}

/// `tessera migrate`: opening the store applies the migrations this binary carries; the
/// schema version is printed so a hook Job's log says where the database stands.
async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "migrating {}",
                crate::config::redact_url(&config.database_url)
            )
        })?;
    let version = store.schema_version().await?;
    store.close().await;
    println!(
        "the database {} is at schema version {version}",
        crate::config::redact_url(&config.database_url)
    );
    Ok(())
}

/// `tessera backup DIR` and `tessera restore DIR` (`crate::backup`).
async fn backup(config: Config, dir: &std::path::Path, restore: bool) -> anyhow::Result<()> {
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening {}",
                crate::config::redact_url(&config.database_url)
            )
        })?;
    let result = if restore {
        crate::backup::restore(&config, &store, dir).await
    } else {
        crate::backup::backup(&config, &store, dir, SystemClock.now_millis()).await
    };
    store.close().await;
    let done = result.with_context(|| {
        if restore {
            format!("restore from {} failed", dir.display())
        } else {
            format!("backup into {} failed", dir.display())
        }
    })?;
    let verb = if restore { "restored" } else { "backed up" };
    println!(
        "{verb} {} rows of {} tables and {} files ({})",
        done.rows,
        done.tables,
        done.files,
        dir.display()
    );
    Ok(())
}

async fn serve(config: Config, args: &ServeArgs) -> anyhow::Result<()> {
    tracing::info!(?config, "starting");
    let listen = config.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    let mut config = config;
    // The default public URL names the port actually bound (`--listen 127.0.0.1:0`), so
    // the origins and the redirect URIs built from it are reachable.
    if config.public_url == format!("http://{listen}") {
        config.public_url = format!("http://{address}");
    }
    let state = App::start(config).await?;
    // The first Python app served must not wait for the interpreter's compiled code.
    state.runtime.python().load_in_background();
    let first_start = Change {
        actor: "system",
        remote_addr: None,
        at: state.clock.now_millis(),
    };
    if let Some((user, password)) =
        crate::admin::ensure_first_superadmin(&state.store, &state.config.admin_email, &first_start)
            .await
            .context("creating the first superadmin")?
    {
        // Shown once: only its argon2id hash is stored.
        println!("First start: created the superadmin {}", user.email);
        println!("  one-time password: {password}");
        println!("  (shown only now; it must be changed at the first sign-in)");
    }
    if args.demo {
        for (name, deployed) in crate::demo::install(&state).await? {
            let verb = if deployed.created {
                "deployed"
            } else {
                "already live:"
            };
            tracing::info!(
                "demo {verb} {name} version {} ({} callbacks)",
                deployed.number,
                deployed.callbacks
            );
            let tenant = crate::ids::Slug::parse(crate::demo::TENANT)?;
            println!(
                "  {}: {}",
                deployed.title,
                state
                    .origins
                    .app_url(&tenant, &format!("/apps/{tenant}/{name}/"))
            );
        }
        // After install: the feed writes into the file install created.
        tokio::spawn(crate::demo::feed_orders(state.clone()));
    }
    // Install the handlers before announcing the address: a SIGTERM sent right after the
    // "listening" line must already mean a graceful stop, not the default kill.
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tracing::info!("listening on http://{address}");
    println!("Tessera is listening on http://{address}/");
    let store = state.store.clone();
    let state_for_drain = state.clone();
    let gate = crate::cluster::ListenerGate::of(&listener);
    tokio::spawn(sweep_expired_sessions(store.clone(), state.clock.clone()));
    tokio::spawn(prune_compiled_cache(state.clone()));
    crate::usage::spawn_flushing(state.clone());
    let usage = state.usage.clone();
    axum::serve(
        listener,
        crate::http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal(terminate, state_for_drain, gate))
    .await?;
    // The last minutes this replica counted, before the database goes.
    if let Err(error) = usage.flush(&store).await {
        tracing::warn!(%error, "adding the last app usage to the database failed");
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// `tessera dev`: the folder's app built, deployed and served on loopback, then built
/// again on every change (`dev`).
async fn dev(config: Config, args: &crate::config::DevArgs) -> anyhow::Result<()> {
    crate::dev::check_listen(args.listen)?;
    let dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("cannot open the project folder {}", args.dir.display()))?;
    if !dir.join("tessera.toml").is_file() {
        bail!(
            "{} has no tessera.toml: run tessera dev in a project made by `tessera new` (or an example's folder)",
            dir.display()
        );
    }
    let app = crate::dev::app_name(&dir, args.name.as_deref())?;
    let tenant = Slug::parse(crate::dev::TENANT)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let mut config = config;
    config.listen = address;
    config.public_url = format!("http://{address}");
    // The author's own code on the author's machine: built as they would build it, with
    // their toolchain and cargo home; its callbacks still run in the sandbox.
    config.builds.sandbox = crate::deploy::sandbox::Mode::None;
    if config.builds.target_dir.is_none() {
        config.builds.target_dir = Some(dir.join("target"));
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let state = App::start(config).await?;
    let session = Arc::new(crate::dev::DevSession::new(tenant.clone(), app.clone()));
    let _ = state.dev.set(session.clone());
    let url = state
        .origins
        .app_url(&tenant, &format!("/apps/{tenant}/{app}/"));
    println!("tessera dev: serving {} as {url}", dir.display());
    println!("tessera dev: saving a file rebuilds it and reloads the page; Ctrl-C stops");
    let watcher = tokio::spawn(crate::dev::watch(state.clone(), session, dir));
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let gate = crate::cluster::ListenerGate::of(&listener);
    let served = axum::serve(
        listener,
        crate::http::router(state.clone())
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal(terminate, state.clone(), gate));
    tokio::select! {
        result = served => result?,
        watched = watcher => match watched {
            Ok(Err(error)) => return Err(error),
            Ok(Ok(())) => {}
            Err(panic) => bail!("the folder's watcher stopped: {panic}"),
        },
    }
    state.store.close().await;
    Ok(())
}

/// Sessions kept in the database expire by their timestamp (a load never returns an
/// expired one); this removes their rows every ten minutes so the table stays small, and
/// with them the sign-in throttle rows idle for a day.
async fn sweep_expired_sessions(store: Store, clock: crate::clock::SharedClock) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        every.tick().await;
        let now = clock.now_millis();
        match store.sweep_expired_sessions(now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "swept expired sessions"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired sessions failed"),
        }
        let forget_before = now - crate::auth::session::THROTTLE_MEMORY_MS;
        if let Err(e) = store.sweep_sign_in_failures(forget_before).await {
            tracing::warn!(error = %e, "sweeping the sign-in throttle failed");
        }
    }
}

/// Compiled artifacts and data-folder copies of pruned versions would fill the disk over
/// many deploys: this removes them at start and every hour.
async fn prune_compiled_cache(state: crate::state::AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        let min_age = crate::runtime::Runtime::CACHE_MIN_AGE;
        match state.runtime.prune_compiled_cache(min_age).await {
            Ok(report) if report.removed_files == 0 => {}
            Ok(report) => tracing::info!(
                files = report.removed_files,
                bytes = report.removed_bytes,
                kept = report.kept_artifacts,
                "pruned the compiled-component cache"
            ),
            Err(e) => tracing::warn!(error = %e, "pruning the compiled-component cache failed"),
        }
        // Local copies of data folders no kept version ships any more.
        match state.runtime.sweep_app_data(min_age).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed unused copies of app data folders"),
            Err(e) => tracing::warn!(error = %e, "sweeping app data folders failed"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C, `[cluster] drain_secs` after `/readyz` turned 503 (load
/// balancers take the replica out meanwhile, requests are still served) and the listener's
/// gate held new connections off while the ones already opened were accepted; the listener
/// then closes and in-flight requests finish before exit.
async fn shutdown_signal(
    mut terminate: tokio::signal::unix::Signal,
    state: crate::state::AppState,
    gate: crate::cluster::ListenerGate,
) {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        _ = terminate.recv() => {},
    }
    state.drain.start();
    let drain = std::time::Duration::from_secs(state.config.cluster.drain_secs);
    if !drain.is_zero() {
        tracing::info!(seconds = drain.as_secs(), "draining: /readyz answers 503");
        tokio::time::sleep(drain).await;
    }
    gate.close().await;
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn deploy(config: Config, args: &DeployArgs) -> anyhow::Result<()> {
    let Some((tenant, app)) = args.target.split_once('/') else {
        bail!(
            "the target must be tenant/app, for example demo/sales-explorer (got {:?})",
            args.target
        );
    };
    let tenant = crate::tenancy::tenant_slug(tenant)?;
    let app = Slug::parse(app)?;
    // A folder is a Python app (kind = "python"); a file is a component.
    let python = args.component.is_dir();
    let bytes = match python {
        true => {
            let (python_dir, _) = config.builds.python_dirs();
            crate::python::read_folder_installing_nothing(&args.component, &python_dir)
                .with_context(|| format!("the Python app in {} refused", args.component.display()))?
                .encode()
        }
        false => std::fs::read(&args.component)
            .with_context(|| format!("cannot read {}", args.component.display()))?,
    };
    let default_assets = args.component.join("assets");
    let assets_dir = match &args.assets {
        Some(dir) => Some(dir.as_path()),
        None if python && default_assets.is_dir() => Some(default_assets.as_path()),
        None => None,
    };
    let assets = match assets_dir {
        Some(dir) => crate::assets::read_dir(dir)
            .with_context(|| format!("assets in {} refused", dir.display()))?,
        None => Vec::new(),
    };
    let data = match &args.data {
        Some(dir) => crate::appdata::read_dir(dir, ".")
            .with_context(|| format!("the data folder {} was refused", dir.display()))?,
        None => Vec::new(),
    };
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening {}",
                crate::config::redact_url(&config.database_url)
            )
        })?;
    let store = store.with_keep_versions(config.deploy.keep_versions);
    let sandbox = open_sandbox(&config)?;
    let secrets =
        crate::secretbox::SecretBox::load(config.secret_key.as_deref(), &config.secret_key_file)?;
    let deployer = Deployer {
        store: &store,
        sandbox: &sandbox,
        limits: config.limits.to_sandbox(),
        max_component_bytes: config.max_component_bytes,
        secrets: &secrets,
        new_app_visibility: args.visibility,
        app_data: &crate::appdata::AppDataDirs::new(config.app_data_dir()),
        python: crate::python::PythonHost::new(&config.builds, config.python_apps_dir()),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let deployed = deployer
        .deploy_with_files(
            &tenant,
            &app,
            bytes,
            crate::deploy::Shipped { assets, data },
            "cli",
            clock.now_millis(),
            false,
        )
        .await
        .with_context(|| {
            format!("deploy of {tenant}/{app} refused; the live version is unchanged")
        })?;
    store.close().await;
    println!(
        "deployed {tenant}/{app} version {} (sha256 {}, {} callbacks): {}",
        deployed.number,
        &deployed.sha256[..12],
        deployed.callbacks,
        deployed.title
    );
    Ok(())
}

/// Who the audit log names for a command run by the operator.
fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("cli:{user}")
}

/// `tessera admin …`: results on stdout (a created token alone), notes on stderr.
async fn admin(config: Config, command: &AdminCommand) -> anyhow::Result<()> {
    use crate::admin as a;
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening {}",
                crate::config::redact_url(&config.database_url)
            )
        })?;
    let actor = operator();
    let clock = SystemClock;
    let change = Change {
        actor: &actor,
        remote_addr: None,
        at: clock.now_millis(),
    };
    let result = match command {
        AdminCommand::CreateTenant { slug, name, owner } => {
            a::create_tenant(&store, slug, name.as_deref(), owner.as_deref(), &change)
                .await
                .map(|t| match owner {
                    Some(owner) => {
                        println!("created tenant {} ({}) owned by {owner}", t.slug, t.name)
                    }
                    None => println!("created tenant {} ({})", t.slug, t.name),
                })
        }
        AdminCommand::CreateUser {
            email,
            password_stdin,
            superadmin,
        } => {
            let password = if *password_stdin {
                Some(read_stdin_line()?)
            } else {
                None
            };
            a::create_user(&store, email, password.as_deref(), *superadmin, &change)
                .await
                .map(|u| {
                    let kind = if u.superadmin { "superadmin" } else { "user" };
                    println!("created {kind} {}", u.email);
                })
        }
        AdminCommand::ResetPassword {
            email,
            password_stdin,
        } => {
            let chosen = if *password_stdin {
                Some(read_stdin_line()?)
            } else {
                None
            };
            a::reset_password(&store, email, chosen.as_deref(), &change)
                .await
                .map(|password| {
                    eprintln!(
                        "reset the password of {email}: it must be changed at the next sign-in, \
                         and every session of the user has ended"
                    );
                    if chosen.is_none() {
                        println!("{password}");
                    }
                })
        }
        AdminCommand::Grant {
            email,
            tenant,
            role,
        } => a::grant(&store, email, tenant, role, &change)
            .await
            .map(|previous| match previous {
                Some(previous) => println!("{email} is now {role} in {tenant} (was {previous})"),
                None => println!("{email} is now {role} in {tenant}"),
            }),
        AdminCommand::SetVisibility { target, visibility } => {
            a::set_visibility(&store, target, visibility, &change)
                .await
                .map(|_| println!("{target} is now {visibility}"))
        }
        AdminCommand::Token {
            command:
                TokenCommand::Create {
                    email,
                    tenant,
                    role,
                    expires_in_days,
                },
        } => a::create_token(
            &store,
            email,
            tenant,
            role.as_deref(),
            *expires_in_days,
            &change,
        )
        .await
        .map(|issued| {
            eprintln!(
                "created token {} for {email} in {tenant}, expiring in {expires_in_days} days; \
                 it is shown only now",
                issued.public_id
            );
            println!("{}", issued.token);
        }),
        AdminCommand::Token {
            command: TokenCommand::Revoke { id },
        } => a::revoke_token(&store, id, &change).await.map(|newly| {
            if newly {
                println!("revoked token {id}");
            } else {
                println!("token {id} was already revoked");
            }
        }),
        AdminCommand::Idp { command } => {
            let result = idp(&config, &store, command, &change).await;
            store.close().await;
            return result;
        }
    };
    store.close().await;
    Ok(result?)
}

/// `tessera apps …`: an app's versions and rollback, by the operator on the database
/// directly (like `tessera admin`; a rollback is audited under `cli:<os user>`).
async fn apps(config: Config, command: &AppsCommand) -> anyhow::Result<()> {
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening {}",
                crate::config::redact_url(&config.database_url)
            )
        })?
        .with_keep_versions(config.deploy.keep_versions);
    let result = apps_command(&config, &store, command).await;
    store.close().await;
    result
}

async fn apps_command(config: &Config, store: &Store, command: &AppsCommand) -> anyhow::Result<()> {
    let target = command.target();
    let Some((tenant, app)) = target.split_once('/') else {
        bail!("expected tenant/app, for example demo/sales-explorer (got {target:?})");
    };
    let (tenant, app) = (Slug::parse(tenant)?, Slug::parse(app)?);
    let Some(access) = store.app_access(&tenant, &app, None).await? else {
        bail!("no app {tenant}/{app}");
    };
    match command {
        AppsCommand::Versions { logs, .. } => {
            let versions = store.list_versions(access.tenant_id, access.app_id).await?;
            println!(
                "{:>7}  {:<4}  {:<20}  {:<12}  {:<12}  author / source",
                "version", "live", "created (UTC)", "sha256", "commit"
            );
            for v in &versions {
                println!(
                    "{:>7}  {:<4}  {:<20}  {:<12}  {:<12}  {}",
                    v.number,
                    if v.live { "*" } else { "" },
                    utc(v.created_at),
                    v.sha256.get(..12).unwrap_or(&v.sha256),
                    v.commit
                        .as_deref()
                        .map_or("-", |c| c.get(..12).unwrap_or(c)),
                    v.author.as_deref().unwrap_or(&v.source),
                );
                if *logs && let Some(log) = &v.build_log {
                    for line in log.lines() {
                        println!("         | {line}");
                    }
                }
            }
            Ok(())
        }
        AppsCommand::Rollback { to, .. } => {
            let actor = operator();
            let change = Change {
                actor: &actor,
                remote_addr: None,
                at: SystemClock.now_millis(),
            };
            let done = store
                .rollback(access.tenant_id, access.app_id, *to, &change)
                .await
                .with_context(|| {
                    format!("rollback of {tenant}/{app} refused; the live version is unchanged")
                })?;
            if done.changed {
                println!(
                    "{tenant}/{app}: version {} is live (was {}); running servers switch within a second",
                    done.to, done.from
                );
            } else {
                println!("{tenant}/{app}: version {} is already live", done.to);
            }
            Ok(())
        }
        // Answered by the server's API before any configuration is read (`run`).
        AppsCommand::Logs { .. } => bail!("`tessera apps logs` reads a running server's API"),
        AppsCommand::Usage { window, .. } => {
            let window = crate::usage::Window::parse(window).map_err(anyhow::Error::msg)?;
            let now = SystemClock.now_millis();
            let since = crate::usage::window_start(window, now);
            let minutes = store
                .app_usage(access.tenant_id, access.app_id, since)
                .await?;
            let found = crate::usage::series(window, now, &minutes);
            println!(
                "{:<20}  {:>9}  {:>6}  {:>6}  {:>9}  {:>9}  {:>9}",
                "from (UTC)", "callbacks", "errors", "limits", "cache hit", "p50 ms", "p99 ms"
            );
            let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
            let rows = found
                .points
                .iter()
                .filter(|p| p.callbacks > 0 || p.cache_hits + p.cache_misses > 0)
                .map(|p| (utc(p.at), p))
                .chain([("total".to_owned(), &found.totals)]);
            for (when, p) in rows {
                println!(
                    "{when:<20}  {:>9}  {:>6}  {:>6}  {:>9}  {:>9}  {:>9}",
                    p.callbacks,
                    p.errors,
                    p.limit_hits,
                    p.cache_hit_ratio
                        .map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0)),
                    ms(p.p50_ms),
                    ms(p.p99_ms),
                );
            }
            Ok(())
        }
        AppsCommand::Settings { command } => {
            let target = format!("{tenant}/{app}");
            settings_command(config, store, &access, &target, command).await
        }
        AppsCommand::Outbound { command } => {
            let target = format!("{tenant}/{app}");
            outbound_command(store, &access, &target, command).await
        }
    }
}

/// `tessera apps outbound …` on the app `access` (named `target` in messages).
async fn outbound_command(
    store: &Store,
    access: &crate::store::AppAccess,
    target: &str,
    command: &OutboundCommand,
) -> anyhow::Result<()> {
    use crate::outbound::{Edit, edit, list, shown};
    let actor = operator();
    let change = Change {
        actor: &actor,
        remote_addr: None,
        at: SystemClock.now_millis(),
    };
    let (kind, patterns) = match command {
        OutboundCommand::List { .. } => {
            let hosts = list(store, access.app_id).await?;
            if hosts.is_empty() {
                println!("{target} may reach no host over HTTP");
            }
            for host in hosts {
                println!("{host}");
            }
            return Ok(());
        }
        OutboundCommand::Allow { patterns, .. } => (Edit::Allow, patterns),
        OutboundCommand::Deny { patterns, .. } => (Edit::Deny, patterns),
    };
    let edited = edit(
        store,
        access.tenant_id,
        access.app_id,
        kind,
        patterns,
        &change,
    )
    .await
    .with_context(|| format!("the outbound allowlist of {target} is unchanged"))?;
    for pattern in &edited.unchanged {
        match kind {
            Edit::Allow => println!("{target}: {pattern} was already allowed"),
            Edit::Deny => println!("{target}: {pattern} was not allowed"),
        }
    }
    println!(
        "{target} may reach: {}; running servers use it within a second",
        shown(&edited.hosts)
    );
    Ok(())
}

/// `tessera apps settings …` on the app `access` (named `target` in messages).
async fn settings_command(
    config: &Config,
    store: &Store,
    access: &crate::store::AppAccess,
    target: &str,
    command: &SettingsCommand,
) -> anyhow::Result<()> {
    use crate::settings;
    let actor = operator();
    let change = Change {
        actor: &actor,
        remote_addr: None,
        at: SystemClock.now_millis(),
    };
    match command {
        SettingsCommand::List { .. } => {
            let stored = store.app_settings(access.app_id).await?;
            if stored.is_empty() {
                println!("{target} has no settings");
            }
            for s in stored {
                let value = if s.secret {
                    "(secret)".to_owned()
                } else {
                    s.value
                };
                println!(
                    "{}={value}\t# {} by {}",
                    s.name,
                    utc(s.updated_at),
                    s.updated_by
                );
            }
            Ok(())
        }
        SettingsCommand::Set {
            assignments,
            secret,
            ..
        } => {
            let pairs = parse_assignments(assignments, read_stdin_line)?;
            let sealer = crate::secretbox::SecretBox::load(
                config.secret_key.as_deref(),
                &config.secret_key_file,
            )?;
            let writes: Vec<crate::store::SettingWrite<'_>> = pairs
                .iter()
                .map(|(name, value)| crate::store::SettingWrite {
                    name,
                    secret: *secret,
                    stored_value: settings::stored_value(
                        &sealer,
                        access.app_id,
                        name,
                        value,
                        *secret,
                    ),
                })
                .collect();
            store
                .set_app_settings(
                    access.tenant_id,
                    access.app_id,
                    &writes,
                    settings::MAX_SETTINGS_PER_APP,
                    &change,
                )
                .await
                .with_context(|| format!("settings of {target} unchanged"))?;
            let names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
            let kind = if *secret { "secret" } else { "setting" };
            println!(
                "{target}: set {kind} {}; running servers use the new values within a second",
                names.join(", ")
            );
            Ok(())
        }
        SettingsCommand::Unset { names, .. } => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let removed = store
                .unset_app_settings(access.tenant_id, access.app_id, &names, &change)
                .await?;
            for name in &names {
                if removed.iter().any(|r| r == name) {
                    println!("{target}: removed {name}");
                } else {
                    println!("{target}: {name} was not set");
                }
            }
            Ok(())
        }
    }
}

/// `NAME=VALUE` arguments as checked pairs; one bare `NAME` gets its value from
/// `read_value` (standard input).
fn parse_assignments(
    assignments: &[String],
    read_value: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<Vec<(String, String)>> {
    use crate::settings::{check_name, check_value};
    let bare: Vec<&String> = assignments.iter().filter(|a| !a.contains('=')).collect();
    if bare.len() > 1 {
        bail!(
            "only one NAME may take its value from standard input (got {})",
            bare.iter()
                .map(|b| b.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut read_value = Some(read_value);
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(assignments.len());
    for assignment in assignments {
        let (name, value) = match assignment.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => {
                let read = read_value.take().expect("only one bare name");
                (assignment.clone(), read()?)
            }
        };
        check_name(&name)?;
        check_value(&name, &value)?;
        if pairs.iter().any(|(seen, _)| *seen == name) {
            bail!("{name} is given twice");
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` in UTC.
pub(crate) fn utc(millis: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => millis.to_string(),
    }
}

/// `tessera admin idp …`.
async fn idp(
    config: &Config,
    store: &Store,
    command: &IdpCommand,
    change: &Change<'_>,
) -> anyhow::Result<()> {
    use crate::admin as a;
    match command {
        IdpCommand::Set { tenant, slug, file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let sealer = crate::secretbox::SecretBox::load(
                config.secret_key.as_deref(),
                &config.secret_key_file,
            )?;
            let created = a::set_provider(store, &sealer, tenant, slug, &text, change)
                .await
                .with_context(|| format!("provider file {} refused", file.display()))?;
            let verb = if created { "created" } else { "replaced" };
            println!("{verb} identity provider {slug} of {tenant}");
        }
        IdpCommand::List { tenant } => {
            for p in a::list_providers(store, tenant).await? {
                println!(
                    "{}\t{}\t{}\t{}\tgroups: {}",
                    p.slug,
                    p.kind,
                    p.display_name,
                    p.location,
                    p.groups.join(", ")
                );
            }
        }
        IdpCommand::Remove {
            tenant,
            slug,
            keep_memberships,
        } => {
            let r = a::remove_provider_with(store, tenant, slug, *keep_memberships, change).await?;
            println!("removed identity provider {slug} of {tenant}");
            if *keep_memberships {
                println!(
                    "kept as hand-given: {} roles, {} team memberships",
                    r.memberships_kept, r.team_memberships_kept
                );
            } else {
                println!(
                    "taken back: {} members left the tenant, {} roles went back to the hand-given one, {} team memberships ended",
                    r.memberships_removed, r.roles_restored, r.team_memberships_removed
                );
            }
        }
        IdpCommand::Test {
            tenant,
            slug,
            username,
        } => {
            let sealer = crate::secretbox::SecretBox::load(
                config.secret_key.as_deref(),
                &config.secret_key_file,
            )?;
            let report =
                a::test_provider(store, &sealer, tenant, slug, username.as_deref(), change).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.ok {
                anyhow::bail!(
                    "the test of identity provider {slug} failed: {}",
                    report.error.as_deref().unwrap_or("see the report")
                );
            }
        }
    }
    Ok(())
}

/// `tessera sources …`: a tenant's data sources, by the operator on the database directly
/// (audited under `cli:<os user>`), through the same domain functions as the API.
async fn sources(config: Config, command: &SourcesCommand) -> anyhow::Result<()> {
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening {}",
                crate::config::redact_url(&config.database_url)
            )
        })?;
    let sealer =
        crate::secretbox::SecretBox::load(config.secret_key.as_deref(), &config.secret_key_file)?;
    let sources = crate::datasources::DataSources::new(
        store.clone(),
        sealer,
        config.data_sources.clone(),
        config.sources_dir(),
    );
    let result = sources_command(&store, &sources, command).await;
    store.close().await;
    result
}

async fn sources_command(
    store: &Store,
    sources: &crate::datasources::DataSources,
    command: &SourcesCommand,
) -> anyhow::Result<()> {
    use crate::datasources::{ConnectionInput, Kind, SourceLimits, connection};
    let actor = operator();
    let change = Change {
        actor: &actor,
        remote_addr: None,
        at: SystemClock.now_millis(),
    };
    let tenant_of = |slug: &str| {
        let slug = slug.to_owned();
        async move {
            let parsed = Slug::parse(&slug)?;
            store
                .tenant_by_slug(&parsed)
                .await?
                .with_context(|| format!("no tenant {slug:?}"))
        }
    };
    match command {
        SourcesCommand::Add {
            tenant,
            name,
            kind,
            url,
            host,
            port,
            database,
            user,
            password_stdin,
            tls,
            path,
            statement_timeout_ms,
            max_rows,
            max_bytes,
            pool_size,
        } => {
            let tenant = tenant_of(tenant).await?;
            let kind = match (kind, url) {
                (Some(k), _) => Kind::parse(k)
                    .with_context(|| format!("unknown kind {k:?}: postgres, mysql or sqlite"))?,
                (None, Some(u)) => connection::kind_of_url(u)
                    .context("the URL's scheme names no kind: postgres, mysql or sqlite")?,
                (None, None) => bail!("give --kind or --url"),
            };
            let input = ConnectionInput {
                url: url.clone(),
                host: host.clone(),
                port: *port,
                database: database.clone(),
                user: user.clone(),
                password: if *password_stdin {
                    Some(read_stdin_line()?)
                } else {
                    None
                },
                tls: tls.clone(),
                path: path.clone(),
            };
            let limits = SourceLimits {
                statement_timeout_ms: *statement_timeout_ms,
                max_rows: *max_rows,
                max_bytes: *max_bytes,
                pool_size: *pool_size,
            };
            let (created, _) = sources
                .put(&tenant, name, kind, &input, &limits, &change)
                .await
                .with_context(|| format!("data source {name} of {} refused", tenant.slug))?;
            let verb = if created { "registered" } else { "replaced" };
            println!(
                "{verb} data source {name} of {} ({})",
                tenant.slug,
                kind.as_str()
            );
        }
        SourcesCommand::List { tenant } => {
            let tenant = tenant_of(tenant).await?;
            let list = sources.list(tenant.id).await?;
            if list.is_empty() {
                println!("{} has no data sources", tenant.slug);
            }
            for s in list {
                let place = match (&s.host, &s.path) {
                    (Some(host), _) => format!(
                        "{}@{host}:{}/{}",
                        s.user.as_deref().unwrap_or_default(),
                        s.port.map_or("default".to_owned(), |p| p.to_string()),
                        s.database.as_deref().unwrap_or_default()
                    ),
                    (None, Some(path)) => path.clone(),
                    (None, None) => String::new(),
                };
                println!(
                    "{}\t{}\t{place}\tgranted to: {}",
                    s.name,
                    s.kind.as_str(),
                    if s.granted_to.is_empty() {
                        "-".to_owned()
                    } else {
                        s.granted_to.join(", ")
                    }
                );
            }
        }
        SourcesCommand::Show { tenant, name } => {
            let tenant = tenant_of(tenant).await?;
            let view = sources.show(tenant.id, name).await?;
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        SourcesCommand::Remove { tenant, name } => {
            let tenant = tenant_of(tenant).await?;
            if sources.remove(tenant.id, name, &change).await? {
                println!("removed data source {name} of {}", tenant.slug);
            } else {
                bail!("{} has no data source {name:?}", tenant.slug);
            }
        }
        SourcesCommand::Grant { tenant, name, app } => {
            let tenant = tenant_of(tenant).await?;
            let changed = sources
                .set_grant(tenant.id, name, app, true, &change)
                .await?;
            if changed {
                println!("{}/{app} may now query {name}", tenant.slug);
            } else {
                println!("{}/{app} already may query {name}", tenant.slug);
            }
        }
        SourcesCommand::Revoke { tenant, name, app } => {
            let tenant = tenant_of(tenant).await?;
            let changed = sources
                .set_grant(tenant.id, name, app, false, &change)
                .await?;
            if changed {
                println!("{}/{app} may no longer query {name}", tenant.slug);
            } else {
                println!(
                    "{}/{app} could not query {name}; nothing changed",
                    tenant.slug
                );
            }
        }
        SourcesCommand::Test { tenant, name } => {
            let tenant = tenant_of(tenant).await?;
            let report = sources.test(tenant.id, name).await?;
            println!("{}", report.message);
            if !report.ok {
                bail!("the test of data source {name} failed");
            }
        }
    }
    Ok(())
}

/// One line of standard input, without its line ending.
fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::parse_assignments;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn assignments_split_at_the_first_equals_sign() {
        let pairs = parse_assignments(&args(&["A=1", "B=x=y", "C="]), || {
            panic!("nothing is read from standard input")
        })
        .expect("valid");
        assert_eq!(
            pairs,
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "x=y".to_string()),
                ("C".to_string(), String::new())
            ]
        );
    }

    #[test]
    fn one_bare_name_reads_its_value_and_two_are_refused() {
        let pairs =
            parse_assignments(&args(&["A=1", "KEY"]), || Ok("from stdin".into())).expect("valid");
        assert_eq!(pairs[1], ("KEY".to_string(), "from stdin".to_string()));
        let two = parse_assignments(&args(&["K1", "K2"]), || Ok(String::new()))
            .expect_err("two bare names");
        assert!(two.to_string().contains("only one NAME"), "{two}");
    }

    #[test]
    fn bad_names_and_duplicates_are_refused() {
        let read = || Ok(String::new());
        let bad = parse_assignments(&args(&["1X=a"]), read).expect_err("bad name");
        assert!(bad.to_string().contains("invalid setting name"), "{bad}");
        let twice = parse_assignments(&args(&["A=1", "A=2"]), read).expect_err("twice");
        assert!(twice.to_string().contains("A is given twice"), "{twice}");
    }
}
