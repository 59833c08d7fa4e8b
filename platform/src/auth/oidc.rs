//! OpenID Connect sign-in with the `openidconnect` crate: discovery (cached per provider,
//! fetched again when an id_token names a key we do not know), the authorization code
//! flow with PKCE (S256), state and nonce, and the id_token checks (signature, issuer,
//! audience, expiry against Tessera's clock, nonce).
//!
//! Every call to a provider goes through a `reqwest` client with redirects disabled (a
//! provider cannot bounce us to another host) and the provider's connect and total
//! timeouts. No axum here: `http::sso` keeps the pending sign-in in the session.
//!
//! Client authentication at the token endpoint is `client_secret_basic`,
//! `client_secret_post` or `private_key_jwt` ([`ClientKey`]): from the settings, else the
//! first of those the discovery document lists. id_tokens are accepted signed with the
//! algorithms the provider's JWKS publishes (a key's `alg`, or every algorithm its key type
//! can sign when it names none) that discovery also lists, among RS256/384/512,
//! PS256/384/512, ES256/384 and EdDSA: never `none`, never HMAC. A token naming a key the
//! JWKS lacks fetches the keys again, at most once per [`KEY_REFRESH_INTERVAL_MS`] per
//! provider.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::AuthType;
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

use super::providers::{OidcSettings, TokenAuthMethod};
use crate::clock::SharedClock;
use crate::secretbox::SecretBox;

/// How long a discovery document (and its keys) is trusted before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// An id_token naming a key the provider's JWKS lacks fetches the keys again at most this
/// often per provider (by Tessera's clock): a flood of forged `kid`s cannot make Tessera
/// hammer the provider.
pub const KEY_REFRESH_INTERVAL_MS: i64 = 30_000;

/// The id_token algorithms Tessera verifies (when the provider publishes them).
const ACCEPTED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// How long a `private_key_jwt` client assertion is valid.
const ASSERTION_LIFETIME_SECONDS: i64 = 60;

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
    /// The token endpoint did not accept Tessera's client authentication
    /// (`invalid_client`): the wrong method, secret or key for this client.
    #[error("the identity provider did not accept the client authentication: {0}")]
    ClientAuthentication(String),
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
            OidcError::ClientAuthentication(_) => {
                "The sign-in provider did not accept the client credentials of this site. Ask an administrator."
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
            OidcError::ClientAuthentication(_) => "client_authentication_failed",
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
    /// The string values at the claim path `path` (see [`claim_path`]): a list, or a
    /// single string. A top-level claim named exactly `path` wins over the path's reading.
    pub fn groups(&self, path: &str) -> Vec<String> {
        let value = match self.other.get(path) {
            Some(value) => Some(value),
            None => claim_path(path).ok().and_then(|segments| {
                let (first, rest) = segments.split_first()?;
                rest.iter()
                    .try_fold(self.other.get(first)?, |value, segment| value.get(segment))
            }),
        };
        match value {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        }
    }
}

