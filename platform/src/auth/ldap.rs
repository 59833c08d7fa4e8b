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
//!    most `nested_max_searches` such searches per sign-in; one more search checks that no
//!    level lies beyond, and a chain deeper than the limits refuses the sign-in
//!    ([`LdapError::NestingTooDeep`]). When the directory supports
//!    `LDAP_MATCHING_RULE_IN_CHAIN` (detected from its root DSE and subschema, remembered
//!    for ten minutes per URL; never assumed), one in-chain search replaces the walk.
//!
//! A referral answer (result code 10) is refused ([`LdapError::Referral`]); continuation
//! references inside a subtree search are left out, never followed.
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
    /// The most directory searches spent on nested groups in one sign-in; a user whose
    /// groups need more is refused ([`LdapError::NestingTooDeep`]).
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
    /// and chunk, or the one in-chain search): the directory round trips spent on groups.
    pub group_searches: u32,
    /// The groups came from one `LDAP_MATCHING_RULE_IN_CHAIN` search (the directory
    /// supports it) rather than a level-by-level walk.
    pub in_chain: bool,
    /// Every LDAP request of the sign-in that waited for an answer, on both connections
    /// (binds, searches, in-chain detection when not cached; not the unbinds).
    pub round_trips: u32,
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
    /// The directory answered with a referral (result code 10): what was asked for is held
    /// by another server. Referrals are not followed (the other server was not configured,
    /// and would receive the service password).
    #[error("the directory answered with a referral, which is not followed: {0}")]
    Referral(String),
    /// The user's groups nest deeper than `nested_depth`, or following them needed more
    /// than `nested_max_searches` searches: their roles cannot be worked out, so the
    /// sign-in is refused rather than granted from a partial view.
    #[error("the user's groups could not all be resolved: {0}")]
    NestingTooDeep(String),
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
/// LDAP result code 10: referral (the target is held by another server).
const RC_REFERRAL: u32 = 10;

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
    service_bind(plan, settings, service).await?;
    let entry = find_user(plan, settings, service, user_filter).await?;

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
    let user_round_trips = user.round_trips;
    user.close(plan.timeout).await;
    let user_bind = user_bind?;
    match user_bind.rc {
        0 => {}
        RC_INVALID_CREDENTIALS => return Err(LdapError::InvalidCredentials),
        // 53 (unwillingToPerform: e.g. a locked account or a policy refusal) and the like:
        // the person does not get in, and is not told why.
        48 | 50 | 53 => return Err(LdapError::InvalidCredentials),
        RC_REFERRAL => return Err(referral("the user bind", &user_bind)),
        _ => {
            return Err(LdapError::Unavailable(format!(
                "the directory answered the user bind with {}",
                describe(&user_bind)
            )));
        }
    }

    let resolved = user_groups(plan, settings, service, &entry, username).await?;
    let mut who = directory_user(settings, entry, username, resolved);
    who.round_trips = service.round_trips + user_round_trips;
    Ok(who)
}

/// Binds the service connection as `bind_dn`.
async fn service_bind(
    plan: &Plan,
    settings: &LdapSettings,
    service: &mut Connection,
) -> Result<(), LdapError> {
    let bound = service
        .op(plan.timeout, "service bind", |ldap| {
            ldap.simple_bind(&settings.bind_dn, &settings.bind_password)
        })
        .await?;
    match bound.rc {
        0 => Ok(()),
        RC_REFERRAL => Err(referral("the service bind", &bound)),
        // The message names the DN and the result, never the password.
        _ => Err(LdapError::Unavailable(format!(
            "the directory refused the service bind as {:?}: {}",
            settings.bind_dn,
            describe(&bound)
        ))),
    }
}

/// Step 3: the one entry `user_filter` finds under `user_base`.
async fn find_user(
    plan: &Plan,
    settings: &LdapSettings,
    service: &mut Connection,
    user_filter: &str,
) -> Result<SearchEntry, LdapError> {
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
        RC_REFERRAL => return Err(referral("the user search", &result)),
        _ => {
            return Err(LdapError::Unavailable(format!(
                "the user search failed: {}",
                describe(&result)
            )));
        }
    }
    // Continuation references (a part of the subtree held by another server, such as
    // Active Directory's DomainDnsZones under a domain root) are not followed: the user
    // is looked for in what this server holds.
    let (entries, references) = without_references(entries);
    if references > 0 {
        tracing::debug!(
            references,
            "LDAP: the user search returned continuation references; not followed"
        );
    }
    if entries.len() != 1 || result.rc != 0 {
        return Err(LdapError::InvalidCredentials);
    }
    let Some(entry) = entries.into_iter().next() else {
        return Err(LdapError::InvalidCredentials);
    };
    Ok(SearchEntry::construct(entry))
}

