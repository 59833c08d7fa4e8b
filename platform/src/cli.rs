//! The subcommands: `serve` and `deploy`.

use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::{Cli, Command, Config, DeployArgs, ServeArgs};
use crate::deploy::Deployer;
use crate::ids::Slug;
use crate::state::{App, open_sandbox};
use crate::store::Store;

/// Run the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli)?;
    match &cli.command {
        Command::Serve(args) => serve(config, args).await,
        Command::Deploy(args) => deploy(config, args).await,
    }
}

async fn serve(config: Config, args: &ServeArgs) -> anyhow::Result<()> {
    tracing::info!(?config, "starting");
    let listen = config.listen;
    let state = App::start(config).await?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
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
            println!(
                "  {}: http://{address}/apps/{}/{name}/",
                deployed.title,
                crate::demo::TENANT
            );
        }
    }
    // Install the handlers before announcing the address: a SIGTERM sent right after the
    // "listening" line must already mean a graceful stop, not the default kill.
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tracing::info!("listening on http://{address}");
    println!("Tessera is listening on http://{address}/");
    let store = state.store.clone();
    axum::serve(listener, crate::http::router(state))
        .with_graceful_shutdown(shutdown_signal(terminate))
        .await?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C; in-flight requests then finish before exit.
async fn shutdown_signal(mut terminate: tokio::signal::unix::Signal) {
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
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn deploy(config: Config, args: &DeployArgs) -> anyhow::Result<()> {
    let Some((tenant, app)) = args.target.split_once('/') else {
        bail!(
            "the target must be tenant/app, for example demo/sales-explorer (got {:?})",
            args.target
        );
    };
    let tenant = Slug::parse(tenant)?;
    let app = Slug::parse(app)?;
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("cannot read {}", args.component.display()))?;
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening {}",
                crate::config::redact_url(&config.database_url)
            )
        })?;
    let sandbox = open_sandbox(&config)?;
    let deployer = Deployer {
        store: &store,
        sandbox: &sandbox,
        limits: config.limits.to_sandbox(),
        max_component_bytes: config.max_component_bytes,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let deployed = deployer
        .deploy(&tenant, &app, bytes, "cli", clock.now_millis(), false)
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
