//! Shipped configuration files stay loadable.

use clap::Parser;
use platform::config::{Cli, Config};

#[test]
fn the_example_configuration_loads() {
    let path = crate::support::repo_root().join("deploy/tessera.example.toml");
    let cli = Cli::parse_from([
        "tessera",
        "--config",
        path.to_str().expect("utf-8 path"),
        "serve",
    ]);
    let config = Config::load(&cli).expect("deploy/tessera.example.toml loads");
    assert_eq!(config.limits.deadline_ms, 5000);
    assert_eq!(
        config.data_dir,
        std::path::PathBuf::from("/var/lib/tessera")
    );
}
