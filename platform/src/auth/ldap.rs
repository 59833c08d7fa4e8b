//! LDAP sign-in for a tenant's directory: search-then-bind, group lookup.
//!
//! [`authenticate`] does, with the `ldap3` crate over rustls:
//! 1. check the input before any traffic (empty password, empty/overlong/control-character
//!    user name → [`LdapError::InvalidCredentials`]) and the settings (URL, CA file, filters →
//!    [`LdapError::Misconfigured`]);
//! 2. connect (`ldap://` plain or with StartTLS, `ldaps://`), verifying the server certificate
//!    against `ca_cert_file` or the system roots (verification is never turned off), and bind
//!    as the service account;
//! 3. search `user_base` with `user_filter`, `{username}` escaped per RFC 4515; exactly one
//!    entry or the sign-in fails;
//! 4. bind as that entry's DN with the password on a second connection;
//! 5. read email, name and groups (`group_filter` with the escaped `{dn}`, plus `memberOf`
//!    values under `group_base`), then unbind both connections;
//! 6. follow nested groups (groups whose member is one of the groups found, and so on) up to
//!    `nested_depth` levels: one search per level (an OR of `group_filter` for each DN of the
//!    level, in chunks of [`NESTED_DNS_PER_SEARCH`]), a visited set so that cycles end, and at
//!    most `nested_max_searches` such searches per sign-in.
//!
//! Every step is bounded by `timeout_seconds`. Passwords never reach a log line or an error.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions, StdStream};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

/// How to reach and search one tenant's directory (the `kind = "ldap"` part of an identity
/// provider's configuration). `{username}` and `{dn}` in the filters are replaced by the
/// escaped values.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// `ldap://host:port` (use `starttls = true`) or `ldaps://host:port`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    #[serde(default)]
    pub starttls: bool,
    /// PEM file with the CA certificate(s) that sign the server's certificate; the system
    /// roots when absent.
    #[serde(default)]
    pub ca_cert_file: Option<String>,
    /// The service account that searches for users and groups.
    pub bind_dn: String,
    /// Its password (a secret: never logged).
    pub bind_password: String,
    /// Where users live, e.g. `ou=people,dc=example,dc=org`.
    pub user_base: String,
    /// Filter that finds exactly one user, e.g. `(uid={username})`.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// Where groups live, e.g. `ou=groups,dc=example,dc=org`.
    pub group_base: String,
    /// Filter for the groups a user belongs to, e.g. `(&(objectClass=groupOfNames)(member={dn}))`.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// The group attribute matched against the tenant's group mappings.
    #[serde(default = "default_group_name_attribute")]
    pub group_name_attribute: String,
    /// The user attribute holding the email address.
    #[serde(default = "default_email_attribute")]
    pub email_attribute: String,
    /// The user attribute holding the display name.
    #[serde(default = "default_name_attribute")]
    pub name_attribute: String,
    /// Limit on connecting and on each operation.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// How many levels of group-in-group membership to follow (`analysts` member of
    /// `dash-viewers` is one level); 0 reads only the user's own groups.
    #[serde(default = "default_nested_depth")]
    pub nested_depth: u32,
    /// The most directory searches spent on nested groups in one sign-in; when reached, the
    /// sign-in goes on with the groups found so far and a warning is logged.
    #[serde(default = "default_nested_max_searches")]
    pub nested_max_searches: u32,
}

fn default_user_filter() -> String {
    "(uid={username})".to_owned()
}
fn default_group_filter() -> String {
    "(&(objectClass=groupOfNames)(member={dn}))".to_owned()
}
fn default_group_name_attribute() -> String {
    "cn".to_owned()
}
fn default_email_attribute() -> String {
    "mail".to_owned()
}
fn default_name_attribute() -> String {
    "cn".to_owned()
}
fn default_timeout_seconds() -> u64 {
    5
}
fn default_nested_depth() -> u32 {
    8
}
fn default_nested_max_searches() -> u32 {
    16
}

/// The most group DNs OR-ed into one nested-group search (a level with more groups takes
/// several searches): keeps each filter a few kilobytes.
pub const NESTED_DNS_PER_SEARCH: usize = 50;

/// A user the directory vouched for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The entry's DN (the stable subject for this provider).
    pub dn: String,
    /// The name the user typed, as the directory spells it.
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// Group names (`group_name_attribute` values) the user belongs to, directly or through
    /// nested groups.
    pub groups: Vec<String>,
    /// The DNs of those groups, as the directory spells them (for mappings by DN).
    pub group_dns: Vec<String>,
    /// How many group searches the sign-in made (the direct one plus one per nested level
    /// and chunk): the directory round trips spent on groups.
    pub group_searches: u32,
}

