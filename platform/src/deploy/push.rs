//! One `git push`, from the hook's report to the live version: the repositories and their
//! `pre-receive` hook, the ref rules (a new app's first push deploys `main`, `main` is
//! never deleted, unrelated history is refused), the app's push lock, the checkout from
//! quarantine, the build and the deploy. No HTTP types: `http::git` runs `git
//! http-backend` and the hook's socket, and calls in here.
//!
//! Bare repositories live under `{data_dir}/git/{tenant}/{app}.git`. The hook posts the
//! ref updates to the socket named by `TESSERA_HOOK_SOCKET` and relays the lines it gets
//! back until the verdict line (`TESSERA-ACCEPT` or `TESSERA-REJECT`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::process::Command;
use tokio::sync::mpsc;

use super::{Error, Log, PushLock, RepoUse, say};
use crate::ids::{Slug, UserId};
use crate::policy::Principal;
use crate::state::AppState;

/// The branch whose pushes are built and deployed.
pub const DEPLOY_BRANCH: &str = "main";

/// The `pre-receive` hook installed in every bare repository.
const PRE_RECEIVE: &str = r#"#!/bin/sh
# Installed by Tessera: a push is accepted only if its build and deploy succeed.
if [ -z "$TESSERA_HOOK_SOCKET" ]; then
  echo "tessera: pushes must go through the Tessera server" >&2
  exit 1
fi
curl -sS -N --unix-socket "$TESSERA_HOOK_SOCKET" \
  -H "X-Git-Object-Directory: $GIT_OBJECT_DIRECTORY" \
  -H "X-Git-Alternate-Object-Directories: $GIT_ALTERNATE_OBJECT_DIRECTORIES" \
  --data-binary @- http://tessera/build | {
  while IFS= read -r line; do
    case "$line" in
      TESSERA-ACCEPT) exit 0 ;;
      TESSERA-REJECT) exit 1 ;;
      *) printf '%s\n' "$line" ;;
    esac
  done
  echo "tessera: the build did not finish; the push is rejected" >&2
  exit 1
}
"#;

/// `git` without the repository variables of the environment it runs in, killed when
/// dropped.
pub fn git() -> Command {
    let mut command = Command::new("git");
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
    ] {
        command.env_remove(var);
    }
    command.kill_on_drop(true);
    command
}

async fn run(command: &mut Command) -> std::io::Result<()> {
    let output = command.stdin(Stdio::null()).output().await?;
    if output.status.success() {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "{:?} failed: {}",
        command.as_std(),
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

/// An app's bare repository, ready for `git http-backend`.
pub struct Repo {
    /// The root of all repositories (`GIT_PROJECT_ROOT`).
    pub root: PathBuf,
    /// This app's repository.
    pub dir: PathBuf,
    /// Set when the app does not exist yet: hand it back to [`Ghost::remove_if_unborn`]
    /// once git is done with the request.
    pub ghost: Option<Ghost>,
}

/// Where the repository of `tenant/app` lives.
pub fn repo_dir(state: &AppState, tenant: &Slug, app: &Slug) -> (PathBuf, PathBuf) {
    let root = state.config.data_dir.join("git");
    let dir = root.join(tenant.as_str()).join(format!("{app}.git"));
    (root, dir)
}

/// Mark the repository of `tenant/app` in use, create it if needed and (re)install its
/// hook. With `new_app` (the app does not exist yet), the repository is removed after the
/// request unless a push created the app (see [`Ghost`]).
pub async fn open_repo(
    state: &AppState,
    tenant: &Slug,
    app: &Slug,
    new_app: bool,
) -> std::io::Result<Repo> {
    let (root, dir) = repo_dir(state, tenant, app);
    // Held while git works on the repository: a repository made for a push that created
    // no app is removed once nobody uses it.
    let in_use = state.builds.use_repo(&dir);
    ensure_repo(&dir).await?;
    let ghost = new_app.then(|| Ghost {
        state: state.clone(),
        tenant: tenant.clone(),
        app: app.clone(),
        dir: dir.clone(),
        in_use,
    });
    Ok(Repo { root, dir, ghost })
}

/// Create the bare repository if needed and (re)install its hook.
async fn ensure_repo(dir: &Path) -> std::io::Result<()> {
    if !dir.join("HEAD").exists() {
        tokio::fs::create_dir_all(dir).await?;
        run(git()
            .args([
                "init",
                "--bare",
                "--quiet",
                "--initial-branch",
                DEPLOY_BRANCH,
            ])
            .arg(dir))
        .await?;
        run(git()
            .arg("--git-dir")
            .arg(dir)
            .args(["config", "http.receivepack", "true"]))
        .await?;
    }
    let hook = dir.join("hooks/pre-receive");
    tokio::fs::create_dir_all(dir.join("hooks")).await?;
    if tokio::fs::read_to_string(&hook).await.ok().as_deref() != Some(PRE_RECEIVE) {
        let temporary = dir.join("hooks/pre-receive.tmp");
        tokio::fs::write(&temporary, PRE_RECEIVE).await?;
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o755)).await?;
        tokio::fs::rename(&temporary, &hook).await?;
    }
    Ok(())
}

