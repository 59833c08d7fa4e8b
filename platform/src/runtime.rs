//! Live apps: which component version serves each app right now.
//!
//! The database says which version is live; this cache keeps the loaded
//! [`sandbox::Component`] of that version and asks the database again only when the change
//! counter moved ([`crate::lookup`]), so a deploy from another process (or replica) goes
//! live within a poll; without that watch (or while it is stale), at most once per
//! [`Runtime::REFRESH`]. A request holds an `Arc<LiveApp>` for its whole life, so callbacks in flight
//! finish on the version they started on while new requests get the new one. A change of
//! the app's settings (or of its tenant's quotas) is handled the same way: the live version
//! is loaded again with the new values and swapped in.
//!
//! Loading runs guest code (`info`, `layout`, `dependencies`), so it is charged like a
//! callback: a load takes one of the tenant's callback slots (every request waiting for it
//! holds one too, so a tenant cannot pile up waiters beyond its quota), runs under the
//! tenant's limits, and happens at most once per [`LiveVersion`] at a time: concurrent
//! requests wait for the same load. A load that failed because of the component is
//! remembered for that `LiveVersion` for [`Runtime::FAILURE_TTL`]: requests get the same
//! error at once instead of running the guest again, until the version, the app's settings
//! or the tenant's quotas change (a new `LiveVersion`) or the time is up.
//!
//! Many apps on one server (issue 16): a load looks the compiled code up by the version's
//! hash first (shared with every loaded app of the same component, or in the disk cache),
//! so it reads the component from the store only when neither has it; and a loaded app no
//! request asked for in [`Runtime::IDLE_DROP`] is dropped when another app loads, so an
//! app that is not used holds no memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sandbox::{LoadOptions, Sandbox};
use tokio::sync::watch;

use crate::admission::Turn;
use crate::appdata::AppDataDirs;
use crate::assets::AssetMeta;
use crate::capabilities::PlatformCapabilities;
use crate::dash::clientside;
use crate::dash::dependencies::{Dependencies, InvalidDependencies};
use crate::ids::Slug;
use crate::lookup::{Changes, Stamp};
use crate::quota::{CallbackSlots, Slot, TooManyCallbacks, tenant_limits};
use crate::secretbox::SecretBox;
use crate::store::{self, LiveVersion, Store};

