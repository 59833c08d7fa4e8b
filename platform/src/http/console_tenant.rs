//! The console's tenant-admin pages: members and roles, invitations (and the page an
//! invitee opens), teams, and the audit log with its filters and CSV export. Every form
//! posts with the session's CSRF token and calls the same [`crate::tenant_admin`]
//! function as the REST API.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::console::{
    Chrome, Posted, Routes, chrome, csrf_field, refused, render, url_encode, when,
};
use super::session::start_signed_in_session;
use crate::error::ApiError;
use crate::ids::{TeamId, UserId};
use crate::manage::Refusal;
use crate::policy::Principal;
use crate::state::AppState;
use crate::store::AuditSearch;
use crate::tenant_admin::{self, Invitee};

/// The tenant-admin pages and their forms.
pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/ui/{tenant}/members", members_page)
        .post("/ui/{tenant}/members/add", add_member)
        .post("/ui/{tenant}/members/{user}/role", change_role)
        .post("/ui/{tenant}/members/{user}/remove", remove_member)
        .post("/ui/{tenant}/invitations", create_invitation)
        .post("/ui/{tenant}/invitations/{id}/revoke", revoke_invitation)
        .post("/ui/{tenant}/teams", create_team)
        .post("/ui/{tenant}/teams/{team}/members", add_team_member)
        .post(
            "/ui/{tenant}/teams/{team}/members/{user}/remove",
            remove_team_member,
        )
        .get("/ui/{tenant}/audit", audit_page)
        .get("/ui/{tenant}/audit.csv", audit_export)
        .get("/invite/{tenant}/{secret}", invitation_page)
        .post("/invite/{tenant}/{secret}", accept_invitation)
}

const ROLES: [&str; 4] = ["viewer", "author", "admin", "owner"];

struct MemberRow {
    id: i64,
    email: String,
    role: String,
}

struct InvitationRow {
    id: i64,
    role: String,
    note: String,
    by: String,
    expires: String,
    state: &'static str,
    open: bool,
}

struct TeamRow {
    id: i64,
    name: String,
    members: Vec<(i64, String)>,
}

