//! Who may open and deploy an app: its visibility, the users and teams granted access to a
//! restricted app, and its collaborators.
//!
//! The store only reports facts ([`AppAccess`]); [`crate::policy`] decides.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Change};
use super::memberships::{require_member, require_team};
use super::{Error, Result, Store, flag, parse_stored};
use crate::ids::{AppId, Slug, TeamId, TenantId, UserId};
use crate::tenancy::Visibility;

/// An app and how one user relates to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppAccess {
    /// The app's tenant.
    pub tenant_id: TenantId,
    /// The app.
    pub app_id: AppId,
    /// Who may open it.
    pub visibility: Visibility,
    /// The user asked about is a collaborator of the app.
    pub collaborator: bool,
    /// The user asked about is granted the app, directly or through a team.
    pub granted: bool,
}

impl Store {
    /// The app `tenant/app` and how `user` (if any) relates to it, in one query.
    pub async fn app_access(
        &self,
        tenant: &Slug,
        app: &Slug,
        user: Option<UserId>,
    ) -> Result<Option<AppAccess>> {
        // Every sub-select is keyed by the app's id and so by its tenant: a grant or a
        // team membership in another tenant cannot match.
        let row = sqlx::query(
            "select a.tenant_id, a.id, a.visibility, \
               exists (select 1 from app_collaborators c \
                       where c.app_id = a.id and c.tenant_id = a.tenant_id and c.user_id = $3), \
               exists (select 1 from app_user_grants g \
                       where g.app_id = a.id and g.tenant_id = a.tenant_id and g.user_id = $3) \
               or exists (select 1 from app_team_grants tg \
                          join team_members tm on tm.team_id = tg.team_id and tm.tenant_id = tg.tenant_id \
                          where tg.app_id = a.id and tg.tenant_id = a.tenant_id and tm.user_id = $3) \
             from apps a join tenants t on t.id = a.tenant_id \
             where t.slug = $1 and a.name = $2",
        )
        .bind(tenant.as_str())
        .bind(app.as_str())
        .bind(user.map(|u| u.0))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(AppAccess {
                tenant_id: TenantId(row.try_get(0)?),
                app_id: AppId(row.try_get(1)?),
                visibility: parse_stored(&row.try_get::<String, _>(2)?)?,
                collaborator: flag(&row, 3)?,
                granted: flag(&row, 4)?,
            })
        })
        .transpose()
    }

    /// The id of `tenant`'s app called `name`.
    pub async fn app_id(&self, tenant: TenantId, name: &Slug) -> Result<Option<AppId>> {
        let row = sqlx::query("select id from apps where tenant_id = $1 and name = $2")
            .bind(tenant.0)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?.map(AppId))
    }

    /// Change who may open an app of `tenant`.
    pub async fn set_app_visibility(
        &self,
        tenant: TenantId,
        app: AppId,
        visibility: Visibility,
        change: &Change<'_>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let updated =
            sqlx::query("update apps set visibility = $3 where tenant_id = $1 and id = $2")
                .bind(tenant.0)
                .bind(app.0)
                .bind(visibility.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if updated == 0 {
            return Err(app_not_found(app));
        }
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "app.set_visibility",
            &format!("app:{app}"),
            json!({"visibility": visibility.as_str()}),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(())
    }

    /// Let `user` (a member of `tenant`) open the restricted app.
    pub async fn grant_app_to_user(
        &self,
        tenant: TenantId,
        app: AppId,
        user: UserId,
        change: &Change<'_>,
    ) -> Result<()> {
        self.link_user(
            tenant,
            app,
            user,
            "app_user_grants",
            "app.grant_user",
            change,
        )
        .await
    }

    /// Let `user` (a member of `tenant`) deploy the app.
    pub async fn add_collaborator(
        &self,
        tenant: TenantId,
        app: AppId,
        user: UserId,
        change: &Change<'_>,
    ) -> Result<()> {
        self.link_user(
            tenant,
            app,
            user,
            "app_collaborators",
            "app.add_collaborator",
            change,
        )
        .await
    }

    /// Let every member of `team` (a team of `tenant`) open the restricted app.
    pub async fn grant_app_to_team(
        &self,
        tenant: TenantId,
        app: AppId,
        team: TeamId,
        change: &Change<'_>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        require_app(&mut tx, tenant, app).await?;
        require_team(&mut tx, tenant, team).await?;
        sqlx::query(
            "insert into app_team_grants (tenant_id, app_id, team_id, created_at) \
             values ($1, $2, $3, $4) on conflict (app_id, team_id) do nothing",
        )
        .bind(tenant.0)
        .bind(app.0)
        .bind(team.0)
        .bind(change.at)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "app.grant_team",
            &format!("app:{app}"),
            json!({"team": team.0}),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(())
    }

    async fn link_user(
        &self,
        tenant: TenantId,
        app: AppId,
        user: UserId,
        table: &'static str,
        action: &str,
        change: &Change<'_>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        require_app(&mut tx, tenant, app).await?;
        require_member(&mut tx, tenant, user).await?;
        sqlx::query(&format!(
            "insert into {table} (tenant_id, app_id, user_id, created_at) \
             values ($1, $2, $3, $4) on conflict (app_id, user_id) do nothing"
        ))
        .bind(tenant.0)
        .bind(app.0)
        .bind(user.0)
        .bind(change.at)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            action,
            &format!("app:{app}"),
            json!({"user": user.0}),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(())
    }
}

