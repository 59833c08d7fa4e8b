//! What a tenant's admins do to its people and read of its history, for the REST API and
//! the web console alike: members and roles, invitations by single-use link, teams, the
//! audit log (filtered, paged, exported as CSV), and trying the tenant's identity providers
//! and data sources ("test this provider", "test connection"). Like [`crate::manage`]: find the
//! tenant as the principal may see it, ask the policy, call the store (which writes the
//! audit row).

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use crate::auth::password;
use crate::ids::{Slug, TeamId, TenantId, UserId};
use crate::manage::{self, Refusal};
use crate::policy::{Action, Principal, Resource};
use crate::state::AppState;
use crate::store::{
    Acceptor, AuditEntry, AuditSearch, Change, Invitation, Member, NewInvitation, NewUser, Team,
    Tenant,
};
use crate::tenancy::{self, Email, Role};

type Result<T> = std::result::Result<T, Refusal>;

/// Members per page of a listing.
pub const MEMBERS_PAGE: i64 = 50;

/// One page of a tenant's members, by user id.
#[derive(Clone, Debug, Default)]
pub struct MembersPage {
    /// The members.
    pub members: Vec<Member>,
    /// The user id the next page starts after, if there may be one.
    pub next: Option<i64>,
}

/// The tenant's members after the user id `after` (who manages members).
pub async fn members(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    after: Option<i64>,
    limit: i64,
) -> Result<MembersPage> {
    let tenant = admin_tenant(state, principal, tenant, Action::ManageMembers).await?;
    let members = state.store.list_members(tenant.id, after, limit).await?;
    let next = (members.len() as i64 == limit)
        .then(|| members.last().map(|m| m.user_id.0))
        .flatten();
    Ok(MembersPage { members, next })
}

/// The tenant's identity providers, without secrets (who may test them: its admins).
pub async fn providers(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
) -> Result<Vec<crate::admin::ProviderSummary>> {
    let tenant = admin_tenant(state, principal, tenant, Action::TestIdentityProvider).await?;
    Ok(crate::admin::list_providers(&state.store, &tenant.slug).await?)
}

/// Try the identity provider `provider` as configured ("test this provider"; LDAP: the
/// service account's bind and search base, and the sample `username`'s groups; OIDC: the
/// discovery document and its keys). A provider that fails is still a report, whose
/// `error` says in words what failed. Audited `identity_provider.test`.
pub async fn test_provider(
    state: &AppState,
    principal: &Principal,
    (tenant, provider): (&str, &str),
    username: Option<&str>,
    change: &Change<'_>,
) -> Result<crate::auth::providers::ProviderReport> {
    let tenant = admin_tenant(state, principal, tenant, Action::TestIdentityProvider).await?;
    Ok(crate::admin::test_provider(
        &state.store,
        &state.secrets,
        &tenant.slug,
        provider,
        username,
        change,
    )
    .await?)
}

/// The tenant's data sources, without passwords (its admins).
pub async fn data_sources(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
) -> Result<Vec<crate::datasources::SourceView>> {
    let tenant = admin_tenant(state, principal, tenant, Action::ManageDataSources).await?;
    Ok(state.datasources.list(tenant.id).await?)
}

/// "Test connection": open the data source `name` and run `select 1` read-only; the
/// report's sentence says what failed (the password scrubbed). Audited `data_source.test`.
pub async fn test_data_source(
    state: &AppState,
    principal: &Principal,
    (tenant, name): (&str, &str),
    change: &Change<'_>,
) -> Result<crate::datasources::TestReport> {
    let tenant = admin_tenant(state, principal, tenant, Action::ManageDataSources).await?;
    let report = state.datasources.test(tenant.id, name).await?;
    let detail = serde_json::json!({
        "ok": report.ok,
        "message": report.message.chars().take(300).collect::<String>(),
    });
    state
        .store
        .record_check(
            change,
            Some(tenant.id),
            ("data_source.test", &format!("data_source:{name}")),
            detail,
        )
        .await?;
    Ok(report)
}