#[derive(Template)]
#[template(path = "console_members.html")]
struct MembersPage {
    chrome: Chrome,
    tenant: String,
    members: Vec<MemberRow>,
    next: Option<String>,
    invitations: Vec<InvitationRow>,
    teams: Vec<TeamRow>,
    roles: [&'static str; 4],
    new_link: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct MembersQuery {
    after: Option<i64>,
    done: Option<String>,
}

fn notice_text(done: &str) -> Option<&'static str> {
    Some(match done {
        "role" => "The role is changed.",
        "added" => "The member is added.",
        "removed" => "The member is removed.",
        "revoked" => "The invitation no longer works.",
        "team" => "The team is created.",
        "team-member" => "The team is changed.",
        _ => return None,
    })
}

/// What the members page shows, or why not.
async fn members_view(
    state: &AppState,
    principal: &Principal,
    session: &Session,
    tenant: &str,
    after: Option<i64>,
    (notice, error, new_link): (Option<String>, Option<String>, Option<String>),
) -> Result<MembersPage, Refusal> {
    let here = format!("/ui/{tenant}/members");
    let page =
        tenant_admin::members(state, principal, tenant, after, tenant_admin::MEMBERS_PAGE).await?;
    let invitations = tenant_admin::invitations(state, principal, tenant).await?;
    let teams = tenant_admin::teams(state, principal, tenant).await?;
    let chrome = chrome(state, principal, session, &here, Some(tenant))
        .await
        .map_err(|_| Refusal::Internal("loading the page failed".into()))?;
    // Team members are named by the addresses on this page of members; others by id
    // (a team listing stays one query however large the tenant).
    let emails: HashMap<i64, String> = page
        .members
        .iter()
        .map(|m| (m.user_id.0, m.email.clone()))
        .collect();
    let now = state.clock.now_millis();
    Ok(MembersPage {
        chrome,
        tenant: tenant.to_owned(),
        next: page
            .next
            .map(|after| format!("/ui/{}/members?after={after}", url_encode(tenant))),
        members: page
            .members
            .into_iter()
            .map(|m| MemberRow {
                id: m.user_id.0,
                email: m.email,
                role: m.role.as_str().to_owned(),
            })
            .collect(),
        invitations: invitations
            .into_iter()
            .map(|i| InvitationRow {
                open: i.open_at(now),
                state: if i.accepted.is_some() {
                    "accepted"
                } else if i.revoked_at.is_some() {
                    "withdrawn"
                } else if i.open_at(now) {
                    "open"
                } else {
                    "expired"
                },
                id: i.id,
                role: i.role.as_str().to_owned(),
                note: i.note,
                by: i.created_by,
                expires: when(i.expires_at),
            })
            .collect(),
        teams: teams
            .into_iter()
            .map(|t| TeamRow {
                id: t.id.0,
                name: t.name,
                members: t
                    .members
                    .into_iter()
                    .map(|u| {
                        let name = emails
                            .get(&u.0)
                            .cloned()
                            .unwrap_or_else(|| format!("user {}", u.0));
                        (u.0, name)
                    })
                    .collect(),
            })
            .collect(),
        roles: ROLES,
        new_link,
        notice,
        error,
    })
}

/// `/ui/{tenant}/members`: members and roles, invitations, teams (who manages members).
async fn members_page(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
    Path(tenant): Path<String>,
    Query(query): Query<MembersQuery>,
) -> Response {
    let here = format!("/ui/{tenant}/members");
    let notice = query
        .done
        .as_deref()
        .and_then(notice_text)
        .map(str::to_owned);
    match members_view(
        &state,
        &principal,
        &session,
        &tenant,
        query.after,
        (notice, None, None),
    )
    .await
    {
        Ok(page) => render(&page, StatusCode::OK),
        Err(r) => refused(&state, &principal, &session, &here, r).await,
    }
}

/// After a members-page form: back with a notice, or the page with the form's error.
async fn after_form<F, T>(
    form: &Posted<F>,
    tenant: &str,
    result: Result<T, Refusal>,
    done: &str,
) -> Response {
    let here = format!("/ui/{tenant}/members");
    match result {
        Ok(_) => Redirect::to(&format!("{here}?done={done}")).into_response(),
        Err(Refusal::Invalid(message)) => show_members(form, tenant, Some(message), None).await,
        // A refusal of the store (the last owner, a taken name) is the form's error too.
        Err(Refusal::Store(
            e @ (crate::store::Error::Conflict { .. }
            | crate::store::Error::NotFound { .. }
            | crate::store::Error::LastOwner),
        )) => {
            let message = ApiError::from(e).message;
            show_members(form, tenant, Some(message), None).await
        }
        Err(r) => refused(&form.state, &form.principal, &form.session, &here, r).await,
    }
}

async fn show_members<F>(
    form: &Posted<F>,
    tenant: &str,
    error: Option<String>,
    new_link: Option<String>,
) -> Response {
    let (state, principal, session) = (&form.state, &form.principal, &form.session);
    let here = format!("/ui/{tenant}/members");
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    match members_view(
        state,
        principal,
        session,
        tenant,
        None,
        (None, error, new_link),
    )
    .await
    {
        Ok(page) => render(&page, status),
        Err(r) => refused(state, principal, session, &here, r).await,
    }
}

#[derive(Debug, Deserialize)]
struct AddMemberForm {
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

#[derive(Debug, Deserialize)]
struct RoleForm {
    csrf: String,
    #[serde(default)]
    role: String,
}

#[derive(Debug, Deserialize)]
struct CsrfOnly {
    csrf: String,
}

#[derive(Debug, Deserialize)]
struct InvitationForm {
    csrf: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    days: String,
}

#[derive(Debug, Deserialize)]
struct TeamForm {
    csrf: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct TeamMemberForm {
    csrf: String,
    #[serde(default)]
    email: String,
}

#[derive(Debug, Deserialize)]
struct AcceptForm {
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

csrf_field!(
    AddMemberForm,
    RoleForm,
    CsrfOnly,
    InvitationForm,
    TeamForm,
    TeamMemberForm,
    AcceptForm
);

async fn add_member(Path(tenant): Path<String>, form: Posted<AddMemberForm>) -> Response {
    let person = (form.fields.email.trim(), form.fields.role.as_str());
    let result = tenant_admin::add_member(
        &form.state,
        &form.principal,
        &tenant,
        person,
        &form.change(),
    )
    .await;
    after_form(&form, &tenant, result, "added").await
}

async fn change_role(
    Path((tenant, user)): Path<(String, i64)>,
    form: Posted<RoleForm>,
) -> Response {
    let (role, change) = (form.fields.role.as_str(), form.change());
    let result = tenant_admin::change_role(
        &form.state,
        &form.principal,
        &tenant,
        UserId(user),
        role,
        &change,
    )
    .await;
    after_form(&form, &tenant, result, "role").await
}

async fn remove_member(
    Path((tenant, user)): Path<(String, i64)>,
    form: Posted<CsrfOnly>,
) -> Response {
    let change = form.change();
    let result =
        tenant_admin::remove_member(&form.state, &form.principal, &tenant, UserId(user), &change)
            .await;
    after_form(&form, &tenant, result, "removed").await
}

/// Create an invitation: the page shows its link once (never in a redirect's URL).
async fn create_invitation(Path(tenant): Path<String>, form: Posted<InvitationForm>) -> Response {
    let f = &form.fields;
    let days = match f.days.trim() {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                let result: Result<(), Refusal> =
                    Err(Refusal::Invalid("days must be a whole number".into()));
                return after_form(&form, &tenant, result, "").await;
            }
        },
    };
    let offer = (f.role.as_str(), f.note.as_str(), days);
    let result = tenant_admin::create_invitation(
        &form.state,
        &form.principal,
        &tenant,
        offer,
        &form.change(),
    )
    .await;
    match result {
        Ok(new) => show_members(&form, &tenant, None, Some(new.link)).await,
        Err(r) => after_form(&form, &tenant, Err::<(), _>(r), "").await,
    }
}

async fn revoke_invitation(
    Path((tenant, id)): Path<(String, i64)>,
    form: Posted<CsrfOnly>,
) -> Response {
    let change = form.change();
    let result =
        tenant_admin::revoke_invitation(&form.state, &form.principal, &tenant, id, &change).await;
    after_form(&form, &tenant, result, "revoked").await
}

async fn create_team(Path(tenant): Path<String>, form: Posted<TeamForm>) -> Response {
    let (name, change) = (form.fields.name.as_str(), form.change());
    let result =
        tenant_admin::create_team(&form.state, &form.principal, &tenant, name, &change).await;
    after_form(&form, &tenant, result, "team").await
}

async fn add_team_member(
    Path((tenant, team)): Path<(String, i64)>,
    form: Posted<TeamMemberForm>,
) -> Response {
    let (member, change) = ((TeamId(team), form.fields.email.trim()), form.change());
    let result = tenant_admin::add_team_member_by_email(
        &form.state,
        &form.principal,
        &tenant,
        member,
        &change,
    )
    .await;
    after_form(&form, &tenant, result, "team-member").await
}

async fn remove_team_member(
    Path((tenant, team, user)): Path<(String, i64, i64)>,
    form: Posted<CsrfOnly>,
) -> Response {
    let (member, change) = ((TeamId(team), UserId(user)), form.change());
    let result =
        tenant_admin::remove_team_member(&form.state, &form.principal, &tenant, member, &change)
            .await;
    after_form(&form, &tenant, result, "team-member").await
}

/// The audit page's filters, as the form sends them.
#[derive(Debug, Default, Deserialize)]
struct AuditForm {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    app: String,
    /// A day (`2026-12-05`), from its start (UTC).
    #[serde(default)]
    from: String,
    /// A day, to its end (UTC).
    #[serde(default)]
    to: String,
    before: Option<i64>,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A `YYYY-MM-DD` day as the Unix milliseconds of its start (UTC).
fn day_start(text: &str) -> Result<Option<i64>, Refusal> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = || Refusal::Invalid(format!("{text:?} is not a day (YYYY-MM-DD)"));
    let mut parts = text.splitn(3, '-').map(str::parse::<u16>);
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day))) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(invalid)?;
    let day = u8::try_from(day).map_err(|_| invalid())?;
    time::Date::from_calendar_date(i32::from(year), month, day)
        .map(|d| Some(d.midnight().assume_utc().unix_timestamp() * 1000))
        .map_err(|_| invalid())
}