/// A version that is serving.
pub struct LiveApp {
    /// Which version this is.
    pub version: LiveVersion,
    /// The loaded app: a component, or a Python app restored from its memory image.
    pub component: sandbox::Dashboard,
    /// Its callbacks, parsed once.
    pub dependencies: Dependencies,
    /// The `_dash-dependencies` body (inline clientside sources and Tessera's private keys taken out).
    pub dependencies_json: String,
    /// Inline clientside functions, as scripts for the index page.
    pub inline_scripts: Vec<String>,
    /// The `_dash-layout` body and, for a multi-page app, Dash's `validation_layout`.
    pub layout: crate::dash::layout::Layout,
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
    /// The app needs loading and the tenant has no callback slot free for it.
    #[error(transparent)]
    Busy(#[from] TooManyCallbacks),
    /// The load this request waited for failed, or the same load failed a moment ago
    /// (remembered, see [`Runtime::FAILURE_TTL`]).
    #[error("{0}")]
    Failed(Arc<Error>),
    /// The load task ended without an answer (it panicked; the log says why).
    #[error("the load ended without an answer")]
    Abandoned,
    /// The version's data folder could not be laid out on this server.
    #[error("{0}")]
    Data(Arc<crate::appdata::MaterializeError>),
    /// The stored Python app does not restore.
    #[error("the live Python app does not load: {0}")]
    Python(#[from] crate::python::Error),
}

impl Error {
    /// Whether the version vanished while it was being read (pruned meanwhile).
    fn is_not_found(&self) -> bool {
        match self {
            Error::Store(e) => e.is_not_found(),
            Error::Failed(e) => e.is_not_found(),
            _ => false,
        }
    }

    /// Whether the failure is the component's own (it would fail the same way again with
    /// the same version, settings and limits), so it is worth remembering. Database
    /// trouble, a full instance pool or a dead task may pass.
    fn is_the_components(&self) -> bool {
        match self {
            Error::Load(e) => !matches!(
                e,
                sandbox::Error::Capacity { .. }
                    | sandbox::Error::Io { .. }
                    | sandbox::Error::Engine { .. }
            ),
            Error::Dependencies(_) => true,
            Error::Python(e) => e.is_the_apps(),
            Error::Failed(e) => e.is_the_components(),
            _ => false,
        }
    }
}

struct Cached {
    checked: Instant,
    /// When a request last asked for it: entries idle for [`Runtime::IDLE_DROP`] go.
    used: Instant,
    /// The change stamp read before the live version was asked for (`None`: not watching
    /// changes, or the watch was stale; then `checked` decides).
    stamp: Option<Stamp>,
    app: Arc<LiveApp>,
}

/// The outcome of one load, shared by everyone who waited for it.
type Outcome = Option<Result<Arc<LiveApp>, Arc<Error>>>;

/// Loads in flight and loads that failed, by the version they load.
#[derive(Default)]
struct Loads {
    flights: HashMap<LiveVersion, watch::Receiver<Outcome>>,
    failed: HashMap<LiveVersion, (Instant, Arc<Error>)>,
}

impl Loads {
    /// Remember `error` for `version`, dropping expired entries and, at the cap, the
    /// oldest one: memory stays bounded however many versions fail.
    fn remember(&mut self, version: LiveVersion, error: Arc<Error>) {
        self.failed
            .retain(|_, (at, _)| at.elapsed() < Runtime::FAILURE_TTL);
        if self.failed.len() >= Runtime::MAX_REMEMBERED
            && let Some(oldest) = self
                .failed
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(version, _)| version.clone())
        {
            self.failed.remove(&oldest);
        }
        self.failed.insert(version, (Instant::now(), error));
    }

    fn remembered(&mut self, version: &LiveVersion) -> Option<Arc<Error>> {
        match self.failed.get(version) {
            Some((at, error)) if at.elapsed() < Runtime::FAILURE_TTL => Some(error.clone()),
            Some(_) => {
                self.failed.remove(version);
                None
            }
            None => None,
        }
    }
}

/// What a load needs, shared with the task that runs it.
struct Loader {
    sandbox: Sandbox,
    store: Store,
    /// Where versions' data folders are copied to be handed to their guests.
    app_data: AppDataDirs,
    /// Opens the app secrets handed to guests.
    secrets: SecretBox,
    load_options: LoadOptions,
    /// The operator's outbound HTTP bounds; each app adds its allowlist.
    outbound: sandbox::OutboundPolicy,
    /// The data sources and cache every app's guest may use (each for its own app).
    capabilities: Option<Arc<PlatformCapabilities>>,
    /// Loads that had to read the component's bytes from the store (its compiled code
    /// was neither in memory nor in the disk cache).
    component_reads: AtomicU64,
    /// The interpreter of Python apps, and where their files are laid out.
    python: crate::python::PythonHost,
}

/// The live-app cache.
pub struct Runtime {
    loader: Arc<Loader>,
    callback_slots: CallbackSlots,
    apps: Mutex<HashMap<(Slug, Slug), Cached>>,
    loads: Arc<Mutex<Loads>>,
    /// Loads started (each runs the guest's `info`, `layout` and `dependencies`).
    loads_started: AtomicU64,
    /// The database's change counter, when watched: a cached live version then stays
    /// valid until something changes, not just for [`Runtime::REFRESH`].
    changes: Option<Arc<Changes>>,
    /// Loaded apps nobody asked for this long are dropped ([`Runtime::IDLE_DROP`]).
    idle_drop: Duration,
}

impl Runtime {
    /// How long a cached answer to "which version is live?" is trusted.
    pub const REFRESH: Duration = Duration::from_secs(1);

    /// How long a load that failed because of the component is answered from memory.
    pub const FAILURE_TTL: Duration = Duration::from_secs(60);

    /// At most this many failed loads are remembered (the oldest goes first).
    pub const MAX_REMEMBERED: usize = 1024;

    /// A loaded app no request asked for this long is dropped when the next app is
    /// loaded, with its instances and (when no other app shares it) its compiled code: an
    /// app used once holds no memory for long, however many apps a server has served.
    pub const IDLE_DROP: Duration = Duration::from_secs(600);

