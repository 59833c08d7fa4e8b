//! SAML 2.0 sign-in as a service provider (SP-initiated Web Browser SSO) with the `samael`
//! crate: the IdP's metadata (given as XML, or fetched from a URL and cached per provider),
//! the AuthnRequest sent by the HTTP-Redirect binding, and the Response that comes back by
//! HTTP-POST to the provider's AssertionConsumerService.
//!
//! What a Response must pass before anyone is signed in:
//! - its shape, read before any signature (signature wrapping): one `Response` root, exactly
//!   one `Assertion` in the whole document, no `EncryptedAssertion`, no DOCTYPE;
//! - XML-DSig by libxmlsec1 (exclusive c14n, RSA/ECDSA with SHA-256 or stronger) against the
//!   signing certificates of the IdP's metadata; only the verified element is read on (samael
//!   reduces the document to what the signature covers), and it must be that one assertion;
//! - issuer (the IdP's entity id), an audience restriction naming our SP entity id, the bearer confirmation's
//!   recipient (our ACS URL) and `InResponseTo` (the one request this RelayState started);
//! - `NotBefore`/`NotOnOrAfter` of the conditions and of the confirmation, against the wall
//!   clock (samael) and against Tessera's clock, with a minute of skew.
//!
//! The RelayState names a pending sign-in kept server-side in the hand-off store (the ACS is
//! a cross-site POST: the browser's `SameSite=Lax` session cookie does not come with it); it
//! is taken on first use, so a replayed Response finds nothing. No axum here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use samael::metadata::{
    EntityDescriptor, HTTP_POST_BINDING, HTTP_REDIRECT_BINDING, IndexedEndpoint, SpSsoDescriptor,
};
use samael::schema::Assertion;
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};
use samael::traits::ToXml;
use serde::{Deserialize, Serialize};

use super::handoff::Handoffs;

/// How long fetched IdP metadata is trusted before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// A started sign-in must come back within this long.
pub const PENDING_MAX_AGE_MS: i64 = 10 * 60 * 1000;
/// The largest `SAMLResponse` form value read (base64).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// The largest metadata document read.
const MAX_METADATA_BYTES: usize = 1024 * 1024;
/// Clock skew allowed on every time check.
const SKEW_MS: i64 = 60 * 1000;

/// How to reach one SAML identity provider (the `kind = "saml"` part of a provider file).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SamlSettings {
    /// Where the IdP publishes its metadata (fetched at the first sign-in, then hourly).
    #[serde(default)]
    pub idp_metadata_url: Option<String>,
    /// The IdP's metadata itself (instead of the URL).
    #[serde(default)]
    pub idp_metadata_xml: Option<String>,
    /// Tessera's SP entity id at the IdP (default: the SP metadata URL,
    /// `{public_url}/auth/saml/{tenant}/{provider}/metadata`).
    #[serde(default)]
    pub sp_entity_id: Option<String>,
    /// The attribute (Name or FriendlyName) holding the person's email address.
    #[serde(default = "default_email_attribute")]
    pub email_attribute: String,
    /// The attribute holding the person's groups (one value per group).
    #[serde(default = "default_groups_attribute")]
    pub groups_attribute: String,
    /// Whether the IdP's email addresses count as verified (then a sign-in may join an
    /// existing account with that address).
    #[serde(default)]
    pub emails_verified: bool,
    /// Connect and total timeout of a metadata fetch, in seconds.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

fn default_email_attribute() -> String {
    "email".to_owned()
}
fn default_groups_attribute() -> String {
    "groups".to_owned()
}
fn default_timeout_seconds() -> u64 {
    10
}

impl SamlSettings {
    /// Where the metadata comes from, for listings.
    pub fn location(&self) -> &str {
        self.idp_metadata_url
            .as_deref()
            .unwrap_or("(metadata XML in the provider file)")
    }

