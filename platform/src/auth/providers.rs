//! A tenant's identity providers: the TOML file an operator hands to
//! `tessera admin idp set`, validation, the group mappings, and sealing of the secret
//! inside the settings (OIDC `client_secret`, LDAP `bind_password`) before it is stored.
//!
//! ```toml
//! kind = "oidc"                       # or "ldap" / "saml": then the keys of
//!                                     # `ldap::LdapSettings` / `saml::SamlSettings`
//! display_name = "Example SSO"
//! issuer = "http://127.0.0.1:9400"
//! client_id = "dashboard"
//! client_secret = "dashboard-secret"
//! # Optional: client_secret_basic, client_secret_post or private_key_jwt (default: chosen
//! # from the provider's discovery document, basic first).
//! token_endpoint_auth_method = "client_secret_post"
//! groups_claim = "realm_access.roles"   # a claim name or a dot path into the id_token
//! [[groups]]
//! group = "analysts"
//! role = "viewer"                     # optional: viewer, author or admin
//! teams = ["analysts"]                # optional: created when missing
//! ```
//!
//! A mapping's `group` is a group name, or (for LDAP) a group DN such as
//! `"cn=dash-viewers,ou=groups,dc=example,dc=org"`, compared without regard to case or to
//! spaces around `,` and `=`. LDAP groups count whether the user is in them directly or
//! through nested groups, followed `nested_depth` levels deep (default 8, 0 = direct groups
//! only) with at most `nested_max_searches` directory searches (default 16) per sign-in.

use serde::{Deserialize, Serialize};

use super::ldap::{LdapSettings, normalized_dn};
use super::saml::SamlSettings;
use crate::secretbox::SecretBox;
use crate::tenancy::{self, Role};

/// Why a provider file or stored provider is unusable. Messages never carry secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is not valid TOML or has wrong or unknown keys.
    #[error("the provider file is invalid: {0}")]
    Parse(String),
    /// A value is out of range or malformed.
    #[error("{0}")]
    Invalid(String),
    /// A sealed secret could not be opened (another key, or altered in the database).
    #[error(transparent)]
    Sealed(#[from] crate::secretbox::Error),
}

/// The deepest group nesting an LDAP provider may ask to follow.
pub const MAX_NESTED_DEPTH: u32 = 32;
/// The most nested-group searches an LDAP provider may allow per sign-in.
pub const MAX_NESTED_SEARCHES: u32 = 256;

/// Which kind of provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// OpenID Connect: authorization code with PKCE.
    Oidc,
    /// An LDAP directory: search, then bind as the user.
    Ldap,
    /// A SAML 2.0 identity provider: SP-initiated, signed assertions.
    Saml,
}

impl Kind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Oidc => "oidc",
            Kind::Ldap => "ldap",
            Kind::Saml => "saml",
        }
    }

    /// Parse the stored spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "oidc" => Some(Kind::Oidc),
            "ldap" => Some(Kind::Ldap),
            "saml" => Some(Kind::Saml),
            _ => None,
        }
    }
}

/// How to reach one OpenID provider.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The issuer, exactly as the provider spells it (discovery is `{issuer}/.well-known/…`).
    pub issuer: String,
    /// Tessera's client id at the provider.
    pub client_id: String,
    /// Its client secret (sealed at rest; never logged). May be left out with
    /// `private_key_jwt`.
    #[serde(default)]
    pub client_secret: String,
    /// How Tessera authenticates at the token endpoint; `None`: the first of
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt` that the provider's
    /// discovery document lists (and that Tessera has the credentials for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<TokenAuthMethod>,
    /// For `private_key_jwt`: the client's private key as a PKCS#8 (or PKCS#1 RSA) PEM,
    /// RSA (signs RS256) or P-256 (signs ES256); sealed at rest. Without it Tessera uses a
    /// P-256 key of its own for this provider (derived from the platform's secret key),
    /// whose public half it publishes at `/auth/{tenant}/{provider}/jwks.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<String>,
    /// Scopes asked for.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The id_token claim holding the user's groups (a list or one string): a claim name,
    /// or a dot path into nested objects such as `realm_access.roles`; a segment with dots
    /// in it is double-quoted (`resource_access."my.app".roles`, `\"` and `\\` inside). A
    /// top-level claim spelled exactly like the whole setting wins (Auth0's
    /// `https://example.com/roles`).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Connect and total timeout of every call to the provider, in seconds.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

