//! Memberships (a user's role in a tenant), teams and team members.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Change};
use super::{Error, Result, Store, conflict_on_unique, parse_stored};
use crate::ids::{TeamId, TenantId, UserId};
use crate::tenancy::Role;

impl Store {
    /// Give `user` the `role` in `tenant`, replacing any role they had; returns the
    /// previous role.
    pub async fn grant_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        change: &Change<'_>,
    ) -> Result<Option<Role>> {
        let mut tx = self.pool.begin().await?;
        let previous: Option<String> =
            sqlx::query("select role from memberships where tenant_id = $1 and user_id = $2")
                .bind(tenant.0)
                .bind(user.0)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        sqlx::query(
            "insert into memberships (tenant_id, user_id, role, created_at) values ($1, $2, $3, $4) \
             on conflict (tenant_id, user_id) do update set role = excluded.role",
        )
        .bind(tenant.0)
        .bind(user.0)
        .bind(role.as_str())
        .bind(change.at)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "membership.grant",
            &format!("user:{user}"),
            json!({"role": role.as_str(), "previous": previous}),
        )
        .await?;
        tx.commit().await?;
        previous.as_deref().map(parse_stored).transpose()
    }

    /// `user`'s role in `tenant`, if they are a member.
    pub async fn membership(&self, tenant: TenantId, user: UserId) -> Result<Option<Role>> {
        let row = sqlx::query("select role from memberships where tenant_id = $1 and user_id = $2")
            .bind(tenant.0)
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| parse_stored(&row.try_get::<String, _>(0)?))
            .transpose()
    }

    /// Every tenant `user` belongs to, with the role there.
    pub async fn memberships_of(&self, user: UserId) -> Result<Vec<(TenantId, Role)>> {
        let rows = sqlx::query(
            "select tenant_id, role from memberships where user_id = $1 order by tenant_id",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    TenantId(row.try_get(0)?),
                    parse_stored(&row.try_get::<String, _>(1)?)?,
                ))
            })
            .collect()
    }

    /// Create a team in `tenant`; a taken name is [`Error::Conflict`].
    pub async fn create_team(
        &self,
        tenant: TenantId,
        name: &str,
        change: &Change<'_>,
    ) -> Result<TeamId> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "insert into teams (tenant_id, name, created_at) values ($1, $2, $3) returning id",
        )
        .bind(tenant.0)
        .bind(name)
        .bind(change.at)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_on_unique("team", name))?
        .try_get(0)?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "team.create",
            &format!("team:{id}"),
            json!({"name": name}),
        )
        .await?;
        tx.commit().await?;
        Ok(TeamId(id))
    }

    /// The team of `tenant` with this name.
    pub async fn team_by_name(&self, tenant: TenantId, name: &str) -> Result<Option<TeamId>> {
        let row = sqlx::query("select id from teams where tenant_id = $1 and name = $2")
            .bind(tenant.0)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?.map(TeamId))
    }

    /// Add `user` to `team` of `tenant`. The user must be a member of the tenant and the
    /// team must belong to it, else [`Error::NotFound`].
    pub async fn add_team_member(
        &self,
        tenant: TenantId,
        team: TeamId,
        user: UserId,
        change: &Change<'_>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        require_team(&mut tx, tenant, team).await?;
        require_member(&mut tx, tenant, user).await?;
        sqlx::query(
            "insert into team_members (tenant_id, team_id, user_id, created_at) \
             values ($1, $2, $3, $4) on conflict (team_id, user_id) do nothing",
        )
        .bind(tenant.0)
        .bind(team.0)
        .bind(user.0)
        .bind(change.at)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "team.add_member",
            &format!("team:{team}"),
            json!({"user": user.0}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The teams of `tenant` that `user` is in.
    pub async fn teams_of(&self, tenant: TenantId, user: UserId) -> Result<Vec<TeamId>> {
        let rows = sqlx::query(
            "select team_id from team_members where tenant_id = $1 and user_id = $2 \
             order by team_id",
        )
        .bind(tenant.0)
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(TeamId(row.try_get(0)?))).collect()
    }
}

/// Fail with [`Error::NotFound`] unless `team` belongs to `tenant`.
pub(super) async fn require_team(
    conn: &mut sqlx::AnyConnection,
    tenant: TenantId,
    team: TeamId,
) -> Result<()> {
    let found = sqlx::query("select 1 from teams where tenant_id = $1 and id = $2")
        .bind(tenant.0)
        .bind(team.0)
        .fetch_optional(conn)
        .await?;
    found.map(|_| ()).ok_or(Error::NotFound {
        what: "team in this tenant",
        value: team.to_string(),
    })
}

/// Fail with [`Error::NotFound`] unless `user` is a member of `tenant`.
pub(super) async fn require_member(
    conn: &mut sqlx::AnyConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<()> {
    let found = sqlx::query("select 1 from memberships where tenant_id = $1 and user_id = $2")
        .bind(tenant.0)
        .bind(user.0)
        .fetch_optional(conn)
        .await?;
    found.map(|_| ()).ok_or(Error::NotFound {
        what: "member of this tenant",
        value: format!("user {user}"),
    })
}