impl AuditForm {
    /// The filters as a search of `tenant`'s log (the app as its audit target).
    fn search(&self, tenant: &str) -> Result<(AuditSearch<'_>, Option<String>), Refusal> {
        let target =
            (!self.app.trim().is_empty()).then(|| format!("app:{tenant}/{}", self.app.trim()));
        let search = AuditSearch {
            actor: Some(self.actor.trim()).filter(|s| !s.is_empty()),
            action: Some(self.action.trim()).filter(|s| !s.is_empty()),
            target: None,
            since: day_start(&self.from)?,
            until: day_start(&self.to)?.map(|start| start + DAY_MS),
        };
        Ok((search, target))
    }

    /// The filters as a query string (for the next page and the export).
    fn query(&self) -> String {
        format!(
            "actor={}&action={}&app={}&from={}&to={}",
            url_encode(self.actor.trim()),
            url_encode(self.action.trim()),
            url_encode(self.app.trim()),
            url_encode(self.from.trim()),
            url_encode(self.to.trim())
        )
    }
}

struct AuditRow {
    id: i64,
    when: String,
    actor: String,
    action: String,
    target: String,
    from: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console_audit.html")]
struct AuditPage {
    chrome: Chrome,
    tenant: String,
    actor: String,
    action: String,
    app: String,
    from: String,
    to: String,
    rows: Vec<AuditRow>,
    next: Option<String>,
    export: String,
    error: Option<String>,
}

/// `/ui/{tenant}/audit`: the tenant's audit log, filtered, 50 rows a page (admins).
async fn audit_page(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
    Path(tenant): Path<String>,
    Query(form): Query<AuditForm>,
) -> Response {
    let here = format!("/ui/{tenant}/audit");
    let (rows, error) = match form.search(&tenant) {
        Ok((mut search, target)) => {
            search.target = target.as_deref();
            let rows = tenant_admin::audit(
                &state,
                &principal,
                Some(tenant.as_str()),
                &search,
                form.before,
                tenant_admin::AUDIT_PAGE,
            )
            .await;
            match rows {
                Ok(rows) => (rows, None),
                Err(Refusal::Invalid(message)) => (Vec::new(), Some(message)),
                Err(r) => return refused(&state, &principal, &session, &here, r).await,
            }
        }
        Err(Refusal::Invalid(message)) => {
            // The filters are wrong, but the page is still only for who may read the log.
            let allowed = tenant_admin::audit(
                &state,
                &principal,
                Some(tenant.as_str()),
                &AuditSearch::default(),
                None,
                1,
            )
            .await;
            if let Err(r) = allowed {
                return refused(&state, &principal, &session, &here, r).await;
            }
            (Vec::new(), Some(message))
        }
        Err(r) => return refused(&state, &principal, &session, &here, r).await,
    };
    let chrome = match chrome(&state, &principal, &session, &here, Some(tenant.as_str())).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let query = form.query();
    let next = (rows.len() as i64 == tenant_admin::AUDIT_PAGE)
        .then(|| rows.last().map(|r| r.id))
        .flatten()
        .map(|before| format!("{here}?{query}&before={before}"));
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        &AuditPage {
            chrome,
            export: format!("/ui/{}/audit.csv?{query}", url_encode(&tenant)),
            tenant,
            actor: form.actor.trim().to_owned(),
            action: form.action.trim().to_owned(),
            app: form.app.trim().to_owned(),
            from: form.from.trim().to_owned(),
            to: form.to.trim().to_owned(),
            rows: rows
                .into_iter()
                .map(|r| AuditRow {
                    id: r.id,
                    when: tenant_admin::rfc3339(r.at),
                    actor: r.actor,
                    action: r.action,
                    target: r.target,
                    from: r.remote_addr.unwrap_or_default(),
                    detail: r.detail.to_string(),
                })
                .collect(),
            next,
            error,
        },
        status,
    )
}