    /// Check what a parse cannot; inline metadata must be usable as it stands.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.idp_metadata_url, &self.idp_metadata_xml) {
            (Some(url), None) => {
                if !(url.starts_with("https://") || url.starts_with("http://"))
                    || url.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(format!(
                        "idp_metadata_url must be an http(s) URL without spaces (got {url:?})"
                    ));
                }
            }
            (None, Some(xml)) => {
                parse_idp_metadata(xml)?;
            }
            _ => {
                return Err("set exactly one of idp_metadata_url and idp_metadata_xml".into());
            }
        }
        if let Some(id) = &self.sp_entity_id
            && (id.trim().is_empty() || id.len() > 1024 || id.chars().any(char::is_control))
        {
            return Err("sp_entity_id must be 1-1024 characters without control characters".into());
        }
        if self.email_attribute.trim().is_empty() || self.groups_attribute.trim().is_empty() {
            return Err("email_attribute and groups_attribute must not be empty".into());
        }
        if !(1..=120).contains(&self.timeout_seconds) {
            return Err(format!(
                "timeout_seconds must be 1 to 120 (got {})",
                self.timeout_seconds
            ));
        }
        Ok(())
    }
}

/// IdP metadata that Tessera can use: an entity id, a signing certificate, and a
/// single sign-on service with the HTTP-Redirect binding.
fn parse_idp_metadata(xml: &str) -> Result<EntityDescriptor, String> {
    if xml.len() > MAX_METADATA_BYTES {
        return Err("the IdP metadata is larger than 1 MiB".into());
    }
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err("the IdP metadata must not contain a DOCTYPE".into());
    }
    let descriptor: EntityDescriptor = xml
        .parse()
        .map_err(|e| format!("the IdP metadata is not a SAML EntityDescriptor: {e}"))?;
    if descriptor.entity_id.as_deref().is_none_or(str::is_empty) {
        return Err("the IdP metadata has no entityID".into());
    }
    let sp = ServiceProvider {
        idp_metadata: descriptor.clone(),
        ..ServiceProvider::default()
    };
    match sp.idp_signing_certs() {
        Ok(Some(certs)) if !certs.is_empty() => {}
        Ok(_) => return Err("the IdP metadata has no signing certificate".into()),
        Err(e) => return Err(format!("the IdP metadata's certificate: {e}")),
    }
    if sp.sso_binding_location(HTTP_REDIRECT_BINDING).is_none() {
        return Err(
            "the IdP metadata has no SingleSignOnService with the HTTP-Redirect binding".into(),
        );
    }
    Ok(descriptor)
}

/// Why a SAML sign-in failed. [`SamlError::public_message`] is what the person sees;
/// `Display` (for logs and audit rows) never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum SamlError {
    /// The IdP's metadata could not be fetched.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// No sign-in started here matches (unknown, used already, expired, other provider).
    #[error("the SAML response does not match a sign-in started here: {0}")]
    BadState(String),
    /// The Response is not shaped like one signed assertion (signature wrapping, several
    /// or encrypted assertions, a DOCTYPE).
    #[error("the SAML response has an unexpected structure: {0}")]
    Malformed(String),
    /// A check of the Response failed: signature, issuer, audience, recipient, time, or
    /// `InResponseTo`.
    #[error("the SAML response was rejected: {0}")]
    Invalid(String),
    /// The IdP answered with a status other than Success.
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The provider's settings are unusable.
    #[error("the identity provider is misconfigured: {0}")]
    Misconfigured(String),
}

impl SamlError {
    /// A clear sentence for the sign-in page, without internals.
    pub fn public_message(&self) -> &'static str {
        match self {
            SamlError::Unavailable(_) => {
                "The sign-in provider is not reachable right now. Try again later."
            }
            SamlError::BadState(_) => {
                "This sign-in response is not valid here (expired, already used, or not started here). Start the sign-in again."
            }
            SamlError::Malformed(_) => {
                "The sign-in provider's answer is not in the expected form and was refused. Start the sign-in again."
            }
            SamlError::Invalid(_) => {
                "The sign-in provider's answer could not be verified. Start the sign-in again."
            }
            SamlError::Refused(_) => "The sign-in provider refused the sign-in.",
            SamlError::Misconfigured(_) => {
                "This sign-in provider is misconfigured. Ask an administrator."
            }
        }
    }

    /// A short code for audit rows.
    pub fn reason(&self) -> &'static str {
        match self {
            SamlError::Unavailable(_) => "provider_unavailable",
            SamlError::BadState(_) => "bad_state",
            SamlError::Malformed(_) => "malformed_response",
            SamlError::Invalid(_) => "invalid_response",
            SamlError::Refused(_) => "provider_refused",
            SamlError::Misconfigured(_) => "misconfigured",
        }
    }
}