/// The segments of a claim path: names separated by `.`; a segment holding a `.` (or a
/// `"`) is written in double quotes with `\"` and `\\` escapes:
/// `resource_access."my.app".roles` is `["resource_access", "my.app", "roles"]`. A name
/// without dots is a path of one segment (the old plain claim name).
pub fn claim_path(path: &str) -> Result<Vec<String>, String> {
    let mut segments = Vec::new();
    let mut chars = path.chars().peekable();
    loop {
        let mut segment = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\')) => segment.push(c),
                        _ => {
                            return Err(format!(
                                "{path:?}: only \\\" and \\\\ may follow a backslash"
                            ));
                        }
                    },
                    Some(c) => segment.push(c),
                    None => return Err(format!("{path:?}: a quoted segment is not closed")),
                }
            }
            if !matches!(chars.peek(), None | Some('.')) {
                return Err(format!(
                    "{path:?}: a quoted segment must be followed by . or end the path"
                ));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return Err(format!("{path:?}: quote the whole segment"));
                }
                segment.push(c);
                chars.next();
            }
        }
        if segment.is_empty() {
            return Err(format!("{path:?}: an empty segment"));
        }
        segments.push(segment);
        // Past the '.' to the next segment, or done.
        if chars.next().is_none() {
            return Ok(segments);
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
    /// When each provider's keys were last fetched again for an unknown key (Tessera's
    /// clock, ms).
    key_refreshes: Mutex<HashMap<i64, i64>>,
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

    /// Whether the keys of `provider` may be fetched again now; records the fetch.
    fn may_refresh_keys(&self, provider: i64, clock: &SharedClock) -> bool {
        let now = clock.now_millis();
        let mut refreshes = self.key_refreshes.lock().unwrap_or_else(|p| p.into_inner());
        match refreshes.get(&provider) {
            Some(&at) if now - at < KEY_REFRESH_INTERVAL_MS && now >= at => false,
            _ => {
                refreshes.insert(provider, now);
                true
            }
        }
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
        // A method the provider cannot take fails here, before anyone types a password.
        auth_method(&metadata, settings)?;
        let client = client(metadata, settings, redirect_uri, false)?;
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

    /// Exchange the code (with the PKCE verifier, authenticating as the settings or the
    /// discovery document say) and verify the id_token.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        provider: i64,
        settings: &OidcSettings,
        secrets: &SecretBox,
        redirect_uri: &str,
        pending: &PendingSignIn,
        code: &str,
        clock: &SharedClock,
    ) -> Result<VerifiedClaims, OidcError> {
        let metadata = self.metadata(provider, settings, false).await?;
        let method = auth_method(&metadata, settings)?;
        let assertion = match method {
            TokenAuthMethod::PrivateKeyJwt => {
                let key = ClientKey::for_provider(provider, settings, secrets)?;
                check_assertion_alg(&metadata, &key)?;
                let audience = metadata
                    .token_endpoint()
                    .ok_or_else(|| OidcError::Misconfigured("no token endpoint".into()))?
                    .as_str()
                    .to_owned();
                Some(key.assertion(&settings.client_id, &audience, clock.now_millis() / 1000))
            }
            _ => None,
        };
        let with_secret = method != TokenAuthMethod::PrivateKeyJwt;
        let client = client(metadata, settings, redirect_uri, with_secret)?;
        let client = match method {
            TokenAuthMethod::ClientSecretBasic => client.set_auth_type(AuthType::BasicAuth),
            _ => client.set_auth_type(AuthType::RequestBody),
        };
        let http = http_client(settings)?;
        let mut request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Misconfigured(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()));
        if let Some(assertion) = assertion {
            request = request
                .add_extra_param("client_assertion_type", JWT_BEARER)
                .add_extra_param("client_assertion", assertion);
        }
        let response = request.request_async(&http).await.map_err(|e| match e {
            openidconnect::RequestTokenError::ServerResponse(r) => {
                let code = serde_json::to_value(r.error()).unwrap_or_default();
                if code == "invalid_client" {
                    OidcError::ClientAuthentication(format!(
                        "token endpoint ({}): {r}",
                        method.as_str()
                    ))
                } else {
                    OidcError::Refused(format!("token endpoint: {r}"))
                }
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
            let allowed = published_algs(&metadata);
            let alg = header_alg(raw);
            if !allowed.iter().any(|a| alg_name(a) == alg) {
                return Err(OidcError::InvalidToken(format!(
                    "the token is signed with {alg:?}, which the provider does not publish for id_tokens (it publishes: {})",
                    allowed.iter().map(alg_name).collect::<Vec<_>>().join(", ")
                )));
            }
            // A public client verifier: the client secret is never an HMAC key here, and
            // only the algorithms the provider publishes (never HMAC, never `none`) pass.
            let verifier = CoreIdTokenVerifier::new_public_client(
                ClientId::new(settings.client_id.clone()),
                metadata.issuer().clone(),
                metadata.jwks().clone(),
            )
            .set_allowed_algs(allowed)
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
                    // The provider may have rotated its keys: fetch them again, once, and
                    // not again for a while.
                    if !self.may_refresh_keys(provider, clock) {
                        return Err(OidcError::InvalidToken(format!(
                            "no key of the provider matches the token's, and its keys were fetched again less than {} s ago",
                            KEY_REFRESH_INTERVAL_MS / 1000
                        )));
                    }
                    refreshed = true;
                }
                Err(e) => return Err(OidcError::InvalidToken(e.to_string())),
            }
        }
    }
}

