//! `tessera login`: the command line on an author's machine gets an API token without a
//! shell on the server and without the person typing a password into a terminal. It is the
//! device authorization grant (RFC 8628) in Tessera's terms:
//!
//! 1. The command line asks for a sign-in ([`start`], unauthenticated) and gets a device
//!    code (a secret it keeps) and a short user code it shows with a link.
//! 2. The person opens the link in a browser where they are signed in, compares the code,
//!    picks a tenant and approves ([`approve`]) or denies ([`deny`]). Approving creates the
//!    token with [`manage::issue_token`], the same function as the account page, so the
//!    policy and the audit row are the same; the token waits sealed.
//! 3. The command line polls with its device code ([`collect`]) and receives the token once.
//!
//! A sign-in works for [`SIGN_IN_SECS`]; a token approved but never collected is revoked
//! when sign-ins are next pruned. Requests nobody authenticated are capped at
//! [`MAX_PENDING`] at a time.

use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use crate::ids::Slug;
use crate::manage::{self, Refusal};
use crate::policy::Principal;
use crate::state::AppState;
use crate::store::{self, ApprovedToken, Change, CliSignIn, NewCliSignIn};
use crate::tenancy::Role;

/// How long a sign-in can be approved and collected, in seconds.
pub const SIGN_IN_SECS: i64 = 600;
/// How often the command line may ask for its token, in seconds.
pub const POLL_INTERVAL_SECS: i64 = 2;
/// Sign-ins waiting at once, platform-wide.
pub const MAX_PENDING: i64 = 1_000;
/// How long a token from `tessera login` works, in days.
pub const TOKEN_DAYS: i64 = 90;
/// Letters of a user code: no vowels (no words) and none that read alike (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LETTERS: usize = 8;
const DEVICE_CODE_LEN: usize = 40;
const MAX_CLIENT_NAME_CHARS: usize = 100;
const DAY_MS: i64 = 86_400_000;

/// A sign-in just started: what the command line keeps and shows.
#[derive(Clone, Debug)]
pub struct Started {
    /// The secret the command line polls with.
    pub device_code: String,
    /// The code the person compares (`BCDF-GHJK`).
    pub user_code: String,
    /// Where to approve it (`{platform}/device`).
    pub verification_uri: String,
    /// The same with the code filled in.
    pub verification_uri_complete: String,
    /// Seconds until it stops working.
    pub expires_in: i64,
    /// Seconds between polls.
    pub interval: i64,
}

/// Why a start or a poll did not give a token: the RFC 8628 error codes, plus a few of ours.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Not approved yet: ask again after the interval.
    #[error("the sign-in is waiting for approval in the browser")]
    AuthorizationPending,
    /// Asked sooner than the interval: wait longer.
    #[error("asked too often: wait {POLL_INTERVAL_SECS} seconds between polls")]
    SlowDown,
    /// The person denied it.
    #[error("the sign-in was denied in the browser")]
    AccessDenied,
    /// It expired before it was approved and collected.
    #[error("the sign-in expired: run `tessera login` again")]
    ExpiredToken,
    /// No such device code, or its token was already collected.
    #[error("unknown device code, or its token was already collected")]
    InvalidGrant,
    /// Too many sign-ins are waiting.
    #[error("too many sign-ins are waiting: try again in a few minutes")]
    Busy,
    /// A field is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Opening the sealed token failed (logged).
    #[error("the sign-in could not be completed")]
    Internal,
}

/// A token collected by the command line.
#[derive(Clone, Debug)]
pub struct Collected {
    /// The whole token (`tsr_…`).
    pub token: String,
    /// The tenant it works in (a slug).
    pub tenant: String,
    /// Its owner's address.
    pub email: String,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn new_user_code() -> String {
    let mut rng = rand::rng();
    let letters: String = (0..USER_CODE_LETTERS)
        .map(|_| char::from(USER_CODE_ALPHABET[rng.random_range(0..USER_CODE_ALPHABET.len())]))
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// A user code as a person may type it (lowercase, without the dash, with spaces) in the
/// stored form, or `None` when it cannot be one.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let letters: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let well_formed = letters.len() == USER_CODE_LETTERS
        && letters.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    well_formed.then(|| format!("{}-{}", &letters[..4], &letters[4..]))
}

fn check_client_name(name: &str) -> Result<&str, PollError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_CLIENT_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(PollError::Invalid(format!(
            "client_name: 1 to {MAX_CLIENT_NAME_CHARS} characters on one line"
        )));
    }
    Ok(name)
}

