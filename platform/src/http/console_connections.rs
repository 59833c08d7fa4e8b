//! The console's page of what a tenant connects to: its identity providers ("test this
//! provider"; superadmins also set one from its provider file) and its data sources
//! ("test connection"). Each form calls the same [`crate::tenant_admin`] or
//! [`crate::platform_admin`] function as the REST API; each test is audited there.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::console::{Chrome, Posted, Routes, chrome, csrf_field, refused, render, url_encode};
use crate::manage::Refusal;
use crate::policy::Principal;
use crate::state::AppState;
use crate::{platform_admin, tenant_admin};

/// The connections page and its forms.
pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/ui/{tenant}/connections", connections_page)
        .post("/ui/{tenant}/connections/providers", set_provider)
        .post(
            "/ui/{tenant}/connections/providers/{provider}/test",
            test_provider,
        )
        .post(
            "/ui/{tenant}/connections/data-sources/{source}/test",
            test_source,
        )
}

struct ProviderRow {
    slug: String,
    kind: String,
    display_name: String,
    location: String,
    groups: String,
}

struct SourceRow {
    name: String,
    kind: &'static str,
    location: String,
}

/// The outcome of a test, shown above the lists.
struct Report {
    /// `provider-{slug}` or `source-{name}`.
    id: String,
    ok: bool,
    /// What worked or what failed, in a sentence.
    headline: String,
    /// What the provider answered (JSON), when there is more than the sentence.
    detail: Option<String>,
}

#[derive(Template)]
#[template(path = "console_connections.html")]
struct ConnectionsPage {
    chrome: Chrome,
    tenant: String,
    providers: Vec<ProviderRow>,
    sources: Vec<SourceRow>,
    report: Option<Report>,
    notice: Option<String>,
    error: Option<String>,
    /// The provider form as it was sent (after an error), for superadmins.
    slug: String,
    file: String,
}

#[derive(Debug, Default, Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

/// What the page shows, or why not.
async fn view(
    state: &AppState,
    principal: &Principal,
    session: &Session,
    tenant: &str,
    (notice, error, report): (Option<String>, Option<String>, Option<Report>),
) -> Result<ConnectionsPage, Refusal> {
    let here = format!("/ui/{tenant}/connections");
    let providers = tenant_admin::providers(state, principal, tenant).await?;
    let sources = tenant_admin::data_sources(state, principal, tenant).await?;
    let chrome = chrome(state, principal, session, &here, Some(tenant))
        .await
        .map_err(|_| Refusal::Internal("loading the page failed".into()))?;
    Ok(ConnectionsPage {
        chrome,
        tenant: tenant.to_owned(),
        providers: providers
            .into_iter()
            .map(|p| ProviderRow {
                groups: p.groups.join(", "),
                slug: p.slug,
                kind: p.kind,
                display_name: p.display_name,
                location: p.location,
            })
            .collect(),
        sources: sources
            .into_iter()
            .map(|s| SourceRow {
                kind: s.kind.as_str(),
                location: match (&s.path, &s.host, &s.database) {
                    (Some(path), _, _) => path.clone(),
                    (None, Some(host), db) => format!(
                        "{host}{}{}",
                        s.port.map(|p| format!(":{p}")).unwrap_or_default(),
                        db.as_deref().map(|d| format!("/{d}")).unwrap_or_default()
                    ),
                    _ => String::new(),
                },
                name: s.name,
            })
            .collect(),
        report,
        notice,
        error,
        slug: String::new(),
        file: String::new(),
    })
}

/// `/ui/{tenant}/connections`: identity providers and data sources (the tenant's admins).
async fn connections_page(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
    Path(tenant): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Response {
    let here = format!("/ui/{tenant}/connections");
    let notice = match query.done.as_deref() {
        Some("provider") => Some("The identity provider is saved. Test it below.".to_owned()),
        _ => None,
    };
    match view(&state, &principal, &session, &tenant, (notice, None, None)).await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(r) => refused(&state, &principal, &session, &here, r).await,
    }
}

