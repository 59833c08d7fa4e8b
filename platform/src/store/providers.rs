//! Identity providers of a tenant, the external identities they vouch for, and the
//! provisioning of a user at an external sign-in (account, link, role and teams) in one
//! transaction with its audit rows.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Change};
use super::memberships::{current_role, leave_tenant};
use super::users::{self, NewUser};
use super::{Result, Store, conflict_on_unique, parse_stored};
use crate::ids::{TenantId, UserId};
use crate::tenancy::{AccountTies, Email, Role, Subject};

/// A stored provider. `settings` still has its secret sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderRecord {
    /// Its id.
    pub id: i64,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its slug, unique in the tenant.
    pub slug: String,
    /// `oidc`, `ldap` or `saml`.
    pub kind: String,
    /// The name on the sign-in page.
    pub display_name: String,
    /// Kind-specific settings as JSON (secret sealed).
    pub settings: String,
    /// The group mappings as JSON.
    pub group_mappings: String,
    /// When it was created.
    pub created_at: i64,
    /// When it was last replaced.
    pub updated_at: i64,
}

/// A provider about to be stored.
#[derive(Clone, Copy, Debug)]
pub struct NewProvider<'a> {
    /// Its slug (validated by the caller).
    pub slug: &'a str,
    /// `oidc` or `ldap`.
    pub kind: &'a str,
    /// The name on the sign-in page.
    pub display_name: &'a str,
    /// Settings JSON with the secret sealed.
    pub settings: &'a str,
    /// Group mappings JSON.
    pub group_mappings: &'a str,
    /// What the audit row says about it: never a secret.
    pub audit_detail: &'a serde_json::Value,
}

/// Who signed in through a provider, and what its mappings grant them.
#[derive(Clone, Copy, Debug)]
pub struct ExternalSignIn<'a> {
    /// The tenant of the provider.
    pub tenant: TenantId,
    /// The provider.
    pub provider: i64,
    /// Its slug (for the audit rows).
    pub provider_slug: &'a str,
    /// The provider's stable id of the person (OIDC `sub`, LDAP DN).
    pub subject: &'a Subject,
    /// The address the provider gave, if any.
    pub email: Option<&'a Email>,
    /// Whether the provider says it verified that address. It only matters for an account
    /// that belongs to the provider's tenant ([`AccountTies`]); no provider's word links
    /// any other account.
    pub email_verified: bool,
    /// The role the mappings grant (`None`: the provider grants no role).
    pub role: Option<Role>,
    /// The teams the mappings put the user in.
    pub teams: &'a [String],
}

/// Why an external sign-in was refused although the provider vouched for the person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A first sign-in without an email address: no account can be made.
    NoEmail,
    /// An account that does not belong to the provider's tenant (a superadmin, a local
    /// password, a role or identity elsewhere) has this address: only its owner may link
    /// the identity, signed in, from the account page.
    AccountExists,
    /// An account of the provider's tenant has this address and the provider did not
    /// verify it.
    EmailNotVerified,
    /// The identity was linked by the provider itself (it made the account, or linked it
    /// by email) and the account no longer belongs to the provider's tenant (it has since
    /// got a role elsewhere, a superadmin flag or a password): the provider's word no
    /// longer signs it in. Its owner signs in another way and links it on the account page.
    AccountLeftTenant,
    /// The account is disabled.
    Disabled,
}

/// How an external identity came to be linked to its account (`external_identities.link_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// Made together with the account by that provider's sign-in.
    Created,
    /// Linked by the provider's verified email to an account that belonged to its tenant.
    Email,
    /// Linked by the account's owner, signed in, on the account page.
    Explicit,
}

