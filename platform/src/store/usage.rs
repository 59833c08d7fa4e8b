//! Usage of apps per minute (`app_usage`, migration 0035): what each replica's
//! [`crate::usage::Usage`] counted, added to the stored row (so replicas sharing the
//! database sum up), read back for one app's charts, pruned after the retention. The
//! counting and the arithmetic on histograms are [`crate::usage`]'s; this module only
//! stores.

use sqlx::Row;

use super::{Result, Store};
use crate::ids::{AppId, TenantId};
use crate::usage::{BUCKETS, Counts};

/// The histogram's columns, in bucket order.
const BUCKET_COLUMNS: [&str; BUCKETS] = [
    "bucket_00",
    "bucket_01",
    "bucket_02",
    "bucket_03",
    "bucket_04",
    "bucket_05",
    "bucket_06",
    "bucket_07",
    "bucket_08",
    "bucket_09",
    "bucket_10",
    "bucket_11",
    "bucket_12",
    "bucket_13",
    "bucket_14",
    "bucket_15",
];

/// The counter columns before the buckets, in [`Counts`]' order.
const COUNTER_COLUMNS: [&str; 6] = [
    "callbacks",
    "errors",
    "limit_hits",
    "cache_hits",
    "cache_misses",
    "latency_sum_us",
];

/// One stored minute of one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    /// The tenant.
    pub tenant: TenantId,
    /// The app.
    pub app: AppId,
    /// The minute's start, Unix ms.
    pub minute: i64,
    /// What was counted in it.
    pub counts: Counts,
}

fn columns() -> impl Iterator<Item = &'static str> {
    COUNTER_COLUMNS.iter().chain(BUCKET_COLUMNS.iter()).copied()
}

fn values(counts: &Counts) -> impl Iterator<Item = i64> + '_ {
    [
        counts.callbacks,
        counts.errors,
        counts.limit_hits,
        counts.cache_hits,
        counts.cache_misses,
        counts.latency_sum_us,
    ]
    .into_iter()
    .chain(counts.buckets.iter().copied())
    .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// The upsert that adds one minute's counts to the stored row: only for an app that
/// still exists in its tenant (the flush may race the app's deletion).
fn upsert_sql() -> String {
    let names: Vec<&str> = columns().collect();
    let params: Vec<String> = (0..names.len()).map(|i| format!("${}", i + 4)).collect();
    let adds: Vec<String> = names
        .iter()
        .map(|c| format!("{c} = app_usage.{c} + excluded.{c}"))
        .collect();
    // `insert … select … where …`: the `where` also tells SQLite's parser that the
    // `on conflict` belongs to the insert.
    format!(
        "insert into app_usage (tenant_id, app_id, minute, {}) \
         select $1, $2, $3, {} where exists \
         (select 1 from apps where id = $2 and tenant_id = $1) \
         on conflict (app_id, minute) do update set {}",
        names.join(", "),
        params.join(", "),
        adds.join(", ")
    )
}

impl Store {
    /// Adds each row's counts to the stored minute of its app (one transaction; rows of
    /// apps deleted meanwhile are skipped), then removes every minute before
    /// `prune_before` (Unix ms). Returns the rows written and the rows pruned.
    pub async fn add_app_usage(&self, rows: &[UsageRow], prune_before: i64) -> Result<(u64, u64)> {
        let sql = upsert_sql();
        let mut tx = self.begin().await?;
        let mut written = 0;
        for row in rows {
            let mut query = sqlx::query(&sql)
                .bind(row.tenant.0)
                .bind(row.app.0)
                .bind(row.minute);
            for value in values(&row.counts) {
                query = query.bind(value);
            }
            written += query.execute(&mut *tx).await?.rows_affected();
        }
        let pruned = sqlx::query("delete from app_usage where minute < $1")
            .bind(prune_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok((written, pruned))
    }

    /// The stored minutes of `app` from `since` (Unix ms, inclusive), oldest first.
    pub async fn app_usage(
        &self,
        tenant: TenantId,
        app: AppId,
        since: i64,
    ) -> Result<Vec<(i64, Counts)>> {
        let names: Vec<&str> = columns().collect();
        let rows = sqlx::query(&format!(
            "select minute, {} from app_usage \
             where tenant_id = $1 and app_id = $2 and minute >= $3 order by minute",
            names.join(", ")
        ))
        .bind(tenant.0)
        .bind(app.0)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let get = |i: usize| -> Result<u64> {
                    Ok(u64::try_from(row.try_get::<i64, _>(i)?).unwrap_or(0))
                };
                let mut counts = Counts {
                    callbacks: get(1)?,
                    errors: get(2)?,
                    limit_hits: get(3)?,
                    cache_hits: get(4)?,
                    cache_misses: get(5)?,
                    latency_sum_us: get(6)?,
                    ..Counts::default()
                };
                for (i, bucket) in counts.buckets.iter_mut().enumerate() {
                    *bucket = get(7 + i)?;
                }
                Ok((row.try_get::<i64, _>(0)?, counts))
            })
            .collect()
    }
}