/// The groups found for a user, and how.
struct Resolved {
    groups: GroupSet,
    searches: u32,
    in_chain: bool,
}

/// Step 5–6: the user's groups, nested ones included; with `LDAP_MATCHING_RULE_IN_CHAIN`
/// when the directory supports it (one search), else level by level.
async fn user_groups(
    plan: &Plan,
    settings: &LdapSettings,
    service: &mut Connection,
    entry: &SearchEntry,
    username: &str,
) -> Result<Resolved, LdapError> {
    let mut groups = GroupSet::default();
    let group_attribute = settings.group_name_attribute.as_str();
    // `memberOf` (kept by e.g. OpenLDAP's memberof overlay or Active Directory): each value
    // is a group DN; those under group_base whose first RDN is group_name_attribute count.
    let mut from_member_of = Vec::new();
    if let Some(dns) = attribute_values(entry, "memberOf") {
        for dn in dns {
            if let Some(name) = group_name_from_dn(dn, group_attribute, &settings.group_base) {
                from_member_of.push((dn.clone(), name));
            }
        }
    }

    // In-chain: the directory resolves every level itself (cycles included) in one search.
    let chain_filter = if settings.nested_depth > 0 {
        settings.in_chain_group_filter(&entry.dn, username)?
    } else {
        None
    };
    if let Some(chain_filter) = chain_filter
        && supports_in_chain(plan, service).await?
    {
        if let Some(found) = try_search_groups(plan, settings, service, &chain_filter).await? {
            for group in found {
                groups.add(group, group_attribute);
            }
            for (dn, name) in from_member_of {
                groups.visit(&dn);
                groups.names.insert(name);
            }
            return Ok(Resolved {
                groups,
                searches: 1,
                in_chain: true,
            });
        }
        tracing::warn!(
            url = %plan.url,
            "LDAP: the directory refused LDAP_MATCHING_RULE_IN_CHAIN although it lists it; \
             following nested groups level by level"
        );
    }

    let group_filter = settings.group_filter_for(&entry.dn, username)?;
    let group_entries = search_groups(plan, settings, service, &group_filter).await?;
    let mut frontier = Vec::new();
    for group in group_entries {
        if let Some(dn) = groups.add(group, group_attribute) {
            frontier.push(dn);
        }
    }
    for (dn, name) in from_member_of {
        if groups.visit(&dn) {
            frontier.push(dn);
        }
        groups.names.insert(name);
    }
    let mut searches = 1;
    searches += nested_groups(plan, settings, service, username, &mut groups, frontier).await?;
    Ok(Resolved {
        groups,
        searches,
        in_chain: false,
    })
}

