//! The web console: the home page's gallery, an app's page with its forms, its own
//! stylesheet, and the HTML error pages of the platform's origin. Server-rendered, no
//! script; every form posts with the session's CSRF token and calls the same
//! [`crate::manage`] function as the REST API.

use askama::Template;
use axum::Router;
use axum::extract::{Form, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower_sessions::Session;

use super::session::{ClientAddr, FormChange, csrf_token, form_context};
use crate::error::ApiError;
use crate::manage::{self, Refusal};
use crate::policy::{Action, Principal, Resource};
use crate::state::AppState;
use crate::store::Change;

/// A router that writes down every route it serves: the console's route table is both
/// what it answers and what the authorization matrix test walks, so a page or form
/// without a row in the matrix fails that test.
pub(super) struct Routes {
    router: Router<AppState>,
    table: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn new() -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Serve `GET path`.
    pub(super) fn get<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, get(handler));
        self.table.push(("GET", path));
        self
    }

    /// Serve `POST path` (a form).
    pub(super) fn post<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, post(handler));
        self.table.push(("POST", path));
        self
    }
}

fn table() -> Routes {
    let routes = Routes::new()
        .get("/", home)
        .get("/ui/static/tessera.css", stylesheet)
        .get("/ui/static/console-log.js", log_script)
        .get("/ui/{tenant}/apps/{app}", app_page)
        .post("/ui/{tenant}/apps/{app}/rollback", rollback)
        .post("/ui/{tenant}/apps/{app}/settings", set_setting)
        .post("/ui/{tenant}/apps/{app}/settings/delete", delete_setting)
        .post("/ui/{tenant}/apps/{app}/visibility", set_visibility)
        .post("/ui/{tenant}/apps/{app}/delete", delete_app);
    let routes = super::console_connections::routes(super::console_tenant::routes(routes));
    let routes = super::console_device::routes(routes);
    let routes = super::console_usage::routes(routes);
    super::console_platform::routes(routes)
}

/// The console's routes.
pub fn router() -> Router<AppState> {
    table().router
}

/// Every (method, path template) the console serves.
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    table().table
}

/// A form's fields that carry the session's CSRF token (the `csrf` field of every form).
pub(super) trait CsrfField {
    /// The token the form carried.
    fn csrf(&self) -> &str;
}

/// `CsrfField` for form structs with a `csrf: String` field.
macro_rules! csrf_field {
    ($($form:ty),* $(,)?) => {
        $(impl $crate::http::console::CsrfField for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}
pub(super) use csrf_field;

/// A console form as posted, past the check every form makes first (the session's CSRF
/// token): who posted it, their session, the fields, and [`Posted::change`] for the audit
/// row. A form's handler takes this (after its `Path`), calls one domain function and maps
/// the result to a redirect with a notice or to the page with the form's error.
pub(super) struct Posted<F> {
    pub state: AppState,
    pub principal: Principal,
    pub session: Session,
    pub fields: F,
    form_change: FormChange,
}

impl<F> Posted<F> {
    /// The audit row's who, from where and when.
    pub(super) fn change(&self) -> Change<'_> {
        self.form_change.change()
    }
}

impl<F> FromRequest<AppState> for Posted<F>
where
    F: DeserializeOwned + CsrfField + Send,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let principal = Principal::from_request_parts(&mut parts, state).await?;
        let session = Session::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let axum::Extension(ClientAddr(addr)) =
            axum::Extension::<ClientAddr>::from_request_parts(&mut parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
        let Form(fields) = Form::<F>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let csrf = fields.csrf().to_owned();
        let form_change = form_context(state, &session, &principal, addr, &csrf).await?;
        Ok(Posted {
            state: state.clone(),
            principal,
            session,
            fields,
            form_change,
        })
    }
}

const STYLESHEET: &str = include_str!("../../../admin-ui/static/tessera.css");

