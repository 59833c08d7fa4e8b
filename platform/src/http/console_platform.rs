//! The console's superadmin pages: every tenant (creating one, changing its quotas), every
//! user, and the platform's health from the same checks as `/readyz`. Each calls a
//! [`crate::platform_admin`] function, as the REST API does.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::console::{
    Chrome, Posted, Routes, chrome, csrf_field, refused, render, url_encode, when,
};
use crate::error::ApiError;
use crate::manage::Refusal;
use crate::platform_admin::{self, QuotaChange};
use crate::policy::Principal;
use crate::state::AppState;

/// The superadmin pages and their forms.
pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/ui/admin/tenants", tenants_page)
        .post("/ui/admin/tenants", create_tenant)
        .post("/ui/admin/tenants/{tenant}/quotas", set_quotas)
        .post("/ui/admin/tenants/{tenant}/suspend", suspend_tenant)
        .post("/ui/admin/tenants/{tenant}/resume", resume_tenant)
        .post("/ui/admin/tenants/{tenant}/delete", delete_tenant)
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
    suspended: bool,
    /// Every quota as the form shows it: (field, label, value).
    quotas: Vec<(&'static str, &'static str, i64)>,
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
    quotas: Option<String>,
    suspended: Option<String>,
    resumed: Option<String>,
    deleted: Option<String>,
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
                quotas: vec![
                    ("max_apps", "Apps at most", t.quotas.max_apps),
                    (
                        "max_concurrent_callbacks",
                        "Callbacks at once",
                        t.quotas.max_concurrent_callbacks,
                    ),
                    (
                        "callback_memory_mb",
                        "Memory per callback (MiB)",
                        t.quotas.callback_memory_mb,
                    ),
                    (
                        "callback_deadline_ms",
                        "Callback deadline (ms)",
                        t.quotas.callback_deadline_ms,
                    ),
                    (
                        "max_version_storage_bytes",
                        "Version storage (bytes)",
                        t.quotas.max_version_storage_bytes,
                    ),
                    ("cpu_weight", "CPU weight", t.quotas.cpu_weight),
                    ("max_jobs", "Background jobs at once", t.quotas.max_jobs),
                    (
                        "job_deadline_ms",
                        "Job deadline (ms)",
                        t.quotas.job_deadline_ms,
                    ),
                    ("cache_bytes", "Cache (bytes)", t.quotas.cache_bytes),
                ],
                created: when(t.created_at),
                max_apps: t.quotas.max_apps,
                callbacks: t.quotas.max_concurrent_callbacks,
                memory_mb: t.quotas.callback_memory_mb,
                deadline_ms: t.quotas.callback_deadline_ms,
                suspended: t.suspended_at.is_some(),
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
    let notice = if let Some(slug) = &query.created {
        Some(format!("The tenant {slug} is created."))
    } else if let Some(slug) = &query.quotas {
        Some(format!("The quotas of {slug} are changed."))
    } else if let Some(slug) = &query.suspended {
        Some(format!(
            "The tenant {slug} is suspended: its apps, pushes and tokens answer 503."
        ))
    } else if let Some(slug) = &query.resumed {
        Some(format!("The tenant {slug} runs again."))
    } else {
        query.deleted.as_ref().map(|slug| {
            format!("The tenant {slug} and everything of it are deleted; its users stay.")
        })
    };
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

#[derive(Debug, Deserialize)]
struct ConfirmForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
}

csrf_field!(TenantForm, QuotaForm, ConfirmForm);

async fn create_tenant(form: Posted<TenantForm>) -> Response {
    let f = &form.fields;
    let tenant = (f.slug.trim(), Some(f.name.trim()), Some(f.owner.trim()));
    let result =
        platform_admin::create_tenant(&form.state, &form.principal, tenant, &form.change()).await;
    match result {
        Ok(tenant) => Redirect::to(&format!(
            "/ui/admin/tenants?created={}",
            url_encode(&tenant.slug)
        ))
        .into_response(),
        Err(r) => tenants_form_error(&form, r).await,
    }
}

/// A quota as the form sends it: blank keeps the current value.
fn blank_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let text = String::deserialize(d)?;
    match text.trim() {
        "" => Ok(None),
        n => n
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{n:?} is not a whole number"))),
    }
}