/// A repository created for an app that does not exist yet: removed after the request
/// if, by then, no push created the app and no other request uses it.
pub struct Ghost {
    state: AppState,
    tenant: Slug,
    app: Slug,
    dir: PathBuf,
    in_use: RepoUse,
}

impl Ghost {
    /// Remove the repository unless the app exists now or another request uses it.
    pub async fn remove_if_unborn(self) {
        let exists = self
            .state
            .store
            .app_access(&self.tenant, &self.app, None)
            .await
            .map(|access| access.is_some());
        if !matches!(exists, Ok(false)) {
            return;
        }
        let (in_use, dir) = (self.in_use, self.dir);
        match tokio::task::spawn_blocking(move || in_use.remove_if_last()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(%e, dir = %dir.display(), "removing the repository of an app that was not created failed")
            }
            Err(e) => {
                tracing::warn!(%e, "removing the repository of an app that was not created failed")
            }
        }
    }
}

/// The app's push lock, once the build took it; held until [`AppLock::release`], after
/// git updated (or refused) the ref.
#[derive(Clone, Default)]
pub struct AppLock(Arc<Mutex<Option<PushLock>>>);

impl AppLock {
    fn hold(&self, guard: PushLock) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    }

    /// Let the next push to the app go.
    pub fn release(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Where the hook's git finds the pushed objects (still in quarantine).
#[derive(Debug, Default)]
pub struct Objects {
    /// `GIT_OBJECT_DIRECTORY` of the hook (empty when unset).
    pub directory: String,
    /// `GIT_ALTERNATE_OBJECT_DIRECTORIES` of the hook (empty when unset).
    pub alternates: String,
}

impl Objects {
    fn apply(&self, command: &mut Command) {
        if !self.directory.is_empty() {
            command.env("GIT_OBJECT_DIRECTORY", &self.directory);
        }
        if !self.alternates.is_empty() {
            command.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", &self.alternates);
        }
    }
}

/// One receive-pack request: who pushes to which app.
pub struct Push {
    state: AppState,
    tenant: Slug,
    app: Slug,
    repo: PathBuf,
    actor: String,
    /// The pusher, made a collaborator of the app its push creates.
    creator: Option<UserId>,
    /// Whether the app does not exist yet: the push must then deploy `main`.
    new_app: bool,
    app_lock: AppLock,
    /// The pusher's user, named as the author of the versions the push makes.
    pusher: Option<UserId>,
}

impl Push {
    /// A push by `principal` to the repository `repo` of `tenant/app`; `new_app` when the
    /// app does not exist yet. The push lock it takes is held by `app_lock`.
    pub fn new(
        state: &AppState,
        tenant: &Slug,
        app: &Slug,
        repo: &Path,
        principal: &Principal,
        new_app: bool,
        app_lock: AppLock,
    ) -> Push {
        Push {
            state: state.clone(),
            tenant: tenant.clone(),
            app: app.clone(),
            repo: repo.to_owned(),
            actor: principal.audit_actor(),
            creator: principal.user_id().filter(|_| new_app),
            new_app,
            app_lock,
            pusher: principal.user_id(),
        }
    }

    /// The hook's request: check, build and deploy the ref `updates` (git's `pre-receive`
    /// input). The lines returned are the build log, then the verdict line the hook exits
    /// on.
    pub fn receive(self: Arc<Self>, updates: String, objects: Objects) -> mpsc::Receiver<String> {
        let (log, lines) = Log::new(64);
        tokio::spawn(async move {
            let verdict = match self.deploy(&updates, &objects, &log).await {
                Ok(()) => "TESSERA-ACCEPT",
                Err(error) => {
                    for line in error.to_string().lines() {
                        say(&log, &format!("tessera: {line}")).await;
                    }
                    say(
                        &log,
                        "tessera: push rejected; the live version is unchanged",
                    )
                    .await;
                    "TESSERA-REJECT"
                }
            };
            say(&log, verdict).await;
        });
        lines
    }

    async fn deploy(&self, updates: &str, objects: &Objects, log: &Log) -> Result<(), Error> {
        let deploy_ref = format!("refs/heads/{DEPLOY_BRANCH}");
        // A push to an app that does not exist yet creates it by deploying main; anything
        // else would keep a repository (and its objects) for no app.
        let deploys = updates
            .lines()
            .any(|line| line.split_whitespace().nth(2) == Some(deploy_ref.as_str()));
        if self.new_app && !deploys {
            return Err(Error::FirstPushMustDeploy {
                tenant: self.tenant.clone(),
                app: self.app.clone(),
            });
        }
        for line in updates.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [old, new, refname] = fields[..] else {
                continue;
            };
            if refname != deploy_ref {
                say(
                    log,
                    &format!("tessera: {refname} is not the deploy branch ({DEPLOY_BRANCH}); stored without a deploy"),
                )
                .await;
                continue;
            }
            if new.bytes().all(|b| b == b'0') {
                return Err(Error::DeleteDeployBranch);
            }
            if !old.bytes().all(|b| b == b'0') && !self.related(old, new, objects).await? {
                return Err(Error::UnrelatedHistory {
                    old: old.to_owned(),
                    new: new.to_owned(),
                });
            }
            self.deploy_commit(old, new, objects, log).await?;
        }
        Ok(())
    }

    /// Whether commits `old` and `new` have a common ancestor (`git merge-base`; the
    /// pushed objects are still in quarantine, so git is pointed at them).
    async fn related(&self, old: &str, new: &str, objects: &Objects) -> Result<bool, Error> {
        let mut command = git();
        command
            .arg("--git-dir")
            .arg(&self.repo)
            .args(["merge-base", old, new]);
        objects.apply(&mut command);
        let output = command
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| Error::Git(format!("comparing the history failed: {e}")))?;
        match output.status.code() {
            Some(0) => Ok(true),
            // merge-base exits 1 when there is no common ancestor.
            Some(1) if output.stderr.is_empty() => Ok(false),
            _ => Err(Error::Git(format!(
                "comparing the history of {old:.12} and {new:.12} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))),
        }
    }

    /// The commit `refname` points at, or all zeros when it does not exist (as git writes
    /// a missing old value in the hook's input).
    async fn ref_value(&self, refname: &str) -> Result<String, Error> {
        let output = git()
            .arg("--git-dir")
            .arg(&self.repo)
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("{refname}^{{commit}}"))
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| Error::Git(format!("reading {refname} failed: {e}")))?;
        let value = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(match output.status.success() && !value.is_empty() {
            true => value,
            false => "0".repeat(40),
        })
    }

    async fn deploy_commit(
        &self,
        old: &str,
        commit: &str,
        objects: &Objects,
        log: &Log,
    ) -> Result<(), Error> {
        let (tenant, app) = (&self.tenant, &self.app);
        let builds = &self.state.builds;
        // One push per app at a time; the lock is held until git has updated the ref (it
        // goes with the hook, released when git http-backend exits).
        let guard = builds
            .lock_app(tenant, app, log)
            .await
            .map_err(Error::Build)?;
        self.app_lock.hold(guard);
        // A push that waited may be stale: git would refuse its ref update after the
        // deploy.
        let current = self
            .ref_value(&format!("refs/heads/{DEPLOY_BRANCH}"))
            .await?;
        if current != old {
            return Err(Error::BranchMoved);
        }
        let short = commit.get(..12).unwrap_or(commit);
        say(
            log,
            &format!("tessera: building {short} for {tenant}/{app}"),
        )
        .await;
        let work = builds.work_dir(tenant, app).map_err(Error::WorkDir)?;
        let src = work.path().join("src");
        tokio::fs::create_dir_all(&src)
            .await
            .map_err(Error::WorkDir)?;
        let mut checkout = git();
        checkout
            .arg("--git-dir")
            .arg(&self.repo)
            .arg("--work-tree")
            .arg(&src)
            .args(["read-tree", "--reset", "-u", commit])
            .env("GIT_INDEX_FILE", work.path().join("index"));
        objects.apply(&mut checkout);
        run(&mut checkout)
            .await
            .map_err(|e| Error::Git(format!("checking out {short} failed: {e}")))?;

        let built = builds
            .build(tenant, app, &src, log)
            .await
            .map_err(Error::Build)?;
        let (bytes, component) = (built.component, built.label);
        let files = super::Shipped {
            assets: built.assets,
            data: built.data,
        };
        let size = bytes.len();
        say(
            log,
            &format!(
                "tessera: validating {component} ({size} bytes, {} assets, {} data files)",
                files.assets.len(),
                files.data.len()
            ),
        )
        .await;
        let source = format!("git {commit} pushed by {}", self.actor);
        // A Python app's boot (its imports, under `[builds] python_boot_secs`) is work of
        // a build's size: it takes a build slot as a Rust build does.
        let _boot_slot = match crate::python::is_bundle(&bytes) {
            true => Some(builds.slot(log).await),
            false => None,
        };
        let now = self.state.clock.now_millis();
        let mut deployer = self.state.deployer();
        // A new app is for its tenant's members unless tessera.toml says otherwise.
        deployer.new_app_visibility = built
            .visibility
            .unwrap_or(crate::tenancy::Visibility::Tenant);
        let deployed = deployer
            .deploy_with_files(tenant, app, bytes, files, &source, now, false)
            .await
            .map_err(|e| Error::Invalid {
                component,
                source: Box::new(e),
            })?;
        // This server loads the new version before the pusher hears it is live, so that
        // its first viewer here does not wait for the load. A failure is the viewer's
        // problem as before (it is remembered and shown), not the push's.
        let preloaded = Instant::now();
        if let Err(error) = self.state.runtime.preload(tenant, app).await {
            tracing::warn!(%tenant, %app, %error, "loading a newly deployed version failed");
        }
        tracing::debug!(%tenant, %app, ms = preloaded.elapsed().as_millis() as u64, "new version loaded");
        say(
            log,
            &format!(
                "tessera: deployed version {} of {tenant}/{app}: {} ({} callbacks)",
                deployed.number, deployed.title, deployed.callbacks
            ),
        )
        .await;
        // Outside the publish transaction: at worst a version without its commit, pusher
        // and log (the source text names the commit and the pusher too).
        let log_text = log.transcript();
        let author = match self.pusher {
            Some(user) => match self.state.store.user(user).await {
                Ok(Some(user)) => format!("{} ({})", user.email, self.actor),
                _ => self.actor.clone(),
            },
            None => self.actor.clone(),
        };
        let details = crate::store::VersionDetails {
            commit,
            author: &author,
            build_log: &log_text,
        };
        if let Err(e) = self
            .state
            .store
            .set_version_details(tenant, app, deployed.number, details)
            .await
        {
            tracing::warn!(%e, "recording the version's commit and build log failed");
        }
        if let Some(user) = self.creator {
            // The author who created the app by pushing may keep deploying it.
            let change = crate::store::Change {
                actor: &self.actor,
                remote_addr: None,
                at: now,
            };
            let access = self.state.store.app_access(tenant, app, Some(user)).await?;
            if let Some(access) = access.filter(|a| !a.collaborator) {
                self.state
                    .store
                    .add_collaborator(access.tenant_id, access.app_id, user, &change)
                    .await
                    .map_err(Error::Collaborator)?;
            }
        }
        say(log, &format!("tessera: live at /apps/{tenant}/{app}/")).await;
        Ok(())
    }
}