/// Prune what expired: tokens approved but never collected are revoked, sign-ins expired a
/// day ago are forgotten. Called by [`start`], so the table's size follows its use.
async fn prune(state: &AppState, now: i64) -> Result<(), store::Error> {
    let change = Change {
        actor: "system:cli-sign-in",
        remote_addr: None,
        at: now,
    };
    for public_id in state.store.uncollected_cli_tokens(now).await? {
        state
            .store
            .revoke_token_in(None, &public_id, &change)
            .await?;
    }
    state
        .store
        .delete_expired_cli_sign_ins(now - DAY_MS)
        .await?;
    Ok(())
}

/// Start a sign-in for the command line on `client_name`, asking from `client_addr`;
/// `tenant_hint` preselects a tenant on the approval page.
pub async fn start(
    state: &AppState,
    client_name: &str,
    tenant_hint: Option<&str>,
    client_addr: Option<&str>,
) -> Result<Started, PollError> {
    let client_name = check_client_name(client_name)?;
    let tenant_hint = match tenant_hint.map(str::trim).filter(|t| !t.is_empty()) {
        Some(hint) => Slug::parse(hint)
            .map_err(|e| PollError::Invalid(format!("tenant: {e}")))?
            .to_string(),
        None => String::new(),
    };
    let now = state.clock.now_millis();
    prune(state, now).await?;
    if state.store.pending_cli_sign_ins(now).await? >= MAX_PENDING {
        return Err(PollError::Busy);
    }
    let device_code = Alphanumeric.sample_string(&mut rand::rng(), DEVICE_CODE_LEN);
    let device_code_sha256 = sha256_hex(&device_code);
    // 20^8 codes: a collision with a live one is rare; try a few times.
    let mut attempt = 0;
    let user_code = loop {
        let user_code = new_user_code();
        let new = NewCliSignIn {
            device_code_sha256: &device_code_sha256,
            user_code: &user_code,
            client_name,
            client_addr: client_addr.unwrap_or(""),
            tenant_hint: &tenant_hint,
            created_at: now,
            expires_at: now + SIGN_IN_SECS * 1000,
        };
        match state.store.create_cli_sign_in(&new).await {
            Ok(_) => break user_code,
            Err(store::Error::Conflict { .. }) if attempt < 3 => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let verification_uri = format!(
        "{}/device",
        state.origins.platform_url().trim_end_matches('/')
    );
    Ok(Started {
        verification_uri_complete: format!("{verification_uri}?code={user_code}"),
        verification_uri,
        device_code,
        user_code,
        expires_in: SIGN_IN_SECS,
        interval: POLL_INTERVAL_SECS,
    })
}

/// What the approval page shows.
#[derive(Clone, Debug)]
pub struct Offer {
    /// The sign-in.
    pub sign_in: CliSignIn,
    /// The tenants the person may create a token in: (slug, name, their role).
    pub tenants: Vec<(String, String, Role)>,
}

fn unknown_code(code: &str) -> Refusal {
    Refusal::NotFound {
        what: "sign-in code",
        name: format!(
            "{code}: it was used, denied or has expired; run `tessera login` again for a new one"
        ),
    }
}

/// Whether the principal may type a code (a signed-in person).
pub fn may_enter_code(principal: &Principal) -> Result<(), Refusal> {
    match principal {
        Principal::User(_) => Ok(()),
        _ => Err(Refusal::Unauthenticated),
    }
}

/// The pending sign-in shown with `code`, for a signed-in person.
async fn pending(
    state: &AppState,
    principal: &Principal,
    code: &str,
) -> Result<CliSignIn, Refusal> {
    may_enter_code(principal)?;
    let normalized = normalize_user_code(code).ok_or_else(|| unknown_code(code))?;
    state
        .store
        .cli_sign_in_by_user_code(&normalized)
        .await?
        .filter(|s| s.pending_at(state.clock.now_millis()))
        .ok_or_else(|| unknown_code(&normalized))
}

/// The sign-in behind `code` and the tenants the signed-in person may approve it for.
pub async fn offer(state: &AppState, principal: &Principal, code: &str) -> Result<Offer, Refusal> {
    let sign_in = pending(state, principal, code).await?;
    let Principal::User(user) = principal else {
        return Err(Refusal::Unauthenticated);
    };
    let mut tenants = Vec::new();
    for tenant in state.store.list_tenants(Some(user.id), None, 100).await? {
        if tenant.suspended_at.is_some() {
            continue;
        }
        // A superadmin who is no member gets an owner's token, as on the account page.
        let role = principal.role_in(tenant.id).unwrap_or(Role::Owner);
        tenants.push((tenant.slug, tenant.name, role));
    }
    Ok(Offer { sign_in, tenants })
}

/// Approve the sign-in behind `code` for `tenant`: a token of the person's role there,
/// working [`TOKEN_DAYS`] days, waits for the command line (audited `token.create` and
/// `cli_sign_in.approve`).
pub async fn approve(
    state: &AppState,
    principal: &Principal,
    code: &str,
    tenant: &str,
    change: &Change<'_>,
) -> Result<CliSignIn, Refusal> {
    let sign_in = pending(state, principal, code).await?;
    let user = principal.user_id().ok_or(Refusal::Unauthenticated)?;
    let issued = manage::issue_token(
        state,
        principal,
        tenant,
        None,
        Some(change.at + TOKEN_DAYS * DAY_MS),
        change,
    )
    .await?;
    let tenant_id = manage::tenant(state, principal, tenant).await?.id;
    let sealed = state.secrets.seal_bound(
        issued.token.as_bytes(),
        format!("cli-sign-in:{}", sign_in.id).as_bytes(),
    );
    let stored = ApprovedToken {
        tenant: tenant_id,
        user,
        public_id: &issued.public_id,
        sealed: &sealed,
    };
    if !state
        .store
        .approve_cli_sign_in(sign_in.id, &stored, change)
        .await?
    {
        // Approved, denied or expired in the meantime: the token goes with it.
        state
            .store
            .revoke_token_in(Some(tenant_id), &issued.public_id, change)
            .await?;
        return Err(unknown_code(&sign_in.user_code));
    }
    Ok(sign_in)
}

/// Deny the sign-in behind `code`: the command line is told so.
pub async fn deny(state: &AppState, principal: &Principal, code: &str) -> Result<(), Refusal> {
    let sign_in = pending(state, principal, code).await?;
    if !state
        .store
        .deny_cli_sign_in(sign_in.id, state.clock.now_millis())
        .await?
    {
        return Err(unknown_code(&sign_in.user_code));
    }
    Ok(())
}

/// The command line's poll with its device code: the token once approved, else why not.
pub async fn collect(state: &AppState, device_code: &str) -> Result<Collected, PollError> {
    let well_formed = device_code.len() == DEVICE_CODE_LEN
        && device_code.bytes().all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return Err(PollError::InvalidGrant);
    }
    let sign_in = state
        .store
        .cli_sign_in_by_device_code(&sha256_hex(device_code))
        .await?
        .ok_or(PollError::InvalidGrant)?;
    let now = state.clock.now_millis();
    if sign_in.collected_at.is_some() {
        return Err(PollError::InvalidGrant);
    }
    if now >= sign_in.expires_at {
        return Err(PollError::ExpiredToken);
    }
    if sign_in.denied_at.is_some() {
        return Err(PollError::AccessDenied);
    }
    let Some((user, _, tenant)) = sign_in.approved else {
        // A client that ignores the interval is told to slow down (and its clock restarts).
        let too_soon = sign_in
            .last_polled_at
            .is_some_and(|at| now - at < POLL_INTERVAL_SECS * 1000 - 250);
        state.store.touch_cli_sign_in(sign_in.id, now).await?;
        return Err(if too_soon {
            PollError::SlowDown
        } else {
            PollError::AuthorizationPending
        });
    };
    let sealed = state
        .store
        .collect_cli_sign_in(sign_in.id, now)
        .await?
        .ok_or(PollError::InvalidGrant)?;
    let token = state
        .secrets
        .open_bound(&sealed, format!("cli-sign-in:{}", sign_in.id).as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            tracing::error!(
                sign_in = sign_in.id,
                "opening a sealed sign-in token failed"
            );
            PollError::Internal
        })?;
    let tenant = state
        .store
        .tenant(tenant)
        .await?
        .ok_or(PollError::InvalidGrant)?;
    let email = state
        .store
        .user(user)
        .await?
        .map(|u| u.email)
        .unwrap_or_default();
    Ok(Collected {
        token,
        tenant: tenant.slug,
        email,
    })
}

#[cfg(test)]
mod tests {
    use super::{new_user_code, normalize_user_code};

    #[test]
    fn user_codes_are_typed_loosely_and_checked_strictly() {
        for _ in 0..100 {
            let code = new_user_code();
            assert_eq!(normalize_user_code(&code).as_deref(), Some(code.as_str()));
            let loose = code.replace('-', " ").to_lowercase();
            assert_eq!(normalize_user_code(&loose).as_deref(), Some(code.as_str()));
        }
        for bad in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "ABCD-EFGH",
            "BCDF-GHJ1",
            "BCDF_GHJK",
        ] {
            assert_eq!(normalize_user_code(bad), None, "{bad}");
        }
    }
}
