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
pub mod pip;
pub mod publish;
pub mod push;
pub mod sandbox;
pub mod tree;

pub use build::{Builds, Built, Log, PUSH_LEASE_TTL, PushLock, RepoUse, say};
pub use publish::{Deployed, Deployer, Shipped};
pub use push::{DEPLOY_BRANCH, Push};

use crate::ids::Slug;

/// Why a push or a deploy was refused: the text is what the pusher (or `tessera deploy`)
/// sees. The live version is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is larger than the configured maximum.
    #[error("the component is {size} bytes, more than the {limit}-byte maximum")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The maximum.
        limit: usize,
    },
    /// The sandbox refused the component (not a component, forbidden import, trap at load…).
    #[error("the component was refused: {0}")]
    Refused(#[from] ::sandbox::Error),
    /// Its callback list is unusable.
    #[error(transparent)]
    Dependencies(#[from] crate::dash::dependencies::InvalidDependencies),
    /// Its callbacks write one output twice or depend on each other in a circle.
    #[error("the app's callbacks cannot be served: {0}")]
    Graph(#[from] crate::dash::graph::GraphError),
    /// Its assets break a rule (path, extension, size).
    #[error("the assets were refused: {0}")]
    Assets(#[from] crate::assets::Error),
    /// Its data folder breaks a rule (a link, a path, a size).
    #[error("the data folder was refused: {0}")]
    Data(#[from] crate::appdata::Error),
    /// The data folder could not be laid out for the validation instance.
    #[error(transparent)]
    DataCopy(#[from] crate::appdata::MaterializeError),
    /// A `kind = "python"` app was refused (its folder, its boot: the traceback or the
    /// limit it hit).
    #[error(transparent)]
    Python(#[from] crate::python::Error),
    /// Storing it failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The blocking validation task died.
    #[error("validation task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The app's settings could not be handed to the validation instance.
    #[error(transparent)]
    Settings(#[from] crate::settings::Error),
    /// A push to an app that does not exist yet does not deploy the deploy branch.
    #[error(
        "{tenant}/{app} does not exist yet: its first push must deploy the {branch} branch (git push <remote> {branch})",
        branch = DEPLOY_BRANCH
    )]
    FirstPushMustDeploy {
        /// The tenant.
        tenant: Slug,
        /// The app that does not exist.
        app: Slug,
    },
    /// A push deletes the deploy branch.
    #[error("the deploy branch {branch} cannot be deleted", branch = DEPLOY_BRANCH)]
    DeleteDeployBranch,
    /// A force-push replaces the deployed branch with history it shares nothing with.
    #[error(
        "{new:.12} shares no history with the deployed {branch} ({old:.12}): \
         a force-push of unrelated history is refused.\n\
         Fetch {branch} and build on it (an amended or rebased commit is fine), \
         or push to a new app.",
        branch = DEPLOY_BRANCH
    )]
    UnrelatedHistory {
        /// The deployed commit.
        old: String,
        /// The pushed commit.
        new: String,
    },
    /// The deploy branch moved while the push waited for the app's lock.
    #[error(
        "{branch} moved while this push waited (another push was deployed); fetch, merge and push again",
        branch = DEPLOY_BRANCH
    )]
    BranchMoved,
    /// A git command of the pipeline failed (the text says which).
    #[error("{0}")]
    Git(String),
    /// The push's working directory could not be made.
    #[error("cannot create the build directory: {0}")]
    WorkDir(std::io::Error),
    /// The build refused the tree or failed (the text is the builder's, complete).
    #[error("{0}")]
    Build(String),
    /// The built component failed validation.
    #[error("{component} failed validation: {source}")]
    Invalid {
        /// What was built (the manifest's label).
        component: String,
        /// Why the deployer refused it.
        source: Box<Error>,
    },
    /// The pusher who created the app could not be made its collaborator.
    #[error("making the pusher a collaborator failed: {0}")]
    Collaborator(crate::store::Error),
}