fn app_not_found(app: AppId) -> Error {
    Error::NotFound {
        what: "app in this tenant",
        value: app.to_string(),
    }
}

async fn require_app(conn: &mut sqlx::AnyConnection, tenant: TenantId, app: AppId) -> Result<()> {
    let found = sqlx::query("select 1 from apps where tenant_id = $1 and id = $2")
        .bind(tenant.0)
        .bind(app.0)
        .fetch_optional(conn)
        .await?;
    found.map(|_| ()).ok_or_else(|| app_not_found(app))
}

/// Who is on an app's lists: collaborators and the users and teams granted it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppAccessLists {
    /// Users who may deploy it.
    pub collaborators: Vec<UserId>,
    /// Users granted the (restricted) app.
    pub user_grants: Vec<UserId>,
    /// Teams granted the (restricted) app.
    pub team_grants: Vec<TeamId>,
}

impl Store {
    /// The access lists of `tenant`'s app.
    pub async fn app_access_lists(&self, tenant: TenantId, app: AppId) -> Result<AppAccessLists> {
        let ids = |table: &'static str, column: &'static str| {
            let pool = self.pool.clone();
            async move {
                let rows = sqlx::query(&format!(
                    "select {column} from {table} where tenant_id = $1 and app_id = $2 \
                     order by {column}"
                ))
                .bind(tenant.0)
                .bind(app.0)
                .fetch_all(&pool)
                .await?;
                rows.iter()
                    .map(|row| Ok(row.try_get::<i64, _>(0)?))
                    .collect::<Result<Vec<i64>>>()
            }
        };
        Ok(AppAccessLists {
            collaborators: ids("app_collaborators", "user_id")
                .await?
                .into_iter()
                .map(UserId)
                .collect(),
            user_grants: ids("app_user_grants", "user_id")
                .await?
                .into_iter()
                .map(UserId)
                .collect(),
            team_grants: ids("app_team_grants", "team_id")
                .await?
                .into_iter()
                .map(TeamId)
                .collect(),
        })
    }

    /// Take `user`'s grant of the app away; `Ok(false)` when there was none.
    pub async fn revoke_app_from_user(
        &self,
        tenant: TenantId,
        app: AppId,
        user: UserId,
        change: &Change<'_>,
    ) -> Result<bool> {
        self.unlink(
            tenant,
            app,
            ("app_user_grants", "user_id", user.0),
            "app.revoke_user",
            change,
        )
        .await
    }

    /// Stop `user` being a collaborator of the app; `Ok(false)` when they were not one.
    pub async fn remove_collaborator(
        &self,
        tenant: TenantId,
        app: AppId,
        user: UserId,
        change: &Change<'_>,
    ) -> Result<bool> {
        self.unlink(
            tenant,
            app,
            ("app_collaborators", "user_id", user.0),
            "app.remove_collaborator",
            change,
        )
        .await
    }

    /// Take `team`'s grant of the app away; `Ok(false)` when there was none.
    pub async fn revoke_app_from_team(
        &self,
        tenant: TenantId,
        app: AppId,
        team: TeamId,
        change: &Change<'_>,
    ) -> Result<bool> {
        self.unlink(
            tenant,
            app,
            ("app_team_grants", "team_id", team.0),
            "app.revoke_team",
            change,
        )
        .await
    }

    async fn unlink(
        &self,
        tenant: TenantId,
        app: AppId,
        (table, column, id): (&'static str, &'static str, i64),
        action: &str,
        change: &Change<'_>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        require_app(&mut tx, tenant, app).await?;
        let removed = sqlx::query(&format!(
            "delete from {table} where tenant_id = $1 and app_id = $2 and {column} = $3"
        ))
        .bind(tenant.0)
        .bind(app.0)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 0 {
            return Ok(false);
        }
        let key = column.trim_end_matches("_id");
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            action,
            &format!("app:{app}"),
            json!({ key: id }),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(true)
    }
}