async fn stylesheet() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        STYLESHEET,
    )
        .into_response()
}

const LOG_SCRIPT: &str = include_str!("../../../admin-ui/static/console-log.js");

/// The app page's script that follows the app's log (the page works without it).
async fn log_script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        LOG_SCRIPT,
    )
        .into_response()
}

/// What the layout shows around every page: who is signed in, their tenants (the
/// switcher), the sign-out form's CSRF token and where sign-in comes back to.
pub(super) struct Chrome {
    pub email: Option<String>,
    pub tenants: Vec<(String, String)>,
    pub tenant: Option<String>,
    /// The person manages the members of `tenant` (the layout links its admin pages).
    pub admin: bool,
    /// The person is a platform superadmin (the layout links the platform's pages).
    pub superadmin: bool,
    pub csrf: String,
    pub here: String,
}

/// The layout's facts for `principal` on the page `here`.
pub(super) async fn chrome(
    state: &AppState,
    principal: &Principal,
    session: &Session,
    here: &str,
    tenant: Option<&str>,
) -> Result<Chrome, Response> {
    let csrf = csrf_token(session).await?;
    let here = url_encode(here);
    let mut chrome = Chrome {
        email: None,
        tenants: Vec::new(),
        tenant: tenant.filter(|t| !t.is_empty()).map(str::to_owned),
        admin: false,
        superadmin: matches!(principal, Principal::User(u) if u.superadmin),
        csrf,
        here,
    };
    if let Principal::User(user) = principal {
        let internal = |e: &dyn std::fmt::Display| {
            ApiError::internal("loading the page failed", e).into_response()
        };
        chrome.email = state
            .store
            .user(user.id)
            .await
            .map_err(|e| internal(&e))?
            .map(|u| u.email);
        let listed = state
            .store
            .list_tenants(Some(user.id), None, 100)
            .await
            .map_err(|e| internal(&e))?;
        chrome.admin = chrome.tenant.as_deref().is_some_and(|slug| {
            listed.iter().any(|t| {
                t.slug == slug
                    && manage::allow(principal, Action::ManageMembers, &Resource::Tenant(t.id))
                        .is_ok()
            })
        });
        chrome.tenants = listed.into_iter().map(|t| (t.slug, t.name)).collect();
    }
    Ok(chrome)
}

/// `text` as a URL query value.
pub(super) fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A time in milliseconds since the epoch, as `2026-12-05 13:04 UTC`.
pub(super) fn when(millis: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(millis / 1000)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|_| millis.to_string())
}

pub(super) fn render(page: &impl Template, status: StatusCode) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::internal("rendering a page failed", &e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "console_error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    heading: &'a str,
    message: &'a str,
    what_to_do: &'a str,
}

/// An error page that says what happened and what to do.
pub(super) async fn error_page(
    state: &AppState,
    principal: &Principal,
    session: &Session,
    status: StatusCode,
    message: &str,
) -> Response {
    let (heading, what_to_do) = match status {
        StatusCode::NOT_FOUND => (
            "Not found",
            "Check the address. If someone sent you this link, the page may have been deleted or you may need to sign in with another account.",
        ),
        StatusCode::FORBIDDEN => (
            "Not allowed",
            "Your role does not allow this. Ask an administrator of the tenant for access.",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "Tenant suspended",
            "A platform administrator suspended this tenant. Ask them to resume it; until then its apps, pushes and tokens do not work.",
        ),
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT => (
            "That did not work",
            "Go back, correct the form and try again.",
        ),
        _ => (
            "Something went wrong",
            "Try again in a moment. If it keeps happening, tell the platform's operator the time it happened.",
        ),
    };
    let chrome = match chrome(state, principal, session, "/", None).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    render(
        &ErrorPage {
            chrome,
            heading,
            message,
            what_to_do,
        },
        status,
    )
}