impl LinkKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Created => "created",
            LinkKind::Email => "email",
            LinkKind::Explicit => "explicit",
        }
    }

    /// Whether the link signs in an account that no longer belongs to the provider's
    /// tenant: only one its owner chose does. A link the provider made itself rests on
    /// the account being its tenant's ([`AccountTies::belong_to_provider_tenant`]).
    pub fn outlives_tenant_ties(self) -> bool {
        self == LinkKind::Explicit
    }

    fn parse(stored: &str) -> Self {
        match stored {
            "explicit" => LinkKind::Explicit,
            "email" => LinkKind::Email,
            // Anything else (and every link older than migration 0015) is the safe side.
            _ => LinkKind::Created,
        }
    }
}

/// What removing a provider did to what it had granted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProviderRemoval {
    /// Members it had brought in who left the tenant.
    pub memberships_removed: u32,
    /// Members whose hand-given role came back in place of the provider's.
    pub roles_restored: u32,
    /// Roles it granted that stay, now hand-given (`keep_memberships`).
    pub memberships_kept: u32,
    /// Team memberships it made that ended.
    pub team_memberships_removed: u32,
    /// Team memberships it made that stay, now hand-given (`keep_memberships`).
    pub team_memberships_kept: u32,
}

/// A successful external sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provisioned {
    /// Who.
    pub user: UserId,
    /// A new account was made.
    pub created: bool,
    /// The identity was linked to the account now (first sign-in through this provider).
    pub linked: bool,
}

const COLUMNS: &str = "id, tenant_id, slug, kind, display_name, settings, group_mappings, \
                       created_at, updated_at";

fn record(row: &sqlx::any::AnyRow) -> Result<ProviderRecord> {
    Ok(ProviderRecord {
        id: row.try_get(0)?,
        tenant_id: TenantId(row.try_get(1)?),
        slug: row.try_get(2)?,
        kind: row.try_get(3)?,
        display_name: row.try_get(4)?,
        settings: row.try_get(5)?,
        group_mappings: row.try_get(6)?,
        created_at: row.try_get(7)?,
        updated_at: row.try_get(8)?,
    })
}

impl Store {
    /// Create or replace the provider `new.slug` of `tenant`; `true` when it was created.
    pub async fn set_identity_provider(
        &self,
        tenant: TenantId,
        new: &NewProvider<'_>,
        change: &Change<'_>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "update identity_providers set kind = $3, display_name = $4, settings = $5, \
             group_mappings = $6, updated_at = $7 where tenant_id = $1 and slug = $2",
        )
        .bind(tenant.0)
        .bind(new.slug)
        .bind(new.kind)
        .bind(new.display_name)
        .bind(new.settings)
        .bind(new.group_mappings)
        .bind(change.at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let created = updated == 0;
        if created {
            sqlx::query(
                "insert into identity_providers (tenant_id, slug, kind, display_name, settings, \
                 group_mappings, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(tenant.0)
            .bind(new.slug)
            .bind(new.kind)
            .bind(new.display_name)
            .bind(new.settings)
            .bind(new.group_mappings)
            .bind(change.at)
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique("identity provider", new.slug))?;
        }
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "identity_provider.set",
            &format!("identity_provider:{}", new.slug),
            json!({"created": created, "settings": new.audit_detail}),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(created)
    }