/// The id_token algorithms `metadata` publishes: each signing key's `alg` (or, for a key
/// naming none, every algorithm its type and curve can sign), among [`ACCEPTED_ALGS`],
/// and listed in `id_token_signing_alg_values_supported`.
pub fn published_algs(metadata: &CoreProviderMetadata) -> Vec<CoreJwsSigningAlgorithm> {
    use CoreJwsSigningAlgorithm as A;
    let listed = metadata.id_token_signing_alg_values_supported();
    let keys = serde_json::to_value(metadata.jwks()).unwrap_or_default();
    let mut algs: Vec<CoreJwsSigningAlgorithm> = Vec::new();
    for key in keys["keys"].as_array().into_iter().flatten() {
        if key["use"].as_str().is_some_and(|u| u != "sig") {
            continue;
        }
        let candidates: Vec<CoreJwsSigningAlgorithm> = match key["alg"].as_str() {
            Some(alg) => serde_json::from_value(serde_json::Value::String(alg.to_owned()))
                .into_iter()
                .collect(),
            None => match (key["kty"].as_str(), key["crv"].as_str()) {
                (Some("RSA"), _) => vec![
                    A::RsaSsaPkcs1V15Sha256,
                    A::RsaSsaPkcs1V15Sha384,
                    A::RsaSsaPkcs1V15Sha512,
                    A::RsaSsaPssSha256,
                    A::RsaSsaPssSha384,
                    A::RsaSsaPssSha512,
                ],
                (Some("EC"), Some("P-256")) => vec![A::EcdsaP256Sha256],
                (Some("EC"), Some("P-384")) => vec![A::EcdsaP384Sha384],
                (Some("OKP"), Some("Ed25519")) => vec![A::EdDsa],
                _ => Vec::new(),
            },
        };
        for alg in candidates {
            if ACCEPTED_ALGS.contains(&alg) && listed.contains(&alg) && !algs.contains(&alg) {
                algs.push(alg);
            }
        }
    }
    algs
}

