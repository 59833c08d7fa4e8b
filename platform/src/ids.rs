//! Identifier newtypes and the validated names that appear in URLs.

use std::fmt;

use serde::Serialize;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_newtype!(
    /// Primary key of a tenant.
    TenantId
);
id_newtype!(
    /// Primary key of an app.
    AppId
);
id_newtype!(
    /// Primary key of one deployed version of an app.
    VersionId
);

id_newtype!(
    /// Primary key of a user.
    UserId
);
id_newtype!(
    /// Primary key of a team.
    TeamId
);
id_newtype!(
    /// Primary key of an API token (its public id is the short text inside the token).
    TokenId
);

/// A tenant slug or app name: the path segments of `/apps/{tenant}/{app}/`.
///
/// Lowercase ASCII letters, digits and `-`, 1 to 63 characters, starting with a letter or
/// digit and not ending with `-`: safe in URLs, file names and DNS labels alike.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Slug(String);

/// Why a string is not a valid [`Slug`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a valid name: use 1-63 lowercase letters, digits or '-', not starting or ending with '-'"
)]
pub struct InvalidSlug(pub String);

impl Slug {
    /// Validate `raw` as a slug.
    pub fn parse(raw: &str) -> Result<Self, InvalidSlug> {
        let ok = !raw.is_empty()
            && raw.len() <= 63
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-')
            && !raw.ends_with('-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidSlug(raw.to_owned()))
        }
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_accepts_lowercase_digits_and_inner_dashes() {
        for ok in ["demo", "sales-explorer", "a", "team-42"] {
            assert_eq!(Slug::parse(ok).map(|s| s.0), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn slug_refuses_path_tricks_case_and_edges() {
        let long = "a".repeat(64);
        for bad in [
            "",
            "..",
            "a/b",
            "Demo",
            "-a",
            "a-",
            "a b",
            "a.b",
            long.as_str(),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
