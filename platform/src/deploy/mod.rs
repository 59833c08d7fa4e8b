//! The push pipeline, from the pushed commit to the live version, without HTTP types:
//! a push is **received** (`push`: what the `pre-receive` hook reports, the ref rules, the
//! unrelated-history check, the app's push lock, the repositories and their hook),
//! **checked out** from quarantine into a fresh working directory, **built** (`build`:
//! `tessera.toml`, kinds `wasm` and `rust`, in the bubblewrap sandbox whose command line
//! `sandbox` writes; files of the pushed tree read only through `tree`, which follows no
//! links), then **validated** and **published** (`publish`: the `Deployer` loads the
//! component, checks its callbacks and makes it live in one transaction). `tessera deploy`
//! and the demo enter at the `Deployer`. Every refusal is an [`Error`], whose text is what
//! the pusher sees; nothing becomes live before every step passed.

pub mod build;
pub mod publish;
pub mod sandbox;
pub mod tree;

pub use build::{Builds, Built, Log, PUSH_LEASE_TTL, PushLock, RepoUse, say};
pub use publish::{Deployed, Deployer, Error};