/// `/ui/{tenant}/audit.csv`: the filtered rows as a CSV file (admins).
async fn audit_export(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
    Path(tenant): Path<String>,
    Query(form): Query<AuditForm>,
) -> Response {
    let here = format!("/ui/{tenant}/audit");
    let result = match form.search(&tenant) {
        Ok((mut search, target)) => {
            search.target = target.as_deref();
            tenant_admin::audit_csv(&state, &principal, Some(tenant.as_str()), &search).await
        }
        Err(r) => Err(r),
    };
    match result {
        Ok(csv) => super::api::csv_response(&format!("audit-{tenant}.csv"), csv),
        Err(r) => refused(&state, &principal, &session, &here, r).await,
    }
}

#[derive(Template)]
#[template(path = "console_invite.html")]
struct InvitePage {
    chrome: Chrome,
    tenant: String,
    tenant_name: String,
    role: String,
    note: String,
    expires: String,
    action: String,
    signed_in: bool,
    email: String,
    error: Option<String>,
}

async fn invite_view(
    state: &AppState,
    principal: &Principal,
    session: &Session,
    (tenant, secret): (&str, &str),
    email: &str,
    error: Option<String>,
) -> Result<InvitePage, Refusal> {
    let offer = tenant_admin::offer(state, tenant, secret).await?;
    // The page's own address carries the secret: sign-in comes back to it, but it is
    // never logged by us nor sent elsewhere (Referrer-Policy: same-origin).
    let here = format!("/invite/{tenant}/{secret}");
    let chrome = chrome(state, principal, session, &here, None)
        .await
        .map_err(|_| Refusal::Internal("loading the page failed".into()))?;
    Ok(InvitePage {
        chrome,
        tenant: offer.tenant.0,
        tenant_name: offer.tenant.1,
        role: offer.role.as_str().to_owned(),
        note: offer.note,
        expires: when(offer.expires_at),
        action: here,
        signed_in: matches!(principal, Principal::User(_)),
        email: email.to_owned(),
        error,
    })
}

