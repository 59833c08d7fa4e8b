//! API tokens: only a sha256 of each token is stored, found by the token's short public
//! id. Expiry, revocation and the last-used time live here; checking a presented token is
//! [`crate::auth::token`]'s job.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Change};
use super::{Error, Result, Store, parse_stored};
use crate::ids::{TenantId, TokenId, UserId};
use crate::tenancy::Role;

/// A token about to be stored.
#[derive(Clone, Copy, Debug)]
pub struct NewToken<'a> {
    /// The short public part of the token (unique).
    pub public_id: &'a str,
    /// Hex sha256 of the whole token.
    pub secret_sha256: &'a str,
    /// Whose token it is.
    pub user: UserId,
    /// The most it may do in its tenant.
    pub role: Role,
    /// When it stops working, if ever.
    pub expires_at: Option<i64>,
}

/// A stored token with what authentication needs to know about its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its id.
    pub id: TokenId,
    /// Its public id.
    pub public_id: String,
    /// The one tenant it works in.
    pub tenant_id: TenantId,
    /// Its user.
    pub user_id: UserId,
    /// The role it was created with.
    pub role: Role,
    /// Hex sha256 of the whole token.
    pub secret_sha256: String,
    /// Expiry.
    pub expires_at: Option<i64>,
    /// Revocation time.
    pub revoked_at: Option<i64>,
    /// Last successful use (updated at most once a minute).
    pub last_used_at: Option<i64>,
    /// The user is a platform superadmin.
    pub user_superadmin: bool,
    /// The user is disabled.
    pub user_disabled: bool,
    /// The user's current role in the token's tenant.
    pub member_role: Option<Role>,
    /// The token's tenant is suspended (or deleted).
    pub tenant_suspended: bool,
}

impl Store {
    /// Store a token for `tenant`.
    pub async fn create_token(
        &self,
        tenant: TenantId,
        new: &NewToken<'_>,
        change: &Change<'_>,
    ) -> Result<TokenId> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query(
            "insert into api_tokens \
             (public_id, tenant_id, user_id, role, secret_sha256, created_at, expires_at) \
             values ($1, $2, $3, $4, $5, $6, $7) returning id",
        )
        .bind(new.public_id)
        .bind(tenant.0)
        .bind(new.user.0)
        .bind(new.role.as_str())
        .bind(new.secret_sha256)
        .bind(change.at)
        .bind(new.expires_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(super::conflict_on_unique("token", new.public_id))?
        .try_get(0)?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "token.create",
            &format!("token:{}", new.public_id),
            json!({"user": new.user.0, "role": new.role.as_str(), "expires_at": new.expires_at}),
        )
        .await?;
        tx.commit().await?;
        Ok(TokenId(id))
    }

    /// The token with this public id, with its user's standing in the token's tenant.
    pub async fn token_by_public_id(&self, public_id: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "select k.id, k.public_id, k.tenant_id, k.user_id, k.role, k.secret_sha256, \
                    k.expires_at, k.revoked_at, k.last_used_at, u.superadmin, u.disabled_at, m.role, \
                    t.suspended_at \
             from api_tokens k \
             join users u on u.id = k.user_id \
             join tenants t on t.id = k.tenant_id \
             left join memberships m on m.tenant_id = k.tenant_id and m.user_id = k.user_id \
             where k.public_id = $1",
        )
        .bind(public_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(TokenRecord {
                id: TokenId(row.try_get(0)?),
                public_id: row.try_get(1)?,
                tenant_id: TenantId(row.try_get(2)?),
                user_id: UserId(row.try_get(3)?),
                role: parse_stored(&row.try_get::<String, _>(4)?)?,
                secret_sha256: row.try_get(5)?,
                expires_at: row.try_get(6)?,
                revoked_at: row.try_get(7)?,
                last_used_at: row.try_get(8)?,
                user_superadmin: row.try_get::<i64, _>(9)? != 0,
                user_disabled: row.try_get::<Option<i64>, _>(10)?.is_some(),
                member_role: row
                    .try_get::<Option<String>, _>(11)?
                    .as_deref()
                    .map(parse_stored)
                    .transpose()?,
                tenant_suspended: row.try_get::<Option<i64>, _>(12)?.is_some(),
            })
        })
        .transpose()
    }

    /// Record a use of `tenant`'s token.
    pub async fn touch_token(&self, tenant: TenantId, token: TokenId, now: i64) -> Result<()> {
        sqlx::query("update api_tokens set last_used_at = $3 where tenant_id = $1 and id = $2")
            .bind(tenant.0)
            .bind(token.0)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revoke the token with this public id. `Ok(false)` when it already was;
    /// [`Error::NotFound`] when there is no such token.
    pub async fn revoke_token(&self, public_id: &str, change: &Change<'_>) -> Result<bool> {
        self.revoke_token_in(None, public_id, change).await
    }

    /// [`Store::revoke_token`] limited to `tenant`'s tokens when given: a token of another
    /// tenant is [`Error::NotFound`].
    pub async fn revoke_token_in(
        &self,
        only: Option<TenantId>,
        public_id: &str,
        change: &Change<'_>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "select tenant_id, revoked_at from api_tokens where public_id = $1 \
             and ($2 = 0 or tenant_id = $2)",
        )
        .bind(public_id)
        .bind(only.map_or(0, |t| t.0))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "token",
            value: public_id.to_owned(),
        })?;
        let tenant = TenantId(row.try_get(0)?);
        if row.try_get::<Option<i64>, _>(1)?.is_some() {
            return Ok(false);
        }
        sqlx::query(
            "update api_tokens set revoked_at = $3 where tenant_id = $1 and public_id = $2",
        )
        .bind(tenant.0)
        .bind(public_id)
        .bind(change.at)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "token.revoke",
            &format!("token:{public_id}"),
            json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// A token as listed: never its secret or hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSummary {
    /// Its public id.
    pub public_id: String,
    /// Its user.
    pub user_id: UserId,
    /// The role it was created with.
    pub role: Role,
    /// When it was created.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: Option<i64>,
    /// Revocation time.
    pub revoked_at: Option<i64>,
    /// Last use.
    pub last_used_at: Option<i64>,
}

impl Store {
    /// `tenant`'s tokens, newest first; only `user`'s when given.
    pub async fn list_tokens(
        &self,
        tenant: TenantId,
        user: Option<UserId>,
    ) -> Result<Vec<TokenSummary>> {
        let rows = sqlx::query(
            "select public_id, user_id, role, created_at, expires_at, revoked_at, last_used_at \
             from api_tokens where tenant_id = $1 and ($2 = 0 or user_id = $2) \
             order by id desc limit 1000",
        )
        .bind(tenant.0)
        .bind(user.map_or(0, |u| u.0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TokenSummary {
                    public_id: row.try_get(0)?,
                    user_id: UserId(row.try_get(1)?),
                    role: parse_stored(&row.try_get::<String, _>(2)?)?,
                    created_at: row.try_get(3)?,
                    expires_at: row.try_get(4)?,
                    revoked_at: row.try_get(5)?,
                    last_used_at: row.try_get(6)?,
                })
            })
            .collect()
    }

    /// `tenant`'s token with this public id.
    pub async fn tenant_token(
        &self,
        tenant: TenantId,
        public_id: &str,
    ) -> Result<Option<TokenSummary>> {
        Ok(self
            .list_tokens(tenant, None)
            .await?
            .into_iter()
            .find(|t| t.public_id == public_id))
    }
}
