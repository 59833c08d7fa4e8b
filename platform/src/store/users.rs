//! Users: one identity per person, whatever tenants they belong to.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Change};
use super::{Result, Store, conflict_on_unique, flag};
use crate::ids::UserId;
use crate::tenancy::Email;

/// A user, without the password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Lowercased email address.
    pub email: String,
    /// Platform superadmin.
    pub superadmin: bool,
    /// Whether a local password is set (users who sign in through a provider have none).
    pub has_password: bool,
    /// The password was generated and must be changed at the next sign-in.
    pub password_must_change: bool,
    /// When the user was created.
    pub created_at: i64,
    /// When the user was disabled, if they are.
    pub disabled_at: Option<i64>,
}

/// A user about to be created.
#[derive(Clone, Copy, Debug)]
pub struct NewUser<'a> {
    /// The address.
    pub email: &'a Email,
    /// An argon2id PHC string, or `None` for provider-only users.
    pub password_hash: Option<&'a str>,
    /// Force a password change at the next sign-in.
    pub password_must_change: bool,
    /// Make the user a platform superadmin.
    pub superadmin: bool,
}

const COLUMNS: &str = "id, email, superadmin, password_hash is not null, password_must_change, \
                       created_at, disabled_at";

fn user(row: &sqlx::any::AnyRow) -> Result<User> {
    Ok(User {
        id: UserId(row.try_get(0)?),
        email: row.try_get(1)?,
        superadmin: row.try_get::<i64, _>(2)? != 0,
        has_password: flag(row, 3)?,
        password_must_change: row.try_get::<i64, _>(4)? != 0,
        created_at: row.try_get(5)?,
        disabled_at: row.try_get(6)?,
    })
}

pub(super) async fn insert(
    conn: &mut sqlx::AnyConnection,
    new: &NewUser<'_>,
    change: &Change<'_>,
) -> Result<User> {
    let row = sqlx::query(&format!(
        "insert into users (email, password_hash, password_must_change, superadmin, created_at) \
         values ($1, $2, $3, $4, $5) returning {COLUMNS}"
    ))
    .bind(new.email.as_str())
    .bind(new.password_hash)
    .bind(i64::from(new.password_must_change))
    .bind(i64::from(new.superadmin))
    .bind(change.at)
    .fetch_one(&mut *conn)
    .await
    .map_err(conflict_on_unique("user", new.email.as_str()))?;
    let created = user(&row)?;
    audit::record(
        conn,
        change,
        None,
        "user.create",
        &format!("user:{}", new.email),
        json!({"superadmin": new.superadmin, "password": new.password_hash.is_some()}),
    )
    .await?;
    Ok(created)
}

impl Store {
    /// Create a user; a taken email (in any spelling) is [`super::Error::Conflict`].
    pub async fn create_user(&self, new: &NewUser<'_>, change: &Change<'_>) -> Result<User> {
        let mut tx = self.begin().await?;
        let created = insert(&mut tx, new, change).await?;
        self.commit_change(tx).await?;
        Ok(created)
    }

    /// Every user ordered by id, after the cursor `after` (a user id), with how many
    /// tenants each belongs to (one query).
    pub async fn list_users(&self, after: Option<i64>, limit: i64) -> Result<Vec<(User, i64)>> {
        let columns = COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "select {columns}, (select count(*) from memberships m where m.user_id = u.id) \
             from users u where u.id > $1 order by u.id limit $2"
        ))
        .bind(after.unwrap_or(0))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((user(row)?, row.try_get::<i64, _>(7)?)))
            .collect()
    }

    /// Create `new` only if there are no users at all (the first start of a platform).
    /// `None` when users exist, including when another replica won the race.
    pub async fn create_first_user(
        &self,
        new: &NewUser<'_>,
        change: &Change<'_>,
    ) -> Result<Option<User>> {
        let mut tx = self.begin().await?;
        let count: i64 = sqlx::query("select count(*) from users")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if count > 0 {
            return Ok(None);
        }
        match insert(&mut tx, new, change).await {
            Ok(created) => {
                self.commit_change(tx).await?;
                Ok(Some(created))
            }
            Err(super::Error::Conflict { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// How many users exist.
    pub async fn user_count(&self) -> Result<i64> {
        Ok(sqlx::query("select count(*) from users")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// The user with this address (any spelling).
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<User>> {
        let row = sqlx::query(&format!(
            "select {COLUMNS} from users where lower(email) = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user).transpose()
    }

    /// The user with this id.
    pub async fn user(&self, id: UserId) -> Result<Option<User>> {
        let row = sqlx::query(&format!("select {COLUMNS} from users where id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user).transpose()
    }

    /// The stored password hash of a user, if they have one.
    pub async fn password_hash(&self, id: UserId) -> Result<Option<String>> {
        let row = sqlx::query("select password_hash from users where id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => None,
        })
    }
}
