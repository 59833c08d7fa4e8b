//! The `tessera` binary: parse the command line, set up logging, run the command.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = platform::config::Cli::parse();
    if let platform::config::Command::CompileComponent {
        component,
        artifact,
    } = &cli.command
    {
        // The child the server starts to compile a component: no runtime, no logging set-up,
        // only the compilation and a plain message on failure.
        if let Err(message) = sandbox::compile_artifact(component, artifact) {
            eprintln!("{message}");
            std::process::exit(1);
        }
        return Ok(());
    }
    // This binary compiles new components in a child process of itself.
    if let Ok(program) = std::env::current_exe() {
        platform::state::set_compiler_program(program);
    }
    // The log format is part of the configuration; a configuration that does not load is
    // reported by the command itself, in the default format.
    let format = platform::config::Config::load(&cli)
        .map(|config| config.log.format)
        .unwrap_or_default();
    platform::telemetry::init_with(format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(platform::cli::run(cli))
}