/// Client authentication at the token endpoint (OpenID Connect Core §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// HTTP Basic with the client id and secret.
    ClientSecretBasic,
    /// The client id and secret in the form body.
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523).
    PrivateKeyJwt,
}

impl TokenAuthMethod {
    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenAuthMethod::ClientSecretPost => "client_secret_post",
            TokenAuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// All of them, in the order Tessera prefers them.
    pub const ALL: [TokenAuthMethod; 3] = [
        TokenAuthMethod::ClientSecretBasic,
        TokenAuthMethod::ClientSecretPost,
        TokenAuthMethod::PrivateKeyJwt,
    ];
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile", "groups"]
        .map(str::to_owned)
        .to_vec()
}
fn default_groups_claim() -> String {
    "groups".to_owned()
}
fn default_timeout_seconds() -> u64 {
    10
}

/// One `[[groups]]` entry: what membership of an external group grants in the tenant.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    /// The group's name as the provider reports it, or (LDAP) the group's DN, compared
    /// normalized (see [`normalized_dn`]).
    pub group: String,
    /// The tenant role the group grants (viewer, author or admin; never owner).
    #[serde(default, with = "role_option")]
    pub role: Option<Role>,
    /// Teams (by name) the group's members are put in.
    #[serde(default)]
    pub teams: Vec<String>,
}

/// `Option<Role>` as its lowercase spelling (the role type itself only serializes).
mod role_option {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::tenancy::Role;

    pub fn serialize<S: Serializer>(role: &Option<Role>, s: S) -> Result<S::Ok, S::Error> {
        match role {
            Some(role) => s.serialize_some(role.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Role>, D::Error> {
        let raw: Option<String> = Option::deserialize(d)?;
        raw.map(|r| r.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A provider's kind-specific settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settings {
    /// OpenID Connect.
    Oidc(OidcSettings),
    /// LDAP.
    Ldap(LdapSettings),
    /// SAML 2.0.
    Saml(SamlSettings),
}

impl Settings {
    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            Settings::Oidc(_) => Kind::Oidc,
            Settings::Ldap(_) => Kind::Ldap,
            Settings::Saml(_) => Kind::Saml,
        }
    }

    /// Where the provider is (issuer, directory URL or metadata URL), for listings.
    pub fn location(&self) -> &str {
        match self {
            Settings::Oidc(s) => &s.issuer,
            Settings::Ldap(s) => &s.url,
            Settings::Saml(s) => s.location(),
        }
    }
}

/// A provider as configured: everything but its tenant and slug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderConfig {
    /// The name on the sign-in page.
    pub display_name: String,
    /// Kind-specific settings, with the secret in clear.
    pub settings: Settings,
    /// Group mappings, in file order.
    pub groups: Vec<GroupMapping>,
}

/// Keys common to every kind; the rest of the table is the kind's settings.
const COMMON_KEYS: [&str; 3] = ["kind", "display_name", "groups"];

/// Parse and validate a provider file.
pub fn parse_file(text: &str) -> Result<ProviderConfig, Error> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| Error::Parse(e.to_string()))?;
    let kind = match table.get("kind").and_then(|v| v.as_str()) {
        Some(raw) => Kind::parse(raw).ok_or_else(|| {
            Error::Parse(format!(
                "kind must be \"oidc\", \"ldap\" or \"saml\" (got {raw:?})"
            ))
        })?,
        None => {
            return Err(Error::Parse(
                "kind = \"oidc\", \"ldap\" or \"saml\" is missing".into(),
            ));
        }
    };
    let display_name = match table.get("display_name") {
        Some(toml::Value::String(name)) => name.clone(),
        Some(_) => return Err(Error::Parse("display_name must be a string".into())),
        None => return Err(Error::Parse("display_name is missing".into())),
    };
    let groups: Vec<GroupMapping> = match table.get("groups") {
        Some(value) => value
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| Error::Parse(format!("[[groups]]: {e}")))?,
        None => Vec::new(),
    };
    for key in COMMON_KEYS {
        table.remove(key);
    }
    let rest = toml::Value::Table(table);
    let settings = match kind {
        Kind::Oidc => Settings::Oidc(
            rest.try_into()
                .map_err(|e: toml::de::Error| Error::Parse(e.to_string()))?,
        ),
        Kind::Ldap => Settings::Ldap(
            rest.try_into()
                .map_err(|e: toml::de::Error| Error::Parse(e.to_string()))?,
        ),
        Kind::Saml => Settings::Saml(
            rest.try_into()
                .map_err(|e: toml::de::Error| Error::Parse(e.to_string()))?,
        ),
    };
    let config = ProviderConfig {
        display_name,
        settings,
        groups,
    };
    validate(&config)?;
    Ok(config)
}

