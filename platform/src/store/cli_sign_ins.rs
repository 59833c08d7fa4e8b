//! Command-line sign-ins (`tessera login`): a pending request a signed-in person approves
//! or denies in the browser, and the one collection of the token it was approved with.
//! Every state change is a conditional update, so of two racing approvals (or
//! collections) exactly one takes effect.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Change};
use super::{Result, Store, conflict_on_unique};
use crate::ids::{TenantId, UserId};

/// A command-line sign-in as the approval page and the token endpoint see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliSignIn {
    /// Its id.
    pub id: i64,
    /// The code the person compares with the one their terminal shows (`BCDF-GHJK`).
    pub user_code: String,
    /// The machine that asked, as the command line named it.
    pub client_name: String,
    /// The address it asked from.
    pub client_addr: String,
    /// The tenant the command line suggested (`--tenant`; may be empty).
    pub tenant_hint: String,
    /// When it was asked for.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: i64,
    /// The last time the command line asked for its token.
    pub last_polled_at: Option<i64>,
    /// Approved: by whom, when, for which tenant.
    pub approved: Option<(UserId, i64, TenantId)>,
    /// When it was denied.
    pub denied_at: Option<i64>,
    /// When the command line collected its token.
    pub collected_at: Option<i64>,
}

impl CliSignIn {
    /// Neither approved nor denied, and not expired at `now`.
    pub fn pending_at(&self, now: i64) -> bool {
        self.approved.is_none() && self.denied_at.is_none() && now < self.expires_at
    }
}

/// A sign-in about to be stored.
#[derive(Clone, Copy, Debug)]
pub struct NewCliSignIn<'a> {
    /// sha256 (hex) of the device code the command line holds.
    pub device_code_sha256: &'a str,
    /// The code shown to the person.
    pub user_code: &'a str,
    /// The machine's name.
    pub client_name: &'a str,
    /// Its address.
    pub client_addr: &'a str,
    /// The suggested tenant.
    pub tenant_hint: &'a str,
    /// Now.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: i64,
}

/// The token an approval created, sealed until it is collected.
#[derive(Clone, Copy, Debug)]
pub struct ApprovedToken<'a> {
    /// The tenant it works in.
    pub tenant: TenantId,
    /// Who approved (the token's owner).
    pub user: UserId,
    /// The token's public id (to revoke it if it is never collected).
    pub public_id: &'a str,
    /// The whole token, sealed with the platform key.
    pub sealed: &'a str,
}

const COLUMNS: &str = "id, user_code, client_name, client_addr, tenant_hint, created_at, \
                       expires_at, last_polled_at, approved_by, approved_at, tenant_id, \
                       denied_at, collected_at";

fn cli_sign_in(row: &sqlx::any::AnyRow) -> Result<CliSignIn> {
    let approved_by: Option<i64> = row.try_get(8)?;
    let approved_at: Option<i64> = row.try_get(9)?;
    let tenant: Option<i64> = row.try_get(10)?;
    Ok(CliSignIn {
        id: row.try_get(0)?,
        user_code: row.try_get(1)?,
        client_name: row.try_get(2)?,
        client_addr: row.try_get(3)?,
        tenant_hint: row.try_get(4)?,
        created_at: row.try_get(5)?,
        expires_at: row.try_get(6)?,
        last_polled_at: row.try_get(7)?,
        approved: match (approved_by, approved_at, tenant) {
            (Some(user), Some(at), Some(tenant)) => Some((UserId(user), at, TenantId(tenant))),
            _ => None,
        },
        denied_at: row.try_get(11)?,
        collected_at: row.try_get(12)?,
    })
}