/// The `alg` of a compact JWS's header ("" when unreadable).
fn header_alg(raw: &str) -> String {
    raw.split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .and_then(|h| h["alg"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An algorithm's registered name (`RS256`).
fn alg_name(alg: &CoreJwsSigningAlgorithm) -> String {
    serde_json::to_value(alg)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The token endpoint authentication for `settings` at the provider of `metadata`: the
/// configured one, which the provider must list when it lists any; else the first of
/// basic, post and private_key_jwt that it lists (RFC 8414: basic when it lists none) and
/// that Tessera has the credentials for (a secret for the first two).
pub fn auth_method(
    metadata: &CoreProviderMetadata,
    settings: &OidcSettings,
) -> Result<TokenAuthMethod, OidcError> {
    let listed: Option<Vec<String>> = metadata.token_endpoint_auth_methods_supported().map(|m| {
        m.iter()
            .filter_map(|m| serde_json::to_value(m).ok()?.as_str().map(str::to_owned))
            .collect()
    });
    let supported = |method: TokenAuthMethod| match &listed {
        Some(listed) => listed.iter().any(|m| m == method.as_str()),
        None => method == TokenAuthMethod::ClientSecretBasic,
    };
    let listing = || match &listed {
        Some(listed) => listed.join(", "),
        None => "client_secret_basic (by default: discovery lists no methods)".to_owned(),
    };
    match settings.token_endpoint_auth_method {
        Some(method) if listed.is_none() || supported(method) => Ok(method),
        Some(method) => Err(OidcError::Misconfigured(format!(
            "token_endpoint_auth_method {} is not one the provider supports ({})",
            method.as_str(),
            listing()
        ))),
        None => TokenAuthMethod::ALL
            .into_iter()
            .filter(|m| *m == TokenAuthMethod::PrivateKeyJwt || !settings.client_secret.is_empty())
            .find(|m| supported(*m))
            .ok_or_else(|| {
                OidcError::Misconfigured(format!(
                    "no token endpoint authentication in common: the provider supports {}; set token_endpoint_auth_method (and client_secret)",
                    listing()
                ))
            }),
    }
}

/// Refuse a client key whose algorithm the provider does not list for client assertions.
fn check_assertion_alg(metadata: &CoreProviderMetadata, key: &ClientKey) -> Result<(), OidcError> {
    let Some(listed) = metadata.token_endpoint_auth_signing_alg_values_supported() else {
        return Ok(());
    };
    let listed: Vec<String> = listed
        .iter()
        .filter_map(|a| serde_json::to_value(a).ok()?.as_str().map(str::to_owned))
        .collect();
    if listed.iter().any(|a| a == key.alg()) {
        Ok(())
    } else {
        Err(OidcError::Misconfigured(format!(
            "the client key signs {}, which the provider does not take for private_key_jwt ({})",
            key.alg(),
            listed.join(", ")
        )))
    }
}

/// `client_assertion_type` of RFC 7523.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The private key Tessera signs `private_key_jwt` client assertions with.
pub enum ClientKey {
    /// P-256, signs ES256.
    P256(p256::ecdsa::SigningKey),
    /// RSA (2048 bits or more), signs RS256.
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientKey({}, {})", self.alg(), self.kid())
    }
}

impl ClientKey {
    /// A key from a PEM: PKCS#8 (RSA or P-256), SEC1 (P-256) or PKCS#1 (RSA).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        use p256::pkcs8::DecodePrivateKey as _;
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        use rsa::traits::PublicKeyParts as _;
        let pem = pem.trim();
        if let Ok(key) =
            p256::SecretKey::from_pkcs8_pem(pem).or_else(|_| p256::SecretKey::from_sec1_pem(pem))
        {
            return Ok(ClientKey::P256(key.into()));
        }
        let rsa = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| {
                "not a PEM private key Tessera can use (PKCS#8 or PKCS#1 RSA, PKCS#8 or SEC1 P-256)"
                    .to_owned()
            })?;
        if rsa.size() < 256 {
            return Err("an RSA key must have at least 2048 bits".into());
        }
        Ok(ClientKey::Rsa(Box::new(rsa)))
    }

    /// The key for `provider`: its settings' PEM, else a P-256 key derived from the
    /// platform's secret key for this provider (the same on every replica and restart).
    pub fn for_provider(
        provider: i64,
        settings: &OidcSettings,
        secrets: &SecretBox,
    ) -> Result<Self, OidcError> {
        if let Some(pem) = &settings.private_key_pem {
            return Self::from_pem(pem)
                .map_err(|e| OidcError::Misconfigured(format!("private_key_pem: {e}")));
        }
        // A derived scalar is out of range with probability about 2^-32: try the next.
        (0u32..)
            .map(|n| secrets.derive(format!("oidc client key v1/{provider}/{n}").as_bytes()))
            .find_map(|bytes| p256::SecretKey::from_slice(&bytes).ok())
            .map(|key| ClientKey::P256(key.into()))
            .ok_or_else(|| OidcError::Misconfigured("no client key".into()))
    }

    /// The JWS algorithm.
    pub fn alg(&self) -> &'static str {
        match self {
            ClientKey::P256(_) => "ES256",
            ClientKey::Rsa(_) => "RS256",
        }
    }

    /// The public key as a JWK's required members (RFC 7638 order).
    fn public_members(&self) -> Vec<(&'static str, String)> {
        use rsa::traits::PublicKeyParts as _;
        match self {
            ClientKey::P256(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                let coordinate = |c: Option<&p256::FieldBytes>| {
                    URL_SAFE_NO_PAD.encode(c.map(|c| c.as_slice()).unwrap_or_default())
                };
                vec![
                    ("crv", "P-256".to_owned()),
                    ("kty", "EC".to_owned()),
                    ("x", coordinate(point.x())),
                    ("y", coordinate(point.y())),
                ]
            }
            ClientKey::Rsa(key) => vec![
                ("e", URL_SAFE_NO_PAD.encode(key.e().to_bytes_be())),
                ("kty", "RSA".to_owned()),
                ("n", URL_SAFE_NO_PAD.encode(key.n().to_bytes_be())),
            ],
        }
    }

    /// The key id: the public key's RFC 7638 thumbprint.
    pub fn kid(&self) -> String {
        use sha2::Digest as _;
        let members: serde_json::Map<String, serde_json::Value> = self
            .public_members()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
            .collect();
        // serde_json's map is ordered by key, which is the thumbprint's order.
        let canonical = serde_json::Value::Object(members).to_string();
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()))
    }

    /// The public JWK (with `kid`, `alg` and `use`).
    pub fn public_jwk(&self) -> serde_json::Value {
        let mut jwk: serde_json::Map<String, serde_json::Value> = self
            .public_members()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
            .collect();
        jwk.insert("kid".into(), self.kid().into());
        jwk.insert("alg".into(), self.alg().into());
        jwk.insert("use".into(), "sig".into());
        serde_json::Value::Object(jwk)
    }

    /// A client assertion (RFC 7523 §3) for `audience` (the token endpoint), valid for a
    /// minute from `now` (Unix seconds).
    pub fn assertion(&self, client_id: &str, audience: &str, now: i64) -> String {
        let header = serde_json::json!({"alg": self.alg(), "typ": "JWT", "kid": self.kid()});
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": hex::encode(rand::random::<[u8; 16]>()),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match self {
            ClientKey::P256(key) => {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
                signature.to_bytes().to_vec()
            }
            ClientKey::Rsa(key) => {
                use rsa::signature::{SignatureEncoding as _, Signer as _};
                let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new((**key).clone());
                signer.sign(input.as_bytes()).to_vec()
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The public keys of a provider's client (`{"keys": [...]}`), for the provider to verify
/// `private_key_jwt` assertions: served at `/auth/{tenant}/{provider}/jwks.json`.
pub fn client_jwks(
    provider: i64,
    settings: &OidcSettings,
    secrets: &SecretBox,
) -> Result<serde_json::Value, OidcError> {
    let key = ClientKey::for_provider(provider, settings, secrets)?;
    Ok(serde_json::json!({"keys": [key.public_jwk()]}))
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
    with_secret: bool,
) -> Result<Client, OidcError> {
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|e| OidcError::Misconfigured(format!("redirect URI: {e}")))?;
    // Without a secret (private_key_jwt), the client id goes in the form body.
    let secret = Some(settings.client_secret.clone())
        .filter(|s| with_secret && !s.is_empty())
        .map(ClientSecret::new);
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        secret,
    )
    .set_redirect_uri(redirect))
}