fn directory_user(
    settings: &LdapSettings,
    entry: SearchEntry,
    username: &str,
    resolved: Resolved,
) -> DirectoryUser {
    let directory_name = settings
        .username_attribute()
        .as_deref()
        .and_then(|attribute| attribute_values(&entry, attribute))
        .and_then(|values| {
            let typed = folded(username);
            values.iter().find(|value| folded(value) == typed)
        })
        .cloned();
    DirectoryUser {
        username: directory_name.unwrap_or_else(|| username.to_owned()),
        email: first_value(&entry, &settings.email_attribute),
        name: first_value(&entry, &settings.name_attribute),
        groups: resolved.groups.names.into_iter().collect(),
        group_dns: resolved.groups.dns,
        group_searches: resolved.searches,
        in_chain: resolved.in_chain,
        round_trips: 0,
        dn: entry.dn,
    }
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
/// round, and returns how many searches it made. Ends when a level brings no new group.
/// `nested_depth` levels are followed, then one more search looks for a level beyond: if
/// there is one, or if `nested_max_searches` runs out first, the groups are incomplete and
/// the sign-in is refused ([`LdapError::NestingTooDeep`]) rather than granting (and taking
/// back) roles from a partial view.
async fn nested_groups(
    plan: &Plan,
    settings: &LdapSettings,
    service: &mut Connection,
    username: &str,
    groups: &mut GroupSet,
    mut frontier: Vec<String>,
) -> Result<u32, LdapError> {
    // A filter on `memberUid={username}` alone names people, never groups: nothing to follow.
    // Depth 0 asks for the direct groups only.
    if !settings.group_filter.contains("{dn}") || settings.nested_depth == 0 {
        return Ok(0);
    }
    let group_attribute = settings.group_name_attribute.as_str();
    let mut searches = 0;
    for level in 1..=settings.nested_depth + 1 {
        if frontier.is_empty() {
            return Ok(searches);
        }
        let mut next = Vec::new();
        for chunk in frontier.chunks(NESTED_DNS_PER_SEARCH) {
            if searches >= settings.nested_max_searches {
                return Err(LdapError::NestingTooDeep(format!(
                    "following nested groups took more than nested_max_searches = {} searches \
                     ({} groups found, level {level} not finished)",
                    settings.nested_max_searches,
                    groups.dns.len()
                )));
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
        if level > settings.nested_depth && !next.is_empty() {
            return Err(LdapError::NestingTooDeep(format!(
                "groups nest more than nested_depth = {} levels deep (e.g. {:?})",
                settings.nested_depth, next[0]
            )));
        }
        frontier = next;
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
    let (entries, result) = group_search(plan, settings, service, filter).await?;
    match result.rc {
        0 | RC_SIZE_LIMIT_EXCEEDED => Ok(entries),
        _ => Err(LdapError::Unavailable(format!(
            "the group search failed: {}",
            describe(&result)
        ))),
    }
}

/// [`search_groups`] for the in-chain filter: `None` when the directory refuses the search
/// (the caller then walks level by level).
async fn try_search_groups(
    plan: &Plan,
    settings: &LdapSettings,
    service: &mut Connection,
    filter: &str,
) -> Result<Option<Vec<ldap3::ResultEntry>>, LdapError> {
    let (entries, result) = group_search(plan, settings, service, filter).await?;
    match result.rc {
        0 | RC_SIZE_LIMIT_EXCEEDED => Ok(Some(entries)),
        _ => {
            tracing::debug!(result = %describe(&result), "LDAP: the in-chain group search failed");
            Ok(None)
        }
    }
}

/// The group search itself: entries (continuation references left out) and the result;
/// a missing base and a referral are errors, other result codes are for the caller.
async fn group_search(
    plan: &Plan,
    settings: &LdapSettings,
    service: &mut Connection,
    filter: &str,
) -> Result<(Vec<ldap3::ResultEntry>, ldap3::LdapResult), LdapError> {
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
        RC_NO_SUCH_OBJECT => Err(LdapError::Misconfigured(format!(
            "group_base {:?} does not exist in the directory",
            settings.group_base
        ))),
        RC_REFERRAL => Err(referral("the group search", &result)),
        rc => {
            if rc == RC_SIZE_LIMIT_EXCEEDED {
                // The server's own size limit: use what it sent rather than refuse.
                tracing::warn!(
                    found = entries.len(),
                    "LDAP: the group search hit the server's size limit; some groups may be \
                     missing"
                );
            }
            let (entries, references) = without_references(entries);
            if references > 0 {
                tracing::debug!(
                    references,
                    "LDAP: the group search returned continuation references; not followed"
                );
            }
            Ok((entries, result))
        }
    }
}

/// Splits continuation references (and intermediate messages) off search entries: ldap3
/// hands them over as entries, and they have no DN or attributes to read.
fn without_references(entries: Vec<ldap3::ResultEntry>) -> (Vec<ldap3::ResultEntry>, usize) {
    let total = entries.len();
    let kept: Vec<_> = entries
        .into_iter()
        .filter(|e| !e.is_ref() && !e.is_intermediate())
        .collect();
    let dropped = total - kept.len();
    (kept, dropped)
}

/// A referral result (rc 10): the operation's target is held by another server.
fn referral(what: &str, result: &ldap3::LdapResult) -> LdapError {
    let to = if result.refs.is_empty() {
        "another server".to_owned()
    } else {
        result
            .refs
            .iter()
            .take(3)
            .map(|r| clip(r, 200))
            .collect::<Vec<_>>()
            .join(", ")
    };
    LdapError::Referral(format!("{what} was referred to {to}"))
}

fn clip(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

// --- LDAP_MATCHING_RULE_IN_CHAIN ----------------------------------------------------------

/// Active Directory's transitive-membership matching rule.
pub const MATCHING_RULE_IN_CHAIN: &str = "1.2.840.113556.1.4.1941";
/// The root DSE `supportedCapabilities` value of Active Directory (and AD LDS) from Windows
/// Server 2008 on, all of which implement [`MATCHING_RULE_IN_CHAIN`].
pub const AD_CAPABILITY_V60: &str = "1.2.840.113556.1.4.1935";
/// How long a directory's answer about in-chain support is remembered (per URL).
const IN_CHAIN_TTL: Duration = Duration::from_secs(600);

/// What a directory says about [`MATCHING_RULE_IN_CHAIN`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InChainSupport {
    /// Whether the directory supports it.
    pub supported: bool,
    /// What that was read from, in a sentence.
    pub evidence: String,
}

/// Decides in-chain support from the root DSE's `supportedCapabilities` and the subschema's
/// `matchingRules` descriptions (`( 1.2.840.113556.1.4.1941 NAME '…' … )`).
pub fn in_chain_support(capabilities: &[String], matching_rules: &[String]) -> InChainSupport {
    if capabilities.iter().any(|c| c.trim() == AD_CAPABILITY_V60) {
        return InChainSupport {
            supported: true,
            evidence: format!(
                "the root DSE lists the Active Directory 2008+ capability {AD_CAPABILITY_V60}"
            ),
        };
    }
    let listed = matching_rules.iter().any(|rule| {
        rule.trim_start()
            .strip_prefix('(')
            .and_then(|rest| rest.split_whitespace().next())
            == Some(MATCHING_RULE_IN_CHAIN)
    });
    InChainSupport {
        supported: listed,
        evidence: if listed {
            format!("the subschema lists the matching rule {MATCHING_RULE_IN_CHAIN}")
        } else {
            format!(
                "the subschema lists {} matching rules, not {MATCHING_RULE_IN_CHAIN}, and the \
                 root DSE names no Active Directory 2008+ capability",
                matching_rules.len()
            )
        },
    }
}

/// Reads the root DSE and the subschema on a bound connection: two round trips.
async fn detect_in_chain(
    plan: &Plan,
    service: &mut Connection,
) -> Result<InChainSupport, LdapError> {
    let root = service
        .op(plan.timeout, "root DSE read", |ldap| {
            ldap.with_search_options(SearchOptions::new().sizelimit(1))
                .search(
                    "",
                    Scope::Base,
                    "(objectClass=*)",
                    vec!["supportedCapabilities", "subschemaSubentry"],
                )
        })
        .await?;
    let ldap3::SearchResult(entries, _) = root;
    let root = without_references(entries)
        .0
        .into_iter()
        .next()
        .map(SearchEntry::construct);
    let values = |entry: &Option<SearchEntry>, attribute: &str| -> Vec<String> {
        entry
            .as_ref()
            .and_then(|e| attribute_values(e, attribute))
            .cloned()
            .unwrap_or_default()
    };
    let capabilities = values(&root, "supportedCapabilities");
    let decided = in_chain_support(&capabilities, &[]);
    if decided.supported {
        return Ok(decided);
    }
    let Some(subschema) = values(&root, "subschemaSubentry").into_iter().next() else {
        return Ok(InChainSupport {
            supported: false,
            evidence: "the root DSE names no subschema and no Active Directory capability"
                .to_owned(),
        });
    };
    let schema = service
        .op(plan.timeout, "subschema read", |ldap| {
            ldap.with_search_options(SearchOptions::new().sizelimit(1))
                .search(
                    &subschema,
                    Scope::Base,
                    "(objectClass=subschema)",
                    vec!["matchingRules"],
                )
        })
        .await?;
    let ldap3::SearchResult(entries, _) = schema;
    let schema = without_references(entries)
        .0
        .into_iter()
        .next()
        .map(SearchEntry::construct);
    Ok(in_chain_support(
        &capabilities,
        &values(&schema, "matchingRules"),
    ))
}

type InChainCache = std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, bool)>>;

fn in_chain_cache() -> &'static InChainCache {
    static CACHE: OnceLock<InChainCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn remember_in_chain(url: &str, supported: bool) {
    if let Ok(mut cache) = in_chain_cache().lock() {
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(url.to_owned(), (std::time::Instant::now(), supported));
    }
}

/// Whether the directory at `plan.url` supports in-chain, from a cache of recent answers
/// or by asking it (a failed read counts as "no").
async fn supports_in_chain(plan: &Plan, service: &mut Connection) -> Result<bool, LdapError> {
    if let Ok(cache) = in_chain_cache().lock()
        && let Some((at, supported)) = cache.get(&plan.url)
        && at.elapsed() < IN_CHAIN_TTL
    {
        return Ok(*supported);
    }
    let supported = match detect_in_chain(plan, service).await {
        Ok(support) => support.supported,
        Err(LdapError::Unavailable(e)) if e.contains("timed out") => {
            return Err(LdapError::Unavailable(e));
        }
        Err(error) => {
            tracing::debug!(%error, "LDAP: reading the root DSE or subschema failed");
            false
        }
    };
    remember_in_chain(&plan.url, supported);
    Ok(supported)
}

// --- "test this provider" -----------------------------------------------------------------

/// What `tessera admin idp test` reports for a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DirectoryReport {
    /// The service bind succeeded (otherwise the call is an error).
    pub service_bind: String,
    /// In-chain support, as detected.
    pub in_chain: InChainSupport,
    /// The sample user, when a user name was given and found.
    pub user: Option<DirectoryUserReport>,
    /// Why the sample user was not found or their groups not resolved.
    pub user_error: Option<String>,
}

/// A sample user as the directory shows them (no password is checked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DirectoryUserReport {
    pub dn: String,
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub group_dns: Vec<String>,
    pub group_searches: u32,
    pub in_chain: bool,
}