impl Store {
    /// Sign-ins not yet expired at `now` (the cap on requests nobody authenticated).
    pub async fn pending_cli_sign_ins(&self, now: i64) -> Result<i64> {
        Ok(
            sqlx::query("select count(*) from cli_sign_ins where expires_at > $1")
                .bind(now)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }

    /// The public ids of tokens approved but never collected before their sign-in expired
    /// at `now` (their owner should not keep a token nobody holds), forgetting them.
    pub async fn uncollected_cli_tokens(&self, now: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "update cli_sign_ins set token_sealed = null where expires_at <= $1 \
             and token_sealed is not null and collected_at is null returning token_public_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .filter_map(|row| row.try_get::<Option<String>, _>(0).transpose())
            .collect::<std::result::Result<Vec<String>, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Forget sign-ins that expired before `before`.
    pub async fn delete_expired_cli_sign_ins(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query(
            "delete from cli_sign_ins where expires_at < $1 \
                 and (token_sealed is null or collected_at is not null)",
        )
        .bind(before)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Store a new sign-in; a taken user code is [`super::Error::Conflict`].
    pub async fn create_cli_sign_in(&self, new: &NewCliSignIn<'_>) -> Result<i64> {
        let row = sqlx::query(
            "insert into cli_sign_ins (device_code_sha256, user_code, client_name, client_addr, \
             tenant_hint, created_at, expires_at) values ($1, $2, $3, $4, $5, $6, $7) returning id",
        )
        .bind(new.device_code_sha256)
        .bind(new.user_code)
        .bind(new.client_name)
        .bind(new.client_addr)
        .bind(new.tenant_hint)
        .bind(new.created_at)
        .bind(new.expires_at)
        .fetch_one(&self.pool)
        .await
        .map_err(conflict_on_unique("sign-in code", new.user_code))?;
        Ok(row.try_get(0)?)
    }

    /// The sign-in shown with `user_code`, in any state.
    pub async fn cli_sign_in_by_user_code(&self, user_code: &str) -> Result<Option<CliSignIn>> {
        let row = sqlx::query(&format!(
            "select {COLUMNS} from cli_sign_ins where user_code = $1"
        ))
        .bind(user_code)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(cli_sign_in).transpose()
    }

    /// The sign-in whose device code hashes to `device_code_sha256`, in any state.
    pub async fn cli_sign_in_by_device_code(
        &self,
        device_code_sha256: &str,
    ) -> Result<Option<CliSignIn>> {
        let row = sqlx::query(&format!(
            "select {COLUMNS} from cli_sign_ins where device_code_sha256 = $1"
        ))
        .bind(device_code_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(cli_sign_in).transpose()
    }

    /// Note that the command line asked for its token at `at`.
    pub async fn touch_cli_sign_in(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query("update cli_sign_ins set last_polled_at = $2 where id = $1")
            .bind(id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Approve a pending sign-in with the token created for it (audited
    /// `cli_sign_in.approve`). False when it was no longer pending (approved, denied or
    /// expired meanwhile): the caller revokes the token it created.
    pub async fn approve_cli_sign_in(
        &self,
        id: i64,
        token: &ApprovedToken<'_>,
        change: &Change<'_>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "update cli_sign_ins set approved_by = $2, approved_at = $3, tenant_id = $4, \
             token_public_id = $5, token_sealed = $6 \
             where id = $1 and approved_by is null and denied_at is null and expires_at > $3 \
             returning client_name, client_addr",
        )
        .bind(id)
        .bind(token.user.0)
        .bind(change.at)
        .bind(token.tenant.0)
        .bind(token.public_id)
        .bind(token.sealed)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let (client, addr): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        audit::record(
            &mut tx,
            change,
            Some(token.tenant),
            "cli_sign_in.approve",
            &format!("token:{}", token.public_id),
            json!({"client": client, "client_addr": addr}),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deny a pending sign-in at `at`; false when it was no longer pending.
    pub async fn deny_cli_sign_in(&self, id: i64, at: i64) -> Result<bool> {
        Ok(sqlx::query(
            "update cli_sign_ins set denied_at = $2 \
             where id = $1 and approved_by is null and denied_at is null and expires_at > $2",
        )
        .bind(id)
        .bind(at)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// Take the sealed token of an approved sign-in at `at`, once: the second collection
    /// (or one after expiry) finds nothing. The stored copy is cleared afterwards.
    pub async fn collect_cli_sign_in(&self, id: i64, at: i64) -> Result<Option<String>> {
        // Setting only `collected_at` lets `returning` read the sealed token; the condition
        // on it makes the collection single-use.
        let sealed: Option<String> = sqlx::query(
            "update cli_sign_ins set collected_at = $2 \
             where id = $1 and collected_at is null and token_sealed is not null \
             and expires_at > $2 returning token_sealed",
        )
        .bind(id)
        .bind(at)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        if sealed.is_some() {
            sqlx::query("update cli_sign_ins set token_sealed = null where id = $1")
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        Ok(sealed)
    }
}