/// Tessera's side of one provider: entity id and ACS URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpEndpoints {
    /// The SP entity id (the audience of the assertions).
    pub entity_id: String,
    /// The AssertionConsumerService URL (the recipient and destination).
    pub acs_url: String,
}

/// The endpoints of provider `provider` of `tenant` behind `public_url`.
pub fn endpoints(
    public_url: &str,
    tenant: &str,
    provider: &str,
    settings: &SamlSettings,
) -> SpEndpoints {
    let base = format!("{public_url}/auth/saml/{tenant}/{provider}");
    SpEndpoints {
        entity_id: settings
            .sp_entity_id
            .clone()
            .unwrap_or_else(|| format!("{base}/metadata")),
        acs_url: format!("{base}/acs"),
    }
}

/// The SP metadata an IdP administrator registers: entity id, the ACS with the HTTP-POST
/// binding, unsigned requests, signed assertions wanted.
pub fn sp_metadata(endpoints: &SpEndpoints) -> Result<String, SamlError> {
    let descriptor = EntityDescriptor {
        entity_id: Some(endpoints.entity_id.clone()),
        sp_sso_descriptors: Some(vec![SpSsoDescriptor {
            protocol_support_enumeration: Some("urn:oasis:names:tc:SAML:2.0:protocol".into()),
            authn_requests_signed: Some(false),
            want_assertions_signed: Some(true),
            assertion_consumer_services: vec![IndexedEndpoint {
                binding: HTTP_POST_BINDING.to_owned(),
                location: endpoints.acs_url.clone(),
                index: 0,
                is_default: Some(true),
                ..IndexedEndpoint::default()
            }],
            ..SpSsoDescriptor::default()
        }]),
        ..EntityDescriptor::default()
    };
    descriptor
        .to_string()
        .map_err(|e| SamlError::Misconfigured(format!("writing the SP metadata: {e}")))
}

/// What the session needs between the redirect to the IdP and the ACS, kept server-side
/// under the RelayState.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingSaml {
    /// The provider's tenant (id).
    pub tenant: i64,
    /// The provider's id.
    pub provider: i64,
    /// The AuthnRequest's ID, which the assertion's `InResponseTo` must name.
    pub request_id: String,
    /// Where to go after signing in (a local path).
    pub next: String,
}

/// Who the IdP vouched for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SamlIdentity {
    /// The assertion's NameID (stable per IdP, the account's subject).
    pub subject: String,
    /// The email attribute's first value.
    pub email: Option<String>,
    /// The values of the groups attribute.
    pub groups: Vec<String>,
}

/// IdP metadata per provider, and the sign-in steps.
#[derive(Default)]
pub struct Saml {
    cache: Mutex<HashMap<(i64, String), (EntityDescriptor, Instant)>>,
}

impl std::fmt::Debug for Saml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Saml(..)")
    }
}

fn pending_key(relay_state: &str) -> String {
    super::handoff::hashed("saml", relay_state)
}