/// Check the values a parse cannot: names, URLs, ranges, roles and team names.
pub fn validate(config: &ProviderConfig) -> Result<(), Error> {
    let name = config.display_name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "display_name must be 1-100 characters without control characters".into(),
        ));
    }
    match &config.settings {
        Settings::Oidc(s) => {
            if !(s.issuer.starts_with("https://") || s.issuer.starts_with("http://")) {
                return Err(Error::Invalid(format!(
                    "issuer must be an http(s) URL (got {:?})",
                    s.issuer
                )));
            }
            url_without_spaces("issuer", &s.issuer)?;
            if s.client_id.trim().is_empty() {
                return Err(Error::Invalid("client_id must not be empty".into()));
            }
            let key_auth = s.token_endpoint_auth_method == Some(TokenAuthMethod::PrivateKeyJwt);
            if s.client_secret.is_empty() && !key_auth {
                return Err(Error::Invalid(
                    "client_secret must not be empty (unless token_endpoint_auth_method = \"private_key_jwt\")".into(),
                ));
            }
            if let Some(pem) = &s.private_key_pem {
                super::oidc::ClientKey::from_pem(pem)
                    .map_err(|e| Error::Invalid(format!("private_key_pem: {e}")))?;
            }
            if !s.scopes.iter().any(|scope| scope == "openid") {
                return Err(Error::Invalid("scopes must include \"openid\"".into()));
            }
            if s.groups_claim.trim().is_empty() {
                return Err(Error::Invalid("groups_claim must not be empty".into()));
            }
            super::oidc::claim_path(&s.groups_claim)
                .map_err(|e| Error::Invalid(format!("groups_claim: {e}")))?;
            timeout_in_range(s.timeout_seconds)?;
        }
        Settings::Ldap(s) => {
            if !(s.url.starts_with("ldap://") || s.url.starts_with("ldaps://")) {
                return Err(Error::Invalid(format!(
                    "url must start with ldap:// or ldaps:// (got {:?})",
                    s.url
                )));
            }
            url_without_spaces("url", &s.url)?;
            if s.bind_dn.trim().is_empty() || s.user_base.trim().is_empty() {
                return Err(Error::Invalid(
                    "bind_dn and user_base must not be empty".into(),
                ));
            }
            if !s.user_filter.contains("{username}") {
                return Err(Error::Invalid("user_filter must contain {username}".into()));
            }
            timeout_in_range(s.timeout_seconds)?;
            if s.nested_depth > MAX_NESTED_DEPTH {
                return Err(Error::Invalid(format!(
                    "nested_depth must be at most {MAX_NESTED_DEPTH} (got {})",
                    s.nested_depth
                )));
            }
            if !(1..=MAX_NESTED_SEARCHES).contains(&s.nested_max_searches) {
                return Err(Error::Invalid(format!(
                    "nested_max_searches must be between 1 and {MAX_NESTED_SEARCHES} (got {})",
                    s.nested_max_searches
                )));
            }
        }
        Settings::Saml(s) => s.validate().map_err(Error::Invalid)?,
    }
    for mapping in &config.groups {
        if mapping.group.trim().is_empty() {
            return Err(Error::Invalid("[[groups]] group must not be empty".into()));
        }
        if mapping.role == Some(Role::Owner) {
            return Err(Error::Invalid(format!(
                "group {:?}: a provider cannot grant the owner role (use viewer, author or admin)",
                mapping.group
            )));
        }
        for team in &mapping.teams {
            tenancy::team_name(team)
                .map_err(|e| Error::Invalid(format!("group {:?}: {e}", mapping.group)))?;
        }
    }
    Ok(())
}

