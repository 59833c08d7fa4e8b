//! `git push` deploys: Git over smart HTTP at `/git/{tenant}/{app}.git`.
//!
//! The pack protocol is the real `git http-backend`, run as a CGI per request against a
//! bare repository per app under `{data_dir}/git/`. Requests authenticate with HTTP Basic
//! (any user name, an API token as the password) and are authorized by the policy: fetch
//! needs `DeployApp` (the source is the deployers'), push needs `DeployApp` too (or
//! `CreateApp` in the tenant when the app does not exist yet; the first successful deploy
//! of `main` creates it, and a repository made for a push that created nothing is removed).
//! A push's request body is limited (`[builds] max_push_mb`, counted as it streams) and so
//! are all of a tenant's repositories together (`[builds] repo_quota_mb`).
//!
//! Each bare repository has a `pre-receive` hook that calls back into this server before
//! git accepts a push: for a push of a receive-pack request, the server listens on a Unix
//! socket in a private temporary directory (0700) and hands its path to the hook through
//! the CGI environment. The hook posts the ref updates there with `curl` and relays the
//! streamed build log, which git shows as `remote:` lines. A push to the deploy branch
//! (`main`) waits for the app's push lock, is checked out into a fresh working directory,
//! built by [`crate::deploy::Builds`] as `tessera.toml` says and deployed through the
//! [`crate::deploy::Deployer`]; any failure rejects the push and leaves the live version
//! untouched. The app's lock is held until git has updated the ref, and a push that
//! waited behind another one is refused if the branch moved meanwhile, so the branch and
//! the live version never disagree.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine;
use futures_util::TryStreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::auth;
use crate::deploy::say;
use crate::ids::Slug;
use crate::policy::{self, Action, Principal, Resource};
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

/// The git routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/git/{tenant}/{repo}/{*rest}", any(serve_git))
}

fn plain(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "repository not found")
}

/// 401 with a Basic challenge, so git asks for credentials.
fn ask(message: &str) -> Response {
    let mut response = plain(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"tessera\""),
    );
    response
}

fn internal(what: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "{what}");
    plain(StatusCode::INTERNAL_SERVER_ERROR, what)
}

/// The token in `Authorization: Basic` (as the password) or `Bearer`.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(password.to_owned())
}

async fn serve_git(
    State(state): State<AppState>,
    UrlPath((tenant, repo, rest)): UrlPath<(String, String, String)>,
    request: Request,
) -> Response {
    let Some(app) = repo.strip_suffix(".git") else {
        return not_found();
    };
    let (Ok(tenant), Ok(app)) = (Slug::parse(&tenant), Slug::parse(app)) else {
        return not_found();
    };
    let push = rest == "git-receive-pack"
        || request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "service=git-receive-pack"));
    let Some(token) = presented_token(request.headers()) else {
        return ask("authentication required: use an API token as the password");
    };
    let principal =
        match auth::token::authenticate(&state.store, &token, state.clock.now_millis()).await {
            Ok(principal) => Principal::Token(principal),
            Err(auth::Error::InvalidCredentials) => {
                return ask("the token is invalid, expired or revoked");
            }
            Err(e) => return internal("checking the token failed", &e),
        };
    let new_app = match authorize(&state, &principal, &tenant, &app, push).await {
        Ok(new_app) => new_app,
        Err(response) => return response,
    };
    let root = state.config.data_dir.join("git");
    let repo_dir = root.join(tenant.as_str()).join(format!("{app}.git"));
    let upload = push && request.method() == axum::http::Method::POST;
    // A push is refused before git sees it when it is too large or the tenant's
    // repositories are full (on the first request too, where git shows the message).
    let (request, body_bytes) = match upload {
        true => match spool(&state, request).await {
            Ok(spooled) => spooled,
            Err(response) => return response,
        },
        false => (request, 0),
    };
    if push {
        match state.builds.check_repo_quota(&tenant, body_bytes).await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return plain(StatusCode::PAYLOAD_TOO_LARGE, &message),
            Err(e) => return internal("measuring the tenant's repositories failed", &e),
        }
    }
    // Held while git works on the repository: a repository made for a push that created
    // no app is removed once nobody uses it.
    let in_use = state.builds.use_repo(&repo_dir);
    if let Err(e) = ensure_repo(&repo_dir).await {
        return internal("preparing the repository failed", &e);
    }
    let ghost = new_app.then(|| Ghost {
        state: state.clone(),
        tenant: tenant.clone(),
        app: app.clone(),
        dir: repo_dir.clone(),
        in_use,
    });
    let hook = match upload {
        true => match Hook::start(&state, &tenant, &app, &repo_dir, &principal, new_app) {
            Ok(hook) => Some(hook),
            Err(e) => return internal("preparing the build failed", &e),
        },
        false => None,
    };
    let path_info = format!("/{tenant}/{app}.git/{rest}");
    run_cgi(&root, &path_info, &principal, request, hook, ghost)
        .await
        .unwrap_or_else(|e| internal("git http-backend failed", &e))
}