#[derive(Debug, Deserialize)]
struct QuotaForm {
    csrf: String,
    #[serde(default, deserialize_with = "blank_is_none")]
    max_apps: Option<i64>,
    #[serde(default, deserialize_with = "blank_is_none")]
    max_concurrent_callbacks: Option<i64>,
    #[serde(default, deserialize_with = "blank_is_none")]
    callback_memory_mb: Option<i64>,
    #[serde(default, deserialize_with = "blank_is_none")]
    callback_deadline_ms: Option<i64>,
    #[serde(default, deserialize_with = "blank_is_none")]
    max_version_storage_bytes: Option<i64>,
    #[serde(default, deserialize_with = "blank_is_none")]
    cpu_weight: Option<i64>,
    #[serde(default, deserialize_with = "blank_is_none")]
    max_jobs: Option<i64>,
    #[serde(default, deserialize_with = "blank_is_none")]
    job_deadline_ms: Option<i64>,
    #[serde(default, deserialize_with = "blank_is_none")]
    cache_bytes: Option<i64>,
}

/// Change a tenant's quotas: the same [`platform_admin::update_tenant`] as the REST PATCH.
async fn set_quotas(Path(tenant): Path<String>, form: Posted<QuotaForm>) -> Response {
    let f = &form.fields;
    let quotas = QuotaChange {
        max_apps: f.max_apps,
        max_concurrent_callbacks: f.max_concurrent_callbacks,
        callback_memory_mb: f.callback_memory_mb,
        callback_deadline_ms: f.callback_deadline_ms,
        max_version_storage_bytes: f.max_version_storage_bytes,
        cpu_weight: f.cpu_weight,
        max_jobs: f.max_jobs,
        job_deadline_ms: f.job_deadline_ms,
        cache_bytes: f.cache_bytes,
    };
    let result = platform_admin::update_tenant(
        &form.state,
        &form.principal,
        &tenant,
        (None, Some(&quotas)),
        &form.change(),
    )
    .await;
    match result {
        Ok(tenant) => Redirect::to(&format!(
            "/ui/admin/tenants?quotas={}",
            url_encode(&tenant.slug)
        ))
        .into_response(),
        Err(r) => tenants_form_error(&form, r).await,
    }
}

async fn suspend_tenant(Path(tenant): Path<String>, form: Posted<ConfirmForm>) -> Response {
    suspension(&tenant, &form, true).await
}

async fn resume_tenant(Path(tenant): Path<String>, form: Posted<ConfirmForm>) -> Response {
    suspension(&tenant, &form, false).await
}

/// Suspend or resume: the same [`platform_admin::set_suspended`] as the REST API.
async fn suspension(tenant: &str, form: &Posted<ConfirmForm>, suspended: bool) -> Response {
    let result = platform_admin::set_suspended(
        &form.state,
        &form.principal,
        tenant,
        suspended,
        &form.change(),
    )
    .await;
    let done = if suspended { "suspended" } else { "resumed" };
    match result {
        Ok(tenant) => Redirect::to(&format!(
            "/ui/admin/tenants?{done}={}",
            url_encode(&tenant.slug)
        ))
        .into_response(),
        Err(r) => tenants_form_error(form, r).await,
    }
}

/// Delete a tenant once its slug is typed again: the same
/// [`platform_admin::delete_tenant`] as the REST API.
async fn delete_tenant(Path(tenant): Path<String>, form: Posted<ConfirmForm>) -> Response {
    let result = platform_admin::delete_tenant(
        &form.state,
        &form.principal,
        &tenant,
        &form.fields.confirm,
        &form.change(),
    )
    .await;
    match result {
        Ok(removed) => Redirect::to(&format!(
            "/ui/admin/tenants?deleted={}",
            url_encode(&removed.rows.slug)
        ))
        .into_response(),
        Err(r) => tenants_form_error(&form, r).await,
    }
}

/// A tenants-page form that did not work: its error above the forms, or the refusal.
async fn tenants_form_error<F>(form: &Posted<F>, refusal: Refusal) -> Response {
    let (state, principal, session) = (&form.state, &form.principal, &form.session);
    let here = "/ui/admin/tenants";
    let message = match refusal {
        Refusal::Invalid(message) => message,
        Refusal::NotFound { what: "user", name } => format!("no user {name}"),
        Refusal::Store(e @ crate::store::Error::Conflict { .. }) => ApiError::from(e).message,
        r => return refused(state, principal, session, here, r).await,
    };
    match tenants_view(state, principal, session, None, (None, Some(message))).await {
        Ok(page) => render(&page, StatusCode::BAD_REQUEST),
        Err(r) => refused(state, principal, session, here, r).await,
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
