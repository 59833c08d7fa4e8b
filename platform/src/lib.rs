//! Tessera's platform: the HTTP server, the Dash protocol, the app store and the CLI.
//!
//! `main.rs` only parses the command line; everything else lives here so tests can build
//! the router with [`http::router`] and drive it without a socket.

pub mod admin;
pub mod admission;
pub mod appdata;
pub mod applog;
pub mod assets;
pub mod auth;
pub mod backup;
pub mod cache;
pub mod capabilities;
pub mod cli;
pub mod cli_sign_in;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod dash;
pub mod datasources;
pub mod demo;
pub mod deploy;
pub mod dev;
pub mod error;
pub mod frontend;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod login;
pub mod lookup;
pub mod manage;
pub mod observe;
pub mod origin;
pub mod outbound;
pub mod platform_admin;
pub mod policy;
pub mod python;
pub mod quota;
pub mod runtime;
pub mod scaffold;
pub mod secretbox;
pub mod settings;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tenancy;
pub mod tenant_admin;
pub mod usage;
pub mod viewer;