/// The tenant `slug`, visible to the principal and `action` allowed in it.
async fn admin_tenant(
    state: &AppState,
    principal: &Principal,
    slug: &str,
    action: Action,
) -> Result<Tenant> {
    let tenant = manage::tenant(state, principal, slug).await?;
    manage::allow(principal, action, &Resource::Tenant(tenant.id))?;
    Ok(tenant)
}

/// The action a role change needs: granting or taking the owner role is for owners.
fn needed(role: Role, previous: Option<Role>) -> Action {
    if role == Role::Owner || previous == Some(Role::Owner) {
        Action::GrantOwner
    } else {
        Action::ManageMembers
    }
}

/// Give `user` the `role` (a member when `must_exist`; else added if need be).
async fn set_role(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    user: UserId,
    role: Role,
    must_exist: bool,
    change: &Change<'_>,
) -> Result<Member> {
    let previous = state.store.membership(tenant.id, user).await?;
    manage::allow(
        principal,
        needed(role, previous),
        &Resource::Tenant(tenant.id),
    )?;
    match previous {
        Some(_) => {
            state
                .store
                .change_role(tenant.id, user, role, change)
                .await?;
        }
        None if must_exist => {
            return Err(Refusal::NotFound {
                what: "member",
                name: user.to_string(),
            });
        }
        None => {
            state
                .store
                .grant_role(tenant.id, user, role, change)
                .await?;
        }
    }
    let email = state
        .store
        .user(user)
        .await?
        .map(|u| u.email)
        .unwrap_or_default();
    Ok(Member {
        user_id: user,
        email,
        role,
    })
}

/// Add the existing user `email` to the tenant with `role`, or set the role of a member
/// (admins; the owner role by owners).
pub async fn add_member(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    (email, role): (&str, &str),
    change: &Change<'_>,
) -> Result<Member> {
    let tenant = admin_tenant(state, principal, tenant, Action::ManageMembers).await?;
    let role: Role = role.parse()?;
    let email = Email::parse(email)?;
    let user = state
        .store
        .user_by_email(&email)
        .await?
        .ok_or_else(|| Refusal::NotFound {
            what: "user",
            name: email.to_string(),
        })?;
    set_role(state, principal, &tenant, user.id, role, false, change).await
}

/// Change a member's role (admins; the owner role by owners; never the last owner's).
pub async fn change_role(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    user: UserId,
    role: &str,
    change: &Change<'_>,
) -> Result<Member> {
    let tenant = admin_tenant(state, principal, tenant, Action::ManageMembers).await?;
    let role: Role = role.parse()?;
    set_role(state, principal, &tenant, user, role, true, change).await
}

/// Take a member out of the tenant with their teams, grants and collaborations (admins;
/// an owner by owners; never the last owner). A non-member is a no-op.
pub async fn remove_member(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    user: UserId,
    change: &Change<'_>,
) -> Result<()> {
    let tenant = admin_tenant(state, principal, tenant, Action::ManageMembers).await?;
    if state.store.membership(tenant.id, user).await? == Some(Role::Owner) {
        manage::allow(principal, Action::GrantOwner, &Resource::Tenant(tenant.id))?;
    }
    state.store.remove_member(tenant.id, user, change).await?;
    Ok(())
}

/// How long an invitation works when the inviter does not say (days).
pub const INVITATION_DAYS: i64 = 7;
/// The longest an invitation may work (days).
pub const MAX_INVITATION_DAYS: i64 = 30;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Letters and digits in an invitation's secret (about 238 bits).
const INVITATION_SECRET_LEN: usize = 40;

