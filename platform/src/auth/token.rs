//! API tokens: `tsr_<public id>_<secret>`. The public id (12 lowercase letters and digits)
//! finds the row and names the token in logs, the audit trail and `tessera admin token
//! revoke`; the secret (40 letters and digits, about 238 bits) never leaves the client.
//! Only the sha256 of the whole token is stored; with that much entropy a fast hash is
//! enough, and it keeps the per-request check cheap. The comparison is constant-time.

use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Error;
use crate::ids::{TenantId, UserId};
use crate::policy::TokenPrincipal;
use crate::store::{Change, NewToken, Store};
use crate::tenancy::Role;

/// Every token starts with this, so secret scanners and people can recognize it.
pub const PREFIX: &str = "tsr_";
const PUBLIC_ID_LEN: usize = 12;
const SECRET_LEN: usize = 40;
/// `last_used_at` is written at most this often per token (ms), so a busy token does not
/// turn every request into a database write.
pub const TOUCH_INTERVAL_MS: i64 = 60_000;

/// A freshly created token: shown once, then only its hash exists.
#[derive(Debug)]
pub struct Issued {
    /// The whole token, to hand to the client.
    pub token: String,
    /// Its public id.
    pub public_id: String,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The public id of a well-formed token.
fn public_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == PUBLIC_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let secret_ok = secret.len() == SECRET_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    (id_ok && secret_ok).then_some(id)
}

/// Create and store a token for `user` in `tenant` with `role`.
pub async fn issue(
    store: &Store,
    tenant: TenantId,
    user: UserId,
    role: Role,
    expires_at: Option<i64>,
    change: &Change<'_>,
) -> Result<Issued, Error> {
    // The thread-local generator is not `Send`: drop it before the first await so the
    // future can run on any worker (HTTP handlers need that).
    let (public_id, secret) = {
        let mut rng = rand::rng();
        let public_id: String = (0..PUBLIC_ID_LEN)
            .map(|_| {
                let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
                char::from(alphabet[rng.random_range(0..alphabet.len())])
            })
            .collect();
        (public_id, Alphanumeric.sample_string(&mut rng, SECRET_LEN))
    };
    let token = format!("{PREFIX}{public_id}_{secret}");
    store
        .create_token(
            tenant,
            &NewToken {
                public_id: &public_id,
                secret_sha256: &sha256_hex(&token),
                user,
                role,
                expires_at,
            },
            change,
        )
        .await?;
    Ok(Issued { token, public_id })
}

/// Check a presented token at time `now` and return who it is.
///
/// Refused alike (so a client learns nothing): malformed, unknown, wrong secret, revoked,
/// expired, a disabled user, or a user who is no longer a member of the token's tenant.
/// The token's role is capped by the user's current role there, so demoting a member
/// demotes their tokens too (a superadmin's token keeps the role it was created with).
pub async fn authenticate(store: &Store, token: &str, now: i64) -> Result<TokenPrincipal, Error> {
    let id = public_id(token).ok_or(Error::InvalidCredentials)?;
    let record = store
        .token_by_public_id(id)
        .await?
        .ok_or(Error::InvalidCredentials)?;
    let presented = sha256_hex(token);
    let matches: bool = presented
        .as_bytes()
        .ct_eq(record.secret_sha256.as_bytes())
        .into();
    let expired = record.expires_at.is_some_and(|at| at <= now);
    if !matches || record.revoked_at.is_some() || expired || record.user_disabled {
        return Err(Error::InvalidCredentials);
    }
    // Told only to who holds the whole token: others learn nothing of the tenant.
    if record.tenant_suspended {
        return Err(Error::TenantSuspended);
    }
    let role = if record.user_superadmin {
        record.role
    } else {
        let member = record.member_role.ok_or(Error::InvalidCredentials)?;
        member.min(record.role)
    };
    if record
        .last_used_at
        .is_none_or(|at| now - at >= TOUCH_INTERVAL_MS)
    {
        store.touch_token(record.tenant_id, record.id, now).await?;
    }
    Ok(TokenPrincipal {
        id: record.id,
        public_id: record.public_id,
        user_id: record.user_id,
        tenant_id: record.tenant_id,
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::public_id;

    #[test]
    fn only_well_formed_tokens_have_a_public_id() {
        let secret = "A".repeat(40);
        let good = format!("tsr_abcdefghij12_{secret}");
        assert_eq!(public_id(&good), Some("abcdefghij12"));
        for bad in [
            String::new(),
            format!("tsx_abcdefghij12_{secret}"),
            format!("tsr_ABCDEFGHIJ12_{secret}"),
            format!("tsr_abcdefghij1_{secret}"),
            format!("tsr_abcdefghij12_{}", "A".repeat(39)),
            format!("tsr_abcdefghij12_{}!", "A".repeat(39)),
            format!("tsr_abcdefghij12{secret}"),
        ] {
            assert_eq!(public_id(&bad), None, "{bad:?}");
        }
    }
}