/// Whether the client asked for HTML (a browser) rather than JSON.
pub(super) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// The platform origin's unknown paths: an HTML page for browsers, the API's JSON error
/// shape for everything else.
pub(super) async fn not_found(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
    headers: HeaderMap,
) -> Response {
    if wants_html(&headers) {
        error_page(
            &state,
            &principal,
            &session,
            StatusCode::NOT_FOUND,
            "There is no page at this address.",
        )
        .await
    } else {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such page").into_response()
    }
}

/// A refusal as a page; a signed-out visitor is sent to sign in and back instead.
pub(super) async fn refused(
    state: &AppState,
    principal: &Principal,
    session: &Session,
    here: &str,
    refusal: Refusal,
) -> Response {
    if matches!(refusal, Refusal::Unauthenticated) {
        return sign_in_and_back(here);
    }
    // The API's wording of the refusal is meant for people; its status picks the page.
    let api = ApiError::from(refusal);
    error_page(state, principal, session, api.status, &api.message).await
}

fn sign_in_and_back(here: &str) -> Response {
    Redirect::to(&format!("/login?next={}", url_encode(here))).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct HomeQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    tenant: String,
    after: Option<String>,
}

/// One app as a card.
struct Card {
    tenant: String,
    tenant_name: String,
    name: String,
    title: String,
    version: i64,
    deployed: String,
    deployed_by: String,
    manage: bool,
}

#[derive(Template)]
#[template(path = "console_home.html")]
struct HomePage {
    chrome: Chrome,
    search: String,
    apps: Vec<Card>,
    next: Option<String>,
}

/// `/`: the apps the person may open, searchable, 50 a page.
async fn home(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
    uri: Uri,
    Query(query): Query<HomeQuery>,
) -> Response {
    let here = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let gallery = manage::gallery(
        &state,
        &principal,
        query.q.trim(),
        Some(query.tenant.as_str()).filter(|t| !t.is_empty()),
        query.after.as_deref(),
    )
    .await;
    let gallery = match gallery {
        Ok(g) => g,
        Err(r) => return refused(&state, &principal, &session, &here, r).await,
    };
    let chrome = match chrome(&state, &principal, &session, &here, Some(&query.tenant)).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let next = gallery.next.map(|after| {
        format!(
            "/?q={}&tenant={}&after={}",
            url_encode(query.q.trim()),
            url_encode(&query.tenant),
            url_encode(&after)
        )
    });
    let apps = gallery
        .apps
        .into_iter()
        .map(|a| Card {
            manage: manage::may(&principal, Action::DeployApp, a.access),
            deployed: when(a.deployed_at),
            tenant: a.tenant,
            tenant_name: a.tenant_name,
            name: a.name,
            title: a.title,
            version: a.version,
            deployed_by: a.deployed_by,
        })
        .collect();
    render(
        &HomePage {
            chrome,
            search: query.q.trim().to_owned(),
            apps,
            next,
        },
        StatusCode::OK,
    )
}

/// A version as its row shows it.
struct VersionRow {
    number: i64,
    live: bool,
    commit: Option<String>,
    by: String,
    when: String,
    size: String,
}

/// A setting as its row shows it: a secret's value never.
struct SettingRow {
    name: String,
    value: Option<String>,
}

#[derive(Template)]
#[template(path = "console_app.html")]
struct AppPage {
    chrome: Chrome,
    tenant: String,
    name: String,
    title: String,
    live: Option<i64>,
    visibility: String,
    remote: String,
    /// The platform's URL (for `tessera login`).
    platform_url: String,
    versions: Vec<VersionRow>,
    settings: Vec<SettingRow>,
    deploy: bool,
    manage: bool,
    /// The live version's callback graph (who may deploy it).
    graph: Option<crate::dash::graph::Drawing>,
    /// The latest log lines, newest first: (when, version, stream, text, request id).
    log: Vec<(String, i64, String, String, String)>,
    /// Where the page's script follows the log from (`None`: the feed did not answer).
    log_next: Option<String>,
    /// The lines come from every replica (Redis), not this server alone.
    log_shared: bool,
    /// The usage figures and charts (who may deploy it).
    usage: Option<super::console_usage::UsageView>,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Notice {
    done: Option<String>,
    /// The usage section's window (`1h`, `6h`, `24h`).
    window: Option<String>,
}

/// What a `?done=` after a form means.
fn notice_text(done: &str) -> Option<&'static str> {
    Some(match done {
        "rollback" => "The version is live.",
        "setting" => "The setting is saved.",
        "setting-deleted" => "The setting is deleted.",
        "visibility" => "The visibility is changed.",
        _ => return None,
    })
}

