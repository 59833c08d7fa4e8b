//! The `tessera` binary: parse the command line, set up logging, run the command.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = platform::config::Cli::parse();
    platform::telemetry::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(platform::cli::run(cli))
}