    /// A runtime loading components into `sandbox` with `limits`, opening app secrets
    /// with `secrets`.
    pub fn new(
        sandbox: Sandbox,
        store: Store,
        secrets: SecretBox,
        limits: sandbox::Limits,
    ) -> Self {
        Self {
            loader: Arc::new(Loader {
                sandbox,
                store,
                // A runtime without a server's data directory (tests) copies data folders
                // into the system's temporary directory.
                app_data: AppDataDirs::new(std::env::temp_dir().join("tessera-appdata")),
                secrets,
                load_options: LoadOptions {
                    limits,
                    ..LoadOptions::default()
                },
                outbound: sandbox::OutboundPolicy::default(),
                capabilities: None,
                component_reads: AtomicU64::new(0),
                python: crate::python::PythonHost::new(
                    &crate::config::BuildsConfig::default(),
                    std::env::temp_dir().join("tessera-python"),
                ),
            }),
            callback_slots: CallbackSlots::default(),
            apps: Mutex::new(HashMap::new()),
            loads: Arc::default(),
            loads_started: AtomicU64::new(0),
            changes: None,
            idle_drop: Self::IDLE_DROP,
        }
    }

    /// Drop loaded apps idle for `idle` instead of [`Runtime::IDLE_DROP`].
    pub fn with_idle_drop(mut self, idle: Duration) -> Self {
        self.idle_drop = idle;
        self
    }

    /// How many apps are loaded (cached with their component) right now.
    pub fn loaded_apps(&self) -> usize {
        lock(&self.apps).len()
    }

    /// Keep live versions until `changes` says something changed (see [`crate::lookup`]).
    pub fn with_changes(mut self, changes: Arc<Changes>) -> Self {
        self.changes = Some(changes);
        self
    }

    /// Copy versions' data folders under `dirs` (the server's `{data_dir}/appdata`).
    /// Call before the runtime is shared.
    pub fn with_app_data(mut self, dirs: AppDataDirs) -> Self {
        if let Some(loader) = Arc::get_mut(&mut self.loader) {
            loader.app_data = dirs;
        }
        self
    }

    /// Gives every app's guest the platform's data sources and cache (WIT 0.2.0's `data`
    /// and `cache`), before any app is loaded. Without, they answer "not available".
    pub fn with_capabilities(mut self, capabilities: Arc<PlatformCapabilities>) -> Self {
        if let Some(loader) = Arc::get_mut(&mut self.loader) {
            loader.capabilities = Some(capabilities);
        }
        self
    }

    /// Serves Python apps with `python`'s interpreter (the server's `[builds]` settings and
    /// data directory), before any app is loaded.
    pub fn with_python(mut self, python: crate::python::PythonHost) -> Self {
        if let Some(loader) = Arc::get_mut(&mut self.loader) {
            loader.python = python;
        }
        self
    }

    /// The interpreter of Python apps.
    pub fn python(&self) -> &crate::python::PythonHost {
        &self.loader.python
    }

    /// Sets the operator's outbound HTTP bounds (`[outbound]`), before any app is loaded.
    pub fn with_outbound(mut self, outbound: sandbox::OutboundPolicy) -> Self {
        if let Some(loader) = Arc::get_mut(&mut self.loader) {
            loader.outbound = outbound;
        }
        self
    }

    /// Where versions' data folders are copied.
    pub fn app_data(&self) -> &AppDataDirs {
        &self.loader.app_data
    }

    /// Removes local copies of data folders that no kept version uses (and abandoned
    /// half-written ones), if at least `min_age` old. Returns how many went.
    pub async fn sweep_app_data(&self, min_age: Duration) -> Result<usize, Error> {
        let keep = self.loader.store.data_folders().await?;
        self.loader
            .app_data
            .sweep(&keep, min_age)
            .await
            .map_err(|e| Error::Data(Arc::new(crate::appdata::MaterializeError::Io(e))))
    }