fn size(bytes: i64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// `/ui/{tenant}/apps/{app}`: the author's page of one app.
async fn app_page(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
    Path((tenant, name)): Path<(String, String)>,
    Query(query): Query<Notice>,
) -> Response {
    let here = format!("/ui/{tenant}/apps/{name}");
    let notice = query
        .done
        .as_deref()
        .and_then(notice_text)
        .map(str::to_owned);
    let window = query.window.as_deref();
    let page = match app_view(&state, &principal, &session, &tenant, &name, notice, None).await {
        Ok(page) if page.deploy => {
            let usage =
                super::console_usage::view(&state, &principal, (&tenant, &name), window).await;
            usage.map(|usage| AppPage {
                usage: Some(usage),
                ..page
            })
        }
        other => other,
    };
    match page {
        Ok(page) => render(&page, StatusCode::OK),
        Err(r) => refused(&state, &principal, &session, &here, r).await,
    }
}

async fn app_view(
    state: &AppState,
    principal: &Principal,
    session: &Session,
    tenant: &str,
    name: &str,
    notice: Option<String>,
    error: Option<String>,
) -> Result<AppPage, Refusal> {
    let here = format!("/ui/{tenant}/apps/{name}");
    let view = manage::app_overview(state, principal, (tenant, name)).await?;
    let chrome = chrome(state, principal, session, &here, Some(tenant))
        .await
        .map_err(|_| Refusal::Internal("loading the page failed".into()))?;
    let platform_url = state
        .origins
        .platform_url()
        .trim_end_matches('/')
        .to_owned();
    let remote = format!("{platform_url}/git/{tenant}/{name}.git");
    let graph = view.dependencies.as_ref().map(crate::dash::graph::drawing);
    let log_next = view.log.as_ref().map(|tail| tail.next.clone());
    let log_shared = view.log.as_ref().is_some_and(|tail| tail.shared);
    let log = view
        .log
        .iter()
        .flat_map(|tail| tail.lines.iter())
        .rev()
        .map(|l| {
            let seconds = time::OffsetDateTime::from_unix_timestamp(l.at / 1000)
                .map(|t| format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()))
                .unwrap_or_default();
            (
                seconds,
                l.version,
                l.stream.clone(),
                l.message.clone(),
                l.request_id.clone().unwrap_or_default(),
            )
        })
        .collect();
    Ok(AppPage {
        graph,
        log,
        log_next,
        log_shared,
        chrome,
        tenant: tenant.to_owned(),
        name: name.to_owned(),
        title: view.record.title.clone().unwrap_or_else(|| name.to_owned()),
        live: view.record.live_version,
        visibility: view.record.visibility.to_string(),
        remote,
        platform_url,
        versions: view
            .versions
            .into_iter()
            .map(|v| VersionRow {
                number: v.number,
                live: v.live,
                commit: v.commit.map(|c| c.chars().take(12).collect()),
                by: v.author.unwrap_or(v.source),
                when: when(v.created_at),
                size: size(v.size_bytes),
            })
            .collect(),
        settings: view
            .settings
            .into_iter()
            .map(|s| SettingRow {
                value: (!s.secret).then_some(s.value),
                name: s.name,
            })
            .collect(),
        deploy: view.may_deploy,
        manage: view.may_manage,
        usage: None,
        notice,
        error,
    })
}