fn url_without_spaces(key: &str, url: &str) -> Result<(), Error> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Invalid(format!("{key} must not contain spaces")));
    }
    Ok(())
}

fn timeout_in_range(seconds: u64) -> Result<(), Error> {
    if (1..=120).contains(&seconds) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "timeout_seconds must be 1 to 120 (got {seconds})"
        )))
    }
}

/// The settings as stored: JSON with the secret sealed.
pub fn seal_settings(settings: &Settings, sealer: &SecretBox) -> String {
    let value = match settings {
        Settings::Oidc(s) => {
            let mut s = s.clone();
            s.client_secret = sealer.seal(s.client_secret.as_bytes());
            s.private_key_pem = s.private_key_pem.map(|pem| sealer.seal(pem.as_bytes()));
            serde_json::to_value(s)
        }
        Settings::Ldap(s) => {
            let mut s = s.clone();
            s.bind_password = sealer.seal(s.bind_password.as_bytes());
            serde_json::to_value(s)
        }
        // No secret: the SP does not sign its requests.
        Settings::Saml(s) => serde_json::to_value(s),
    };
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// Stored settings back, with the secret opened.
pub fn open_settings(kind: Kind, stored: &str, sealer: &SecretBox) -> Result<Settings, Error> {
    let corrupt = |e: serde_json::Error| Error::Invalid(format!("stored settings: {e}"));
    let open = |sealed: &str| -> Result<String, Error> {
        let bytes = sealer.open(sealed)?;
        String::from_utf8(bytes).map_err(|_| Error::Sealed(crate::secretbox::Error::Open))
    };
    Ok(match kind {
        Kind::Oidc => {
            let mut s: OidcSettings = serde_json::from_str(stored).map_err(corrupt)?;
            s.client_secret = open(&s.client_secret)?;
            s.private_key_pem = s.private_key_pem.as_deref().map(open).transpose()?;
            Settings::Oidc(s)
        }
        Kind::Ldap => {
            let mut s: LdapSettings = serde_json::from_str(stored).map_err(corrupt)?;
            s.bind_password = open(&s.bind_password)?;
            Settings::Ldap(s)
        }
        Kind::Saml => Settings::Saml(serde_json::from_str(stored).map_err(corrupt)?),
    })
}

/// What a provider's mappings grant someone in `groups`: the highest mapped role (if any)
/// and the union of mapped teams (sorted, without repeats).
pub fn mapped_access(mappings: &[GroupMapping], groups: &[String]) -> (Option<Role>, Vec<String>) {
    let mut role = None;
    let mut teams: Vec<String> = Vec::new();
    // A mapping that reads as a DN also matches the same DN spelled otherwise.
    let dns: Vec<String> = groups
        .iter()
        .filter(|g| g.contains('='))
        .map(|g| normalized_dn(g))
        .collect();
    let matches = |m: &&GroupMapping| {
        groups.contains(&m.group)
            || (m.group.contains('=') && dns.contains(&normalized_dn(&m.group)))
    };
    for mapping in mappings.iter().filter(matches) {
        role = role.max(mapping.role);
        teams.extend(mapping.teams.iter().cloned());
    }
    teams.sort();
    teams.dedup();
    (role, teams)
}

// --- "test this provider" ----------------------------------------------------------------

/// What a provider looks like from here: for LDAP the service bind, in-chain support and a
/// sample user's groups and roles; for OIDC the discovery document and keys. Serialized as
/// is by the CLI and the REST API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProviderReport {
    /// `oidc`, `ldap` or `saml`.
    pub kind: &'static str,
    /// Everything asked for worked (the bind or discovery, and the sample user if one was
    /// named).
    pub ok: bool,
    /// Why not, in a sentence (never a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// LDAP: what the directory answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<super::ldap::DirectoryReport>,
    /// LDAP: what the sample user's groups map to in the tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapped: Option<MappedReport>,
    /// OIDC: what discovery found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryReport>,
    /// SAML: what the IdP's metadata says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp: Option<IdpMetadataReport>,
}