/// An invitation just created: its link is shown once.
#[derive(Clone, Debug)]
pub struct NewInvite {
    /// Its id.
    pub id: i64,
    /// The whole link (the platform's URL, `/invite/{tenant}/{secret}`).
    pub link: String,
    /// The role it grants.
    pub role: Role,
    /// When it stops working.
    pub expires_at: i64,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Create an invitation to the tenant with `role`, working for `days` (admins; an owner
/// invitation by owners). `note` says who it is for (shown to admins and the invitee).
pub async fn create_invitation(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    (role, note, days): (&str, &str, Option<i64>),
    change: &Change<'_>,
) -> Result<NewInvite> {
    let tenant = admin_tenant(state, principal, tenant, Action::ManageMembers).await?;
    let role: Role = role.parse()?;
    manage::allow(principal, needed(role, None), &Resource::Tenant(tenant.id))?;
    let days = days.unwrap_or(INVITATION_DAYS);
    if !(1..=MAX_INVITATION_DAYS).contains(&days) {
        return Err(Refusal::Invalid(format!(
            "an invitation works for 1 to {MAX_INVITATION_DAYS} days (got {days})"
        )));
    }
    let note = note.trim();
    if note.chars().count() > 200 || note.chars().any(char::is_control) {
        return Err(Refusal::Invalid(
            "the note is at most 200 characters on one line".into(),
        ));
    }
    let secret = Alphanumeric.sample_string(&mut rand::rng(), INVITATION_SECRET_LEN);
    let expires_at = change.at + days * DAY_MS;
    let id = state
        .store
        .create_invitation(
            tenant.id,
            &NewInvitation {
                token_sha256: &sha256_hex(&secret),
                role,
                note,
                expires_at,
            },
            change,
        )
        .await?;
    let link = format!(
        "{}/invite/{}/{secret}",
        state.origins.platform_url().trim_end_matches('/'),
        tenant.slug
    );
    Ok(NewInvite {
        id,
        link,
        role,
        expires_at,
    })
}

/// The tenant's invitations, newest first (who manages members).
pub async fn invitations(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
) -> Result<Vec<Invitation>> {
    let tenant = admin_tenant(state, principal, tenant, Action::ManageMembers).await?;
    Ok(state.store.list_invitations(tenant.id, None, 100).await?)
}

/// Withdraw an invitation (who manages members).
pub async fn revoke_invitation(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    id: i64,
    change: &Change<'_>,
) -> Result<()> {
    let tenant = admin_tenant(state, principal, tenant, Action::ManageMembers).await?;
    state.store.revoke_invitation(tenant.id, id, change).await?;
    Ok(())
}

/// What the invitee sees before accepting.
#[derive(Clone, Debug)]
pub struct InvitationOffer {
    /// The tenant's slug and name.
    pub tenant: (String, String),
    /// The role it grants.
    pub role: Role,
    /// Who it is for.
    pub note: String,
    /// When it stops working.
    pub expires_at: i64,
}

fn unusable_link() -> Refusal {
    Refusal::NotFound {
        what: "invitation",
        name: "this link: it was used, withdrawn or has expired".into(),
    }
}

/// The link's secret as the store finds it: a malformed one finds nothing.
fn link_hash(secret: &str) -> Result<String> {
    let well_formed =
        secret.len() == INVITATION_SECRET_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return Err(unusable_link());
    }
    Ok(sha256_hex(secret))
}

async fn link_tenant(state: &AppState, slug: &str) -> Result<Tenant> {
    let slug = Slug::parse(slug).map_err(|_| unusable_link())?;
    state
        .store
        .tenant_by_slug(&slug)
        .await?
        .ok_or_else(unusable_link)
}

/// The open invitation behind a link (anyone holding the link: the secret is the
/// capability). Used, withdrawn, expired, unknown or of another tenant: the same refusal.
pub async fn offer(state: &AppState, tenant: &str, secret: &str) -> Result<InvitationOffer> {
    let hash = link_hash(secret)?;
    let tenant = link_tenant(state, tenant).await?;
    let invitation = state
        .store
        .invitation_by_token(tenant.id, &hash)
        .await?
        .filter(|i| i.open_at(state.clock.now_millis()))
        .ok_or_else(unusable_link)?;
    Ok(InvitationOffer {
        tenant: (tenant.slug, tenant.name),
        role: invitation.role,
        note: invitation.note,
        expires_at: invitation.expires_at,
    })
}

/// Shortest password of an account created with an invitation (as for a password change).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Who accepts an invitation: the signed-in user, or a new local account.
#[derive(Clone, Copy, Debug)]
pub enum Invitee<'a> {
    /// The principal (a signed-in user).
    SignedIn,
    /// A new account with this address and password.
    NewAccount {
        /// The address.
        email: &'a str,
        /// The password (at least [`MIN_PASSWORD_CHARS`]).
        password: &'a str,
    },
}

