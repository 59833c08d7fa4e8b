//! The tenancy model's vocabulary: roles, app visibility, and the validated names and
//! addresses people type (tenant slugs, tenant and team names, emails).
//!
//! Validation lives here, not in SQL: the store only ever receives values that passed
//! these parsers. Nothing here touches the database or HTTP.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::ids::Slug;

/// Path segments and words the platform keeps for itself: no tenant may be called this.
pub const RESERVED_SLUGS: &[&str] = &[
    "admin", "api", "apps", "git", "static", "assets", "healthz", "login", "logout", "metrics",
    "auth", "sso", "oidc", "ldap", "www", "tessera", "new", "settings", "system",
];

/// Why a name, slug or address was refused. The message says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    /// Not a well-formed slug.
    #[error(
        "{0:?} is not a valid slug: use 1-63 lowercase letters, digits or '-', not starting or ending with '-'"
    )]
    Slug(String),
    /// A reserved word.
    #[error("{0:?} is reserved by the platform; choose another slug")]
    Reserved(String),
    /// A display name that is empty, too long or has control characters.
    #[error("{what} must be 1-{max} characters without control characters (got {value:?})")]
    Name {
        /// Which kind of name.
        what: &'static str,
        /// The longest allowed.
        max: usize,
        /// The refused value.
        value: String,
    },
    /// Not an email address we accept.
    #[error("{0:?} is not a valid email address (expected local@domain, at most 254 characters)")]
    Email(String),
    /// Not one of the four roles.
    #[error("{0:?} is not a role: use owner, admin, author or viewer")]
    Role(String),
    /// Not one of the three visibilities.
    #[error("{0:?} is not a visibility: use public, tenant or restricted")]
    Visibility(String),
}

/// A slug for a new tenant: a valid [`Slug`] that is not reserved.
pub fn tenant_slug(raw: &str) -> Result<Slug, InvalidName> {
    let slug = Slug::parse(raw).map_err(|_| InvalidName::Slug(raw.to_owned()))?;
    if RESERVED_SLUGS.contains(&raw) {
        return Err(InvalidName::Reserved(raw.to_owned()));
    }
    Ok(slug)
}

/// A human-readable name (tenant or team): trimmed, 1 to `max` characters, no control
/// characters.
fn display_name(what: &'static str, max: usize, raw: &str) -> Result<String, InvalidName> {
    let trimmed = raw.trim();
    let length = trimmed.chars().count();
    if length == 0 || length > max || trimmed.chars().any(char::is_control) {
        return Err(InvalidName::Name {
            what,
            max,
            value: raw.to_owned(),
        });
    }
    Ok(trimmed.to_owned())
}

/// A tenant's display name.
pub fn tenant_name(raw: &str) -> Result<String, InvalidName> {
    display_name("a tenant name", 100, raw)
}

/// A team's name within its tenant.
pub fn team_name(raw: &str) -> Result<String, InvalidName> {
    display_name("a team name", 100, raw)
}

/// An email address, lowercased so that one person is one user whatever the spelling.
///
/// Deliberately permissive in the local part (providers differ) but strict about shape:
/// one `@`, no spaces or control characters, a domain of dot-separated labels of letters,
/// digits and `-`. `admin@localhost` is valid.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Email(String);

impl Email {
    /// Validate and normalize `raw`.
    pub fn parse(raw: &str) -> Result<Self, InvalidName> {
        let bad = || InvalidName::Email(raw.to_owned());
        let value = raw.trim().to_lowercase();
        if value.len() > 254 {
            return Err(bad());
        }
        let (local, domain) = value.split_once('@').ok_or_else(bad)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '@' | '<' | '>' | '"' | ',' | ';'));
        let domain_ok = !domain.is_empty()
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if local_ok && domain_ok {
            Ok(Self(value))
        } else {
            Err(bad())
        }
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A member's role within one tenant, weakest first so that `>=` means "at least".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Opens the tenant's `tenant`-visible apps and the restricted ones granted to them.
    Viewer,
    /// Creates apps and deploys those they collaborate on.
    Author,
    /// Manages members, teams, apps and access lists; sees the audit log.
    Admin,
    /// Everything an admin does, plus granting the owner role.
    Owner,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Author, Role::Admin, Role::Owner];

    /// The stored and typed spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Author => "author",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl FromStr for Role {
    type Err = InvalidName;

    fn from_str(raw: &str) -> Result<Self, InvalidName> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| InvalidName::Role(raw.to_owned()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may open an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone, signed in or not.
    Public,
    /// Any member of the app's tenant.
    Tenant,
    /// The tenant's owners and admins, the app's collaborators, and the users and teams
    /// granted access.
    Restricted,
}

impl Visibility {
    /// Every visibility.
    pub const ALL: [Visibility; 3] = [
        Visibility::Public,
        Visibility::Tenant,
        Visibility::Restricted,
    ];

    /// The stored and typed spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Tenant => "tenant",
            Visibility::Restricted => "restricted",
        }
    }
}

impl FromStr for Visibility {
    type Err = InvalidName;

    fn from_str(raw: &str) -> Result<Self, InvalidName> {
        Visibility::ALL
            .into_iter()
            .find(|v| v.as_str() == raw)
            .ok_or_else(|| InvalidName::Visibility(raw.to_owned()))
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_slugs_refuse_reserved_words_and_bad_shapes() {
        assert_eq!(
            tenant_slug("acme").map(|s| s.to_string()),
            Ok("acme".into())
        );
        for reserved in [
            "admin", "api", "apps", "git", "static", "assets", "healthz", "login",
        ] {
            assert_eq!(
                tenant_slug(reserved),
                Err(InvalidName::Reserved(reserved.into()))
            );
        }
        for bad in ["", "Acme", "a_b", "-a", "a-", "a/b", &"a".repeat(64)] {
            assert!(
                matches!(tenant_slug(bad), Err(InvalidName::Slug(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(tenant_name("  Acme Corp "), Ok("Acme Corp".into()));
        assert_eq!(team_name("Ünïcode team"), Ok("Ünïcode team".into()));
        assert!(tenant_name("   ").is_err());
        assert!(tenant_name(&"x".repeat(101)).is_err());
        assert!(team_name("tab\there").is_err());
    }

    #[test]
    fn emails_are_lowercased_and_shaped() {
        assert_eq!(
            Email::parse(" Alice@Example.ORG ").map(|e| e.0),
            Ok("alice@example.org".into())
        );
        assert!(Email::parse("admin@localhost").is_ok());
        assert!(Email::parse("a.b+tag@sub.example.co").is_ok());
        let long_local = format!("{}@example.org", "a".repeat(65));
        let long_total = format!("a@{}.org", vec!["b".repeat(60); 5].join("."));
        for bad in [
            "",
            "alice",
            "@example.org",
            "alice@",
            "a@b@c",
            "al ice@example.org",
            "alice@exa_mple.org",
            "alice@example..org",
            "alice@-example.org",
            "ali\nce@example.org",
            long_local.as_str(),
            long_total.as_str(),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn roles_order_from_viewer_to_owner_and_round_trip() {
        assert!(Role::Viewer < Role::Author && Role::Author < Role::Admin);
        assert!(Role::Admin < Role::Owner);
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!(
            "Owner".parse::<Role>(),
            Err(InvalidName::Role("Owner".into()))
        );
        for v in Visibility::ALL {
            assert_eq!(v.as_str().parse::<Visibility>(), Ok(v));
        }
        assert!("private".parse::<Visibility>().is_err());
    }
}