/// Why a directory sign-in did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// Unknown user, wrong or empty password, or more than one entry matched: the person
    /// is not told which.
    #[error("wrong user name or password")]
    InvalidCredentials,
    /// The directory could not be reached, refused the service bind, or timed out.
    #[error("the directory is unavailable: {0}")]
    Unavailable(String),
    /// The provider's settings are unusable (bad URL, unreadable CA file, bad filter).
    #[error("the directory settings are invalid: {0}")]
    Misconfigured(String),
}

/// The longest user name passed to the directory (characters); longer ones are refused.
pub const MAX_USERNAME_CHARS: usize = 256;
/// The longest password passed to the directory (bytes); longer ones are refused.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// LDAP result code 49: invalidCredentials.
const RC_INVALID_CREDENTIALS: u32 = 49;
/// LDAP result code 4: sizeLimitExceeded (our size limit of 2 was hit: not exactly one user).
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
/// LDAP result code 32: noSuchObject (the search base does not exist).
const RC_NO_SUCH_OBJECT: u32 = 32;

/// Checks `username`/`password` against the directory and returns who they are.
pub async fn authenticate(
    settings: &LdapSettings,
    username: &str,
    password: &str,
) -> Result<DirectoryUser, LdapError> {
    // Refused before any traffic: an empty password would be an RFC 4513 "unauthenticated
    // bind", which some servers answer with success.
    check_credentials(username, password)?;
    let plan = Plan::new(settings)?;
    let user_filter = settings.user_filter_for(username)?;

    let mut service = Connection::open(&plan).await?;
    let outcome = sign_in(
        &plan,
        settings,
        &mut service,
        &user_filter,
        username,
        password,
    )
    .await;
    service.close(plan.timeout).await;
    outcome
}

/// Steps 3–5 on the service connection (the caller closes it whatever happens).
async fn sign_in(
    plan: &Plan,
    settings: &LdapSettings,
    service: &mut Connection,
    user_filter: &str,
    username: &str,
    password: &str,
) -> Result<DirectoryUser, LdapError> {
    let bound = service
        .op(plan.timeout, "service bind", |ldap| {
            ldap.simple_bind(&settings.bind_dn, &settings.bind_password)
        })
        .await?;
    if bound.rc != 0 {
        // The message names the DN and the result, never the password.
        return Err(LdapError::Unavailable(format!(
            "the directory refused the service bind as {:?}: {}",
            settings.bind_dn,
            describe(&bound)
        )));
    }

    let username_attribute = settings.username_attribute();
    let mut attributes = vec![
        settings.email_attribute.as_str(),
        settings.name_attribute.as_str(),
        "memberOf",
    ];
    if let Some(attribute) = username_attribute.as_deref() {
        attributes.push(attribute);
    }
    // Two is enough to know "not exactly one"; the server stops there (rc 4).
    let found = service
        .op(plan.timeout, "user search", |ldap| {
            ldap.with_search_options(SearchOptions::new().sizelimit(2))
                .search(&settings.user_base, Scope::Subtree, user_filter, attributes)
        })
        .await?;
    let ldap3::SearchResult(entries, result) = found;
    match result.rc {
        0 | RC_SIZE_LIMIT_EXCEEDED => {}
        RC_NO_SUCH_OBJECT => {
            return Err(LdapError::Misconfigured(format!(
                "user_base {:?} does not exist in the directory",
                settings.user_base
            )));
        }
        _ => {
            return Err(LdapError::Unavailable(format!(
                "the user search failed: {}",
                describe(&result)
            )));
        }
    }
    if entries.len() != 1 || result.rc != 0 {
        return Err(LdapError::InvalidCredentials);
    }
    let Some(entry) = entries.into_iter().next() else {
        return Err(LdapError::InvalidCredentials);
    };
    let entry = SearchEntry::construct(entry);

    // The password is checked on a connection of its own rather than by re-binding the
    // service connection: the service identity stays bound for the group search (many
    // directories do not let people read groups), and a failed bind, which leaves a
    // connection anonymous, never touches the connection we still need.
    let mut user = Connection::open(plan).await?;
    let user_bind = user
        .op(plan.timeout, "user bind", |ldap| {
            ldap.simple_bind(&entry.dn, password)
        })
        .await;
    user.close(plan.timeout).await;
    let user_bind = user_bind?;
    match user_bind.rc {
        0 => {}
        RC_INVALID_CREDENTIALS => return Err(LdapError::InvalidCredentials),
        // 53 (unwillingToPerform: e.g. a locked account or a policy refusal) and the like:
        // the person does not get in, and is not told why.
        48 | 50 | 53 => return Err(LdapError::InvalidCredentials),
        _ => {
            return Err(LdapError::Unavailable(format!(
                "the directory answered the user bind with {}",
                describe(&user_bind)
            )));
        }
    }

    let mut groups = GroupSet::default();
    let group_filter = settings.group_filter_for(&entry.dn, username)?;
    let group_attribute = settings.group_name_attribute.as_str();
    let group_entries = search_groups(plan, settings, service, &group_filter).await?;
    let mut frontier = Vec::new();
    for group in group_entries {
        if let Some(dn) = groups.add(group, group_attribute) {
            frontier.push(dn);
        }
    }
    // `memberOf` (kept by e.g. OpenLDAP's memberof overlay or Active Directory): each value
    // is a group DN; those under group_base whose first RDN is group_name_attribute count.
    if let Some(dns) = attribute_values(&entry, "memberOf") {
        for dn in dns {
            if let Some(name) = group_name_from_dn(dn, group_attribute, &settings.group_base) {
                if groups.visit(dn) {
                    frontier.push(dn.clone());
                }
                groups.names.insert(name);
            }
        }
    }
    let mut searches = 1;
    searches += nested_groups(plan, settings, service, username, &mut groups, frontier).await?;

    let directory_name = username_attribute
        .as_deref()
        .and_then(|attribute| attribute_values(&entry, attribute))
        .and_then(|values| {
            let typed = folded(username);
            values.iter().find(|value| folded(value) == typed)
        })
        .cloned();
    Ok(DirectoryUser {
        username: directory_name.unwrap_or_else(|| username.to_owned()),
        email: first_value(&entry, &settings.email_attribute),
        name: first_value(&entry, &settings.name_attribute),
        groups: groups.names.into_iter().collect(),
        group_dns: groups.dns,
        group_searches: searches,
        dn: entry.dn,
    })
}