impl ProviderReport {
    /// A report of `kind` that nothing has succeeded in yet.
    fn failed(kind: &'static str) -> Self {
        ProviderReport {
            kind,
            ok: false,
            error: None,
            directory: None,
            mapped: None,
            discovery: None,
            idp: None,
        }
    }
}

/// What a SAML IdP's metadata says (no certificate bodies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdpMetadataReport {
    /// The IdP's `entityID`.
    pub entity_id: Option<String>,
    /// Its single sign-on services: `[binding, location]`.
    pub sign_on: Vec<[String; 2]>,
    /// How many certificates it publishes (signing or unspecified use).
    pub certificates: usize,
    /// Whether it wants signed AuthnRequests (Tessera does not sign them yet).
    pub wants_signed_requests: bool,
}

/// The tenant access a sample account's groups would get.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MappedReport {
    /// The `[[groups]]` entries that match (their `group` as written).
    pub matched: Vec<String>,
    /// The role they grant (the highest), if any.
    pub role: Option<String>,
    /// The teams they put the account in.
    pub teams: Vec<String>,
}

/// An OpenID provider's discovery document, the parts sign-in relies on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiscoveryReport {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: Option<String>,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    /// `id_token_signing_alg_values_supported`.
    pub id_token_signing_algs: Vec<String>,
    /// `token_endpoint_auth_methods_supported` (absent means `client_secret_basic`).
    pub token_endpoint_auth_methods: Vec<String>,
    /// The keys the JWKS publishes: `kid`, `kty`, `alg` (as given; empty when absent).
    pub keys: Vec<[String; 3]>,
}

/// The longest sample user name `test_provider` takes.
pub const MAX_SAMPLE_USERNAME_CHARS: usize = super::ldap::MAX_USERNAME_CHARS;

/// Tries the provider `id` as configured (`settings` with the secret open): see
/// [`ProviderReport`]. A sample `username` (LDAP) is looked up with the service account and
/// no password; OIDC has no sample account (claims come only from a real sign-in).
pub async fn test_provider(
    id: i64,
    settings: &Settings,
    mappings: &[GroupMapping],
    username: Option<&str>,
) -> ProviderReport {
    match settings {
        Settings::Ldap(s) => {
            let mut report = ProviderReport::failed("ldap");
            match super::ldap::inspect(s, username).await {
                Ok(directory) => {
                    if let Some(user) = &directory.user {
                        let groups: Vec<String> =
                            user.groups.iter().chain(&user.group_dns).cloned().collect();
                        report.mapped = Some(mapped_report(mappings, &groups));
                    }
                    report.ok = directory.user_error.is_none();
                    report.error = directory.user_error.clone();
                    report.directory = Some(directory);
                }
                Err(e) => report.error = Some(e.to_string()),
            }
            report
        }
        Settings::Oidc(s) => {
            let mut report = ProviderReport::failed("oidc");
            let discovery = super::oidc::Discovery::default();
            match discovery.metadata(id, s, true).await {
                Ok(metadata) => {
                    report.discovery = Some(discovery_report(&metadata));
                    report.ok = true;
                }
                Err(e) => report.error = Some(e.to_string()),
            }
            report
        }
        Settings::Saml(s) => {
            let mut report = ProviderReport::failed("saml");
            match super::saml::Saml::default().idp_metadata(id, s).await {
                Ok(metadata) => {
                    let descriptors = metadata.idp_sso_descriptors.unwrap_or_default();
                    report.idp = Some(IdpMetadataReport {
                        entity_id: metadata.entity_id,
                        sign_on: descriptors
                            .iter()
                            .flat_map(|d| &d.single_sign_on_services)
                            .map(|e| [e.binding.clone(), e.location.clone()])
                            .collect(),
                        certificates: descriptors
                            .iter()
                            .flat_map(|d| &d.key_descriptors)
                            .filter(|k| k.key_use.as_deref() != Some("encryption"))
                            .count(),
                        wants_signed_requests: descriptors
                            .iter()
                            .any(|d| d.want_authn_requests_signed == Some(true)),
                    });
                    report.ok = true;
                }
                Err(e) => report.error = Some(e.to_string()),
            }
            report
        }
    }
}

