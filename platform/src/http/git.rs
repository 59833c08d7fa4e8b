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
//! streamed build log, which git shows as `remote:` lines. Everything the push means is
//! [`crate::deploy::push`]'s (the repositories and their hook, the ref rules, the app's
//! push lock, checkout, build and deploy); this module only carries it over HTTP, and
//! drops the hook's socket, and with it the app's lock, once git has updated the ref.

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
use tokio_util::io::{ReaderStream, StreamReader};

use crate::auth;
use crate::deploy;
use crate::deploy::push::{AppLock, Objects, Push};
use crate::ids::Slug;
use crate::policy::{self, Action, Principal, Resource};
use crate::state::AppState;

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
    if let Some(forwarder) = &state.forwarder {
        return forward(forwarder, request).await;
    }
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
            Err(auth::Error::TenantSuspended) => {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    crate::error::TENANT_SUSPENDED,
                );
            }
            Err(e) => return internal("checking the token failed", &e),
        };
    let new_app = match authorize(&state, &principal, &tenant, &app, push).await {
        Ok(new_app) => new_app,
        Err(response) => return response,
    };
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
    let repo = match deploy::push::open_repo(&state, &tenant, &app, new_app).await {
        Ok(repo) => repo,
        Err(e) => return internal("preparing the repository failed", &e),
    };
    let hook = match upload {
        true => match Hook::start(&state, &tenant, &app, &repo.dir, &principal, new_app) {
            Ok(hook) => Some(hook),
            Err(e) => return internal("preparing the build failed", &e),
        },
        false => None,
    };
    let path_info = format!("/{tenant}/{app}.git/{rest}");
    run_cgi(
        &repo.root, &path_info, &principal, request, hook, repo.ghost,
    )
    .await
    .unwrap_or_else(|e| internal("git http-backend failed", &e))
}

/// A web replica: the request goes to the builder as it came, and its answer back.
async fn forward(forwarder: &crate::cluster::Forwarder, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    match forwarder
        .forward(
            parts.method,
            &path_and_query,
            &parts.headers,
            body.into_data_stream(),
        )
        .await
    {
        Ok(answer) => {
            let mut response = Response::new(Body::from_stream(answer.body));
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            response
        }
        Err(crate::cluster::ForwardError::NotGit) => not_found(),
        Err(e @ crate::cluster::ForwardError::Busy) => {
            plain(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
        Err(e @ crate::cluster::ForwardError::Unreachable(_)) => {
            tracing::warn!(error = ?e, builder = forwarder.builder_url(), "forwarding to the builder failed");
            plain(StatusCode::BAD_GATEWAY, &e.to_string())
        }
    }
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
    // Far too large: answer at once and hang up. Somewhat too large: read it below (and drop
    // it) so the client, still writing its body, sees the answer instead of a reset.
    if declared.is_some_and(|length| length > limit.saturating_mul(4)) {
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

/// Run `git http-backend` for one request: the request body streams into its stdin, its
/// CGI headers become the response's, the rest of its stdout streams out as the body.
async fn run_cgi(
    root: &Path,
    path_info: &str,
    principal: &Principal,
    request: Request,
    hook: Option<Hook>,
    ghost: Option<deploy::push::Ghost>,
) -> std::io::Result<Response> {
    let (parts, body) = request.into_parts();
    let mut command = deploy::push::git();
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

impl Drop for Hook {
    fn drop(&mut self) {
        self.server.abort();
        self.app_lock.release();
    }
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
        let push = Arc::new(Push::new(
            state,
            tenant,
            app,
            repo,
            principal,
            new_app,
            app_lock.clone(),
        ));
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
    let lines = push.receive(updates, objects);
    let stream = futures_util::stream::unfold(lines, |mut lines| async move {
        lines
            .recv()
            .await
            .map(|line| (Ok::<_, Infallible>(line), lines))
    });
    Body::from_stream(stream).into_response()
}
