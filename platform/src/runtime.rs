//! Live apps: which component version serves each app right now.
//!
//! The database says which version is live; this cache keeps the loaded
//! [`sandbox::Component`] of that version and re-checks the database at most once per
//! [`Runtime::REFRESH`], so a deploy from another process (or replica) goes live within
//! that time. A request holds an `Arc<LiveApp>` for its whole life, so callbacks in flight
//! finish on the version they started on while new requests get the new one. A change of
//! the app's settings (or of its tenant's quotas) is handled the same way: the live version
//! is loaded again with the new values and swapped in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sandbox::{LoadOptions, Sandbox};

use crate::assets::AssetMeta;
use crate::dash::clientside;
use crate::dash::dependencies::{Dependencies, InvalidDependencies};
use crate::ids::Slug;
use crate::quota::{CallbackSlots, tenant_limits};
use crate::secretbox::SecretBox;
use crate::store::{self, LiveVersion, Store};

/// A version that is serving.
pub struct LiveApp {
    /// Which version this is.
    pub version: LiveVersion,
    /// The loaded component.
    pub component: sandbox::Component,
    /// Its callbacks, parsed once.
    pub dependencies: Dependencies,
    /// The `_dash-dependencies` body (inline clientside sources and Tessera's private keys taken out).
    pub dependencies_json: String,
    /// Inline clientside functions, as scripts for the index page.
    pub inline_scripts: Vec<String>,
    /// The files of its `assets/` folder (without their bytes).
    pub assets: Vec<AssetMeta>,
}

/// Why a live app cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The stored component no longer loads (e.g. a newer platform refuses it).
    #[error("the live component does not load: {0}")]
    Load(#[from] sandbox::Error),
    /// The stored component's dependency list does not parse.
    #[error(transparent)]
    Dependencies(#[from] InvalidDependencies),
    /// The blocking load task died.
    #[error("loading task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The app's settings could not be read or a secret not opened.
    #[error(transparent)]
    Settings(#[from] crate::settings::Error),
}

struct Cached {
    checked: Instant,
    app: Arc<LiveApp>,
}

/// The live-app cache.
pub struct Runtime {
    sandbox: Sandbox,
    store: Store,
    /// Opens the app secrets handed to guests.
    secrets: SecretBox,
    load_options: LoadOptions,
    callback_slots: CallbackSlots,
    apps: Mutex<HashMap<(Slug, Slug), Cached>>,
}

impl Runtime {
    /// How long a cached answer to "which version is live?" is trusted.
    pub const REFRESH: Duration = Duration::from_secs(1);

    /// A runtime loading components into `sandbox` with `limits`, opening app secrets
    /// with `secrets`.
    pub fn new(
        sandbox: Sandbox,
        store: Store,
        secrets: SecretBox,
        limits: sandbox::Limits,
    ) -> Self {
        Self {
            sandbox,
            store,
            secrets,
            load_options: LoadOptions {
                limits,
                ..LoadOptions::default()
            },
            callback_slots: CallbackSlots::default(),
            apps: Mutex::new(HashMap::new()),
        }
    }

    /// The sandbox components are loaded into.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &sandbox::Limits {
        &self.load_options.limits
    }

    /// The per-tenant count of callbacks in flight.
    pub fn callback_slots(&self) -> &CallbackSlots {
        &self.callback_slots
    }

    /// The live version of `tenant/app`, loading it if needed; `None` when the app does
    /// not exist or has no live version.
    pub async fn live(&self, tenant: &Slug, app: &Slug) -> Result<Option<Arc<LiveApp>>, Error> {
        let key = (tenant.clone(), app.clone());
        let cached = {
            let apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
            apps.get(&key).map(|c| (c.checked, c.app.clone()))
        };
        if let Some((checked, app)) = &cached
            && checked.elapsed() < Self::REFRESH
        {
            return Ok(Some(app.clone()));
        }
        let mut attempts = 0;
        let app = loop {
            let Some(version) = self.store.live_version(tenant, app).await? else {
                self.lock().remove(&key);
                return Ok(None);
            };
            match &cached {
                Some((_, app)) if app.version == version => break app.clone(),
                _ => {}
            }
            match self.load(version).await {
                Ok(loaded) => break Arc::new(loaded),
                // The version stopped being live and was pruned between the two reads
                // (a publish after a rollback): ask again which version is live.
                Err(Error::Store(e)) if e.is_not_found() && attempts < 2 => {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        };
        self.lock().insert(
            key,
            Cached {
                checked: Instant::now(),
                app: app.clone(),
            },
        );
        Ok(Some(app))
    }

    /// Files in the compiled-component cache younger than this are never pruned: a deploy
    /// compiles (and caches) its component before the version is published.
    pub const CACHE_MIN_AGE: Duration = Duration::from_secs(3600);

    /// Removes compiled artifacts of components that no kept version uses any more (and
    /// artifacts of other engines) from the disk cache. Versions pruned by a publish leave
    /// their artifacts behind until this runs. Only files at least `min_age` old go
    /// ([`Runtime::CACHE_MIN_AGE`] in the server).
    pub async fn prune_compiled_cache(
        &self,
        min_age: Duration,
    ) -> Result<sandbox::PruneReport, Error> {
        let keep = self.store.component_hashes().await?;
        let sandbox = self.sandbox.clone();
        let report = tokio::task::spawn_blocking(move || {
            sandbox.prune_disk_cache(|sha256| keep.contains(sha256), min_age)
        })
        .await??;
        Ok(report)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Slug, Slug), Cached>> {
        // A poisoned lock only means another request panicked mid-insert; the map itself
        // is still a valid cache.
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn load(&self, version: LiveVersion) -> Result<LiveApp, Error> {
        let bytes = self
            .store
            .version_component(version.app_id, version.version_id)
            .await?;
        let sandbox = self.sandbox.clone();
        // The tenant's memory and deadline quotas, capped by the platform's limits. A
        // change of quotas changes `LiveVersion`, so the app is loaded again with them.
        // The app's settings as of now; a later change bumps `settings_revision`, which
        // changes `LiveVersion`, so the app is loaded again with the new values.
        let settings =
            crate::settings::for_guest(&self.store, &self.secrets, version.app_id).await?;
        let options = LoadOptions {
            limits: tenant_limits(&self.load_options.limits, &version.callback_quotas),
            settings,
            owner: sandbox::Owner {
                tenant: version.tenant_id.0,
                app: version.app_id.0,
                weight: sandbox::Owner::DEFAULT_WEIGHT,
            },
            ..self.load_options.clone()
        };
        let component =
            tokio::task::spawn_blocking(move || sandbox.load(&bytes, options)).await??;
        let dependencies = Dependencies::parse(component.dependencies_json())?;
        let split = clientside::split(component.dependencies_json())?;
        let assets = self
            .store
            .version_assets(version.app_id, version.version_id)
            .await?;
        Ok(LiveApp {
            version,
            component,
            dependencies,
            dependencies_json: crate::dash::dependencies::public_json(&split.served_json),
            inline_scripts: split.inline_scripts,
            assets,
        })
    }
}