/// Service bind, in-chain detection and (for `username`) the user's entry and groups as a
/// sign-in would find them, without a password. Errors are the service bind's or the
/// connection's; a sample user's problem is reported in [`DirectoryReport::user_error`].
pub async fn inspect(
    settings: &LdapSettings,
    username: Option<&str>,
) -> Result<DirectoryReport, LdapError> {
    let plan = Plan::new(settings)?;
    let user_filter = match username {
        Some(name) => {
            check_credentials(name, "-")?;
            Some(settings.user_filter_for(name)?)
        }
        None => None,
    };
    let mut service = Connection::open(&plan).await?;
    let outcome = async {
        service_bind(&plan, settings, &mut service).await?;
        let in_chain = detect_in_chain(&plan, &mut service).await?;
        remember_in_chain(&plan.url, in_chain.supported);
        let (user, user_error) = match (username, user_filter) {
            (Some(name), Some(filter)) => {
                match sample_user(&plan, settings, &mut service, &filter, name).await {
                    Ok(user) => (Some(user), None),
                    Err(LdapError::InvalidCredentials) => (
                        None,
                        Some(format!(
                            "no single entry matches user_filter for {name:?}, or it is \
                             filtered out (e.g. a disabled account)"
                        )),
                    ),
                    Err(e) => (None, Some(e.to_string())),
                }
            }
            _ => (None, None),
        };
        Ok(DirectoryReport {
            service_bind: format!("bound as {:?}", settings.bind_dn),
            in_chain,
            user,
            user_error,
        })
    }
    .await;
    service.close(plan.timeout).await;
    outcome
}

