//! The append-only audit log: who changed what, when, from where.
//!
//! Rows are written only by the store's own change functions, inside the transaction of
//! the change they describe, so a change and its audit row are stored together or not at
//! all. Both databases refuse updates and deletes of the table (triggers in the migration).

use sqlx::{AnyConnection, Row};

use super::{Result, Store};
use crate::ids::TenantId;

/// Who is making a change, from where, and when: handed to every store function that
/// changes something.
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    /// The actor as text: `cli`, `system`, `user:42`, `token:abc123`…
    pub actor: &'a str,
    /// The client's address, when the change came over the network.
    pub remote_addr: Option<&'a str>,
    /// When, in Unix milliseconds (from the injectable clock).
    pub at: i64,
}

/// One row of the audit log.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// Increasing id (the pagination cursor).
    pub id: i64,
    /// When, in Unix milliseconds.
    pub at: i64,
    /// The tenant the change belongs to; `None` for platform-wide changes.
    pub tenant_id: Option<TenantId>,
    /// Who.
    pub actor: String,
    /// What, as `noun.verb` (`tenant.create`, `membership.grant`, …).
    pub action: String,
    /// What it was done to (`tenant:acme`, `user:alice@example.org`, …).
    pub target: String,
    /// From where.
    pub remote_addr: Option<String>,
    /// Details as JSON.
    pub detail: serde_json::Value,
}

/// Append one row; called inside the caller's transaction.
pub(super) async fn record(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    tenant: Option<TenantId>,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "insert into audit_log (at, tenant_id, actor, action, target, remote_addr, detail) \
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(change.at)
    .bind(tenant.map(|t| t.0))
    .bind(change.actor)
    .bind(action)
    .bind(target)
    .bind(change.remote_addr)
    .bind(detail.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

fn entry(row: &sqlx::any::AnyRow) -> Result<AuditEntry> {
    let detail: String = row.try_get(7)?;
    Ok(AuditEntry {
        id: row.try_get(0)?,
        at: row.try_get(1)?,
        tenant_id: row.try_get::<Option<i64>, _>(2)?.map(TenantId),
        actor: row.try_get(3)?,
        action: row.try_get(4)?,
        target: row.try_get(5)?,
        remote_addr: row.try_get(6)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
    })
}

const COLUMNS: &str = "id, at, tenant_id, actor, action, target, remote_addr, detail";

/// Optional filters of an audit listing (exact matches).
#[derive(Clone, Debug, Default)]
pub struct AuditFilter<'a> {
    /// Only this action (`app.deploy`, …).
    pub action: Option<&'a str>,
    /// Only this actor (`token:abc…`, `user:3`, …).
    pub actor: Option<&'a str>,
}

/// An audit search: [`AuditFilter`] and more (exact target, time range).
#[derive(Clone, Debug, Default)]
pub struct AuditSearch<'a> {
    /// Only this action.
    pub action: Option<&'a str>,
    /// Only this actor.
    pub actor: Option<&'a str>,
    /// Only this target (`app:acme/sales`, `user:3`, …).
    pub target: Option<&'a str>,
    /// Only rows at or after this time (Unix milliseconds).
    pub since: Option<i64>,
    /// Only rows before this time (Unix milliseconds).
    pub until: Option<i64>,
}

impl Store {
    /// Record on its own an action that changed nothing else (`data_source.test`: an
    /// admin tried a connection).
    pub async fn record_check(
        &self,
        change: &Change<'_>,
        tenant: Option<TenantId>,
        (action, target): (&str, &str),
        detail: serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        record(&mut tx, change, tenant, action, target, detail).await?;
        self.commit_change(tx).await?;
        Ok(())
    }
}

impl Store {
    /// A tenant's audit entries matching `filter`, newest first, older than the cursor
    /// `before` (an id).
    pub async fn filtered_audit_entries(
        &self,
        tenant: Option<TenantId>,
        filter: &AuditFilter<'_>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        let search = AuditSearch {
            action: filter.action,
            actor: filter.actor,
            ..AuditSearch::default()
        };
        self.search_audit(tenant, &search, before, limit).await
    }

    /// A tenant's (or, with `None`, every) audit entry matching `filter`, newest first,
    /// older than the cursor `before` (an id).
    pub async fn search_audit(
        &self,
        tenant: Option<TenantId>,
        filter: &AuditSearch<'_>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        // Only the filters in use appear in the SQL, so each shape gets a plan that uses
        // the (tenant_id, id) index.
        let mut sql = format!("select {COLUMNS} from audit_log where id < $1");
        let mut n = 1;
        for (condition, used) in [
            ("tenant_id =", tenant.is_some()),
            ("action =", filter.action.is_some()),
            ("actor =", filter.actor.is_some()),
            ("target =", filter.target.is_some()),
            ("at >=", filter.since.is_some()),
            ("at <", filter.until.is_some()),
        ] {
            if used {
                n += 1;
                sql.push_str(&format!(" and {condition} ${n}"));
            }
        }
        sql.push_str(&format!(" order by id desc limit ${}", n + 1));
        let mut query = sqlx::query(&sql).bind(before.unwrap_or(i64::MAX));
        if let Some(tenant) = tenant {
            query = query.bind(tenant.0);
        }
        for text in [filter.action, filter.actor, filter.target]
            .into_iter()
            .flatten()
        {
            query = query.bind(text);
        }
        for time in [filter.since, filter.until].into_iter().flatten() {
            query = query.bind(time);
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(entry).collect()
    }

    /// A tenant's audit entries, newest first, older than the cursor `before` (an id).
    pub async fn audit_entries(
        &self,
        tenant: TenantId,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from audit_log where tenant_id = $1 and id < $2 \
             order by id desc limit $3"
        ))
        .bind(tenant.0)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry).collect()
    }

    /// Every audit entry (platform and all tenants), newest first, for superadmins.
    pub async fn platform_audit_entries(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from audit_log where id < $1 order by id desc limit $2"
        ))
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::TestDatabase;

    #[tokio::test]
    async fn the_audit_log_refuses_updates_and_deletes_on_both_backends() {
        for db in TestDatabase::all().await.expect("test databases") {
            let store = db.store().await.expect("store");
            let change = Change {
                actor: "test",
                remote_addr: None,
                at: 1,
            };
            let mut conn = store.pool.acquire().await.expect("connection");
            record(
                &mut conn,
                &change,
                None,
                "x.y",
                "z",
                serde_json::json!({"a": 1}),
            )
            .await
            .expect("append");
            for statement in [
                "update audit_log set actor = 'forged'",
                "delete from audit_log",
            ] {
                let err = sqlx::query(statement)
                    .execute(&mut *conn)
                    .await
                    .expect_err("refused");
                assert!(
                    err.to_string().contains("append-only"),
                    "{:?}: {err}",
                    db.backend
                );
            }
            drop(conn);
            let entries = store.platform_audit_entries(None, 10).await.expect("read");
            assert_eq!(entries.len(), 1);
            assert_eq!(
                (entries[0].actor.as_str(), entries[0].detail["a"].as_i64()),
                ("test", Some(1))
            );
        }
    }
}
