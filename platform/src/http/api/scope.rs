//! Finding what a request is about and asking the policy, with the API's denials: 401
//! without credentials, the 404 of a missing resource when the principal may not see it,
//! 403 when it may see it but not do this.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::schema::PageQuery;
use super::{DEFAULT_PAGE, MAX_PAGE};
use crate::error::ApiError;
use crate::manage::{self, Refusal};
use crate::policy::{Action, Principal, Resource};
use crate::state::AppState;
use crate::store::{self, AppAccess, Change, Tenant};

/// The principal of an API call: anyone but the anonymous one.
pub fn authenticated(principal: &Principal) -> Result<(), ApiError> {
    match principal {
        Principal::Anonymous => Err(Refusal::Unauthenticated.into()),
        _ => Ok(()),
    }
}

/// The tenant named in the path, if the principal may see it; otherwise `not_found`.
pub async fn tenant(
    state: &AppState,
    principal: &Principal,
    slug: &str,
) -> Result<Tenant, ApiError> {
    Ok(manage::tenant(state, principal, slug).await?)
}

/// The app named in the path within `tenant`, if the principal may open it.
pub async fn app(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    name: &str,
) -> Result<AppAccess, ApiError> {
    Ok(manage::app(state, principal, tenant, name).await?)
}

/// Allowed, or 403 `forbidden` (for resources the principal may already see).
pub fn allow(principal: &Principal, action: Action, resource: &Resource) -> Result<(), ApiError> {
    Ok(manage::allow(principal, action, resource)?)
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unauthenticated => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication required: send Authorization: Bearer <token>",
            ),
            Refusal::NotFound { what, name } => ApiError::not_found(what, &name),
            Refusal::Forbidden => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "your role does not allow this",
            ),
            Refusal::Invalid(message) => ApiError::validation(message),
            Refusal::Suspended => ApiError::tenant_suspended(),
            Refusal::Store(e) => e.into(),
            Refusal::Internal(message) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("{message}; the server log has the details"),
            ),
        }
    }
}

/// The audit row's who and from where.
pub fn change<'a>(state: &AppState, actor: &'a str, remote: &'a Option<String>) -> Change<'a> {
    Change {
        actor,
        remote_addr: remote.as_deref(),
        at: state.clock.now_millis(),
    }
}

/// A validated page size.
pub fn limit(query: &PageQuery) -> Result<i64, ApiError> {
    match query.limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::validation(format!(
            "limit must be between 1 and {MAX_PAGE} (got {n})"
        ))),
    }
}

/// A numeric cursor (ids).
pub fn id_cursor(query: &PageQuery) -> Result<Option<i64>, ApiError> {
    query
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::validation(format!("{c:?} is not a cursor of this list")))
        })
        .transpose()
}

/// 204 No Content.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

impl From<store::Error> for ApiError {
    fn from(error: store::Error) -> Self {
        use store::Error as E;
        match error {
            E::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            E::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            E::VersionNotKept(message) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            E::Refused(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            E::LastOwner => ApiError::new(StatusCode::CONFLICT, "last_owner", error.to_string()),
            E::QuotaExceeded(message) => {
                ApiError::new(StatusCode::CONFLICT, "quota_exceeded", message)
            }
            other => ApiError::internal("the database failed", &other),
        }
    }
}

impl From<crate::tenancy::InvalidName> for ApiError {
    fn from(error: crate::tenancy::InvalidName) -> Self {
        ApiError::validation(error.to_string())
    }
}