/// The groups found so far: names, DNs, and the normalized DNs already seen.
#[derive(Default)]
struct GroupSet {
    names: BTreeSet<String>,
    dns: Vec<String>,
    visited: HashSet<String>,
}

impl GroupSet {
    /// Records `dn` as seen; false when it was already.
    fn visit(&mut self, dn: &str) -> bool {
        let fresh = self.visited.insert(normalized_dn(dn));
        if fresh {
            self.dns.push(dn.to_owned());
        }
        fresh
    }

    /// Adds a group entry's names; its DN when the group is new (to search its parents).
    fn add(&mut self, entry: ldap3::ResultEntry, name_attribute: &str) -> Option<String> {
        let entry = SearchEntry::construct(entry);
        let fresh = self.visit(&entry.dn);
        if let Some(names) = attribute_values(&entry, name_attribute) {
            self.names.extend(names.iter().cloned());
        }
        fresh.then_some(entry.dn)
    }
}

/// Follows group-in-group membership from `frontier` (the user's own groups), one level per
/// round, and returns how many searches it made. Stops at `nested_depth` levels, at
/// `nested_max_searches` searches (with a warning), or when a level brings no new group.
async fn nested_groups(
    plan: &Plan,
    settings: &LdapSettings,
    service: &mut Connection,
    username: &str,
    groups: &mut GroupSet,
    mut frontier: Vec<String>,
) -> Result<u32, LdapError> {
    // A filter on `memberUid={username}` alone names people, never groups: nothing to follow.
    if !settings.group_filter.contains("{dn}") {
        return Ok(0);
    }
    let group_attribute = settings.group_name_attribute.as_str();
    let mut searches = 0;
    for level in 1..=settings.nested_depth {
        if frontier.is_empty() {
            return Ok(searches);
        }
        let mut next = Vec::new();
        for chunk in frontier.chunks(NESTED_DNS_PER_SEARCH) {
            if searches >= settings.nested_max_searches {
                tracing::warn!(
                    nested_max_searches = settings.nested_max_searches,
                    level,
                    groups = groups.dns.len(),
                    "LDAP: nested group resolution reached nested_max_searches; signing in \
                     with the groups found so far"
                );
                return Ok(searches);
            }
            let filter = settings.nested_group_filter(chunk, username)?;
            let found = search_groups(plan, settings, service, &filter).await?;
            searches += 1;
            for group in found {
                if let Some(dn) = groups.add(group, group_attribute) {
                    next.push(dn);
                }
            }
        }
        frontier = next;
    }
    if !frontier.is_empty() {
        tracing::debug!(
            nested_depth = settings.nested_depth,
            "LDAP: nested groups deeper than nested_depth were not followed"
        );
    }
    Ok(searches)
}