/// `/invite/{tenant}/{secret}`: what the invitation grants, and how to accept it.
async fn invitation_page(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
    Path((tenant, secret)): Path<(String, String)>,
) -> Response {
    match invite_view(&state, &principal, &session, (&tenant, &secret), "", None).await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(r) => refused(&state, &principal, &session, "/", r).await,
    }
}

/// Accept: as the signed-in user, or with a new local account (then signed in).
async fn accept_invitation(
    Path((tenant, secret)): Path<(String, String)>,
    posted: Posted<AcceptForm>,
) -> Response {
    let (state, principal, session, form) = (
        &posted.state,
        &posted.principal,
        &posted.session,
        &posted.fields,
    );
    let invitee = match principal {
        Principal::User(_) => Invitee::SignedIn,
        _ => Invitee::NewAccount {
            email: form.email.trim(),
            password: &form.password,
        },
    };
    let change = posted.change();
    match tenant_admin::accept(state, principal, (&tenant, &secret), invitee, &change).await {
        Ok((user, _role)) => {
            if matches!(invitee, Invitee::NewAccount { .. }) {
                let epoch = match state.store.session_epoch(user).await {
                    Ok(Some(epoch)) => epoch,
                    Ok(None) => 0,
                    Err(e) => {
                        return ApiError::internal("reading the new account failed", &e)
                            .into_response();
                    }
                };
                if let Err(r) =
                    start_signed_in_session(session, user, epoch, state.clock.now_millis()).await
                {
                    return r;
                }
            }
            Redirect::to(&format!("/?tenant={}&welcome=1", url_encode(&tenant))).into_response()
        }
        Err(Refusal::Invalid(message)) => {
            match invite_view(
                state,
                principal,
                session,
                (&tenant, &secret),
                form.email.trim(),
                Some(message),
            )
            .await
            {
                Ok(page) => render(&page, StatusCode::BAD_REQUEST),
                Err(r) => refused(state, principal, session, "/", r).await,
            }
        }
        Err(r) => refused(state, principal, session, "/", r).await,
    }
}
