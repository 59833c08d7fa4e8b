//! Platform integration tests: the real router, a real SQLite file, real components
//! compiled from `examples/` and `tests/guests/`, no socket (`tower::ServiceExt::oneshot`).
//!
//! The components must be built first (`scripts/build-guests.sh`); a missing one fails
//! the test with that instruction rather than skipping it.

mod access;
mod accounts;
mod api;
mod background;
mod backup;
mod build;
mod cache;
mod cli;
mod cli_sign_in;
mod config;
mod container;
mod dash;
mod datafiles;
mod datasources;
mod density;
mod deploy;
mod fair;
mod git;
mod hostile_build;
mod idp;
mod ldap;
mod logs;
mod lookups;
mod oidc;
mod oidc_providers;
mod ops;
mod origins;
mod outbound;
mod pages;
mod python_apps;
mod quota;
mod replicas;
mod roles;
mod saml;
mod sessions;
mod settings;
mod store;
mod support;
mod tenants;
mod ui;
mod ui_admin;
mod usage;
mod versions;
mod viewer;
mod websocket;
mod websocket_differential;