    /// The sandbox components are loaded into.
    pub fn sandbox(&self) -> &Sandbox {
        &self.loader.sandbox
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &sandbox::Limits {
        &self.loader.load_options.limits
    }

    /// The per-tenant count of callbacks in flight.
    pub fn callback_slots(&self) -> &CallbackSlots {
        &self.callback_slots
    }

    /// How many loads this runtime has started (each one ran the guest's load-time calls).
    pub fn loads_started(&self) -> u64 {
        self.loads_started.load(Ordering::Relaxed)
    }

    /// How many loads read their component's bytes from the store: the others found its
    /// compiled code by hash, shared with another app's or in the disk cache.
    pub fn component_reads(&self) -> u64 {
        self.loader.component_reads.load(Ordering::Relaxed)
    }

    /// How many loads are running right now.
    pub fn loads_in_flight(&self) -> usize {
        lock(&self.loads).flights.len()
    }

    /// The live version of `tenant/app`, loading it if needed; `None` when the app does
    /// not exist or has no live version.
    pub async fn live(&self, tenant: &Slug, app: &Slug) -> Result<Option<Arc<LiveApp>>, Error> {
        self.live_in_turn(tenant, app, None).await
    }

    /// Loads the live version of `tenant/app` now, whatever this server remembered of the
    /// app: a deploy calls it before saying "deployed", so that the first viewer does not
    /// wait for the load (for a Python app, the restore of its first instance).
    pub async fn preload(&self, tenant: &Slug, app: &Slug) -> Result<Option<Arc<LiveApp>>, Error> {
        lock(&self.apps).remove(&(tenant.clone(), app.clone()));
        self.live(tenant, app).await
    }

    /// [`Runtime::live`] for a request holding an admission `turn`: the turn covers
    /// finding the live version and ends before any load is waited for.
    pub async fn live_in_turn(
        &self,
        tenant: &Slug,
        app: &Slug,
        mut turn: Option<Turn>,
    ) -> Result<Option<Arc<LiveApp>>, Error> {
        let key = (tenant.clone(), app.clone());
        // Read before the database is asked, so a change during the lookup is not missed.
        let stamp = self.changes.as_ref().and_then(|changes| changes.stamp());
        let cached = {
            let mut apps = lock(&self.apps);
            apps.get_mut(&key).map(|c| {
                c.used = Instant::now();
                (c.checked, c.stamp, c.app.clone())
            })
        };
        if let Some((checked, cached_stamp, app)) = &cached {
            let fresh = match (stamp, cached_stamp) {
                (Some(now), Some(then)) => now == *then,
                (Some(_), None) => false,
                // Not watching changes (or the watch is stale): trust it for REFRESH.
                (None, _) => checked.elapsed() < Self::REFRESH,
            };
            crate::observe::cache_lookup("live_app", fresh);
            if fresh {
                return Ok(Some(app.clone()));
            }
        } else {
            crate::observe::cache_lookup("live_app", false);
        }
        let cached = cached.map(|(checked, _, app)| (checked, app));
        let mut attempts = 0;
        let app = loop {
            let Some(version) = self.loader.store.live_version(tenant, app).await? else {
                lock(&self.apps).remove(&key);
                return Ok(None);
            };
            match &cached {
                Some((_, app)) if app.version == version => break app.clone(),
                _ => {}
            }
            drop(turn.take());
            let prefix = crate::settings::pathname_prefix(tenant.as_str(), app.as_str());
            match self.load_once(version, prefix).await {
                Ok(loaded) => break loaded,
                // The version stopped being live and was pruned between the two reads
                // (a publish after a rollback): ask again which version is live.
                Err(e) if e.is_not_found() && attempts < 2 => {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let now = Instant::now();
        let mut apps = lock(&self.apps);
        // Every load (and every re-check) passes here: the idle entries go first, so the
        // map holds the apps used lately, not every app ever served.
        if !apps.contains_key(&key) {
            apps.retain(|_, cached| now.duration_since(cached.used) < self.idle_drop);
        }
        apps.insert(
            key,
            Cached {
                checked: now,
                used: now,
                stamp,
                app: app.clone(),
            },
        );
        Ok(Some(app))
    }

    /// `version` loaded: the remembered failure if it failed a moment ago, else the
    /// result of the load in flight, else of a new one. Waiting or loading holds one of
    /// the tenant's callback slots.
    async fn load_once(
        &self,
        version: LiveVersion,
        pathname_prefix: String,
    ) -> Result<Arc<LiveApp>, Error> {
        // A waiter holds its slot until the load ends; the loader's goes with the task.
        let (mut flight, _waiting) = {
            let mut loads = lock(&self.loads);
            if let Some(error) = loads.remembered(&version) {
                return Err(Error::Failed(error));
            }
            let slot = self.take_slot(&version)?;
            match loads.flights.get(&version) {
                Some(flight) => (flight.clone(), slot),
                None => {
                    let (done, flight) = watch::channel(None);
                    loads.flights.insert(version.clone(), flight.clone());
                    self.loads_started.fetch_add(1, Ordering::Relaxed);
                    // A task of its own, so that the load finishes (and is shared and
                    // remembered) even if the request that started it goes away.
                    tokio::spawn(run_load(
                        self.loader.clone(),
                        self.loads.clone(),
                        version,
                        pathname_prefix,
                        done,
                        slot,
                    ));
                    (flight, None)
                }
            }
        };
        let result = match flight.wait_for(Option::is_some).await {
            Ok(done) => done.clone(),
            // The load task ended without an answer (it panicked).
            Err(_) => None,
        };
        match result {
            Some(Ok(app)) => Ok(app),
            Some(Err(error)) => Err(Error::Failed(error)),
            None => Err(Error::Abandoned),
        }
    }

    fn take_slot(&self, version: &LiveVersion) -> Result<Option<Slot>, Error> {
        Ok(Some(self.callback_slots.try_acquire(
            version.tenant_id,
            version.callback_quotas.max_concurrent,
        )?))
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
        let keep = self.loader.store.component_hashes().await?;
        let sandbox = self.loader.sandbox.clone();
        let report = tokio::task::spawn_blocking(move || {
            sandbox.prune_disk_cache(|sha256| keep.contains(sha256), min_age)
        })
        .await??;
        Ok(report)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another request panicked mid-update; every update here
    // is a single map operation, so the map is still valid.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run one load, holding the tenant's slot, and hand its outcome to every waiter.
async fn run_load(
    loader: Arc<Loader>,
    loads: Arc<Mutex<Loads>>,
    version: LiveVersion,
    pathname_prefix: String,
    done: watch::Sender<Outcome>,
    slot: Option<Slot>,
) {
    let result = loader.load(version.clone(), &pathname_prefix).await;
    drop(slot);
    let outcome = match result {
        Ok(app) => Ok(Arc::new(app)),
        Err(error) => {
            tracing::warn!(tenant = version.tenant_id.0, app = version.app_id.0, version = version.number, %error, "loading an app failed");
            Err(Arc::new(error))
        }
    };
    {
        let mut loads = lock(&loads);
        loads.flights.remove(&version);
        if let Err(error) = &outcome
            && error.is_the_components()
        {
            loads.remember(version, error.clone());
        }
    }
    // Nobody may be waiting any more; the outcome is then only remembered.
    let _ = done.send(Some(outcome));
}

impl Loader {
    /// The local copy of the version's data folder (written on its first load on this
    /// server, blob by blob from the database), `None` when it ships none.
    async fn data_dir(&self, version: &LiveVersion) -> Result<Option<std::path::PathBuf>, Error> {
        let files = self
            .store
            .version_data(version.app_id, version.version_id)
            .await?;
        let Some(hash) = crate::appdata::manifest_sha256(&files) else {
            return Ok(None);
        };
        let source = crate::appdata::Source::Store(&self.store);
        let dir = self
            .app_data
            .materialize(version.tenant_id, &hash, &files, source)
            .await
            .map_err(|e| Error::Data(Arc::new(e)))?;
        Ok(Some(dir))
    }

    /// Load `version` of the app served under `pathname_prefix` (which its guest reads).
    async fn load(&self, version: LiveVersion, pathname_prefix: &str) -> Result<LiveApp, Error> {
        // The tenant's memory and deadline quotas, capped by the platform's limits. A
        // change of quotas changes `LiveVersion`, so the app is loaded again with them.
        // The app's settings as of now; a later change bumps `settings_revision`, which
        // changes `LiveVersion`, so the app is loaded again with the new values.
        let settings =
            crate::settings::for_guest(&self.store, &self.secrets, version.app_id, pathname_prefix)
                .await?;
        let data_dir = self.data_dir(&version).await?;
        if let Some(capabilities) = &self.capabilities {
            // The guest's cache entries count against the tenant's quota as of this load; a
            // change of quotas changes `LiveVersion` and loads the app again.
            capabilities.set_cache_quota(version.tenant_id, version.callback_quotas.cache_bytes);
        }
        let outbound =
            crate::outbound::for_app(&self.outbound, settings.get(crate::outbound::HOSTS_SETTING));
        let options = LoadOptions {
            limits: tenant_limits(&self.load_options.limits, &version.callback_quotas),
            outbound,
            settings,
            owner: crate::quota::owner(
                version.tenant_id,
                version.app_id.0,
                &version.callback_quotas,
            ),
            data_dir,
            capabilities: self
                .capabilities
                .clone()
                .map(|c| c as Arc<dyn sandbox::Capabilities>),
        };
        // By hash first: the compiled code is shared with every app of the same component
        // and kept on disk, so most first loads never read the component from the store.
        let (sandbox, sha256, by_hash) = (
            self.sandbox.clone(),
            version.sha256.clone(),
            options.clone(),
        );
        let cached = tokio::task::spawn_blocking(move || {
            crate::capabilities::on_guest_thread(|| sandbox.load_cached(&sha256, by_hash))
        })
        .await??;
        let component = match cached {
            Some(component) => sandbox::Dashboard::from(component),
            None => {
                let read = Instant::now();
                let bytes = self
                    .store
                    .version_component(version.app_id, version.version_id)
                    .await?;
                tracing::debug!(
                    bytes = bytes.len(),
                    read_ms = read.elapsed().as_secs_f64() * 1e3,
                    "version read from the store"
                );
                self.component_reads.fetch_add(1, Ordering::Relaxed);
                let sandbox = self.sandbox.clone();
                // The one place a version's kind decides how it loads: the stored blob.
                if crate::python::is_bundle(&bytes) {
                    let python = self.python.clone();
                    let app = tokio::task::spawn_blocking(move || {
                        python.restore(&bytes, options, &sandbox)
                    })
                    .await??;
                    sandbox::Dashboard::Python(Arc::new(app))
                } else {
                    tokio::task::spawn_blocking(move || {
                        crate::capabilities::on_guest_thread(|| sandbox.load(&bytes, options))
                    })
                    .await??
                    .into()
                }
            }
        };
        let dependencies = Dependencies::parse(component.dependencies_json())?;
        let split = clientside::split(component.dependencies_json())?;
        let layout = crate::dash::layout::split(component.layout_json());
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
            layout,
            assets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(number: i64) -> LiveVersion {
        LiveVersion {
            app_id: crate::ids::AppId(1),
            version_id: crate::ids::VersionId(number),
            number,
            sha256: String::new(),
            tenant_id: crate::ids::TenantId(1),
            callback_quotas: crate::store::Quotas::DEFAULT.callback(),
            settings_revision: 0,
        }
    }

    fn failure() -> Arc<Error> {
        Arc::new(Error::Dependencies(InvalidDependencies("bad".to_owned())))
    }

    #[test]
    fn remembered_failures_are_bounded_and_the_oldest_goes_first() {
        let mut loads = Loads::default();
        for number in 0..i64::try_from(Runtime::MAX_REMEMBERED).expect("fits") + 5 {
            loads.remember(version(number), failure());
        }
        assert_eq!(loads.failed.len(), Runtime::MAX_REMEMBERED);
        assert!(loads.remembered(&version(0)).is_none());
        assert!(loads.remembered(&version(4)).is_none());
        assert!(loads.remembered(&version(5)).is_some());
    }

    #[test]
    fn only_the_components_own_failures_are_remembered() {
        assert!(failure().is_the_components());
        let deadline = Error::Load(sandbox::Error::Deadline {
            limit: Duration::from_secs(1),
        });
        assert!(deadline.is_the_components());
        let full = Error::Load(sandbox::Error::Capacity {
            message: "full".to_owned(),
        });
        assert!(!full.is_the_components());
        assert!(
            !Error::Busy(TooManyCallbacks { max: 1 }).is_the_components(),
            "a refused slot says nothing about the component"
        );
    }
}