impl Saml {
    /// The IdP's metadata: the inline XML, or the URL's document (cached an hour).
    pub async fn idp_metadata(
        &self,
        provider: i64,
        settings: &SamlSettings,
    ) -> Result<EntityDescriptor, SamlError> {
        if let Some(xml) = &settings.idp_metadata_xml {
            return parse_idp_metadata(xml).map_err(SamlError::Misconfigured);
        }
        let Some(url) = &settings.idp_metadata_url else {
            return Err(SamlError::Misconfigured("no IdP metadata".into()));
        };
        let key = (provider, url.clone());
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((metadata, at)) = cache.get(&key)
                && at.elapsed() < METADATA_TTL
            {
                return Ok(metadata.clone());
            }
        }
        let timeout = Duration::from_secs(settings.timeout_seconds);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| SamlError::Misconfigured(format!("building the HTTP client: {e}")))?;
        let unavailable = |e: reqwest::Error| {
            SamlError::Unavailable(format!("fetching the IdP metadata from {url}: {e}"))
        };
        let response = client.get(url).send().await.map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(SamlError::Unavailable(format!(
                "fetching the IdP metadata from {url}: HTTP {}",
                response.status()
            )));
        }
        let body = response.bytes().await.map_err(unavailable)?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| SamlError::Misconfigured("the IdP metadata is not UTF-8".into()))?;
        let metadata = parse_idp_metadata(text).map_err(SamlError::Misconfigured)?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    /// Start a sign-in: keep the pending request under a new RelayState and return the
    /// IdP URL (HTTP-Redirect binding) to send the browser to.
    #[allow(clippy::too_many_arguments)]
    pub async fn begin(
        &self,
        handoffs: &Handoffs,
        tenant: i64,
        provider: i64,
        settings: &SamlSettings,
        endpoints: &SpEndpoints,
        next: String,
        now: i64,
    ) -> Result<String, SamlError> {
        let idp = self.idp_metadata(provider, settings).await?;
        let sp = service_provider(idp, endpoints);
        let sso = sp
            .sso_binding_location(HTTP_REDIRECT_BINDING)
            .ok_or_else(|| SamlError::Misconfigured("no HTTP-Redirect SSO service".into()))?;
        let mut request = sp
            .make_authentication_request(&sso)
            .map_err(|e| SamlError::Misconfigured(format!("building the AuthnRequest: {e}")))?;
        // samael's own ID has 32 random bits; ours has 256 (an ID must not start with a digit).
        request.id = format!("_{}", super::handoff::new_secret());
        let relay_state = super::handoff::new_secret();
        let url = request
            .redirect(&relay_state)
            .map_err(|e| SamlError::Misconfigured(format!("encoding the AuthnRequest: {e}")))?
            .ok_or_else(|| {
                SamlError::Misconfigured("the AuthnRequest has no destination".into())
            })?;
        let pending = PendingSaml {
            tenant,
            provider,
            request_id: request.id.clone(),
            next,
        };
        let data = serde_json::to_string(&pending)
            .map_err(|e| SamlError::Misconfigured(format!("pending sign-in: {e}")))?;
        handoffs
            .put(
                &pending_key(&relay_state),
                &data,
                now + PENDING_MAX_AGE_MS,
                now,
            )
            .await
            .map_err(|e| SamlError::Misconfigured(e.to_string()))?;
        Ok(url.to_string())
    }

    /// The ACS: take the pending sign-in named by `relay_state` (once), then check the
    /// Response for provider `provider` of `tenant`. Returns who signed in and `next`.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        handoffs: &Handoffs,
        tenant: i64,
        provider: i64,
        settings: &SamlSettings,
        endpoints: &SpEndpoints,
        saml_response: &str,
        relay_state: &str,
        now: i64,
    ) -> Result<(SamlIdentity, String), SamlError> {
        if relay_state.is_empty()
            || relay_state.len() > 128
            || !relay_state.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(SamlError::BadState("no usable RelayState".into()));
        }
        let taken = handoffs
            .take(&pending_key(relay_state), now)
            .await
            .map_err(|e| SamlError::Misconfigured(e.to_string()))?;
        let pending: PendingSaml = taken
            .and_then(|data| serde_json::from_str(&data).ok())
            .ok_or_else(|| {
                SamlError::BadState(
                    "no sign-in is pending under this RelayState (replayed, expired or forged)"
                        .into(),
                )
            })?;
        if pending.tenant != tenant || pending.provider != provider {
            return Err(SamlError::BadState(
                "the sign-in was started for another provider".into(),
            ));
        }
        if saml_response.len() > MAX_RESPONSE_BYTES {
            return Err(SamlError::Malformed("the SAMLResponse is too large".into()));
        }
        let xml = decode_response(saml_response)?;
        let assertion_id = single_assertion_id(&xml)?;
        let idp = self.idp_metadata(provider, settings).await?;
        let sp = service_provider(idp, endpoints);
        match sp.idp_signing_certs() {
            Ok(Some(certs)) if !certs.is_empty() => {}
            // samael skips the signature check without certificates: never get there.
            _ => {
                return Err(SamlError::Misconfigured(
                    "the IdP metadata has no signing certificate".into(),
                ));
            }
        }
        let request_id = pending.request_id.clone();
        let assertion = tokio::task::spawn_blocking(move || {
            sp.parse_xml_response(&xml, Some(&[request_id.as_str()]))
                .map_err(|e| classify(&e))
        })
        .await
        .map_err(|e| SamlError::Misconfigured(format!("the check stopped: {e}")))??;
        if assertion.id != assertion_id {
            return Err(SamlError::Malformed(
                "the verified assertion is not the document's assertion".into(),
            ));
        }
        check_conditions(&assertion, &endpoints.entity_id, now)?;
        Ok((identity(&assertion, settings)?, pending.next))
    }
}

