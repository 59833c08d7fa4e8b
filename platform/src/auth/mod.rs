//! Who is asking: password hashing and API tokens, turned into a [`crate::policy::Principal`].
//!
//! No axum types here (the HTTP extractor is in `http::principal`). Sign-in providers:
//! `providers` (a tenant's OIDC and LDAP configurations and their group mappings), `oidc`
//! (the code flow and id_token checks), `ldap` (the directory client).

pub mod handoff;
pub mod ldap;
pub mod oidc;
pub mod password;
pub mod providers;
pub mod saml;
pub mod session;
pub mod standing;
pub mod token;

/// Why authentication failed or could not be performed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The presented credential is not valid (unknown, wrong, expired, revoked, or its
    /// user is disabled or no longer a member). Deliberately one variant: the client is
    /// not told which.
    #[error("invalid or expired credentials")]
    InvalidCredentials,
    /// A valid token of a tenant a superadmin suspended.
    #[error("the token's tenant is suspended")]
    TenantSuspended,
    /// Hashing failed (bad parameters; not a wrong password).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}