    /// The providers of `tenant`, by slug.
    pub async fn identity_providers(&self, tenant: TenantId) -> Result<Vec<ProviderRecord>> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from identity_providers where tenant_id = $1 order by slug"
        ))
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// The provider `slug` of `tenant`.
    pub async fn identity_provider(
        &self,
        tenant: TenantId,
        slug: &str,
    ) -> Result<Option<ProviderRecord>> {
        let row = sqlx::query(&format!(
            "select {COLUMNS} from identity_providers where tenant_id = $1 and slug = $2"
        ))
        .bind(tenant.0)
        .bind(slug)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    /// The provider with this id in `tenant`.
    pub async fn identity_provider_by_id(
        &self,
        tenant: TenantId,
        id: i64,
    ) -> Result<Option<ProviderRecord>> {
        let row = sqlx::query(&format!(
            "select {COLUMNS} from identity_providers where tenant_id = $1 and id = $2"
        ))
        .bind(tenant.0)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record).transpose()
    }

    /// Remove the provider `slug` of `tenant` with its links to users, and take back what
    /// it granted: a role it gave is taken back (the member's earlier hand-given role comes
    /// back, or they leave the tenant when they had none), and the team memberships it made
    /// end. A membership changed by hand since the provider set it is left alone (it is no
    /// longer the provider's). With `keep_memberships`, every role and team membership the
    /// provider granted stays and becomes hand-given, each with its own audit row
    /// (`membership.keep`, `team.keep_member`). `None` when there was no such provider.
    pub async fn remove_identity_provider(
        &self,
        tenant: TenantId,
        slug: &str,
        keep_memberships: bool,
        change: &Change<'_>,
    ) -> Result<Option<ProviderRemoval>> {
        let mut tx = self.begin().await?;
        let id: Option<i64> =
            sqlx::query("select id from identity_providers where tenant_id = $1 and slug = $2")
                .bind(tenant.0)
                .bind(slug)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        let Some(id) = id else {
            return Ok(None);
        };
        let mut removal = ProviderRemoval::default();
        let detail = |extra: serde_json::Value| {
            let mut detail = json!({"provider": slug, "reason": "identity_provider.remove"});
            if let (Some(d), Some(e)) = (detail.as_object_mut(), extra.as_object()) {
                d.extend(e.clone());
            }
            detail
        };

        // Teams first: a member who leaves the tenant below loses every team anyway.
        let team_rows = sqlx::query(
            "select p.team_id, p.user_id from provider_team_members p \
             join team_members m on m.team_id = p.team_id and m.user_id = p.user_id \
             where p.provider_id = $1 and p.tenant_id = $2 order by p.team_id, p.user_id",
        )
        .bind(id)
        .bind(tenant.0)
        .fetch_all(&mut *tx)
        .await?;
        for row in &team_rows {
            let team: i64 = row.try_get(0)?;
            let user: i64 = row.try_get(1)?;
            if keep_memberships {
                removal.team_memberships_kept += 1;
                audit::record(
                    &mut tx,
                    change,
                    Some(tenant),
                    "team.keep_member",
                    &format!("team:{team}"),
                    detail(json!({"user": user, "now": "hand_given"})),
                )
                .await?;
            } else {
                sqlx::query("delete from team_members where team_id = $1 and user_id = $2")
                    .bind(team)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                removal.team_memberships_removed += 1;
                audit::record(
                    &mut tx,
                    change,
                    Some(tenant),
                    "team.remove_member",
                    &format!("team:{team}"),
                    detail(json!({"user": user})),
                )
                .await?;
            }
        }

        let role_rows = sqlx::query(
            "select user_id, role, manual_role from provider_memberships \
             where provider_id = $1 and tenant_id = $2 order by user_id",
        )
        .bind(id)
        .bind(tenant.0)
        .fetch_all(&mut *tx)
        .await?;
        for row in &role_rows {
            let user = UserId(row.try_get(0)?);
            let granted: Role = parse_stored(&row.try_get::<String, _>(1)?)?;
            let manual: Option<Role> = row
                .try_get::<Option<String>, _>(2)?
                .as_deref()
                .map(parse_stored)
                .transpose()?;
            let Some(current) = current_role(&mut tx, tenant, user).await? else {
                continue;
            };
            // Changed by hand since the provider set it: not the provider's any more.
            if current != manual.map_or(granted, |m| m.max(granted)) {
                continue;
            }
            if keep_memberships {
                removal.memberships_kept += 1;
                audit::record(
                    &mut tx,
                    change,
                    Some(tenant),
                    "membership.keep",
                    &format!("user:{user}"),
                    detail(json!({"role": current.as_str(), "now": "hand_given"})),
                )
                .await?;
                continue;
            }
            match manual {
                Some(manual) => {
                    if manual != current {
                        sqlx::query(
                            "update memberships set role = $3 where tenant_id = $1 and user_id = $2",
                        )
                        .bind(tenant.0)
                        .bind(user.0)
                        .bind(manual.as_str())
                        .execute(&mut *tx)
                        .await?;
                        removal.roles_restored += 1;
                        audit::record(
                            &mut tx,
                            change,
                            Some(tenant),
                            "membership.grant",
                            &format!("user:{user}"),
                            detail(json!({"role": manual.as_str(), "previous": current.as_str()})),
                        )
                        .await?;
                    }
                }
                None => {
                    leave_tenant(&mut tx, tenant, user).await?;
                    removal.memberships_removed += 1;
                    audit::record(
                        &mut tx,
                        change,
                        Some(tenant),
                        "membership.remove",
                        &format!("user:{user}"),
                        detail(json!({"previous": current.as_str()})),
                    )
                    .await?;
                }
            }
        }

        for table in [
            "provider_team_members",
            "provider_memberships",
            "external_identities",
        ] {
            sqlx::query(&format!("delete from {table} where provider_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("delete from identity_providers where id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "identity_provider.remove",
            &format!("identity_provider:{slug}"),
            json!({
                "keep_memberships": keep_memberships,
                "memberships_removed": removal.memberships_removed,
                "roles_restored": removal.roles_restored,
                "memberships_kept": removal.memberships_kept,
                "team_memberships_removed": removal.team_memberships_removed,
                "team_memberships_kept": removal.team_memberships_kept,
            }),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(Some(removal))
    }

    /// The user linked to `subject` at `provider`, if any.
    pub async fn external_identity(&self, provider: i64, subject: &str) -> Result<Option<UserId>> {
        let row = sqlx::query(
            "select user_id from external_identities where provider_id = $1 and subject = $2",
        )
        .bind(provider)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?.map(UserId))
    }

    /// An external sign-in: find or create the user, link the identity, then make their
    /// role and teams in the tenant what the provider's mappings say, touching only what
    /// this provider granted before. One transaction with its audit rows; a refusal
    /// changes nothing.
    pub async fn external_sign_in(
        &self,
        input: &ExternalSignIn<'_>,
        change: &Change<'_>,
    ) -> Result<std::result::Result<Provisioned, Refusal>> {
        let mut tx = self.begin().await?;
        let tenant = input.tenant;
        let provider_detail = |extra: serde_json::Value| {
            let mut detail = json!({"provider": input.provider_slug});
            if let (Some(d), Some(e)) = (detail.as_object_mut(), extra.as_object()) {
                d.extend(e.clone());
            }
            detail
        };
        let linked_user: Option<(i64, LinkKind)> = sqlx::query(
            "select user_id, link_kind from external_identities \
             where provider_id = $1 and subject = $2",
        )
        .bind(input.provider)
        .bind(input.subject.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| -> Result<_> {
            Ok((
                row.try_get(0)?,
                LinkKind::parse(&row.try_get::<String, _>(1)?),
            ))
        })
        .transpose()?;
        let (user, created, linked) = match linked_user {
            Some((id, kind)) => {
                if !kind.outlives_tenant_ties()
                    && !account_ties(&mut tx, UserId(id), input)
                        .await?
                        .belong_to_provider_tenant()
                {
                    return Ok(Err(Refusal::AccountLeftTenant));
                }
                sqlx::query(
                    "update external_identities set last_sign_in_at = $3 \
                     where provider_id = $1 and subject = $2",
                )
                .bind(input.provider)
                .bind(input.subject.as_str())
                .bind(change.at)
                .execute(&mut *tx)
                .await?;
                (UserId(id), false, false)
            }
            None => {
                let Some(email) = input.email else {
                    return Ok(Err(Refusal::NoEmail));
                };
                let existing: Option<i64> =
                    sqlx::query("select id from users where lower(email) = $1")
                        .bind(email.as_str())
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| row.try_get(0))
                        .transpose()?;
                let (user, created) = match existing {
                    Some(id) => {
                        let ties = account_ties(&mut tx, UserId(id), input).await?;
                        if !ties.belong_to_provider_tenant() {
                            return Ok(Err(Refusal::AccountExists));
                        }
                        if !input.email_verified {
                            return Ok(Err(Refusal::EmailNotVerified));
                        }
                        (UserId(id), false)
                    }
                    None => {
                        let new = NewUser {
                            email,
                            password_hash: None,
                            password_must_change: false,
                            superadmin: false,
                        };
                        (users::insert(&mut tx, &new, change).await?.id, true)
                    }
                };
                let kind = if created {
                    LinkKind::Created
                } else {
                    LinkKind::Email
                };
                sqlx::query(
                    "insert into external_identities (provider_id, subject, user_id, created_at, \
                     last_sign_in_at, link_kind) values ($1, $2, $3, $4, $4, $5)",
                )
                .bind(input.provider)
                .bind(input.subject.as_str())
                .bind(user.0)
                .bind(change.at)
                .bind(kind.as_str())
                .execute(&mut *tx)
                .await?;
                audit::record(
                    &mut tx,
                    change,
                    Some(tenant),
                    "identity.link",
                    &format!("user:{}", user.0),
                    provider_detail(json!({
                        "subject": input.subject.as_str(),
                        "created": created,
                        "link": kind.as_str(),
                    })),
                )
                .await?;
                (user, created, true)
            }
        };
        let disabled: Option<i64> = sqlx::query("select disabled_at from users where id = $1")
            .bind(user.0)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if disabled.is_some() {
            return Ok(Err(Refusal::Disabled));
        }
        sync_role(&mut tx, input, user, change, &provider_detail).await?;
        sync_teams(&mut tx, input, user, change, &provider_detail).await?;
        self.commit_change(tx).await?;
        Ok(Ok(Provisioned {
            user,
            created,
            linked,
        }))
    }
}