/// The request body of a push, read into a temporary file up to `[builds] max_push_mb`:
/// over it, the push is refused (413) before git sees a byte. The request comes back with
/// the file as its body, and the body's size.
async fn spool(state: &AppState, request: Request) -> Result<(Request, u64), Response> {
    let limit = state.builds.max_push_bytes();
    let too_large = || {
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "this push is larger than the server's limit of {} MiB ([builds] max_push_mb): push fewer or smaller files",
                limit >> 20
            ),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    let file = tempfile::tempfile().map_err(|e| internal("storing the push failed", &e))?;
    let mut file = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut size: u64 = 0;
    use futures_util::StreamExt;
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| internal("reading the push failed", &e))?;
        size += chunk.len() as u64;
        if size > limit {
            // Read (and drop) the rest, up to four times the limit, so the client is not
            // cut off mid-upload and sees the answer; beyond that, hang up.
            while let Some(Ok(chunk)) = stream.next().await {
                size += chunk.len() as u64;
                if size > limit.saturating_mul(4) {
                    break;
                }
            }
            return Err(too_large());
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| internal("storing the push failed", &e))?;
    }
    file.flush()
        .await
        .map_err(|e| internal("storing the push failed", &e))?;
    file.seek(std::io::SeekFrom::Start(0))
        .await
        .map_err(|e| internal("storing the push failed", &e))?;
    let body = Body::from_stream(ReaderStream::new(file));
    Ok((Request::from_parts(parts, body), size))
}

/// A repository created for an app that does not exist yet: removed after the request
/// if, by then, no push created the app and no other request uses it.
struct Ghost {
    state: AppState,
    tenant: Slug,
    app: Slug,
    dir: PathBuf,
    in_use: crate::deploy::RepoUse,
}

