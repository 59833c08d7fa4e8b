//! OpenID Connect sign-in with the `openidconnect` crate: discovery (cached per provider,
//! fetched again when an id_token names a key we do not know), the authorization code
//! flow with PKCE (S256), state and nonce, and the id_token checks (signature, issuer,
//! audience, expiry against Tessera's clock, nonce).
//!
//! Every call to a provider goes through a `reqwest` client with redirects disabled (a
//! provider cannot bounce us to another host) and the provider's connect and total
//! timeouts. No axum here: `http::sso` keeps the pending sign-in in the session.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreIdTokenVerifier,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, IdToken, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};

use super::providers::OidcSettings;
use crate::clock::SharedClock;

/// How long a discovery document (and its keys) is trusted before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// Why an OIDC sign-in failed. [`OidcError::public_message`] is what the person sees;
/// `Display` (for logs and audit rows) never contains a secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached, answered slowly, or answered nonsense.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused (an `error=` on the callback, or the token endpoint said no).
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The callback's state does not match the sign-in this browser started, or there is
    /// no pending sign-in (a replayed or forged callback).
    #[error("the sign-in response does not match a sign-in started here: {0}")]
    BadState(String),
    /// The id_token failed a check: signature, issuer, audience, expiry or nonce.
    #[error("the identity token was rejected: {0}")]
    InvalidToken(String),
    /// The provider's settings are unusable.
    #[error("the identity provider is misconfigured: {0}")]
    Misconfigured(String),
}

impl OidcError {
    /// A clear sentence for the sign-in page, without internals.
    pub fn public_message(&self) -> &'static str {
        match self {
            OidcError::Unavailable(_) => {
                "The sign-in provider is not reachable right now. Try again later."
            }
            OidcError::Refused(_) => "The sign-in provider refused the sign-in.",
            OidcError::BadState(_) => {
                "This sign-in response is not valid here (expired, already used, or not started in this browser). Start the sign-in again."
            }
            OidcError::InvalidToken(_) => {
                "The sign-in provider's answer could not be verified. Start the sign-in again."
            }
            OidcError::Misconfigured(_) => {
                "This sign-in provider is misconfigured. Ask an administrator."
            }
        }
    }

    /// A short code for audit rows.
    pub fn reason(&self) -> &'static str {
        match self {
            OidcError::Unavailable(_) => "provider_unavailable",
            OidcError::Refused(_) => "provider_refused",
            OidcError::BadState(_) => "bad_state",
            OidcError::InvalidToken(_) => "invalid_id_token",
            OidcError::Misconfigured(_) => "misconfigured",
        }
    }
}

/// The extra id_token claims Tessera reads: the groups (`CoreClient`'s claims type drops
/// every claim it does not know). The claim's name is configurable, so it is collected
/// from all remaining claims.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraClaims {
    /// Every claim the standard set does not cover.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for ExtraClaims {}

impl ExtraClaims {
    /// The string values of claim `name` (a list, or a single string).
    pub fn groups(&self, name: &str) -> Vec<String> {
        match self.other.get(name) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        }
    }
}

/// An id_token with [`ExtraClaims`].
pub type GroupsIdToken = IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// What a verified id_token says about the person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedClaims {
    /// `sub`: stable per provider.
    pub subject: String,
    /// `email`, if released.
    pub email: Option<String>,
    /// `email_verified` (false when absent).
    pub email_verified: bool,
    /// The values of the groups claim.
    pub groups: Vec<String>,
}

/// What the browser's session must remember between `/start` and the callback.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingSignIn {
    /// The provider's tenant (id).
    pub tenant: i64,
    /// The tenant's slug (for the audit rows and the page shown on failure).
    pub tenant_slug: String,
    /// The provider's id.
    pub provider: i64,
    /// The provider's slug.
    pub provider_slug: String,
    /// The `state` sent to the provider.
    pub state: String,
    /// The `nonce` sent to the provider.
    pub nonce: String,
    /// The PKCE verifier whose S256 challenge was sent.
    pub pkce_verifier: String,
    /// Where to go after signing in (a local path).
    pub next: String,
    /// When the sign-in started (Unix ms).
    pub at: i64,
    /// Set when the signed-in owner of this account asked to link the identity to it
    /// (from the account page) instead of signing in with it.
    #[serde(default)]
    pub link_user: Option<i64>,
}

/// Discovery documents per provider.
#[derive(Default)]
pub struct Discovery {
    cache: Mutex<HashMap<(i64, String), (CoreProviderMetadata, Instant)>>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Discovery(..)")
    }
}

/// The HTTP client for one provider: no redirects, its timeouts, rustls.
pub fn http_client(settings: &OidcSettings) -> Result<reqwest::Client, OidcError> {
    let timeout = Duration::from_secs(settings.timeout_seconds);
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(|e| OidcError::Misconfigured(format!("building the HTTP client: {e}")))
}