fn service_provider(idp: EntityDescriptor, endpoints: &SpEndpoints) -> ServiceProvider {
    use samael::crypto::AllowedSignatureAlgorithm as A;
    let mut sp = ServiceProviderBuilder::default()
        .entity_id(endpoints.entity_id.clone())
        .acs_url(endpoints.acs_url.clone())
        .idp_metadata(idp)
        .allowed_signature_algorithms(vec![
            A::RsaSha256,
            A::RsaSha384,
            A::RsaSha512,
            A::EcdsaSha256,
            A::EcdsaSha384,
            A::EcdsaSha512,
        ])
        .build()
        .unwrap_or_default();
    sp.metadata_url = None;
    sp.slo_url = None;
    sp.max_clock_skew = chrono::Duration::milliseconds(SKEW_MS);
    sp
}

fn decode_response(encoded: &str) -> Result<String, SamlError> {
    use base64::Engine;
    let compact: String = encoded.split_ascii_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| SamlError::Malformed("the SAMLResponse is not base64".into()))?;
    String::from_utf8(bytes)
        .map_err(|_| SamlError::Malformed("the SAMLResponse is not UTF-8".into()))
}

/// The ID of the one `Assertion` of a `Response` document, read before any signature check:
/// a second assertion anywhere (the usual signature-wrapping move: a forged one beside or
/// around the signed one), an encrypted one, a DOCTYPE or another root is refused.
fn single_assertion_id(xml: &str) -> Result<String, SamlError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut assertion_ids: Vec<String> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| SamlError::Malformed(format!("not well-formed XML: {e}")))?;
        let element = match &event {
            Event::Start(e) | Event::Empty(e) => Some(e.clone()),
            Event::DocType(_) => {
                return Err(SamlError::Malformed("a DOCTYPE is not allowed".into()));
            }
            Event::Eof => break,
            _ => None,
        };
        if let Some(e) = element {
            let local = e.local_name();
            let name = local.as_ref();
            if depth == 0 {
                if root_seen || name != b"Response" {
                    return Err(SamlError::Malformed(
                        "the root element is not a Response".into(),
                    ));
                }
                root_seen = true;
            }
            match name {
                b"EncryptedAssertion" => {
                    return Err(SamlError::Malformed(
                        "encrypted assertions are not supported".into(),
                    ));
                }
                b"Assertion" => {
                    let id = e
                        .try_get_attribute("ID")
                        .ok()
                        .flatten()
                        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                        .unwrap_or_default();
                    assertion_ids.push(id);
                }
                _ => {}
            }
            if matches!(event, Event::Start(_)) {
                depth += 1;
            }
        } else if matches!(event, Event::End(_)) {
            depth = depth.saturating_sub(1);
        }
    }
    match assertion_ids.as_slice() {
        [id] if !id.is_empty() => Ok(id.clone()),
        [] => Err(SamlError::Malformed(
            "the Response carries no assertion".into(),
        )),
        [_] => Err(SamlError::Malformed("the assertion has no ID".into())),
        more => Err(SamlError::Malformed(format!(
            "the Response carries {} assertions (one expected)",
            more.len()
        ))),
    }
}

/// samael's error as ours: the IdP's refusal, or a failed check.
fn classify(error: &samael::service_provider::Error) -> SamlError {
    use samael::service_provider::Error as E;
    match error {
        E::ResponseBadStatusCode { code } => SamlError::Refused(format!("status {code}")),
        E::FailedToValidateSignature => SamlError::Invalid(
            "no valid signature by a certificate of the IdP's metadata covers the assertion".into(),
        ),
        other => SamlError::Invalid(other.to_string()),
    }
}