impl Ghost {
    async fn remove_if_unborn(self) {
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

/// Fetch: may view the app. Push: may deploy it, or may create apps in its tenant when it
/// does not exist. A principal who may not even see the app gets the 404 of a missing one.
/// `Ok(true)` when the push would create the app.
async fn authorize(
    state: &AppState,
    principal: &Principal,
    tenant: &Slug,
    app: &Slug,
    push: bool,
) -> Result<bool, Response> {
    let access = state
        .store
        .app_access(tenant, app, principal.user_id())
        .await
        .map_err(|e| internal("checking app access failed", &e))?;
    let forbidden = || plain(StatusCode::FORBIDDEN, "you may not push to this app");
    match access {
        Some(access) => {
            let resource = Resource::App(access);
            if policy::authorize(principal, Action::ViewApp, &resource).is_err() {
                return Err(not_found());
            }
            // Fetching the source needs the right to deploy: viewers see the app, not
            // its history.
            if policy::authorize(principal, Action::DeployApp, &resource).is_err() {
                return Err(match push {
                    true => forbidden(),
                    false => plain(
                        StatusCode::FORBIDDEN,
                        "you may not fetch this app's source: that needs the right to deploy it",
                    ),
                });
            }
            Ok(false)
        }
        None if !push => Err(not_found()),
        None => {
            let tenant_row = state
                .store
                .tenant_by_slug(tenant)
                .await
                .map_err(|e| internal("looking up the tenant failed", &e))?
                .ok_or_else(not_found)?;
            policy::authorize(
                principal,
                Action::CreateApp,
                &Resource::Tenant(tenant_row.id),
            )
            .map(|()| true)
            .map_err(|_| match principal.role_in(tenant_row.id) {
                Some(_) => forbidden(),
                None => not_found(),
            })
        }
    }
}

fn git() -> Command {
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

/// Run `git http-backend` for one request: the request body streams into its stdin, its
/// CGI headers become the response's, the rest of its stdout streams out as the body.
async fn run_cgi(
    root: &Path,
    path_info: &str,
    principal: &Principal,
    request: Request,
    hook: Option<Hook>,
    ghost: Option<Ghost>,
) -> std::io::Result<Response> {
    let (parts, body) = request.into_parts();
    let mut command = git();
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path_info)
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REMOTE_USER", principal.audit_actor())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, variable) in [
        (header::CONTENT_TYPE.as_str(), "CONTENT_TYPE"),
        (header::CONTENT_LENGTH.as_str(), "CONTENT_LENGTH"),
        // git http-backend inflates gzip request bodies itself.
        (header::CONTENT_ENCODING.as_str(), "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "HTTP_GIT_PROTOCOL"),
    ] {
        if let Some(value) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
            command.env(variable, value);
        }
    }
    if let Some(hook) = &hook {
        command.env("TESSERA_HOOK_SOCKET", &hook.socket);
    }
    let mut child = command.spawn()?;
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(std::io::Error::other("git http-backend has no pipes"));
    };
    tokio::spawn(async move {
        let mut reader = StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
        if let Err(e) = tokio::io::copy(&mut reader, &mut stdin).await {
            tracing::debug!(%e, "git request body ended early");
        }
    });
    tokio::spawn(async move {
        let mut errors = String::new();
        let _ = stderr.read_to_string(&mut errors).await;
        let status = child.wait().await;
        // The hook's socket lives until git is done with the push.
        drop(hook);
        if let Some(ghost) = ghost {
            ghost.remove_if_unborn().await;
        }
        if !errors.trim().is_empty() || !status.as_ref().is_ok_and(|s| s.success()) {
            tracing::info!(?status, errors = errors.trim(), "git http-backend");
        }
    });
    let mut stdout = BufReader::new(stdout);
    let mut response = Response::builder();
    let mut status = StatusCode::OK;
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).await? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            status = code.parse().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else {
            response = response.header(name, value);
        }
    }
    response
        .status(status)
        .body(Body::from_stream(ReaderStream::new(stdout)))
        .map_err(std::io::Error::other)
}

/// The per-push callback the `pre-receive` hook reaches.
struct Hook {
    socket: PathBuf,
    server: tokio::task::JoinHandle<()>,
    app_lock: AppLock,
    _dir: tempfile::TempDir,
}

/// The app's push lock, once the build took it; released when the hook goes, after git
/// updated (or refused) the ref.
type AppLock = Arc<std::sync::Mutex<Option<crate::deploy::PushLock>>>;

impl Drop for Hook {
    fn drop(&mut self) {
        self.server.abort();
        self.app_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

struct Push {
    state: AppState,
    tenant: Slug,
    app: Slug,
    repo: PathBuf,
    actor: String,
    /// The pusher, made a collaborator of the app its push creates.
    creator: Option<crate::ids::UserId>,
    /// Whether the app does not exist yet: the push must then deploy `main`.
    new_app: bool,
    app_lock: AppLock,
    /// The pusher's user, named as the author of the versions the push makes.
    pusher: Option<crate::ids::UserId>,
}

impl Hook {
    fn start(
        state: &AppState,
        tenant: &Slug,
        app: &Slug,
        repo: &Path,
        principal: &Principal,
        new_app: bool,
    ) -> std::io::Result<Hook> {
        // A private (0700) directory: only this server's user can reach the socket.
        let dir = tempfile::Builder::new().prefix("tessera-push-").tempdir()?;
        let socket = dir.path().join("hook.sock");
        let listener = tokio::net::UnixListener::bind(&socket)?;
        let app_lock = AppLock::default();
        let push = Arc::new(Push {
            state: state.clone(),
            tenant: tenant.clone(),
            app: app.clone(),
            repo: repo.to_owned(),
            actor: principal.audit_actor(),
            creator: principal.user_id().filter(|_| new_app),
            new_app,
            app_lock: app_lock.clone(),
            pusher: principal.user_id(),
        });
        let routes = Router::new()
            .route("/build", post(hook_build))
            .with_state(push);
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, routes).await {
                tracing::warn!(%e, "push hook socket failed");
            }
        });
        Ok(Hook {
            socket,
            server,
            app_lock,
            _dir: dir,
        })
    }
}