/// The page with a test's report, or with the form's error (a provider or source that
/// is not there, a provider file that does not parse).
async fn show<F>(
    form: &Posted<F>,
    tenant: &str,
    outcome: Result<Report, Refusal>,
    sent: Option<(&str, &str)>,
) -> Response {
    let (state, principal, session) = (&form.state, &form.principal, &form.session);
    let here = format!("/ui/{tenant}/connections");
    let (status, error, report) = match outcome {
        Ok(report) => (StatusCode::OK, None, Some(report)),
        Err(Refusal::Invalid(message)) => (StatusCode::BAD_REQUEST, Some(message), None),
        Err(Refusal::NotFound {
            what: what @ ("identity provider" | "data source"),
            name,
        }) => (
            StatusCode::BAD_REQUEST,
            Some(format!("the tenant has no {what} {name:?}")),
            None,
        ),
        Err(r) => return refused(state, principal, session, &here, r).await,
    };
    match view(state, principal, session, tenant, (None, error, report)).await {
        Ok(mut page) => {
            if let Some((slug, file)) = sent {
                page.slug = slug.to_owned();
                page.file = file.to_owned();
            }
            render(&page, status)
        }
        Err(r) => refused(state, principal, session, &here, r).await,
    }
}

#[derive(Debug, Deserialize)]
struct ProviderForm {
    csrf: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    file: String,
}

#[derive(Debug, Deserialize)]
struct ProviderTestForm {
    csrf: String,
    #[serde(default)]
    username: String,
}

#[derive(Debug, Deserialize)]
struct SourceTestForm {
    csrf: String,
}

csrf_field!(ProviderForm, ProviderTestForm, SourceTestForm);

/// Create or replace an identity provider from its provider file (superadmins).
async fn set_provider(Path(tenant): Path<String>, form: Posted<ProviderForm>) -> Response {
    let f = &form.fields;
    let target = (tenant.as_str(), f.slug.trim());
    let result = platform_admin::set_provider(
        &form.state,
        &form.principal,
        target,
        &f.file,
        &form.change(),
    )
    .await;
    match result {
        Ok(_) => Redirect::to(&format!(
            "/ui/{}/connections?done=provider",
            url_encode(&tenant)
        ))
        .into_response(),
        Err(r) => show(&form, &tenant, Err(r), Some((f.slug.trim(), &f.file))).await,
    }
}

/// "Test this provider": the report, whichever way it went.
async fn test_provider(
    Path((tenant, provider)): Path<(String, String)>,
    form: Posted<ProviderTestForm>,
) -> Response {
    let username = Some(form.fields.username.trim()).filter(|u| !u.is_empty());
    let target = (tenant.as_str(), provider.as_str());
    let result = tenant_admin::test_provider(
        &form.state,
        &form.principal,
        target,
        username,
        &form.change(),
    )
    .await;
    let outcome = result.map(|report| {
        let headline = if report.ok {
            match &report.discovery {
                Some(d) => format!(
                    "The provider {provider} works: its discovery document names the issuer {} and its key set has {} keys.",
                    d.issuer,
                    d.keys.len()
                ),
                None => format!("The provider {provider} works."),
            }
        } else {
            format!(
                "The provider {provider} does not work: {}",
                report.error.as_deref().unwrap_or("no reason given")
            )
        };
        Report {
            id: format!("provider-{provider}"),
            ok: report.ok,
            headline,
            detail: serde_json::to_string_pretty(&report).ok(),
        }
    });
    show(&form, &tenant, outcome, None).await
}

/// "Test connection": open the source and run `select 1`.
async fn test_source(
    Path((tenant, source)): Path<(String, String)>,
    form: Posted<SourceTestForm>,
) -> Response {
    let target = (tenant.as_str(), source.as_str());
    let result =
        tenant_admin::test_data_source(&form.state, &form.principal, target, &form.change()).await;
    let outcome = result.map(|report| Report {
        id: format!("source-{source}"),
        ok: report.ok,
        headline: report.message,
        detail: None,
    });
    show(&form, &tenant, outcome, None).await
}
