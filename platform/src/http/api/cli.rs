//! `/api/v1/cli/sign-ins`: how `tessera login` gets a token (the device authorization
//! grant, RFC 8628). Both routes are for clients nobody authenticated yet: the first starts
//! a sign-in, the second collects its token once a person approved it at `/device`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoResponses, ToSchema};

use super::schema::ErrorBody;
use super::{ApiJson, RemoteAddr};
use crate::cli_sign_in::{self, PollError};
use crate::error::ApiError;
use crate::state::AppState;

/// A command line asking to sign in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSignIn {
    /// The machine asking, shown on the approval page (1 to 100 characters on one line).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub client_name: String,
    /// A tenant's slug to preselect on the approval page.
    pub tenant: Option<String>,
}

/// A started sign-in (RFC 8628 §3.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedSignIn {
    /// The secret to poll with; never shown to the person.
    pub device_code: String,
    /// The code the person compares on the approval page.
    pub user_code: String,
    /// The approval page.
    pub verification_uri: String,
    /// The approval page with the code filled in.
    pub verification_uri_complete: String,
    /// Seconds until the sign-in stops working.
    pub expires_in: i64,
    /// Seconds to wait between polls.
    pub interval: i64,
}

/// A poll for the token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectToken {
    /// The device code the sign-in gave.
    #[schema(pattern = "^[A-Za-z0-9]{40}$")]
    pub device_code: String,
}

/// The token of an approved sign-in: the only time it is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectedToken {
    /// The whole token, to send as `Authorization: Bearer <token>` or as git's password.
    pub token: String,
    /// The tenant it works in.
    pub tenant: String,
    /// Its owner.
    pub email: String,
}

/// What the sign-in routes may answer besides success.
#[derive(IntoResponses)]
#[expect(dead_code, reason = "only its OpenAPI description is used")]
pub enum SignInErrors {
    /// `authorization_pending`, `slow_down`, `access_denied`, `expired_token`,
    /// `invalid_grant` (RFC 8628 §3.5) or `validation_failed`.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// The body is larger than the API accepts (`payload_too_large`).
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// The body is not `application/json` (`unsupported_media_type`).
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// Too many sign-ins are waiting (`too_many_requests`).
    #[response(status = 429)]
    TooMany(ErrorBody),
}

impl From<PollError> for ApiError {
    fn from(error: PollError) -> Self {
        let code = match &error {
            PollError::AuthorizationPending => "authorization_pending",
            PollError::SlowDown => "slow_down",
            PollError::AccessDenied => "access_denied",
            PollError::ExpiredToken => "expired_token",
            PollError::InvalidGrant => "invalid_grant",
            PollError::Busy => {
                return ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    error.to_string(),
                );
            }
            PollError::Invalid(message) => return ApiError::validation(message.clone()),
            PollError::Store(e) => return ApiError::internal("a sign-in failed", e),
            PollError::Internal => return ApiError::internal("a sign-in failed", &error),
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, error.to_string())
    }
}

/// Start a sign-in for a command line (no credentials: the person approves it in the
/// browser at `verification_uri_complete`).
#[utoipa::path(
    post, path = "/api/v1/cli/sign-ins", tag = "tokens",
    request_body = StartSignIn,
    responses((status = 201, body = StartedSignIn), SignInErrors)
)]
pub async fn start_sign_in(
    State(state): State<AppState>,
    RemoteAddr(remote): RemoteAddr,
    ApiJson(body): ApiJson<StartSignIn>,
) -> Result<(StatusCode, Json<StartedSignIn>), ApiError> {
    let started = cli_sign_in::start(
        &state,
        &body.client_name,
        body.tenant.as_deref(),
        remote.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(StartedSignIn {
            device_code: started.device_code,
            user_code: started.user_code,
            verification_uri: started.verification_uri,
            verification_uri_complete: started.verification_uri_complete,
            expires_in: started.expires_in,
            interval: started.interval,
        }),
    ))
}

/// Poll for the token of a sign-in: 400 `authorization_pending` until it is approved, then
/// the token, once.
#[utoipa::path(
    post, path = "/api/v1/cli/sign-ins/token", tag = "tokens",
    request_body = CollectToken,
    responses((status = 200, body = CollectedToken), SignInErrors)
)]
pub async fn collect_token(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CollectToken>,
) -> Result<Json<CollectedToken>, ApiError> {
    let collected = cli_sign_in::collect(&state, &body.device_code).await?;
    Ok(Json(CollectedToken {
        token: collected.token,
        tenant: collected.tenant,
        email: collected.email,
    }))
}