/// An audience restriction naming us (the profile requires one; samael checks it only when
/// present), and the conditions' and the bearer confirmation's window against Tessera's
/// clock.
fn check_conditions(assertion: &Assertion, entity_id: &str, now: i64) -> Result<(), SamlError> {
    let for_us = assertion
        .conditions
        .as_ref()
        .and_then(|c| c.audience_restrictions.as_ref())
        .is_some_and(|restrictions| {
            restrictions
                .iter()
                .any(|r| r.audience.iter().any(|a| a == entity_id))
        });
    if !for_us {
        return Err(SamlError::Invalid(
            "the assertion has no audience restriction naming this service provider".into(),
        ));
    }
    let expired = |what: &str, at: i64| {
        SamlError::Invalid(format!(
            "the assertion expired ({what} {})",
            chrono::DateTime::from_timestamp_millis(at)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        ))
    };
    if let Some(conditions) = &assertion.conditions {
        if let Some(until) = conditions.not_on_or_after
            && now >= until.timestamp_millis() + SKEW_MS
        {
            return Err(expired("NotOnOrAfter", until.timestamp_millis()));
        }
        if let Some(from) = conditions.not_before
            && now + SKEW_MS < from.timestamp_millis()
        {
            return Err(SamlError::Invalid(
                "the assertion is not valid yet (NotBefore)".into(),
            ));
        }
    }
    let confirmations = assertion
        .subject
        .as_ref()
        .and_then(|s| s.subject_confirmations.as_ref())
        .into_iter()
        .flatten();
    for confirmation in confirmations {
        if let Some(until) = confirmation
            .subject_confirmation_data
            .as_ref()
            .and_then(|d| d.not_on_or_after)
            && now >= until.timestamp_millis() + SKEW_MS
        {
            return Err(expired(
                "SubjectConfirmationData NotOnOrAfter",
                until.timestamp_millis(),
            ));
        }
    }
    Ok(())
}

/// The NameID, the email and the groups of a verified assertion.
fn identity(assertion: &Assertion, settings: &SamlSettings) -> Result<SamlIdentity, SamlError> {
    let subject = assertion
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .map(|n| n.value.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| SamlError::Invalid("the assertion has no NameID".into()))?;
    let values = |wanted: &str| -> Vec<String> {
        assertion
            .attribute_statements
            .iter()
            .flatten()
            .flat_map(|s| s.attributes.iter())
            .filter(|a| {
                a.name.as_deref() == Some(wanted) || a.friendly_name.as_deref() == Some(wanted)
            })
            .flat_map(|a| a.values.iter())
            .filter_map(|v| v.value.as_deref().map(str::trim))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    };
    Ok(SamlIdentity {
        subject,
        email: values(&settings.email_attribute).into_iter().next(),
        groups: values(&settings.groups_attribute),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="r1"><saml:Issuer>i</saml:Issuer><saml:Assertion ID="a1"><saml:Issuer>i</saml:Issuer></saml:Assertion></samlp:Response>"#;

    #[test]
    fn one_assertion_is_read_and_wrapping_shapes_are_refused() {
        assert_eq!(single_assertion_id(RESPONSE).expect("one"), "a1");
        let two = RESPONSE.replace(
            "<saml:Assertion ID=\"a1\">",
            "<saml:Assertion ID=\"evil\"><saml:Issuer>i</saml:Issuer></saml:Assertion><saml:Assertion ID=\"a1\">",
        );
        assert!(single_assertion_id(&two).is_err());
        let nested = RESPONSE.replace(
            "<saml:Issuer>i</saml:Issuer></saml:Assertion>",
            "<saml:Issuer>i</saml:Issuer><saml:Assertion ID=\"in\"/></saml:Assertion>",
        );
        assert!(single_assertion_id(&nested).is_err());
        let doctype = format!("<!DOCTYPE x [<!ENTITY e \"x\">]>{RESPONSE}");
        assert!(single_assertion_id(&doctype).is_err());
        assert!(single_assertion_id("<Assertion ID=\"a\"/>").is_err());
        assert!(single_assertion_id(&RESPONSE.replace("Assertion", "EncryptedAssertion")).is_err());
    }

    #[test]
    fn settings_need_exactly_one_metadata_source() {
        let base = SamlSettings {
            idp_metadata_url: None,
            idp_metadata_xml: None,
            sp_entity_id: None,
            email_attribute: default_email_attribute(),
            groups_attribute: default_groups_attribute(),
            emails_verified: false,
            timeout_seconds: 10,
        };
        assert!(base.validate().is_err());
        let url = SamlSettings {
            idp_metadata_url: Some("https://idp.example.org/metadata".into()),
            ..base.clone()
        };
        assert!(url.validate().is_ok());
        let both = SamlSettings {
            idp_metadata_xml: Some("<x/>".into()),
            ..url.clone()
        };
        assert!(both.validate().is_err());
        let bad_xml = SamlSettings {
            idp_metadata_xml: Some("<EntityDescriptor/>".into()),
            ..base
        };
        assert!(bad_xml.validate().is_err());
    }
}