/// Constant-time comparison of the callback's `state` with the pending one.
pub fn state_matches(presented: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgi2VPqsLly6GnpDTD
kd3um3FckAQtZWlJiBI6P3y/YmahRANCAAQDA6b6HoKyHs5XgLF7QoAj9LWztkAQ
VbxzOydljZP1cobhStyJzR1dSBW7NOeSZ0ias7IAC0/k/vg7IrU/ANrY
-----END PRIVATE KEY-----";
    const RSA_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDaES60cMqXtaZN
jkyQF3f3Rc3APgMO+2i7MXC3Q8G/Xpol0/QiQYkMmkz7lPBcGQrSYCxSNSPRmxmW
mF85TB7yR8kCVSvXXI2ioehWrPtQhTGK39x0daLjFXXER6zlSy9Uc8vPuTcSWRAX
IVBW1Rco0QoDdoUAZUudK0R3j3vUpdDqRsFWhD6D/63Bvqyn+QgxBx7Ihu38SSyT
ais1790Z32e3jbS+SpD5a0DP6LHFJUh2jYl0tRk0+JokExjaBeqIbUPCJSZVGYB2
cxo7xc3lrwkOJ9oifXPkWa+WoSjFE46ejf4jKzLG6AE7rywzVExVltJV1G2CqIIS
3UhZ9a9VAgMBAAECggEAFc5ZDscmoyQRhLjhlBkcsHfk+r/Yu3NNhkaL4G+gnLvf
iz/WLmTCSSXW4+OBY5xHdkESvYe91LR/Sw1inE6t24ltItQUhb0mFqi9HInAuc0P
5rS7DVREHRQkyiNmuSkbCwVnUJbTWHzafI2ixIQbhEPfDfiYlTEL7iQI/TG2bs2U
pfmSVU6okP2Fl27VZptOFtWbte/A2v7wXq2uJVdUV3llNanQx4T7NntCDWcpKvEs
keDfGg82VWfcFRzUtu9X5wz6NtYdH0byBOmFB1RKuSJbFquIcJDej+dzxtQEdtrT
gvbudowiEF1WjYrL/f/bzuSrcIkdSF/37xjW7mVrwQKBgQD900vZ0JmFrPq8j28F
xNBy07UZO8pLhkO3d6Ru9IdBxloqLD6gaWTEDdui2OW/jqSneabDWHtPdio4YuVf
lracD3bh593gcLrOl+JD2xbiWTpJzcySwgACPSyuNhjQNvivGanlAZLCysvjD1or
rx+lBPMYXQYswDfpc4yHSZvJIQKBgQDb73WM68Yz9gMuXwCTPa3g7Tib/+Bxrla7
xN/lHVq2cZb8xngPEIbtOg83H//5foB93j09pWIu+QWtFr/sj9oGo72/+4IfiU+p
2PVtXMizH/mIiuJazpPIdcerLGQzfTzm/QMi+dhSHwQ756U8fHodgpUklitT8J9D
t1Qcy1obtQKBgFpiaGsqndB9FVgZ11X9jKCnBKD0qoeUSv7E6tfb2WIxqJ/F25Mx
lIE/0gs+IynAOJ+ucRS0qExWbphflwAf4ezWkOXGtDqcydiROzAgjxiQ33Gyh/tm
e6xQbl2mw9U5DfsEL3xtv/3/SvUS3XAazzDq/0mYrn82/3HxBISUUJYhAoGAL2YQ
A2rcsF4YmWnICfOFAbCePqCKknVsI9NuHUaSQjeAvsFXJof9TCrzFIJE/FQTBQ1c
TWjTHCR24LLCcg0eg8fOIQ3nITzKemRToFoatt/xO0gTOFbE6rLXcUCD58TZ1z43
6tXFlQ0yMGbf6YU6HBoEYnoqpFB7QnDEI+B/bvECgYBy7Yl/yigmUBIMcuQhSlHt
fKHKYIsXDzgL/3TaCYeAk047x+wjOOcfSshy3LB2Q1IHZJHBWefwm4Qq1tB7VTue
3rp0IXhdMkpWCJBhuEGNnVsKDWuLUafNUTeh9+1MojppyRzdS4wy/bn2Zt6KbypZ
8wzrq0cGXrT/0MkBo9F+fw==
-----END PRIVATE KEY-----";
    const RSA_1024_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBAL8LxvzoBmLJRO2a
M44/dMV2M/orPocNQHA7OY5vMip5BFi2ysjFPbnBcRWta35h7AXCX4qNZgHZNBhy
f/sQQcsRPy8syYu6u+NrAvUq91KLqedxLtYgdsX8RgKCdcfp4Q9Gbw6q4aAOPaBa
v4xmq1zLbFvC8enXZq5LYYPdy4HVAgMBAAECgYBJ44EzoX2OyW86QjB8bLh6Aox5
zi3hx9NLVOye1Qze9m0i7pehbP/BjzpweuEfQToqxBF1odh5EIughPBQpun6t//H
6bDT18N2vBLQCkHJGThh+T+NPT7gj/eBakFB7RjI4kG8VvRbL5+0EsvF0+v+UmXB
s+IcpDy9qZIpTod0RQJBAN6wGfjvxw8FDcx+KDW4+ivk23eYLvTCvvM8w8QLcXqe
mvipzcC/G7t2PT+wxC7VfS+kTzCkfjZQobhy6kAk6G8CQQDbn/C3nY7QBRpc/FIX
0SR2A8ZXKHBcbwRzibiR+CrhcN+NpUWDXLh/y3sJhqkdH4yVh2Oa8Iwd5+dxon01
SrP7AkBPONEUmaD0e/TLwjnl2tfNU86r/kz+MGYkPILctMF7QP+a5TXYk2R3TXo+
tVEl5Dd0An1Vrb9k7UyLRP6HMVorAkEAjX4XaVQ6o84F1A5DHVECen2oFJLbANIN
PhpmLLSDe8ZqYCkwBZeAzeRcGiEFZtviiJs3EqUSwFmdhFo47FJ6bQJANAgLt5WY
mPAHYdznMW0Ql3Fb5XAyaQqZoVRdR2bhrhtlwnu+c+N/Pcj3EaIkYenc6N5S8WBH
0cBS/3grk78brg==
-----END PRIVATE KEY-----";
    const P384_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDA9s1w6ijv6AYjpBRzP
1e6DOMFk7r4qaDkysEGEVkyEUxi9lx5+IKXBnXYF8sql6XyhZANiAATII4m00zvo
WFRU7VExvpcQq0qh8o7raIN/8BwrzgXAHiGKNh01T/RHRkiSfc8RLBoHafuBXbop
C9CHTc+PlU/teEtQoHE4BSVtCdc4EUkZFvchTAAqAaoEQve2GWq3QKI=
-----END PRIVATE KEY-----";

    fn settings(pem: Option<&str>) -> OidcSettings {
        OidcSettings {
            issuer: "http://127.0.0.1:1".into(),
            client_id: "dashboard".into(),
            client_secret: String::new(),
            token_endpoint_auth_method: Some(TokenAuthMethod::PrivateKeyJwt),
            private_key_pem: pem.map(str::to_owned),
            scopes: vec!["openid".into()],
            groups_claim: "groups".into(),
            timeout_seconds: 10,
        }
    }

    fn parts(jwt: &str) -> (serde_json::Value, serde_json::Value, Vec<u8>, String) {
        let mut it = jwt.split('.');
        let (h, c, s) = (
            it.next().expect("ok"),
            it.next().expect("ok"),
            it.next().expect("ok"),
        );
        let json =
            |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("ok")).expect("ok");
        (
            json(h),
            json(c),
            URL_SAFE_NO_PAD.decode(s).expect("ok"),
            format!("{h}.{c}"),
        )
    }

    #[test]
    fn the_derived_key_is_stable_per_provider_and_signs_verifiable_assertions() {
        use p256::ecdsa::signature::Verifier as _;
        let secrets = SecretBox::from_key(&[7; 32]);
        let one = ClientKey::for_provider(1, &settings(None), &secrets).expect("ok");
        let again = ClientKey::for_provider(1, &settings(None), &secrets).expect("ok");
        let two = ClientKey::for_provider(2, &settings(None), &secrets).expect("ok");
        let other_platform =
            ClientKey::for_provider(1, &settings(None), &SecretBox::from_key(&[8; 32]))
                .expect("ok");
        assert_eq!(one.public_jwk(), again.public_jwk());
        assert_ne!(one.kid(), two.kid());
        assert_ne!(one.kid(), other_platform.kid());
        let jwt = one.assertion("dashboard", "http://idp/token", 1_000);
        let (header, claims, signature, input) = parts(&jwt);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], one.kid());
        assert_eq!(
            (claims["iss"].as_str(), claims["sub"].as_str()),
            (Some("dashboard"), Some("dashboard"))
        );
        assert_eq!(claims["aud"], "http://idp/token");
        assert_eq!(
            (claims["iat"].as_i64(), claims["exp"].as_i64()),
            (Some(1_000), Some(1_060))
        );
        let ClientKey::P256(key) = &one else {
            panic!("P-256")
        };
        let signature = p256::ecdsa::Signature::from_slice(&signature).expect("ok");
        assert!(
            key.verifying_key()
                .verify(input.as_bytes(), &signature)
                .is_ok()
        );
        assert!(key.verifying_key().verify(b"other", &signature).is_err());
        // The JWKS carries the public half only.
        let jwks = client_jwks(1, &settings(None), &secrets).expect("ok");
        assert_eq!(jwks["keys"][0]["kid"], one.kid());
        assert!(jwks["keys"][0].get("d").is_none());
    }

    #[test]
    fn a_pem_key_from_the_settings_signs_rs256_or_es256() {
        use rsa::signature::Verifier as _;
        let secrets = SecretBox::from_key(&[7; 32]);
        let p256 = ClientKey::for_provider(1, &settings(Some(P256_PEM)), &secrets).expect("ok");
        assert_eq!(p256.alg(), "ES256");
        let rsa_key = ClientKey::for_provider(1, &settings(Some(RSA_PEM)), &secrets).expect("ok");
        assert_eq!(rsa_key.alg(), "RS256");
        let (header, _, signature, input) = parts(&rsa_key.assertion("c", "a", 0));
        assert_eq!(header["alg"], "RS256");
        let ClientKey::Rsa(private) = &rsa_key else {
            panic!("RSA")
        };
        let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(private.to_public_key());
        let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice()).expect("ok");
        assert!(verifier.verify(input.as_bytes(), &signature).is_ok());
        assert!(
            ClientKey::from_pem(RSA_1024_PEM)
                .expect_err("refused")
                .contains("2048")
        );
        assert!(ClientKey::from_pem(P384_PEM).is_err());
        assert!(ClientKey::from_pem("not a key").is_err());
        let err =
            ClientKey::for_provider(1, &settings(Some("junk")), &secrets).expect_err("refused");
        assert_eq!(err.reason(), "misconfigured");
    }
}
