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
    /// A provider's subject that is empty, too long or has control characters.
    #[error("the provider's subject {0:?} is not usable: 1-1024 bytes without control characters")]
    Subject(String),
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
            value: clip(raw, 64),
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
        // The error echoes at most the start of what was typed (a 4 MiB field stays here).
        let bad = || InvalidName::Email(clip(raw, 64));
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

/// A name a person types to sign in somewhere else than with an email (a directory user
/// name): trimmed, 1 to [`LoginName::MAX_CHARS`] characters, no control characters. It is
/// what reaches the directory, the audit log and (lowercased) the throttle, so a 4 MiB
/// form field never gets further than this parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginName(String);

impl LoginName {
    /// The longest name accepted.
    pub const MAX_CHARS: usize = 256;

    /// Validate and trim `raw`.
    pub fn parse(raw: &str) -> Result<Self, InvalidName> {
        display_name("a user name", Self::MAX_CHARS, raw).map(Self)
    }

    /// The name as typed, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The spelling the throttle counts under: one budget whatever the case.
    pub fn throttle_spelling(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A provider's stable id of a person (OIDC `sub`, an LDAP entry's DN), the key of an
/// external identity: 1 to [`Subject::MAX_BYTES`] bytes without control characters, kept
/// exactly as the provider sent it (OIDC allows at most 255 ASCII characters; DNs get room).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    /// The longest subject accepted.
    pub const MAX_BYTES: usize = 1024;

    /// Validate `raw` (not trimmed: a subject is compared byte for byte).
    pub fn parse(raw: &str) -> Result<Self, InvalidName> {
        if raw.is_empty() || raw.len() > Self::MAX_BYTES || raw.chars().any(char::is_control) {
            return Err(InvalidName::Subject(clip(raw, 64)));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The subject.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text from outside (a provider's error description, a group name) cut to at most
/// `max_chars` characters, control characters replaced, for an audit row or a log line.
pub fn clip(raw: &str, max_chars: usize) -> String {
    let mut out: String = raw
        .chars()
        .take(max_chars)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if raw.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// What ties an existing account to anything outside one tenant, read when an identity of
/// that tenant's provider, not linked yet, names the account's email address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountTies {
    /// A platform superadmin.
    pub superadmin: bool,
    /// It has a local password.
    pub has_password: bool,
    /// Tenants other than the provider's in which it has a role.
    pub roles_elsewhere: i64,
    /// Identities it has at providers of other tenants.
    pub identities_elsewhere: i64,
}

impl AccountTies {
    /// Whether the account *belongs to* the provider's tenant T, so that T's provider may
    /// link a new identity to it by email: it is no superadmin, has no local password, and
    /// has no role and no linked identity outside T. Everything such an account can do is
    /// already in the hands of T's administrators; any other account is linked only by its
    /// owner, signed in, from the account page.
    pub fn belong_to_provider_tenant(&self) -> bool {
        !self.superadmin
            && !self.has_password
            && self.roles_elsewhere == 0
            && self.identities_elsewhere == 0
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
    fn login_names_and_subjects_are_bounded_once() {
        let name = LoginName::parse("  Alice ").expect("name");
        assert_eq!(name.as_str(), "Alice");
        assert_eq!(name.throttle_spelling(), "alice");
        assert!(LoginName::parse(&"a".repeat(257)).is_err());
        assert!(LoginName::parse(" ").is_err());
        let huge = "x".repeat(4 << 20);
        let refused = Email::parse(&huge).expect_err("too long");
        assert!(
            refused.to_string().len() < 300,
            "the error does not echo 4 MiB"
        );
        assert!(Subject::parse("uid=a,dc=example").is_ok());
        for bad in ["", "a\nb", &"s".repeat(1025)] {
            assert!(Subject::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("a\u{7}b", 10), "a\u{fffd}b");
    }

    #[test]
    fn only_an_account_with_nothing_outside_the_tenant_belongs_to_it() {
        let free = AccountTies {
            superadmin: false,
            has_password: false,
            roles_elsewhere: 0,
            identities_elsewhere: 0,
        };
        assert!(free.belong_to_provider_tenant());
        for tied in [
            AccountTies {
                superadmin: true,
                ..free
            },
            AccountTies {
                has_password: true,
                ..free
            },
            AccountTies {
                roles_elsewhere: 1,
                ..free
            },
            AccountTies {
                identities_elsewhere: 1,
                ..free
            },
        ] {
            assert!(!tied.belong_to_provider_tenant(), "{tied:?}");
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