/// A source chain as one line (reqwest's `Display` hides the cause: refused, timed out…).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Discovery {
    /// The provider's metadata, from the cache unless `refresh` or stale.
    pub async fn metadata(
        &self,
        provider: i64,
        settings: &OidcSettings,
        refresh: bool,
    ) -> Result<CoreProviderMetadata, OidcError> {
        let key = (provider, settings.issuer.clone());
        if !refresh {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((metadata, at)) = cache.get(&key)
                && at.elapsed() < DISCOVERY_TTL
            {
                return Ok(metadata.clone());
            }
        }
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| OidcError::Misconfigured(format!("issuer URL: {e}")))?;
        let client = http_client(settings)?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &client)
            .await
            .map_err(|e| OidcError::Unavailable(format!("discovery failed: {}", chain(&e))))?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    /// Forget a provider's cached document (after its settings changed).
    pub fn forget(&self, provider: i64) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(id, _), _| *id != provider);
    }

    /// The URL to send the browser to, and the secrets the session must keep.
    pub async fn start(
        &self,
        provider: i64,
        settings: &OidcSettings,
        redirect_uri: &str,
    ) -> Result<(String, StartedFlow), OidcError> {
        let metadata = self.metadata(provider, settings, false).await?;
        let client = client(metadata, settings, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in settings.scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok((
            url.to_string(),
            StartedFlow {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        ))
    }

    /// Exchange the code (with the PKCE verifier) and verify the id_token.
    pub async fn finish(
        &self,
        provider: i64,
        settings: &OidcSettings,
        redirect_uri: &str,
        pending: &PendingSignIn,
        code: &str,
        clock: &SharedClock,
    ) -> Result<VerifiedClaims, OidcError> {
        let metadata = self.metadata(provider, settings, false).await?;
        let client = client(metadata, settings, redirect_uri)?;
        let http = http_client(settings)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Misconfigured(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => {
                    OidcError::Refused(format!("token endpoint: {r}"))
                }
                other => OidcError::Unavailable(format!("token endpoint: {}", chain(&other))),
            })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::InvalidToken("the token response has no id_token".into()))?;
        let raw = serde_json::to_value(id_token)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| OidcError::InvalidToken("unreadable id_token".into()))?;
        self.verify_id_token(provider, settings, &raw, &pending.nonce, clock)
            .await
    }

    /// Verify a compact id_token: signature against the provider's keys (fetched again
    /// once when the token names an unknown key), issuer, audience (our client id),
    /// expiry and issue time against `clock`, and the nonce. The callback uses exactly
    /// this function.
    pub async fn verify_id_token(
        &self,
        provider: i64,
        settings: &OidcSettings,
        raw: &str,
        nonce: &str,
        clock: &SharedClock,
    ) -> Result<VerifiedClaims, OidcError> {
        let token: GroupsIdToken = raw
            .parse()
            .map_err(|e| OidcError::InvalidToken(format!("malformed id_token: {e}")))?;
        let mut refreshed = false;
        loop {
            let metadata = self.metadata(provider, settings, refreshed).await?;
            let verifier = CoreIdTokenVerifier::new_confidential_client(
                ClientId::new(settings.client_id.clone()),
                ClientSecret::new(settings.client_secret.clone()),
                metadata.issuer().clone(),
                metadata.jwks().clone(),
            )
            .set_time_fn(time_fn(clock.clone()));
            let nonce = Nonce::new(nonce.to_owned());
            match token.claims(&verifier, &nonce) {
                Ok(claims) => {
                    return Ok(VerifiedClaims {
                        subject: claims.subject().as_str().to_owned(),
                        email: claims.email().map(|e| e.as_str().to_owned()),
                        email_verified: claims.email_verified().unwrap_or(false),
                        groups: claims.additional_claims().groups(&settings.groups_claim),
                    });
                }
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )) if !refreshed => {
                    // The provider may have rotated its keys: fetch them again, once.
                    refreshed = true;
                }
                Err(e) => return Err(OidcError::InvalidToken(e.to_string())),
            }
        }
    }
}

/// Tessera's clock as the verifier's notion of "now".
fn time_fn(
    clock: SharedClock,
) -> impl Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync + 'static {
    move || chrono::DateTime::from_timestamp_millis(clock.now_millis()).unwrap_or_default()
}

/// The secrets of a started flow.
#[derive(Clone, Debug)]
pub struct StartedFlow {
    /// `state`.
    pub state: String,
    /// `nonce`.
    pub nonce: String,
    /// The PKCE verifier.
    pub pkce_verifier: String,
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn client(
    metadata: CoreProviderMetadata,
    settings: &OidcSettings,
    redirect_uri: &str,
) -> Result<Client, OidcError> {
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|e| OidcError::Misconfigured(format!("redirect URI: {e}")))?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        Some(ClientSecret::new(settings.client_secret.clone())),
    )
    .set_redirect_uri(redirect))
}

/// Constant-time comparison of the callback's `state` with the pending one.
pub fn state_matches(presented: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}