/// After a form: back to the app's page with a notice, or the page with the error.
async fn after_form<F, T>(
    form: &Posted<F>,
    (tenant, name): (&str, &str),
    result: Result<T, Refusal>,
    done: &str,
) -> Response {
    let (state, principal, session) = (&form.state, &form.principal, &form.session);
    let here = format!("/ui/{tenant}/apps/{name}");
    match result {
        Ok(_) => Redirect::to(&format!("{here}?done={done}")).into_response(),
        // A value the form got wrong is shown on the page itself, above the form.
        Err(Refusal::Invalid(message)) => {
            match app_view(state, principal, session, tenant, name, None, Some(message)).await {
                Ok(page) => render(&page, StatusCode::BAD_REQUEST),
                Err(r) => refused(state, principal, session, &here, r).await,
            }
        }
        Err(r) => refused(state, principal, session, &here, r).await,
    }
}

#[derive(Debug, Deserialize)]
struct RollbackForm {
    csrf: String,
    version: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct SettingForm {
    csrf: String,
    name: String,
    #[serde(default)]
    value: String,
    secret: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NameForm {
    csrf: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct VisibilityForm {
    csrf: String,
    visibility: String,
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
}

csrf_field!(
    RollbackForm,
    SettingForm,
    NameForm,
    VisibilityForm,
    DeleteForm
);

async fn rollback(
    Path((tenant, name)): Path<(String, String)>,
    form: Posted<RollbackForm>,
) -> Response {
    let app = (tenant.as_str(), name.as_str());
    let version = form.fields.version;
    let result = manage::rollback(&form.state, &form.principal, app, version, &form.change()).await;
    after_form(&form, app, result, "rollback").await
}

async fn set_setting(
    Path((tenant, name)): Path<(String, String)>,
    form: Posted<SettingForm>,
) -> Response {
    let app = (tenant.as_str(), name.as_str());
    let f = &form.fields;
    let setting = (f.name.trim(), f.value.as_str(), f.secret.is_some());
    let result =
        manage::set_setting(&form.state, &form.principal, app, setting, &form.change()).await;
    after_form(&form, app, result, "setting").await
}

async fn delete_setting(
    Path((tenant, name)): Path<(String, String)>,
    form: Posted<NameForm>,
) -> Response {
    let app = (tenant.as_str(), name.as_str());
    let setting = form.fields.name.as_str();
    let result =
        manage::unset_setting(&form.state, &form.principal, app, setting, &form.change()).await;
    after_form(&form, app, result, "setting-deleted").await
}

async fn set_visibility(
    Path((tenant, name)): Path<(String, String)>,
    form: Posted<VisibilityForm>,
) -> Response {
    let app = (tenant.as_str(), name.as_str());
    let visibility = form.fields.visibility.as_str();
    let result = manage::set_visibility(
        &form.state,
        &form.principal,
        app,
        visibility,
        &form.change(),
    )
    .await;
    after_form(&form, app, result, "visibility").await
}

async fn delete_app(
    Path((tenant, name)): Path<(String, String)>,
    form: Posted<DeleteForm>,
) -> Response {
    let app = (tenant.as_str(), name.as_str());
    // The typed name guards against a slip of the mouse; the policy still decides.
    if form.fields.confirm.trim() != name {
        let result: Result<(), Refusal> = Err(Refusal::Invalid(format!(
            "type the app's name, {name}, to confirm the deletion"
        )));
        return after_form(&form, app, result, "").await;
    }
    match manage::delete_app(&form.state, &form.principal, app, &form.change()).await {
        Ok(_) => Redirect::to("/?deleted=1").into_response(),
        Err(r) => {
            let here = format!("/ui/{tenant}/apps/{name}");
            refused(&form.state, &form.principal, &form.session, &here, r).await
        }
    }
}
