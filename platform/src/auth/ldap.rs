//! LDAP sign-in for a tenant's directory: search-then-bind, group lookup.
//!
//! This file fixes the interface the sign-in pages call (`LdapSettings`, `authenticate`,
//! `DirectoryUser`, `LdapError`); the directory client behind it lands in its own change.

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

/// A user the directory vouched for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The entry's DN (the stable subject for this provider).
    pub dn: String,
    /// The name the user typed, as the directory spells it.
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// Group names (`group_name_attribute` values) the user belongs to.
    pub groups: Vec<String>,
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

/// Checks `username`/`password` against the directory and returns who they are.
pub async fn authenticate(
    settings: &LdapSettings,
    username: &str,
    password: &str,
) -> Result<DirectoryUser, LdapError> {
    let _ = (username, password);
    Err(LdapError::Unavailable(format!(
        "no directory client is built in yet (configured {})",
        settings.url
    )))
}
