//! Memberships (a user's role in a tenant), teams and team members.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Change};
use super::{Error, Result, Store, conflict_on_unique, parse_stored};
use crate::ids::{TeamId, TenantId, UserId};
use crate::tenancy::Role;

/// A user as a callback's viewer sees them ([`Store::viewer_facts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewerFacts {
    /// The user's (lowercased) email.
    pub email: String,
    /// Whether they are a member of the tenant asked about.
    pub member: bool,
    /// The names of their teams in that tenant, sorted.
    pub teams: Vec<String>,
}

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
        let mut tx = self.begin().await?;
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
        self.commit_change(tx).await?;
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
        let mut tx = self.begin().await?;
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
        self.commit_change(tx).await?;
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
        let mut tx = self.begin().await?;
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
        self.commit_change(tx).await?;
        Ok(())
    }

    /// What a callback of an app in `tenant` may be told about `user` as its viewer
    /// (`viewer::for_call` decides what of it): their email, whether they are a member of
    /// `tenant`, and the names of their teams there, sorted. `None` for an unknown user.
    pub async fn viewer_facts(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<Option<ViewerFacts>> {
        let row = sqlx::query(
            "select u.email, (select count(*) from memberships m              where m.tenant_id = $1 and m.user_id = u.id) from users u where u.id = $2",
        )
        .bind(tenant.0)
        .bind(user.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let email: String = row.try_get(0)?;
        let member = row.try_get::<i64, _>(1)? > 0;
        let teams = sqlx::query(
            "select t.name from team_members tm join teams t              on t.tenant_id = tm.tenant_id and t.id = tm.team_id              where tm.tenant_id = $1 and tm.user_id = $2 order by t.name",
        )
        .bind(tenant.0)
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Some(ViewerFacts {
            email,
            member,
            teams,
        }))
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

/// A member of a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// Their address.
    pub email: String,
    /// Their role in the tenant.
    pub role: Role,
}

/// A team and its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Team {
    /// Its id.
    pub id: TeamId,
    /// Its name.
    pub name: String,
    /// Its members' ids.
    pub members: Vec<UserId>,
}

impl Store {
    /// `tenant`'s members ordered by user id, after the cursor `after` (a user id).
    pub async fn list_members(
        &self,
        tenant: TenantId,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "select m.user_id, u.email, m.role from memberships m join users u on u.id = m.user_id \
             where m.tenant_id = $1 and m.user_id > $2 order by m.user_id limit $3",
        )
        .bind(tenant.0)
        .bind(after.unwrap_or(0))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Member {
                    user_id: UserId(row.try_get(0)?),
                    email: row.try_get(1)?,
                    role: parse_stored(&row.try_get::<String, _>(2)?)?,
                })
            })
            .collect()
    }

    /// Change the role of a member of `tenant`. [`Error::NotFound`] if they are not one;
    /// [`Error::LastOwner`] if they are its only owner and would stop being one.
    pub async fn change_role(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        change: &Change<'_>,
    ) -> Result<Role> {
        let mut tx = self.begin().await?;
        let previous = current_role(&mut tx, tenant, user)
            .await?
            .ok_or(Error::NotFound {
                what: "member of this tenant",
                value: format!("user {user}"),
            })?;
        if previous == Role::Owner && role != Role::Owner {
            require_other_owner(&mut tx, tenant, user).await?;
        }
        sqlx::query("update memberships set role = $3 where tenant_id = $1 and user_id = $2")
            .bind(tenant.0)
            .bind(user.0)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "membership.grant",
            &format!("user:{user}"),
            json!({"role": role.as_str(), "previous": previous.as_str()}),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(previous)
    }

    /// Take `user` out of `tenant` with their team memberships, grants and collaborations
    /// (one transaction). `Ok(None)` when they were not a member;
    /// [`Error::LastOwner`] for the tenant's only owner.
    pub async fn remove_member(
        &self,
        tenant: TenantId,
        user: UserId,
        change: &Change<'_>,
    ) -> Result<Option<Role>> {
        let mut tx = self.begin().await?;
        let Some(previous) = current_role(&mut tx, tenant, user).await? else {
            return Ok(None);
        };
        if previous == Role::Owner {
            require_other_owner(&mut tx, tenant, user).await?;
        }
        leave_tenant(&mut tx, tenant, user).await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "membership.remove",
            &format!("user:{user}"),
            json!({"previous": previous.as_str()}),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(Some(previous))
    }

    /// `tenant`'s teams with their members, ordered by id.
    pub async fn list_teams(&self, tenant: TenantId) -> Result<Vec<Team>> {
        let rows = sqlx::query("select id, name from teams where tenant_id = $1 order by id")
            .bind(tenant.0)
            .fetch_all(&self.pool)
            .await?;
        let members = sqlx::query(
            "select team_id, user_id from team_members where tenant_id = $1 \
             order by team_id, user_id",
        )
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        let mut teams = rows
            .iter()
            .map(|row| {
                Ok(Team {
                    id: TeamId(row.try_get(0)?),
                    name: row.try_get(1)?,
                    members: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for row in &members {
            let team = TeamId(row.try_get(0)?);
            let user = UserId(row.try_get(1)?);
            if let Some(t) = teams.iter_mut().find(|t| t.id == team) {
                t.members.push(user);
            }
        }
        Ok(teams)
    }

    /// Take `user` out of `team` of `tenant`; `Ok(false)` when they were not in it.
    pub async fn remove_team_member(
        &self,
        tenant: TenantId,
        team: TeamId,
        user: UserId,
        change: &Change<'_>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        require_team(&mut tx, tenant, team).await?;
        let removed = sqlx::query(
            "delete from team_members where tenant_id = $1 and team_id = $2 and user_id = $3",
        )
        .bind(tenant.0)
        .bind(team.0)
        .bind(user.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 0 {
            return Ok(false);
        }
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "team.remove_member",
            &format!("team:{team}"),
            json!({"user": user.0}),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(true)
    }
}

/// Takes `user` out of `tenant`: its teams, app grants and collaborations, and its role.
pub(super) async fn leave_tenant(
    conn: &mut sqlx::AnyConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<()> {
    for table in [
        "team_members",
        "app_user_grants",
        "app_collaborators",
        "memberships",
    ] {
        sqlx::query(&format!(
            "delete from {table} where tenant_id = $1 and user_id = $2"
        ))
        .bind(tenant.0)
        .bind(user.0)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(super) async fn current_role(
    conn: &mut sqlx::AnyConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<Role>> {
    let row = sqlx::query("select role from memberships where tenant_id = $1 and user_id = $2")
        .bind(tenant.0)
        .bind(user.0)
        .fetch_optional(conn)
        .await?;
    row.map(|row| parse_stored(&row.try_get::<String, _>(0)?))
        .transpose()
}

/// Fail with [`Error::LastOwner`] unless `tenant` has an owner besides `user`.
async fn require_other_owner(
    conn: &mut sqlx::AnyConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<()> {
    let others: i64 = sqlx::query(
        "select count(*) from memberships where tenant_id = $1 and role = 'owner' and user_id <> $2",
    )
    .bind(tenant.0)
    .bind(user.0)
    .fetch_one(conn)
    .await?
    .try_get(0)?;
    if others == 0 {
        return Err(Error::LastOwner);
    }
    Ok(())
}
