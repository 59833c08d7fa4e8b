//! Validating and publishing a component: check it, store it as a new immutable version,
//! make it live.
//!
//! Nothing becomes live unless every check passed; the switch itself is one transaction
//! in the store. No HTTP types here: the CLI, the demo and `git push` ([`super::push`])
//! share it.

use sandbox::{LoadOptions, Sandbox};
use sha2::{Digest, Sha256};

use super::Error;
use crate::appdata::{AppDataDirs, DataFile};
use crate::assets::AssetFile;
use crate::dash::dependencies::Dependencies;
use crate::dash::graph;
use crate::ids::{Slug, TenantId};
use crate::quota;
use crate::secretbox::SecretBox;
use crate::store::{NewVersion, Quotas, Store};

/// What a successful deploy produced.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The version number within the app.
    pub number: i64,
    /// Hex sha256 of the component.
    pub sha256: String,
    /// The app's title.
    pub title: String,
    /// How many callbacks it declares.
    pub callbacks: usize,
    /// Whether a new version was created (false when the live one was identical).
    pub created: bool,
}

/// The files that travel with a component: its `assets/` and its data folder.
#[derive(Debug, Default, Clone)]
pub struct Shipped {
    /// The files of the assets folder.
    pub assets: Vec<AssetFile>,
    /// The files of the data folder.
    pub data: Vec<DataFile>,
}

/// The deploy pipeline's inputs that do not change between deploys.
pub struct Deployer<'a> {
    /// Where versions are stored.
    pub store: &'a Store,
    /// Used to validate components.
    pub sandbox: &'a Sandbox,
    /// The platform's limits; the validation instance runs under the tenant's, capped by
    /// these.
    pub limits: sandbox::Limits,
    /// Largest accepted component.
    pub max_component_bytes: usize,
    /// Opens the app's secrets, which the validation instance sees like a live one.
    pub secrets: &'a SecretBox,
    /// Who may open an app this deployer creates (an existing app keeps its own).
    pub new_app_visibility: crate::tenancy::Visibility,
    /// Where the validation instance's copy of the data folder is written (the server's
    /// own copies, so the first load after the deploy finds it there).
    pub app_data: &'a AppDataDirs,
    /// Boots `kind = "python"` apps (their source bundle becomes files plus memory image).
    pub python: crate::python::PythonHost,
}