fn mapped_report(mappings: &[GroupMapping], groups: &[String]) -> MappedReport {
    let (role, teams) = mapped_access(mappings, groups);
    let matched = mappings
        .iter()
        .filter(|m| mapped_access(std::slice::from_ref(*m), groups) != (None, vec![]))
        .map(|m| m.group.clone())
        .collect();
    MappedReport {
        matched,
        role: role.map(|r| r.as_str().to_owned()),
        teams,
    }
}

/// A serde value's string spelling (`"ES256"` → `ES256`).
fn spelled<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn discovery_report(metadata: &openidconnect::core::CoreProviderMetadata) -> DiscoveryReport {
    let keys = metadata
        .jwks()
        .keys()
        .iter()
        .map(|key| {
            let json = serde_json::to_value(key).unwrap_or_default();
            let field = |name: &str| {
                json.get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            [field("kid"), field("kty"), field("alg")]
        })
        .collect();
    DiscoveryReport {
        issuer: metadata.issuer().to_string(),
        authorization_endpoint: metadata.authorization_endpoint().to_string(),
        token_endpoint: metadata.token_endpoint().map(|u| u.to_string()),
        jwks_uri: metadata.jwks_uri().to_string(),
        userinfo_endpoint: metadata.userinfo_endpoint().map(|u| u.to_string()),
        id_token_signing_algs: metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .map(spelled)
            .collect(),
        token_endpoint_auth_methods: metadata
            .token_endpoint_auth_methods_supported()
            .map(|methods| methods.iter().map(spelled).collect())
            .unwrap_or_default(),
        keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OIDC: &str = r#"
kind = "oidc"
display_name = "Example SSO"
issuer = "http://127.0.0.1:9400"
client_id = "dashboard"
client_secret = "dashboard-secret"
[[groups]]
group = "analysts"
role = "viewer"
teams = ["analysts"]
[[groups]]
group = "admins"
role = "admin"
"#;

    #[test]
    fn an_oidc_file_parses_with_defaults() {
        let config = parse_file(OIDC).expect("parses");
        let Settings::Oidc(s) = &config.settings else {
            panic!("oidc expected")
        };
        assert_eq!(s.scopes, ["openid", "email", "profile", "groups"]);
        assert_eq!(s.groups_claim, "groups");
        assert_eq!(s.timeout_seconds, 10);
        assert_eq!(config.groups.len(), 2);
        assert_eq!(config.groups[0].role, Some(Role::Viewer));
    }

    #[test]
    fn an_ldap_file_takes_the_directory_settings() {
        let text = r#"
kind = "ldap"
display_name = "Directory"
url = "ldap://127.0.0.1:3389"
bind_dn = "cn=admin,dc=example,dc=org"
bind_password = "admin-secret"
user_base = "ou=people,dc=example,dc=org"
group_base = "ou=groups,dc=example,dc=org"
"#;
        let config = parse_file(text).expect("parses");
        assert_eq!(config.settings.kind(), Kind::Ldap);
        assert_eq!(config.settings.location(), "ldap://127.0.0.1:3389");
        let Settings::Ldap(s) = &config.settings else {
            panic!("ldap expected")
        };
        assert_eq!((s.nested_depth, s.nested_max_searches), (8, 16));
        let flat = parse_file(&format!(
            "{text}nested_depth = 0\nnested_max_searches = 3\n"
        ))
        .expect("parses");
        let Settings::Ldap(s) = &flat.settings else {
            panic!("ldap expected")
        };
        assert_eq!((s.nested_depth, s.nested_max_searches), (0, 3));
        for bad in [
            "nested_depth = 33",
            "nested_max_searches = 0",
            "nested_max_searches = 257",
        ] {
            let err = parse_file(&format!("{text}{bad}\n"))
                .expect_err(bad)
                .to_string();
            assert!(
                err.contains(bad.split(' ').next().unwrap_or_default()),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, needle) in [
            ("display_name = \"x\"".to_owned(), "kind"),
            (
                "kind = \"kerberos\"\ndisplay_name = \"x\"".to_owned(),
                "kerberos",
            ),
            (OIDC.replace("client_id", "client_ide"), "client_ide"),
            (
                OIDC.replace("role = \"admin\"", "role = \"owner\""),
                "owner",
            ),
            (OIDC.replace("role = \"admin\"", "role = \"boss\""), "boss"),
            (OIDC.replace("http://127.0.0.1:9400", "ftp://x"), "issuer"),
            (
                OIDC.replace("client_secret = \"dashboard-secret\"", ""),
                "client_secret",
            ),
        ] {
            let err = parse_file(&text).expect_err(&text).to_string();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains("dashboard-secret"), "no secret in {err}");
        }
    }

    #[test]
    fn the_token_endpoint_method_key_and_claim_path_settings() {
        let with = |extra: &str| OIDC.replacen("[[groups]]", &format!("{extra}\n[[groups]]"), 1);
        let Settings::Oidc(s) = parse_file(OIDC).expect("parses").settings else {
            panic!("oidc")
        };
        assert_eq!(s.token_endpoint_auth_method, None, "chosen from discovery");
        let config = parse_file(&with(
            "token_endpoint_auth_method = \"client_secret_post\"\ngroups_claim = 'resource_access.\"my.app\".roles'",
        ))
        .expect("parses");
        let Settings::Oidc(s) = &config.settings else {
            panic!("oidc")
        };
        assert_eq!(
            s.token_endpoint_auth_method,
            Some(TokenAuthMethod::ClientSecretPost)
        );
        // private_key_jwt needs no secret; the others do.
        let keyed = with("token_endpoint_auth_method = \"private_key_jwt\"")
            .replace("client_secret = \"dashboard-secret\"", "");
        assert!(parse_file(&keyed).is_ok());
        for (extra, needle) in [
            (
                "token_endpoint_auth_method = \"client_secret_jwt\"",
                "client_secret_jwt",
            ),
            ("groups_claim = \"realm_access..roles\"", "groups_claim"),
            ("groups_claim = 'a.\"b'", "groups_claim"),
            ("private_key_pem = \"not a key\"", "private_key_pem"),
        ] {
            let err = parse_file(&with(extra)).expect_err(extra).to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let unkeyed = OIDC.replace("client_secret = \"dashboard-secret\"", "");
        assert!(parse_file(&unkeyed).is_err());
    }

    #[test]
    fn the_secret_is_sealed_in_the_stored_settings() {
        let sealer = SecretBox::from_key(&[3; 32]);
        let config = parse_file(OIDC).expect("parses");
        let stored = seal_settings(&config.settings, &sealer);
        assert!(!stored.contains("dashboard-secret"), "{stored}");
        let opened = open_settings(Kind::Oidc, &stored, &sealer).expect("opens");
        assert_eq!(opened, config.settings);
        let other = SecretBox::from_key(&[4; 32]);
        assert!(open_settings(Kind::Oidc, &stored, &other).is_err());
    }

    #[test]
    fn mappings_give_the_highest_role_and_all_teams() {
        let config = parse_file(OIDC).expect("parses");
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            mapped_access(&config.groups, &groups(&["analysts", "admins"])),
            (Some(Role::Admin), vec!["analysts".to_owned()])
        );
        assert_eq!(
            mapped_access(&config.groups, &groups(&["strangers"])),
            (None, vec![])
        );
    }

    #[test]
    fn a_mapping_by_dn_matches_the_dn_spelled_otherwise() {
        let mapping = GroupMapping {
            group: "CN=Dash-Viewers, OU=Groups,DC=example,DC=org".to_owned(),
            role: Some(Role::Viewer),
            teams: vec![],
        };
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let dn = "cn=dash-viewers,ou=groups,dc=example,dc=org";
        assert_eq!(
            mapped_access(
                std::slice::from_ref(&mapping),
                &groups(&["dash-viewers", dn])
            )
            .0,
            Some(Role::Viewer)
        );
        // The name alone, or another DN, is not the DN.
        assert_eq!(
            mapped_access(std::slice::from_ref(&mapping), &groups(&["dash-viewers"])).0,
            None
        );
        let other = "cn=dash-viewers,ou=other,dc=example,dc=org";
        assert_eq!(
            mapped_access(std::slice::from_ref(&mapping), &groups(&[other])).0,
            None
        );
    }
}