/// What ties `user` to anything outside the provider's tenant (read in the sign-in's
/// transaction; [`AccountTies`] judges).
async fn account_ties(
    conn: &mut sqlx::AnyConnection,
    user: UserId,
    input: &ExternalSignIn<'_>,
) -> Result<AccountTies> {
    let row = sqlx::query(
        "select u.superadmin, u.password_hash is not null,          (select count(*) from memberships m where m.user_id = u.id and m.tenant_id <> $2),          (select count(*) from external_identities e           join identity_providers p on p.id = e.provider_id           where e.user_id = u.id and p.tenant_id <> $2)          from users u where u.id = $1",
    )
    .bind(user.0)
    .bind(input.tenant.0)
    .fetch_one(&mut *conn)
    .await?;
    Ok(AccountTies {
        superadmin: row.try_get::<i64, _>(0)? != 0,
        has_password: super::flag(&row, 1)?,
        roles_elsewhere: row.try_get(2)?,
        identities_elsewhere: row.try_get(3)?,
    })
}

/// Make the member's role what the provider grants, within what this provider manages.
async fn sync_role(
    conn: &mut sqlx::AnyConnection,
    input: &ExternalSignIn<'_>,
    user: UserId,
    change: &Change<'_>,
    detail: &(dyn Fn(serde_json::Value) -> serde_json::Value + Sync),
) -> Result<()> {
    let tenant = input.tenant;
    let current = current_role(&mut *conn, tenant, user).await?;
    let managed = sqlx::query(
        "select provider_id, role, manual_role from provider_memberships \
         where tenant_id = $1 and user_id = $2",
    )
    .bind(tenant.0)
    .bind(user.0)
    .fetch_optional(&mut *conn)
    .await?
    .map(|row| -> Result<(i64, Role, Option<Role>)> {
        Ok((
            row.try_get(0)?,
            parse_stored(&row.try_get::<String, _>(1)?)?,
            row.try_get::<Option<String>, _>(2)?
                .as_deref()
                .map(parse_stored)
                .transpose()?,
        ))
    })
    .transpose()?;
    // What this provider set, if the membership still looks the way it left it; a role
    // changed by hand since then is no longer the provider's to manage.
    let mine = match (managed, current) {
        (Some((provider, role, manual)), Some(current)) if provider == input.provider => {
            if current == manual.map_or(role, |m| m.max(role)) {
                Some((role, manual))
            } else {
                forget_membership(&mut *conn, tenant, user).await?;
                None
            }
        }
        _ => None,
    };
    let managed_by_other = managed.is_some_and(|(p, _, _)| p != input.provider);
    let set_role = |role: Role| {
        sqlx::query("update memberships set role = $3 where tenant_id = $1 and user_id = $2")
            .bind(tenant.0)
            .bind(user.0)
            .bind(role.as_str())
    };
    let grant_audit = |role: Role, previous: Option<Role>| {
        detail(json!({"role": role.as_str(), "previous": previous.map(Role::as_str)}))
    };
    match (current, mine, input.role) {
        (None, _, Some(role)) => {
            sqlx::query(
                "insert into memberships (tenant_id, user_id, role, created_at) \
                 values ($1, $2, $3, $4)",
            )
            .bind(tenant.0)
            .bind(user.0)
            .bind(role.as_str())
            .bind(change.at)
            .execute(&mut *conn)
            .await?;
            manage_membership(&mut *conn, input, user, role, None).await?;
            audit::record(
                conn,
                change,
                Some(tenant),
                "membership.grant",
                &format!("user:{user}"),
                grant_audit(role, None),
            )
            .await?;
        }
        (Some(current), Some((_, manual)), Some(role)) => {
            let effective = manual.map_or(role, |m| m.max(role));
            if effective != current {
                set_role(effective).execute(&mut *conn).await?;
                audit::record(
                    conn,
                    change,
                    Some(tenant),
                    "membership.grant",
                    &format!("user:{user}"),
                    grant_audit(effective, Some(current)),
                )
                .await?;
            }
            manage_membership(&mut *conn, input, user, role, manual).await?;
        }
        (Some(current), Some((_, manual)), None) => {
            forget_membership(&mut *conn, tenant, user).await?;
            match manual {
                Some(manual) => {
                    if manual != current {
                        set_role(manual).execute(&mut *conn).await?;
                        audit::record(
                            conn,
                            change,
                            Some(tenant),
                            "membership.grant",
                            &format!("user:{user}"),
                            grant_audit(manual, Some(current)),
                        )
                        .await?;
                    }
                }
                None => {
                    leave_tenant(conn, tenant, user).await?;
                    audit::record(
                        conn,
                        change,
                        Some(tenant),
                        "membership.remove",
                        &format!("user:{user}"),
                        detail(json!({"previous": current.as_str()})),
                    )
                    .await?;
                }
            }
        }
        (Some(current), None, Some(role)) if role > current && !managed_by_other => {
            set_role(role).execute(&mut *conn).await?;
            manage_membership(&mut *conn, input, user, role, Some(current)).await?;
            audit::record(
                conn,
                change,
                Some(tenant),
                "membership.grant",
                &format!("user:{user}"),
                grant_audit(role, Some(current)),
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn manage_membership(
    conn: &mut sqlx::AnyConnection,
    input: &ExternalSignIn<'_>,
    user: UserId,
    role: Role,
    manual: Option<Role>,
) -> Result<()> {
    forget_membership(&mut *conn, input.tenant, user).await?;
    sqlx::query(
        "insert into provider_memberships (tenant_id, user_id, provider_id, role, manual_role) \
         values ($1, $2, $3, $4, $5)",
    )
    .bind(input.tenant.0)
    .bind(user.0)
    .bind(input.provider)
    .bind(role.as_str())
    .bind(manual.map(Role::as_str))
    .execute(conn)
    .await?;
    Ok(())
}

async fn forget_membership(
    conn: &mut sqlx::AnyConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<()> {
    sqlx::query("delete from provider_memberships where tenant_id = $1 and user_id = $2")
        .bind(tenant.0)
        .bind(user.0)
        .execute(conn)
        .await?;
    Ok(())
}

/// Put the member in the mapped teams (created when missing) and take them out of the
/// teams this provider put them in that are no longer mapped. Team memberships made by
/// hand are left alone; a non-member gets no teams.
async fn sync_teams(
    conn: &mut sqlx::AnyConnection,
    input: &ExternalSignIn<'_>,
    user: UserId,
    change: &Change<'_>,
    detail: &(dyn Fn(serde_json::Value) -> serde_json::Value + Sync),
) -> Result<()> {
    let tenant = input.tenant;
    if current_role(&mut *conn, tenant, user).await?.is_none() {
        return Ok(());
    }
    for name in input.teams {
        let existing: Option<i64> =
            sqlx::query("select id from teams where tenant_id = $1 and name = $2")
                .bind(tenant.0)
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        let team = match existing {
            Some(id) => id,
            None => {
                let id: i64 = sqlx::query(
                    "insert into teams (tenant_id, name, created_at) values ($1, $2, $3) \
                     returning id",
                )
                .bind(tenant.0)
                .bind(name)
                .bind(change.at)
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
                audit::record(
                    &mut *conn,
                    change,
                    Some(tenant),
                    "team.create",
                    &format!("team:{id}"),
                    detail(json!({"name": name})),
                )
                .await?;
                id
            }
        };
        let added = sqlx::query(
            "insert into team_members (tenant_id, team_id, user_id, created_at) \
             values ($1, $2, $3, $4) on conflict (team_id, user_id) do nothing",
        )
        .bind(tenant.0)
        .bind(team)
        .bind(user.0)
        .bind(change.at)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if added > 0 {
            sqlx::query(
                "insert into provider_team_members (tenant_id, team_id, user_id, provider_id) \
                 values ($1, $2, $3, $4)",
            )
            .bind(tenant.0)
            .bind(team)
            .bind(user.0)
            .bind(input.provider)
            .execute(&mut *conn)
            .await?;
            audit::record(
                &mut *conn,
                change,
                Some(tenant),
                "team.add_member",
                &format!("team:{team}"),
                detail(json!({"user": user.0})),
            )
            .await?;
        }
    }
    let managed = sqlx::query(
        "select p.team_id, t.name from provider_team_members p \
         join teams t on t.tenant_id = p.tenant_id and t.id = p.team_id \
         where p.tenant_id = $1 and p.user_id = $2 and p.provider_id = $3 order by p.team_id",
    )
    .bind(tenant.0)
    .bind(user.0)
    .bind(input.provider)
    .fetch_all(&mut *conn)
    .await?;
    for row in &managed {
        let team: i64 = row.try_get(0)?;
        let name: String = row.try_get(1)?;
        if input.teams.contains(&name) {
            continue;
        }
        sqlx::query("delete from team_members where team_id = $1 and user_id = $2")
            .bind(team)
            .bind(user.0)
            .execute(&mut *conn)
            .await?;
        audit::record(
            &mut *conn,
            change,
            Some(tenant),
            "team.remove_member",
            &format!("team:{team}"),
            detail(json!({"user": user.0})),
        )
        .await?;
    }
    Ok(())
}

impl Store {
    /// Record a sign-in attempt through a tenant's provider (`auth.sign_in`,
    /// `auth.sign_in_failed`) on its own, under that tenant.
    pub async fn audit_provider_sign_in(
        &self,
        change: &Change<'_>,
        tenant: Option<TenantId>,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        audit::record(&mut tx, change, tenant, action, target, detail).await?;
        self.commit_change(tx).await?;
        Ok(())
    }
}

/// An identity linked to a user, for their account page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedIdentity {
    /// The provider's tenant (slug).
    pub tenant: String,
    /// The provider's slug.
    pub provider: String,
    /// The provider's name.
    pub display_name: String,
    /// The provider's subject of the person.
    pub subject: String,
    /// When it was linked.
    pub created_at: i64,
}

/// A provider a user may link their account to (one of their tenants').
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkableProvider {
    /// The tenant's slug.
    pub tenant: String,
    /// The provider's slug.
    pub slug: String,
    /// `oidc`, `ldap` or `saml`.
    pub kind: String,
    /// Its name.
    pub display_name: String,
}

/// Why an explicit link was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRefusal {
    /// The identity already signs in another account.
    LinkedToAnother,
}

impl Store {
    /// The owner of `user`, signed in, links `subject` at `provider` (of `tenant`) to their
    /// account (`identity.link`, `explicit: true`). `Ok(false)` when it was linked to them
    /// explicitly already; a link to them that the provider made itself becomes explicit
    /// (from now on it signs them in whatever else the account is tied to). Refused when it
    /// is linked to someone else.
    pub async fn link_external_identity(
        &self,
        tenant: TenantId,
        provider: &ProviderRecord,
        subject: &Subject,
        user: UserId,
        change: &Change<'_>,
    ) -> Result<std::result::Result<bool, LinkRefusal>> {
        if provider.tenant_id != tenant {
            return Err(super::Error::NotFound {
                what: "identity provider",
                value: provider.slug.clone(),
            });
        }
        let mut tx = self.begin().await?;
        let linked: Option<(i64, LinkKind)> = sqlx::query(
            "select user_id, link_kind from external_identities \
             where provider_id = $1 and subject = $2",
        )
        .bind(provider.id)
        .bind(subject.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| -> Result<_> {
            Ok((
                row.try_get(0)?,
                LinkKind::parse(&row.try_get::<String, _>(1)?),
            ))
        })
        .transpose()?;
        let mut detail =
            json!({"provider": provider.slug, "subject": subject.as_str(), "explicit": true});
        match linked {
            Some((owner, LinkKind::Explicit)) if owner == user.0 => return Ok(Ok(false)),
            Some((owner, kind)) if owner == user.0 => {
                sqlx::query(
                    "update external_identities set link_kind = $3 \
                     where provider_id = $1 and subject = $2",
                )
                .bind(provider.id)
                .bind(subject.as_str())
                .bind(LinkKind::Explicit.as_str())
                .execute(&mut *tx)
                .await?;
                detail["previously"] = json!(kind.as_str());
            }
            Some(_) => return Ok(Err(LinkRefusal::LinkedToAnother)),
            None => {
                sqlx::query(
                    "insert into external_identities (provider_id, subject, user_id, \
                     created_at, last_sign_in_at, link_kind) values ($1, $2, $3, $4, $4, $5)",
                )
                .bind(provider.id)
                .bind(subject.as_str())
                .bind(user.0)
                .bind(change.at)
                .bind(LinkKind::Explicit.as_str())
                .execute(&mut *tx)
                .await?;
            }
        }
        audit::record(
            &mut tx,
            change,
            Some(tenant),
            "identity.link",
            &format!("user:{}", user.0),
            detail,
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(Ok(true))
    }

    /// The identities linked to `user`, oldest first.
    pub async fn linked_identities(&self, user: UserId) -> Result<Vec<LinkedIdentity>> {
        let rows = sqlx::query(
            "select t.slug, p.slug, p.display_name, e.subject, e.created_at \
             from external_identities e \
             join identity_providers p on p.id = e.provider_id \
             join tenants t on t.id = p.tenant_id \
             where e.user_id = $1 order by e.created_at, p.slug",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LinkedIdentity {
                    tenant: row.try_get(0)?,
                    provider: row.try_get(1)?,
                    display_name: row.try_get(2)?,
                    subject: row.try_get(3)?,
                    created_at: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// The providers of the tenants `user` is a member of.
    pub async fn linkable_providers(&self, user: UserId) -> Result<Vec<LinkableProvider>> {
        let rows = sqlx::query(
            "select t.slug, p.slug, p.kind, p.display_name \
             from identity_providers p \
             join tenants t on t.id = p.tenant_id \
             join memberships m on m.tenant_id = p.tenant_id and m.user_id = $1 \
             order by t.slug, p.slug",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LinkableProvider {
                    tenant: row.try_get(0)?,
                    slug: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    display_name: row.try_get(3)?,
                })
            })
            .collect()
    }
}