impl Deployer<'_> {
    /// Validate `component` and make it the live version of `tenant/app`.
    ///
    /// With `skip_if_live`, a component identical to the live one creates no version.
    pub async fn deploy(
        &self,
        tenant: &Slug,
        app: &Slug,
        component: Vec<u8>,
        source: &str,
        now: i64,
        skip_if_live: bool,
    ) -> Result<Deployed, Error> {
        self.deploy_with_assets(
            tenant,
            app,
            component,
            Vec::new(),
            source,
            now,
            skip_if_live,
        )
        .await
    }

    /// [`Deployer::deploy`] with the files of the app's `assets/` folder, checked
    /// ([`crate::assets::check`]) and stored with the version. With `skip_if_live`, the
    /// live version is kept only if its component and its assets are both identical.
    #[expect(
        clippy::too_many_arguments,
        reason = "the deploy inputs; a struct would only rename them"
    )]
    pub async fn deploy_with_assets(
        &self,
        tenant: &Slug,
        app: &Slug,
        component: Vec<u8>,
        assets: Vec<AssetFile>,
        source: &str,
        now: i64,
        skip_if_live: bool,
    ) -> Result<Deployed, Error> {
        let files = Shipped {
            assets,
            data: Vec::new(),
        };
        self.deploy_with_files(tenant, app, component, files, source, now, skip_if_live)
            .await
    }

    /// [`Deployer::deploy_with_assets`] with the files of the app's data folder too,
    /// checked ([`crate::appdata::check`]), seen by the validation instance at `/data`, and
    /// stored with the version (content-addressed, under the tenant's storage quota). With
    /// `skip_if_live`, the live version is kept only if its data files are identical too.
    #[expect(
        clippy::too_many_arguments,
        reason = "the deploy inputs; a struct would only rename them"
    )]
    pub async fn deploy_with_files(
        &self,
        tenant: &Slug,
        app: &Slug,
        component: Vec<u8>,
        files: Shipped,
        source: &str,
        now: i64,
        skip_if_live: bool,
    ) -> Result<Deployed, Error> {
        let Shipped { assets, data } = files;
        crate::assets::check(&assets)?;
        crate::appdata::check(&data)?;
        if component.len() > self.max_component_bytes {
            return Err(Error::TooLarge {
                size: component.len(),
                limit: self.max_component_bytes,
            });
        }
        let sha256 = hex::encode(Sha256::digest(&component));
        let live = match skip_if_live {
            true => self.store.live_version(tenant, app).await?,
            false => None,
        };
        let live = match live.filter(|live| live.sha256 == sha256) {
            Some(live) => {
                let stored = self
                    .store
                    .version_assets(live.app_id, live.version_id)
                    .await?;
                let same = stored.len() == assets.len()
                    && stored.iter().zip(&assets).all(|(stored, new)| {
                        stored.path == new.path
                            && stored.sha256 == crate::assets::sha256(&new.bytes)
                    });
                let stored_data = self
                    .store
                    .version_data(live.app_id, live.version_id)
                    .await?;
                let new_data: Vec<_> = data.iter().map(DataFile::meta).collect();
                let same_data = crate::appdata::manifest_sha256(&stored_data)
                    == crate::appdata::manifest_sha256(&new_data);
                (same && same_data).then_some(live)
            }
            None => None,
        };
        if let Some(live) = live {
            // Validate again anyway: it proves the live version still loads on this build.
            let (title, callbacks, _) = self.validate(tenant, app, component, &data).await?;
            return Ok(Deployed {
                number: live.number,
                sha256,
                title,
                callbacks,
                created: false,
            });
        }
        let (title, callbacks, booted) =
            self.validate(tenant, app, component.clone(), &data).await?;
        // A Python app is stored as it was booted: its files and its memory image.
        let (component, sha256) = match booted {
            Some(blob) => {
                if blob.len() > self.max_component_bytes {
                    return Err(Error::TooLarge {
                        size: blob.len(),
                        limit: self.max_component_bytes,
                    });
                }
                let sha256 = hex::encode(Sha256::digest(&blob));
                (blob, sha256)
            }
            None => (component, sha256),
        };
        let published = self
            .store
            .publish_version_with_files(
                tenant,
                app,
                NewVersion {
                    component: &component,
                    title: &title,
                    source,
                    visibility: self.new_app_visibility,
                },
                &assets,
                &data,
                now,
            )
            .await?;
        Ok(Deployed {
            number: published.number,
            sha256,
            title,
            callbacks,
            created: true,
        })
    }

    /// Load the component in the sandbox (import allowlist, compile, one instance reading
    /// info, layout and dependencies) and check its callback list and graph. The instance
    /// sees the app's current settings, as the live one will (none for a new app). A
    /// Python app's source bundle is booted instead (imports and warm-up under the boot
    /// deadline and the tenant's memory cap): its blob to store is returned.
    async fn validate(
        &self,
        tenant: &Slug,
        app: &Slug,
        component: Vec<u8>,
        data: &[DataFile],
    ) -> Result<(String, usize, Option<Vec<u8>>), Error> {
        // The tenant's limits and CPU share, as its live apps get them (a tenant that does
        // not exist yet is created with the default quotas).
        let (tenant_id, quotas) = match self.store.tenant_by_slug(tenant).await? {
            Some(found) => (found.id, found.quotas.callback()),
            None => (TenantId(0), Quotas::DEFAULT.callback()),
        };
        // The guest reads where it is served (`get_relative_path` in its layout).
        let prefix = crate::settings::pathname_prefix(tenant.as_str(), app.as_str());
        let (settings, owner) = match self.store.app_access(tenant, app, None).await? {
            Some(access) => (
                crate::settings::for_guest(self.store, self.secrets, access.app_id, &prefix)
                    .await?,
                quota::owner(access.tenant_id, access.app_id.0, &quotas),
            ),
            None => (
                sandbox::Settings::new([(
                    crate::settings::PATHNAME_PREFIX_SETTING.to_owned(),
                    prefix.clone(),
                    false,
                )]),
                quota::owner(tenant_id, 0, &quotas),
            ),
        };
        // The guest may read its data while loading (a layout listing a file's columns),
        // so the validation instance sees the folder the live one will.
        let metas: Vec<_> = data.iter().map(DataFile::meta).collect();
        let data_dir = match crate::appdata::manifest_sha256(&metas) {
            Some(hash) => Some(
                self.app_data
                    .materialize(
                        tenant_id,
                        &hash,
                        &metas,
                        crate::appdata::Source::Deploy(data),
                    )
                    .await?,
            ),
            None => None,
        };
        let sandbox = self.sandbox.clone();
        let options = LoadOptions {
            limits: quota::tenant_limits(&self.limits, &quotas),
            settings,
            owner,
            data_dir,
            // The check runs the layout without data sources, cache or HTTP: a layout that
            // needs them must cope with their errors (they are per-viewer, per-call things).
            ..LoadOptions::default()
        };
        if crate::python::is_bundle(&component) {
            let python = self.python.clone();
            let (booted, blob) = tokio::task::spawn_blocking(move || {
                python.boot(&component, options.limits, options.data_dir, &prefix)
            })
            .await??;
            let dependencies = Dependencies::parse(booted.dependencies_json())?;
            graph::check(&dependencies)?;
            return Ok((booted.info().title.clone(), dependencies.len(), Some(blob)));
        }
        let loaded =
            tokio::task::spawn_blocking(move || sandbox.load(&component, options)).await??;
        let dependencies = Dependencies::parse(loaded.dependencies_json())?;
        graph::check(&dependencies)?;
        Ok((loaded.info().title.clone(), dependencies.len(), None))
    }
}