async fn sample_user(
    plan: &Plan,
    settings: &LdapSettings,
    service: &mut Connection,
    filter: &str,
    username: &str,
) -> Result<DirectoryUserReport, LdapError> {
    let entry = find_user(plan, settings, service, filter).await?;
    let resolved = user_groups(plan, settings, service, &entry, username).await?;
    let who = directory_user(settings, entry, username, resolved);
    Ok(DirectoryUserReport {
        dn: who.dn,
        username: who.username,
        email: who.email,
        name: who.name,
        groups: who.groups,
        group_dns: who.group_dns,
        group_searches: who.group_searches,
        in_chain: who.in_chain,
    })
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

    /// The group filter with the `ATTR={dn}` term made transitive with
    /// `LDAP_MATCHING_RULE_IN_CHAIN` (`(member={dn})` → `(member:1.2.840.113556.1.4.1941:={dn})`),
    /// filled in like [`Self::group_filter_for`]; `None` when `group_filter` has no such
    /// simple term (in-chain is then not used).
    pub fn in_chain_group_filter(
        &self,
        dn: &str,
        username: &str,
    ) -> Result<Option<String>, LdapError> {
        let Some(at) = self.group_filter.find("={dn})") else {
            return Ok(None);
        };
        let before = &self.group_filter[..at];
        let Some(open) = before.rfind('(') else {
            return Ok(None);
        };
        let attribute = &before[open + 1..];
        let simple = !attribute.is_empty()
            && attribute
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !simple {
            return Ok(None);
        }
        let chained = format!(
            "{}{attribute}:{MATCHING_RULE_IN_CHAIN}:{}",
            &self.group_filter[..=open],
            &self.group_filter[at..]
        );
        let with = LdapSettings {
            group_filter: chained,
            ..self.clone()
        };
        with.group_filter_for(dn, username).map(Some)
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
    /// Requests sent that waited for an answer.
    round_trips: u32,
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
        Ok(Self {
            ldap,
            driver,
            round_trips: 0,
        })
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
        self.round_trips += 1;
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
    fn the_in_chain_query_makes_the_member_term_transitive() {
        let ad = LdapSettings {
            group_filter: "(&(objectClass=group)(member={dn}))".to_owned(),
            ..settings()
        };
        assert_eq!(
            ad.in_chain_group_filter("CN=Ada (x)*,OU=Staff,DC=corp", "ada")
                .expect("filter")
                .as_deref(),
            Some(
                r"(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=CN=Ada \28x\29\2a,OU=Staff,DC=corp))"
            )
        );
        // The default filter, and a bare term.
        assert_eq!(
            settings()
                .in_chain_group_filter("uid=a,o=b", "a")
                .expect("filter")
                .as_deref(),
            Some("(&(objectClass=groupOfNames)(member:1.2.840.113556.1.4.1941:=uid=a,o=b))")
        );
        let bare = LdapSettings {
            group_filter: "(uniqueMember={dn})".to_owned(),
            ..settings()
        };
        assert_eq!(
            bare.in_chain_group_filter("uid=a,o=b", "a")
                .expect("filter")
                .as_deref(),
            Some("(uniqueMember:1.2.840.113556.1.4.1941:=uid=a,o=b)")
        );
        // No `ATTR={dn}` term: nothing to make transitive.
        for filter in [
            "(memberUid={username})",
            "(member=*{dn})",
            "(member:dn:={dn})",
        ] {
            let s = LdapSettings {
                group_filter: filter.to_owned(),
                ..settings()
            };
            assert_eq!(
                s.in_chain_group_filter("uid=a", "a").expect("ok"),
                None,
                "{filter}"
            );
        }
    }

    #[test]
    fn in_chain_support_is_read_from_capabilities_or_matching_rules() {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Active Directory 2008+: its capability.
        let ad = in_chain_support(
            &strings(&["1.2.840.113556.1.4.800", AD_CAPABILITY_V60]),
            &[],
        );
        assert!(ad.supported, "{ad:?}");
        // A server whose subschema lists the rule.
        let listed = in_chain_support(
            &[],
            &strings(&[
                "( 2.5.13.0 NAME 'objectIdentifierMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.38 )",
                "( 1.2.840.113556.1.4.1941 NAME 'LDAP_MATCHING_RULE_IN_CHAIN' SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )",
            ]),
        );
        assert!(listed.supported, "{listed:?}");
        // OpenLDAP: the bitwise rules, not in-chain; an older AD capability alone is not
        // enough; the OID inside another rule's description does not count.
        let openldap = in_chain_support(
            &strings(&["1.2.840.113556.1.4.800"]),
            &strings(&[
                "( 1.2.840.113556.1.4.803 NAME 'integerBitAndMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 )",
                "( 1.3.6.1.4.1.4203.666.4.99 NAME 'x' DESC '1.2.840.113556.1.4.1941' SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )",
            ]),
        );
        assert!(!openldap.supported, "{openldap:?}");
        assert!(
            openldap.evidence.contains("2 matching rules"),
            "{openldap:?}"
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