/// One subtree search under `group_base` for the group name attribute.
async fn search_groups(
    plan: &Plan,
    settings: &LdapSettings,
    service: &mut Connection,
    filter: &str,
) -> Result<Vec<ldap3::ResultEntry>, LdapError> {
    let group_attribute = settings.group_name_attribute.as_str();
    let found = service
        .op(plan.timeout, "group search", |ldap| {
            ldap.with_search_options(SearchOptions::new()).search(
                &settings.group_base,
                Scope::Subtree,
                filter,
                vec![group_attribute],
            )
        })
        .await?;
    let ldap3::SearchResult(entries, result) = found;
    match result.rc {
        0 => Ok(entries),
        // The server's own size limit: use what it sent rather than refuse the sign-in.
        RC_SIZE_LIMIT_EXCEEDED => {
            tracing::warn!(
                found = entries.len(),
                "LDAP: the group search hit the server's size limit; some groups may be missing"
            );
            Ok(entries)
        }
        RC_NO_SUCH_OBJECT => Err(LdapError::Misconfigured(format!(
            "group_base {:?} does not exist in the directory",
            settings.group_base
        ))),
        _ => Err(LdapError::Unavailable(format!(
            "the group search failed: {}",
            describe(&result)
        ))),
    }
}

/// A DN in a form two spellings of the same DN share: lower case, no spaces around the
/// commas between RDNs or around `=`. Used to compare group DNs (visited set, mappings).
pub fn normalized_dn(dn: &str) -> String {
    split_dn(dn)
        .iter()
        .map(|rdn| match rdn.split_once('=') {
            Some((attribute, value)) => format!("{}={}", attribute.trim(), value.trim()),
            None => rdn.trim().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// A name as LDAP's caseIgnoreMatch compares it, near enough: without regard to case or to
/// leading, trailing and repeated spaces.
fn folded(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The checks made before any network traffic.
fn check_credentials(username: &str, password: &str) -> Result<(), LdapError> {
    let name_ok = !username.trim().is_empty()
        && username.chars().count() <= MAX_USERNAME_CHARS
        && !username.chars().any(char::is_control);
    let password_ok = !password.is_empty() && password.len() <= MAX_PASSWORD_BYTES;
    if name_ok && password_ok {
        Ok(())
    } else {
        Err(LdapError::InvalidCredentials)
    }
}

impl LdapSettings {
    /// `user_filter` with `{username}` replaced by the RFC 4515-escaped user name.
    pub fn user_filter_for(&self, username: &str) -> Result<String, LdapError> {
        if !self.user_filter.contains("{username}") {
            return Err(LdapError::Misconfigured(
                "user_filter must contain {username}".to_owned(),
            ));
        }
        Ok(self
            .user_filter
            .replace("{username}", &ldap3::ldap_escape(username)))
    }

    /// `group_filter` with `{dn}` (and `{username}`, for `memberUid`-style groups) replaced by
    /// the RFC 4515-escaped values.
    pub fn group_filter_for(&self, dn: &str, username: &str) -> Result<String, LdapError> {
        if !self.group_filter.contains("{dn}") && !self.group_filter.contains("{username}") {
            return Err(LdapError::Misconfigured(
                "group_filter must contain {dn} or {username}".to_owned(),
            ));
        }
        // One pass, so a DN that happens to contain "{username}" is not substituted again
        // (escaping leaves braces alone).
        let escaped_dn = ldap3::ldap_escape(dn);
        let escaped_name = ldap3::ldap_escape(username);
        let mut out = String::with_capacity(self.group_filter.len() + dn.len());
        let mut rest = self.group_filter.as_str();
        while let Some(at) = rest.find('{') {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("{dn}") {
                out.push_str(&escaped_dn);
                rest = after;
            } else if let Some(after) = tail.strip_prefix("{username}") {
                out.push_str(&escaped_name);
                rest = after;
            } else {
                out.push('{');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The filter for the groups that have any of `dns` as a member: `group_filter` for each,
    /// OR-ed (a single DN needs no OR).
    fn nested_group_filter(&self, dns: &[String], username: &str) -> Result<String, LdapError> {
        let mut parts = dns
            .iter()
            .map(|dn| self.group_filter_for(dn, username))
            .collect::<Result<Vec<_>, _>>()?;
        if parts.len() == 1 {
            return Ok(parts.remove(0));
        }
        Ok(format!("(|{})", parts.concat()))
    }

    /// The attribute compared with `{username}` in `user_filter` (`uid` in `(uid={username})`),
    /// whose value is the name "as the directory spells it".
    fn username_attribute(&self) -> Option<String> {
        let at = self.user_filter.find("={username}")?;
        let before = &self.user_filter[..at];
        let start = before.rfind('(').map_or(0, |open| open + 1);
        let attribute = before[start..].trim();
        let valid = !attribute.is_empty()
            && attribute
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ';');
        valid.then(|| attribute.to_owned())
    }
}

/// What the settings resolve to before connecting.
struct Plan {
    url: String,
    /// `host:port` to connect to (the scheme's port when the URL has none).
    address: String,
    starttls: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

impl Plan {
    fn new(settings: &LdapSettings) -> Result<Self, LdapError> {
        if settings.timeout_seconds == 0 || settings.timeout_seconds > 300 {
            return Err(LdapError::Misconfigured(format!(
                "timeout_seconds must be between 1 and 300, not {}",
                settings.timeout_seconds
            )));
        }
        let (secure, address) = check_url(&settings.url)?;
        if secure && settings.starttls {
            return Err(LdapError::Misconfigured(
                "starttls applies to ldap:// URLs; ldaps:// is TLS from the start".to_owned(),
            ));
        }
        let tls = if secure || settings.starttls {
            Some(tls_config(settings.ca_cert_file.as_deref())?)
        } else {
            if settings.ca_cert_file.is_some() {
                return Err(LdapError::Misconfigured(
                    "ca_cert_file is set but the connection is not encrypted: use ldaps:// or \
                     starttls = true"
                        .to_owned(),
                ));
            }
            None
        };
        Ok(Self {
            url: settings.url.clone(),
            address,
            starttls: settings.starttls,
            tls,
            timeout: Duration::from_secs(settings.timeout_seconds),
        })
    }
}

/// Accepts `ldap://host[:port][/]` and `ldaps://…`; says whether it is `ldaps` and gives the
/// `host:port` to connect to. (ldap3 also knows `ldapi://`, a local socket path, which a
/// tenant must not be able to point at.)
fn check_url(url: &str) -> Result<(bool, String), LdapError> {
    let bad = |why: &str| LdapError::Misconfigured(format!("url {url:?}: {why}"));
    let (secure, rest) = if let Some(rest) = url.strip_prefix("ldaps://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("ldap://") {
        (false, rest)
    } else {
        return Err(bad("must start with ldap:// or ldaps://"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) || authority.chars().any(char::is_whitespace) {
        return Err(bad(
            "only a host and an optional port are allowed (no path, query or user)",
        ));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("unclosed IPv6 bracket"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(port) => match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        },
        None if secure => 636,
        None => 389,
    };
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok((secure, address))
}

/// A rustls client configuration that trusts the CA certificates in `ca_cert_file` (PEM), or
/// the system's roots when there is none. Certificate verification is always on.
fn tls_config(ca_cert_file: Option<&str>) -> Result<Arc<rustls::ClientConfig>, LdapError> {
    let roots = match ca_cert_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                LdapError::Misconfigured(format!("cannot read ca_cert_file {path:?}: {e}"))
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    LdapError::Misconfigured(format!("ca_cert_file {path:?} is not valid PEM: {e}"))
                })?;
                roots.add(cert).map_err(|e| {
                    LdapError::Misconfigured(format!(
                        "ca_cert_file {path:?} holds an unusable certificate: {e}"
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(LdapError::Misconfigured(format!(
                    "ca_cert_file {path:?} holds no certificate"
                )));
            }
            Arc::new(roots)
        }
        None => system_roots()?,
    };
    // The provider is named rather than taken from the process default, so that another
    // dependency enabling a second rustls provider cannot make this panic.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| LdapError::Misconfigured(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The operating system's trusted roots, loaded once.
fn system_roots() -> Result<Arc<rustls::RootCertStore>, LdapError> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "LDAP: a system root certificate could not be loaded");
        }
        let (_added, _unusable) = roots.add_parsable_certificates(loaded.certs);
        Arc::new(roots)
    });
    if roots.is_empty() {
        return Err(LdapError::Misconfigured(
            "no system root certificates were found; set ca_cert_file".to_owned(),
        ));
    }
    Ok(roots.clone())
}

/// One LDAP connection whose driver task is ended when the connection is closed or dropped.
struct Connection {
    ldap: Ldap,
    driver: tokio::task::JoinHandle<()>,
}

impl Connection {
    /// Connects (TCP, then TLS or StartTLS as planned) within the timeout.
    async fn open(plan: &Plan) -> Result<Self, LdapError> {
        let connecting = tokio::net::TcpStream::connect(&plan.address);
        let tcp = match tokio::time::timeout(plan.timeout, connecting).await {
            Err(_) => return Err(timed_out("connecting", plan.timeout)),
            Ok(Err(e)) => {
                return Err(LdapError::Unavailable(format!(
                    "cannot connect to {}: {e}",
                    plan.url
                )));
            }
            Ok(Ok(tcp)) => tcp,
        };
        // LDAP messages and TLS handshake records are small: without this, Nagle's algorithm
        // holds each one back for the server's delayed ACK (about 40 ms a round trip here,
        // which made a TLS sign-in take 90 ms instead of a few).
        let tcp = tcp
            .set_nodelay(true)
            .and_then(|()| tcp.into_std())
            .map_err(|e| LdapError::Unavailable(format!("socket setup: {e}")))?;
        let mut conn_settings = LdapConnSettings::new()
            .set_conn_timeout(plan.timeout)
            .set_starttls(plan.starttls)
            .set_std_stream(StdStream::Tcp(tcp));
        if let Some(tls) = &plan.tls {
            conn_settings = conn_settings.set_config(tls.clone());
        }
        // ldap3 applies the timeout to StartTLS and the TLS handshake; the outer one is a
        // second guard.
        let connecting = LdapConnAsync::with_settings(conn_settings, &plan.url);
        let (conn, ldap) = match tokio::time::timeout(plan.timeout, connecting).await {
            Err(_) => return Err(timed_out("connecting", plan.timeout)),
            Ok(Err(e)) => return Err(connect_error(&plan.url, e, plan.timeout)),
            Ok(Ok(pair)) => pair,
        };
        let driver = tokio::spawn(async move {
            if let Err(error) = conn.drive().await {
                tracing::debug!(%error, "LDAP connection ended with an error");
            }
        });
        Ok(Self { ldap, driver })
    }

    /// Runs one operation within the timeout; transport failures become `Unavailable`
    /// (an LDAP result code comes back as the value, for the caller to judge).
    async fn op<'a, T, F, Fut>(
        &'a mut self,
        timeout: Duration,
        what: &str,
        f: F,
    ) -> Result<T, LdapError>
    where
        F: FnOnce(&'a mut Ldap) -> Fut,
        Fut: Future<Output = ldap3::result::Result<T>> + 'a,
    {
        self.ldap.with_timeout(timeout);
        match tokio::time::timeout(timeout, f(&mut self.ldap)).await {
            Err(_) => Err(timed_out(what, timeout)),
            Ok(Err(ldap3::LdapError::FilterParsing)) => Err(LdapError::Misconfigured(format!(
                "the {what} filter is not a valid LDAP filter"
            ))),
            Ok(Err(ldap3::LdapError::Timeout { .. })) => Err(timed_out(what, timeout)),
            Ok(Err(e)) => Err(LdapError::Unavailable(format!("{what}: {e}"))),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// Unbinds (bounded by the timeout, errors ignored: the connection is going anyway) and
    /// stops the driver task.
    async fn close(mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.ldap.unbind()).await;
        self.driver.abort();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn timed_out(what: &str, timeout: Duration) -> LdapError {
    LdapError::Unavailable(format!(
        "{what} timed out after {} s",
        timeout.as_secs_f32()
    ))
}

fn connect_error(url: &str, error: ldap3::LdapError, timeout: Duration) -> LdapError {
    match error {
        ldap3::LdapError::Timeout { .. } => timed_out("connecting", timeout),
        ldap3::LdapError::UrlParsing { .. } | ldap3::LdapError::UnknownScheme(_) => {
            LdapError::Misconfigured(format!("url {url:?}: {error}"))
        }
        other => LdapError::Unavailable(format!("cannot connect to {url}: {other}")),
    }
}

/// "rc 49 (invalidCredentials): text" for messages.
fn describe(result: &ldap3::LdapResult) -> String {
    if result.text.is_empty() {
        format!("result code {}", result.rc)
    } else {
        format!("result code {} ({})", result.rc, result.text)
    }
}

/// The values of `attribute` (compared without regard to case, as LDAP does).
fn attribute_values<'e>(entry: &'e SearchEntry, attribute: &str) -> Option<&'e Vec<String>> {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .map(|(_, values)| values)
}

fn first_value(entry: &SearchEntry, attribute: &str) -> Option<String> {
    attribute_values(entry, attribute)
        .and_then(|values| values.first())
        .filter(|value| !value.is_empty())
        .cloned()
}

/// `analysts` from `cn=analysts,ou=groups,dc=example,dc=org` when the first RDN's attribute
/// is `attribute` and the DN lies under `base` (compared without regard to case or to spaces
/// after commas).
fn group_name_from_dn(dn: &str, attribute: &str, base: &str) -> Option<String> {
    let rdns = split_dn(dn);
    let base_rdns = split_dn(base);
    if rdns.len() <= base_rdns.len() {
        return None;
    }
    let under_base = rdns[rdns.len() - base_rdns.len()..]
        .iter()
        .zip(&base_rdns)
        .all(|(a, b)| a.trim().eq_ignore_ascii_case(b.trim()));
    if !under_base {
        return None;
    }
    let first = rdns.first()?;
    // A multi-valued RDN (`cn=x+ou=y`) is not a group name we can trust.
    if unescaped_contains(first, '+') {
        return None;
    }
    let (name, value) = first.split_once('=')?;
    if !name.trim().eq_ignore_ascii_case(attribute) {
        return None;
    }
    unescape_dn_value(value.trim())
}

/// Splits a DN string at its unescaped commas.
fn split_dn(dn: &str) -> Vec<Cow<'_, str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(Cow::Borrowed(&dn[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(Cow::Borrowed(&dn[start..]));
    parts
}

fn unescaped_contains(rdn: &str, needle: char) -> bool {
    let mut escaped = false;
    for c in rdn.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == needle {
            return true;
        }
    }
    false
}

/// Undoes RFC 4514 escaping (`\,`, `\5C`, ...) in an attribute value; `None` when malformed
/// or when the value is hex-encoded BER (`#…`).
fn unescape_dn_value(value: &str) -> Option<String> {
    if value.starts_with('#') {
        return None;
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let next = *bytes.get(i + 1)?;
            let hex = bytes.get(i + 1..i + 3).and_then(|pair| {
                let pair = std::str::from_utf8(pair).ok()?;
                u8::from_str_radix(pair, 16).ok()
            });
            match hex {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(next);
                    i += 2;
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LdapSettings {
        LdapSettings {
            url: "ldap://127.0.0.1:3389".to_owned(),
            starttls: false,
            ca_cert_file: None,
            bind_dn: "cn=svc,dc=example,dc=org".to_owned(),
            bind_password: "svc-secret".to_owned(),
            user_base: "ou=people,dc=example,dc=org".to_owned(),
            user_filter: default_user_filter(),
            group_base: "ou=groups,dc=example,dc=org".to_owned(),
            group_filter: default_group_filter(),
            group_name_attribute: default_group_name_attribute(),
            email_attribute: default_email_attribute(),
            name_attribute: default_name_attribute(),
            timeout_seconds: 5,
            nested_depth: default_nested_depth(),
            nested_max_searches: default_nested_max_searches(),
        }
    }

    #[test]
    fn dns_compare_without_case_or_spaces_around_separators() {
        assert_eq!(
            normalized_dn("CN=Dash Viewers , OU = Groups,DC=Example, dc=org"),
            "cn=dash viewers,ou=groups,dc=example,dc=org"
        );
        // An escaped comma stays inside its RDN.
        assert_eq!(normalized_dn(r"cn=a\, B,dc=x"), r"cn=a\, b,dc=x");
        assert_ne!(normalized_dn("cn=a,dc=x"), normalized_dn("cn=b,dc=x"));
    }

    #[test]
    fn a_nested_level_is_one_or_filter_of_escaped_dns() {
        let s = settings();
        let dns = [
            "cn=a*,ou=groups,dc=example,dc=org".to_owned(),
            "cn=b)(x,o=y".to_owned(),
        ];
        assert_eq!(
            s.nested_group_filter(&dns, "u").expect("filter"),
            r"(|(&(objectClass=groupOfNames)(member=cn=a\2a,ou=groups,dc=example,dc=org))(&(objectClass=groupOfNames)(member=cn=b\29\28x,o=y)))"
        );
        assert_eq!(
            s.nested_group_filter(&dns[..1], "u").expect("filter"),
            r"(&(objectClass=groupOfNames)(member=cn=a\2a,ou=groups,dc=example,dc=org))"
        );
    }

    #[test]
    fn filters_escape_every_special_character() {
        let s = settings();
        assert_eq!(
            s.user_filter_for("a*)(uid=*").expect("filter"),
            r"(uid=a\2a\29\28uid=\2a)"
        );
        assert_eq!(
            s.user_filter_for("\\2a\0").expect("filter"),
            r"(uid=\5c2a\00)"
        );
        assert_eq!(
            s.group_filter_for("uid=x\\2C{username},o=y", "z*")
                .expect("filter"),
            r"(&(objectClass=groupOfNames)(member=uid=x\5c2C{username},o=y))"
        );
        let posix = LdapSettings {
            group_filter: "(memberUid={username})".to_owned(),
            ..settings()
        };
        assert_eq!(
            posix.group_filter_for("uid=a,o=b", "a)(x").expect("filter"),
            r"(memberUid=a\29\28x)"
        );
    }

    #[test]
    fn filters_without_placeholders_are_misconfigured() {
        let s = LdapSettings {
            user_filter: "(uid=alice)".to_owned(),
            group_filter: "(objectClass=groupOfNames)".to_owned(),
            ..settings()
        };
        assert!(matches!(
            s.user_filter_for("bob"),
            Err(LdapError::Misconfigured(_))
        ));
        assert!(matches!(
            s.group_filter_for("uid=bob", "bob"),
            Err(LdapError::Misconfigured(_))
        ));
    }

    #[test]
    fn the_username_attribute_comes_from_the_filter() {
        assert_eq!(settings().username_attribute().as_deref(), Some("uid"));
        let ad = LdapSettings {
            user_filter: "(&(objectClass=user)(sAMAccountName={username}))".to_owned(),
            ..settings()
        };
        assert_eq!(ad.username_attribute().as_deref(), Some("sAMAccountName"));
    }

    #[test]
    fn urls_are_checked() {
        let ok = |url: &str| check_url(url).ok();
        assert_eq!(ok("ldap://h"), Some((false, "h:389".to_owned())));
        assert_eq!(ok("ldaps://h/"), Some((true, "h:636".to_owned())));
        assert_eq!(ok("ldap://h:3389/"), Some((false, "h:3389".to_owned())));
        assert_eq!(
            ok("ldaps://[::1]:6636"),
            Some((true, "[::1]:6636".to_owned()))
        );
        for bad in [
            "",
            "ldap://",
            "ldap://:389",
            "ldapi://%2fvar%2frun%2fslapd.sock",
            "http://h",
            "ldap://h:0",
            "ldap://h:99999",
            "ldap://h/dc=x??sub",
            "ldap://u@h",
            "ldap://h x",
        ] {
            assert!(
                matches!(check_url(bad), Err(LdapError::Misconfigured(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn bad_input_is_refused_before_connecting() {
        for (user, pw) in [
            ("alice", ""),
            ("", "pw"),
            ("   ", "pw"),
            ("al\0ice", "pw"),
            ("alice\n", "pw"),
        ] {
            assert!(matches!(
                check_credentials(user, pw),
                Err(LdapError::InvalidCredentials)
            ));
        }
        let long = "a".repeat(MAX_USERNAME_CHARS + 1);
        assert!(check_credentials(&long, "pw").is_err());
        assert!(check_credentials(&"a".repeat(MAX_USERNAME_CHARS), "pw").is_ok());
        assert!(check_credentials("alice", &"p".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }

    #[test]
    fn group_names_come_from_member_of_under_the_group_base() {
        let base = "ou=groups,dc=example,dc=org";
        assert_eq!(
            group_name_from_dn("cn=analysts,ou=groups,dc=example,dc=org", "cn", base).as_deref(),
            Some("analysts")
        );
        assert_eq!(
            group_name_from_dn(r"CN=a\2Cb\5C c,OU=Groups, DC=example,DC=org", "cn", base)
                .as_deref(),
            Some(r"a,b\ c")
        );
        assert_eq!(
            group_name_from_dn("cn=x,ou=elsewhere,dc=example,dc=org", "cn", base),
            None
        );
        assert_eq!(
            group_name_from_dn("ou=groups,dc=example,dc=org", "cn", base),
            None
        );
        assert_eq!(
            group_name_from_dn("cn=x+ou=y,ou=groups,dc=example,dc=org", "cn", base),
            None
        );
        assert_eq!(
            group_name_from_dn("ou=x,ou=groups,dc=example,dc=org", "cn", base),
            None
        );
    }
}
