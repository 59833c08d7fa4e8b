//! Invitations: a single-use link that makes whoever follows it a member of a tenant with
//! a role. Only the sha256 of the link's secret is stored; accepting marks the row used in
//! the same transaction that grants the role, so a link works once.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Change};
use super::users::{self, NewUser};
use super::{Error, Result, Store, parse_stored};
use crate::ids::{TenantId, UserId};
use crate::tenancy::Role;

/// An invitation as its tenant's admins see it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// Its id.
    pub id: i64,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The role it grants.
    pub role: Role,
    /// Who it is meant for, as the inviter wrote it (shown to admins and the invitee).
    pub note: String,
    /// Who created it (an audit actor).
    pub created_by: String,
    /// When.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: i64,
    /// When it was used, and by whom.
    pub accepted: Option<(i64, UserId)>,
    /// When an admin withdrew it.
    pub revoked_at: Option<i64>,
}

impl Invitation {
    /// Still usable at `now`.
    pub fn open_at(&self, now: i64) -> bool {
        self.accepted.is_none() && self.revoked_at.is_none() && now < self.expires_at
    }
}

/// An invitation about to be stored.
#[derive(Clone, Copy, Debug)]
pub struct NewInvitation<'a> {
    /// sha256 (hex) of the link's secret.
    pub token_sha256: &'a str,
    /// The role it grants.
    pub role: Role,
    /// Who it is meant for.
    pub note: &'a str,
    /// When it stops working.
    pub expires_at: i64,
}

/// Who accepts: a user who is signed in, or a new local account created with the
/// acceptance (in the same transaction).
#[derive(Clone, Copy, Debug)]
pub enum Acceptor<'a> {
    /// A signed-in user.
    Existing(UserId),
    /// A new account.
    New(NewUser<'a>),
}

const COLUMNS: &str = "id, tenant_id, role, note, created_by, created_at, expires_at, \
                       accepted_at, accepted_by, revoked_at";

fn invitation(row: &sqlx::any::AnyRow) -> Result<Invitation> {
    let accepted_at: Option<i64> = row.try_get(7)?;
    let accepted_by: Option<i64> = row.try_get(8)?;
    Ok(Invitation {
        id: row.try_get(0)?,
        tenant_id: TenantId(row.try_get(1)?),
        role: parse_stored(&row.try_get::<String, _>(2)?)?,
        note: row.try_get(3)?,
        created_by: row.try_get(4)?,
        created_at: row.try_get(5)?,
        expires_at: row.try_get(6)?,
        accepted: accepted_at.zip(accepted_by.map(UserId)),
        revoked_at: row.try_get(9)?,
    })
}

fn unusable() -> Error {
    Error::NotFound {
        what: "invitation",
        value: "this link (it was used, withdrawn, has expired or belongs to another tenant)"
            .into(),
    }
}

impl Store {
    /// Store an invitation to `tenant` (audited `invitation.create`); returns its id.
    pub async fn create_invitation(
        &self,
        tenant: TenantId,
        new: &NewInvitation<'_>,
        change: &Change<'_>,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query(
            "insert into invitations (tenant_id, token_sha256, role, note, created_by, \
             created_at, expires_at) values ($1, $2, $3, $4, $5, $6, $7) returning id",
        )
        .bind(tenant.0)
        .bind(new.token_sha256)
        .bind(new.role.as_str())
        .bind(new.note)
        .bind(change.actor)
        .bind(change.at)
        .bind(new.expires_at)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "invitation.create",
            &format!("invitation:{id}"),
            json!({"role": new.role.as_str(), "note": new.note, "expires_at": new.expires_at}),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// `tenant`'s invitations, newest first, older than the id `before`.
    pub async fn list_invitations(
        &self,
        tenant: TenantId,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Invitation>> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from invitations where tenant_id = $1 and id < $2 \
             order by id desc limit $3"
        ))
        .bind(tenant.0)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invitation).collect()
    }

    /// The invitation of `tenant` whose secret hashes to `token_sha256`, used or not.
    pub async fn invitation_by_token(
        &self,
        tenant: TenantId,
        token_sha256: &str,
    ) -> Result<Option<Invitation>> {
        let row = sqlx::query(&format!(
            "select {COLUMNS} from invitations where tenant_id = $1 and token_sha256 = $2"
        ))
        .bind(tenant.0)
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(invitation).transpose()
    }

    /// Withdraw an open invitation of `tenant` (audited `invitation.revoke`); a used or
    /// withdrawn one is left as it is.
    pub async fn revoke_invitation(
        &self,
        tenant: TenantId,
        id: i64,
        change: &Change<'_>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let exists = sqlx::query("select 1 from invitations where tenant_id = $1 and id = $2")
            .bind(tenant.0)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(Error::NotFound {
                what: "invitation",
                value: id.to_string(),
            });
        }
        let changed = sqlx::query(
            "update invitations set revoked_at = $3 where tenant_id = $1 and id = $2 \
             and accepted_at is null and revoked_at is null",
        )
        .bind(tenant.0)
        .bind(id)
        .bind(change.at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed > 0 {
            audit::record(
                &mut tx,
                change,
                Some(tenant),
                "invitation.revoke",
                &format!("invitation:{id}"),
                json!({}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Use the invitation of `tenant` whose secret hashes to `token_sha256`: mark it used
    /// and make the acceptor a member with its role (a member already keeps the higher of
    /// the two roles), all in one transaction (audited `invitation.accept`, and
    /// `user.create` for a new account). A used, withdrawn, expired or unknown
    /// invitation, or one of another tenant, is the same [`Error::NotFound`].
    pub async fn accept_invitation(
        &self,
        tenant: TenantId,
        token_sha256: &str,
        acceptor: Acceptor<'_>,
        change: &Change<'_>,
    ) -> Result<(UserId, Role)> {
        let mut tx = self.begin().await?;
        // The conditional update is the single-use check: of two acceptances racing,
        // one changes the row and the other changes nothing.
        let row = sqlx::query(
            "update invitations set accepted_at = $3 where tenant_id = $1 and token_sha256 = $2 \
             and accepted_at is null and revoked_at is null and expires_at > $3 \
             returning id, role",
        )
        .bind(tenant.0)
        .bind(token_sha256)
        .bind(change.at)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(unusable)?;
        let id: i64 = row.try_get(0)?;
        let role: Role = parse_stored(&row.try_get::<String, _>(1)?)?;
        let user = match acceptor {
            Acceptor::Existing(user) => user,
            Acceptor::New(new) => users::insert(&mut tx, &new, change).await?.id,
        };
        sqlx::query("update invitations set accepted_by = $2 where id = $1")
            .bind(id)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        let previous = super::memberships::current_role(&mut tx, tenant, user).await?;
        let granted = previous.map_or(role, |p| p.max(role));
        sqlx::query(
            "insert into memberships (tenant_id, user_id, role, created_at) values ($1, $2, $3, $4) \
             on conflict (tenant_id, user_id) do update set role = excluded.role",
        )
        .bind(tenant.0)
        .bind(user.0)
        .bind(granted.as_str())
        .bind(change.at)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "invitation.accept",
            &format!("user:{user}"),
            json!({"invitation": id, "role": granted.as_str(),
                   "previous": previous.map(Role::as_str)}),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok((user, granted))
    }
}