/// Accept an invitation: the signed-in user, or a new local account created with it,
/// becomes a member with its role. Returns the user and the role they now have.
pub async fn accept(
    state: &AppState,
    principal: &Principal,
    (tenant, secret): (&str, &str),
    invitee: Invitee<'_>,
    change: &Change<'_>,
) -> Result<(UserId, Role)> {
    let hash = link_hash(secret)?;
    let tenant = link_tenant(state, tenant).await?;
    // A link that cannot be used is said so before the account's fields are judged.
    state
        .store
        .invitation_by_token(tenant.id, &hash)
        .await?
        .filter(|i| i.open_at(change.at))
        .ok_or_else(unusable_link)?;
    let accepted = match invitee {
        Invitee::SignedIn => {
            let Principal::User(user) = principal else {
                return Err(Refusal::Unauthenticated);
            };
            state
                .store
                .accept_invitation(tenant.id, &hash, Acceptor::Existing(user.id), change)
                .await
        }
        Invitee::NewAccount { email, password } => {
            let email = Email::parse(email)?;
            if password.chars().count() < MIN_PASSWORD_CHARS {
                return Err(Refusal::Invalid(format!(
                    "the password must have at least {MIN_PASSWORD_CHARS} characters"
                )));
            }
            // Checked before the (slow) hash; the insert's unique index still decides.
            if state.store.user_by_email(&email).await?.is_some() {
                return Err(Refusal::Invalid(
                    "an account with this address exists: sign in first, then open the link again"
                        .into(),
                ));
            }
            let hash_of_password = password::hash_off_runtime(password.to_owned())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "hashing a password failed");
                    Refusal::Internal("creating the account failed".into())
                })?;
            let new = NewUser {
                email: &email,
                password_hash: Some(&hash_of_password),
                password_must_change: false,
                superadmin: false,
            };
            state
                .store
                .accept_invitation(tenant.id, &hash, Acceptor::New(new), change)
                .await
        }
    };
    accepted.map_err(|e| match e {
        crate::store::Error::NotFound { .. } => unusable_link(),
        crate::store::Error::Conflict { .. } => Refusal::Invalid(
            "an account with this address exists: sign in first, then open the link again".into(),
        ),
        other => other.into(),
    })
}

/// The tenant's teams with their members (any member of the tenant).
pub async fn teams(state: &AppState, principal: &Principal, tenant: &str) -> Result<Vec<Team>> {
    let tenant = manage::tenant(state, principal, tenant).await?;
    Ok(state.store.list_teams(tenant.id).await?)
}

/// Create a team (who manages teams).
pub async fn create_team(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    name: &str,
    change: &Change<'_>,
) -> Result<(TeamId, String)> {
    let tenant = admin_tenant(state, principal, tenant, Action::ManageTeams).await?;
    let name = tenancy::team_name(name)?;
    let id = state.store.create_team(tenant.id, &name, change).await?;
    Ok((id, name))
}

/// Put a member of the tenant in a team (who manages teams).
pub async fn add_team_member(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    (team, user): (TeamId, UserId),
    change: &Change<'_>,
) -> Result<()> {
    let tenant = admin_tenant(state, principal, tenant, Action::ManageTeams).await?;
    state
        .store
        .add_team_member(tenant.id, team, user, change)
        .await?;
    Ok(())
}

/// Put the member with address `email` in a team (who manages teams).
pub async fn add_team_member_by_email(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    (team, email): (TeamId, &str),
    change: &Change<'_>,
) -> Result<()> {
    let found = admin_tenant(state, principal, tenant, Action::ManageTeams).await?;
    let email = Email::parse(email)?;
    let missing = || Refusal::NotFound {
        what: "member",
        name: email.to_string(),
    };
    let user = state
        .store
        .user_by_email(&email)
        .await?
        .ok_or_else(missing)?;
    if state.store.membership(found.id, user.id).await?.is_none() {
        return Err(missing());
    }
    add_team_member(state, principal, tenant, (team, user.id), change).await
}

