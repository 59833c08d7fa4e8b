//! The console's superadmin pages: every tenant (and creating one), every user, and the
//! platform's health from the same checks as `/readyz`. Each calls a
//! [`crate::platform_admin`] function, as the REST API does.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::console::{Chrome, Routes, chrome, refused, render, url_encode, when};
use super::session::{ClientAddr, form_context};
use crate::error::ApiError;
use crate::manage::Refusal;
use crate::platform_admin;
use crate::policy::Principal;
use crate::state::AppState;

/// The superadmin pages and their forms.
pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/ui/admin/tenants", tenants_page)
        .post("/ui/admin/tenants", create_tenant)
        .get("/ui/admin/users", users_page)
}

struct TenantRow {
    slug: String,
    name: String,
    created: String,
    max_apps: i64,
    callbacks: i64,
    memory_mb: i64,
    deadline_ms: i64,
}

#[derive(Template)]
#[template(path = "console_tenants.html")]
struct TenantsPage {
    chrome: Chrome,
    tenants: Vec<TenantRow>,
    next: Option<String>,
    health: Vec<(&'static str, String, bool)>,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AfterQuery {
    after: Option<String>,
    created: Option<String>,
}

async fn tenants_view(
    state: &AppState,
    principal: &Principal,
    session: &Session,
    after: Option<&str>,
    (notice, error): (Option<String>, Option<String>),
) -> Result<TenantsPage, Refusal> {
    let (tenants, next) = platform_admin::tenants(state, principal, after).await?;
    let health = platform_admin::health(state, principal).await?;
    let chrome = chrome(state, principal, session, "/ui/admin/tenants", None)
        .await
        .map_err(|_| Refusal::Internal("loading the page failed".into()))?;
    let word = |up: bool| (if up { "answers" } else { "does not answer" }).to_owned();
    let mut checks = vec![(
        "Database",
        word(health.readiness.database),
        health.readiness.database,
    )];
    match health.readiness.redis {
        Some(up) => checks.push(("Redis", word(up), up)),
        None => checks.push((
            "Redis",
            "not configured (in-process queue and cache)".into(),
            true,
        )),
    }
    checks.push((
        "Builds on this replica",
        format!("{} running of {} at once", health.builds.0, health.builds.1),
        true,
    ));
    checks.push((
        "Database connections",
        format!("{} open, {} idle", health.pool.0, health.pool.1),
        true,
    ));
    checks.push((
        "Background jobs",
        format!(
            "{} answers dropped, {} jobs cancelled (unpolled) since start",
            health.jobs.0, health.jobs.1
        ),
        true,
    ));
    Ok(TenantsPage {
        chrome,
        next: next.map(|after| format!("/ui/admin/tenants?after={}", url_encode(&after))),
        tenants: tenants
            .into_iter()
            .map(|t| TenantRow {
                created: when(t.created_at),
                max_apps: t.quotas.max_apps,
                callbacks: t.quotas.max_concurrent_callbacks,
                memory_mb: t.quotas.callback_memory_mb,
                deadline_ms: t.quotas.callback_deadline_ms,
                slug: t.slug,
                name: t.name,
            })
            .collect(),
        health: checks,
        notice,
        error,
    })
}

/// `/ui/admin/tenants`: every tenant with its quotas, a form to create one, and health.
async fn tenants_page(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
    Query(query): Query<AfterQuery>,
) -> Response {
    let notice = query
        .created
        .as_deref()
        .map(|slug| format!("The tenant {slug} is created."));
    match tenants_view(
        &state,
        &principal,
        &session,
        query.after.as_deref(),
        (notice, None),
    )
    .await
    {
        Ok(page) => render(&page, StatusCode::OK),
        Err(r) => refused(&state, &principal, &session, "/ui/admin/tenants", r).await,
    }
}

#[derive(Debug, Deserialize)]
struct TenantForm {
    csrf: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    owner: String,
}

async fn create_tenant(
    State(state): State<AppState>,
    axum::Extension(ClientAddr(addr)): axum::Extension<ClientAddr>,
    principal: Principal,
    session: Session,
    Form(form): Form<TenantForm>,
) -> Response {
    let form_change = match form_context(&state, &session, &principal, addr, &form.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let result = platform_admin::create_tenant(
        &state,
        &principal,
        (
            form.slug.trim(),
            Some(form.name.trim()),
            Some(form.owner.trim()),
        ),
        &form_change.change(),
    )
    .await;
    let message = match result {
        Ok(tenant) => {
            return Redirect::to(&format!(
                "/ui/admin/tenants?created={}",
                url_encode(&tenant.slug)
            ))
            .into_response();
        }
        Err(Refusal::Invalid(message)) => message,
        Err(Refusal::NotFound { what: "user", name }) => format!("no user {name}"),
        Err(Refusal::Store(e @ crate::store::Error::Conflict { .. })) => ApiError::from(e).message,
        Err(r) => return refused(&state, &principal, &session, "/ui/admin/tenants", r).await,
    };
    match tenants_view(&state, &principal, &session, None, (None, Some(message))).await {
        Ok(page) => render(&page, StatusCode::BAD_REQUEST),
        Err(r) => refused(&state, &principal, &session, "/ui/admin/tenants", r).await,
    }
}

struct UserRow {
    id: i64,
    email: String,
    superadmin: bool,
    tenants: i64,
    created: String,
    disabled: bool,
    local: bool,
}

#[derive(Template)]
#[template(path = "console_users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserRow>,
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct UsersQuery {
    after: Option<i64>,
}

/// `/ui/admin/users`: every user, with how many tenants each belongs to (superadmins).
async fn users_page(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
    Query(query): Query<UsersQuery>,
) -> Response {
    let here = "/ui/admin/users";
    let (users, next) = match platform_admin::users(&state, &principal, query.after).await {
        Ok(found) => found,
        Err(r) => return refused(&state, &principal, &session, here, r).await,
    };
    let chrome = match chrome(&state, &principal, &session, here, None).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    render(
        &UsersPage {
            chrome,
            next: next.map(|after| format!("{here}?after={after}")),
            users: users
                .into_iter()
                .map(|(u, tenants)| UserRow {
                    id: u.id.0,
                    created: when(u.created_at),
                    superadmin: u.superadmin,
                    disabled: u.disabled_at.is_some(),
                    local: u.has_password,
                    email: u.email,
                    tenants,
                })
                .collect(),
        },
        StatusCode::OK,
    )
}