/// Where the hook's git finds the pushed objects (still in quarantine).
struct Objects {
    directory: String,
    alternates: String,
}

/// The hook's request: the ref updates in, the build log out, then the verdict line.
async fn hook_build(
    State(push): State<Arc<Push>>,
    headers: HeaderMap,
    updates: String,
) -> Response {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let objects = Objects {
        directory: get("x-git-object-directory"),
        alternates: get("x-git-alternate-object-directories"),
    };
    let (log, lines) = crate::deploy::Log::new(64);
    tokio::spawn(async move {
        let verdict = match build(&push, &updates, &objects, &log).await {
            Ok(()) => "TESSERA-ACCEPT",
            Err(message) => {
                for line in message.lines() {
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
    let stream = futures_util::stream::unfold(lines, |mut lines| async move {
        lines
            .recv()
            .await
            .map(|line| (Ok::<_, Infallible>(line), lines))
    });
    Body::from_stream(stream).into_response()
}

/// The commit `refname` points at in `repo`, or all zeros when it does not exist (as git
/// writes a missing old value in the hook's input).
async fn ref_value(repo: &Path, refname: &str) -> Result<String, String> {
    let output = git()
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{refname}^{{commit}}"))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("reading {refname} failed: {e}"))?;
    let value = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(match output.status.success() && !value.is_empty() {
        true => value,
        false => "0".repeat(40),
    })
}

async fn build(
    push: &Push,
    updates: &str,
    objects: &Objects,
    log: &crate::deploy::Log,
) -> Result<(), String> {
    let deploy_ref = format!("refs/heads/{DEPLOY_BRANCH}");
    // A push to an app that does not exist yet creates it by deploying main; anything
    // else would keep a repository (and its objects) for no app.
    let deploys = updates
        .lines()
        .any(|line| line.split_whitespace().nth(2) == Some(deploy_ref.as_str()));
    if push.new_app && !deploys {
        return Err(format!(
            "{}/{} does not exist yet: its first push must deploy the {DEPLOY_BRANCH} branch (git push <remote> {DEPLOY_BRANCH})",
            push.tenant, push.app
        ));
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
            return Err(format!(
                "the deploy branch {DEPLOY_BRANCH} cannot be deleted"
            ));
        }
        if !old.bytes().all(|b| b == b'0') && !related(push, old, new, objects).await? {
            return Err(format!(
                "{new:.12} shares no history with the deployed {DEPLOY_BRANCH} ({old:.12}): \
                 a force-push of unrelated history is refused.\n\
                 Fetch {DEPLOY_BRANCH} and build on it (an amended or rebased commit is fine), \
                 or push to a new app."
            ));
        }
        deploy_commit(push, old, new, objects, log).await?;
    }
    Ok(())
}

/// Whether commits `old` and `new` have a common ancestor (`git merge-base`; the pushed
/// objects are still in quarantine, so git is pointed at them).
async fn related(push: &Push, old: &str, new: &str, objects: &Objects) -> Result<bool, String> {
    let mut command = git();
    command
        .arg("--git-dir")
        .arg(&push.repo)
        .args(["merge-base", old, new]);
    if !objects.directory.is_empty() {
        command.env("GIT_OBJECT_DIRECTORY", &objects.directory);
    }
    if !objects.alternates.is_empty() {
        command.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", &objects.alternates);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("comparing the history failed: {e}"))?;
    match output.status.code() {
        Some(0) => Ok(true),
        // merge-base exits 1 when there is no common ancestor.
        Some(1) if output.stderr.is_empty() => Ok(false),
        _ => Err(format!(
            "comparing the history of {old:.12} and {new:.12} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

async fn deploy_commit(
    push: &Push,
    old: &str,
    commit: &str,
    objects: &Objects,
    log: &crate::deploy::Log,
) -> Result<(), String> {
    let (tenant, app) = (&push.tenant, &push.app);
    let builds = &push.state.builds;
    // One push per app at a time; the lock is held until git has updated the ref (it
    // goes with the hook, dropped when git http-backend exits).
    let guard = builds.lock_app(tenant, app, log).await?;
    *push.app_lock.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    // A push that waited may be stale: git would refuse its ref update after the deploy.
    let current = ref_value(&push.repo, &format!("refs/heads/{DEPLOY_BRANCH}")).await?;
    if current != old {
        return Err(format!(
            "{DEPLOY_BRANCH} moved while this push waited (another push was deployed); fetch, merge and push again"
        ));
    }
    let short = commit.get(..12).unwrap_or(commit);
    say(
        log,
        &format!("tessera: building {short} for {tenant}/{app}"),
    )
    .await;
    let work = builds
        .work_dir(tenant, app)
        .map_err(|e| format!("cannot create the build directory: {e}"))?;
    let src = work.path().join("src");
    tokio::fs::create_dir_all(&src)
        .await
        .map_err(|e| format!("cannot create the build directory: {e}"))?;
    let mut checkout = git();
    checkout
        .arg("--git-dir")
        .arg(&push.repo)
        .arg("--work-tree")
        .arg(&src)
        .args(["read-tree", "--reset", "-u", commit])
        .env("GIT_INDEX_FILE", work.path().join("index"));
    if !objects.directory.is_empty() {
        checkout.env("GIT_OBJECT_DIRECTORY", &objects.directory);
    }
    if !objects.alternates.is_empty() {
        checkout.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", &objects.alternates);
    }
    run(&mut checkout)
        .await
        .map_err(|e| format!("checking out {short} failed: {e}"))?;

    let built = builds.build(tenant, app, &src, log).await?;
    let (bytes, assets, component) = (built.component, built.assets, built.label);
    let size = bytes.len();
    say(
        log,
        &format!(
            "tessera: validating {component} ({size} bytes, {} assets)",
            assets.len()
        ),
    )
    .await;
    let source = format!("git {commit} pushed by {}", push.actor);
    let now = push.state.clock.now_millis();
    let mut deployer = push.state.deployer();
    // A new app is for its tenant's members unless tessera.toml says otherwise.
    deployer.new_app_visibility = built
        .visibility
        .unwrap_or(crate::tenancy::Visibility::Tenant);
    let deployed = deployer
        .deploy_with_assets(tenant, app, bytes, assets, &source, now, false)
        .await
        .map_err(|e| format!("{component} failed validation: {e}"))?;
    say(
        log,
        &format!(
            "tessera: deployed version {} of {tenant}/{app}: {} ({} callbacks)",
            deployed.number, deployed.title, deployed.callbacks
        ),
    )
    .await;
    // Outside the publish transaction: at worst a version without its commit, pusher and
    // log (the source text names the commit and the pusher too).
    let log_text = log.transcript();
    let author = match push.pusher {
        Some(user) => match push.state.store.user(user).await {
            Ok(Some(user)) => format!("{} ({})", user.email, push.actor),
            _ => push.actor.clone(),
        },
        None => push.actor.clone(),
    };
    let details = crate::store::VersionDetails {
        commit,
        author: &author,
        build_log: &log_text,
    };
    if let Err(e) = push
        .state
        .store
        .set_version_details(tenant, app, deployed.number, details)
        .await
    {
        tracing::warn!(%e, "recording the version's commit and build log failed");
    }
    if let Some(user) = push.creator {
        // The author who created the app by pushing may keep deploying it.
        let change = crate::store::Change {
            actor: &push.actor,
            remote_addr: None,
            at: now,
        };
        let access = push
            .state
            .store
            .app_access(tenant, app, Some(user))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(access) = access.filter(|a| !a.collaborator) {
            push.state
                .store
                .add_collaborator(access.tenant_id, access.app_id, user, &change)
                .await
                .map_err(|e| format!("making the pusher a collaborator failed: {e}"))?;
        }
    }
    say(log, &format!("tessera: live at /apps/{tenant}/{app}/")).await;
    Ok(())
}