/// Take a user out of a team (who manages teams); a no-op when they are not in it.
pub async fn remove_team_member(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    (team, user): (TeamId, UserId),
    change: &Change<'_>,
) -> Result<()> {
    let tenant = admin_tenant(state, principal, tenant, Action::ManageTeams).await?;
    state
        .store
        .remove_team_member(tenant.id, team, user, change)
        .await?;
    Ok(())
}

/// Audit rows per page of the console's listing.
pub const AUDIT_PAGE: i64 = 50;
/// Rows at most in one CSV export (newest first): the file says when it was cut.
pub const MAX_EXPORT_ROWS: usize = 10_000;
const EXPORT_BATCH: i64 = 500;

/// The audit log of `tenant` (its admins) or, with `None`, of the whole platform
/// (superadmins), matching `search`, newest first, older than the id `before`.
pub async fn audit(
    state: &AppState,
    principal: &Principal,
    tenant: Option<&str>,
    search: &AuditSearch<'_>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>> {
    let tenant = audit_scope(state, principal, tenant).await?;
    Ok(state
        .store
        .search_audit(tenant, search, before, limit)
        .await?)
}

async fn audit_scope(
    state: &AppState,
    principal: &Principal,
    tenant: Option<&str>,
) -> Result<Option<TenantId>> {
    match tenant {
        Some(slug) => Ok(Some(
            admin_tenant(state, principal, slug, Action::ViewTenantAudit)
                .await?
                .id,
        )),
        None => {
            if matches!(principal, Principal::Anonymous) {
                return Err(Refusal::Unauthenticated);
            }
            manage::allow(principal, Action::ViewPlatformAudit, &Resource::Platform)?;
            Ok(None)
        }
    }
}

/// The audit rows matching `search` as CSV (RFC 4180; newest first, at most
/// [`MAX_EXPORT_ROWS`]); cells a spreadsheet would run as a formula are defused.
pub async fn audit_csv(
    state: &AppState,
    principal: &Principal,
    tenant: Option<&str>,
    search: &AuditSearch<'_>,
) -> Result<String> {
    let tenant = audit_scope(state, principal, tenant).await?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    let write_failed = |e: csv::Error| {
        tracing::error!(error = %e, "writing CSV failed");
        Refusal::Internal("exporting failed".into())
    };
    writer
        .write_record([
            "id",
            "time_utc",
            "actor",
            "action",
            "target",
            "remote_addr",
            "detail",
        ])
        .map_err(write_failed)?;
    let mut before = None;
    let mut written = 0;
    'pages: loop {
        let rows = state
            .store
            .search_audit(tenant, search, before, EXPORT_BATCH)
            .await?;
        let last_page = (rows.len() as i64) < EXPORT_BATCH;
        for row in rows {
            if written == MAX_EXPORT_ROWS {
                writer
                    .write_record([
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        &format!("cut at {MAX_EXPORT_ROWS} rows: narrow the filters"),
                    ])
                    .map_err(write_failed)?;
                break 'pages;
            }
            before = Some(row.id);
            written += 1;
            writer
                .write_record(
                    [
                        row.id.to_string(),
                        rfc3339(row.at),
                        row.actor,
                        row.action,
                        row.target,
                        row.remote_addr.unwrap_or_default(),
                        row.detail.to_string(),
                    ]
                    .iter()
                    .map(|cell| spreadsheet_safe(cell).into_owned()),
                )
                .map_err(write_failed)?;
        }
        if last_page {
            break;
        }
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| write_failed(e.into_error().into()))?;
    String::from_utf8(bytes).map_err(|_| Refusal::Internal("exporting failed".into()))
}

/// A cell as a spreadsheet may open it: one that starts like a formula (`=`, `+`, `-`,
/// `@`, a tab or a carriage return) gets a leading `'` so it stays text (OWASP's CSV
/// injection advice). Quoting is the CSV writer's.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// Unix milliseconds as `2026-12-05T13:04:05Z`.
pub fn rfc3339(millis: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|_| millis.to_string())
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn formula_cells_are_defused_and_others_kept() {
        for (cell, want) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("user:3", "user:3"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell), want);
        }
    }
}
