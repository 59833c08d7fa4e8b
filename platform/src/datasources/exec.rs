//! Running one query on a source's pool: the read-only transaction, the timeout, the
//! viewer's identity, the rows streamed under the caps and decoded into [`Cell`]s.
//!
//! A connection that saw an error or a timeout mid-transaction is closed rather than put
//! back in the pool (its transaction, session variables or running statement go with it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use sqlx::mysql::MySql;
use sqlx::postgres::Postgres;
use sqlx::sqlite::Sqlite;
use sqlx::{Column, Executor, Row, TypeInfo, ValueRef};
use tokio::time::Instant;

use super::arrow::{Cell, Columns};
use super::{Param, Viewer};

/// The column names of `sql` (for a result without rows); none when the database cannot
/// say. A macro, as a function generic over the executor is not `Send` for every lifetime.
macro_rules! described {
    ($conn:expr, $sql:expr) => {
        match $conn.describe($sql).await {
            Ok(d) => d.columns().iter().map(|c| c.name().to_owned()).collect(),
            Err(_) => Vec::new(),
        }
    };
}

/// The pool of one source.
pub enum SourcePool {
    /// PostgreSQL.
    Postgres(sqlx::PgPool),
    /// MySQL or MariaDB.
    Mysql(sqlx::MySqlPool),
    /// A SQLite file, opened read-only.
    Sqlite(sqlx::SqlitePool),
}

/// The bounds of one run.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// When the statement must be over.
    pub until: Instant,
    /// The statement timeout handed to the server, ms.
    pub timeout_ms: u64,
    /// Most rows.
    pub max_rows: u64,
    /// Most bytes (sum of the cells' weights).
    pub max_bytes: u64,
}

/// Why a run failed, before it becomes a [`super::QueryError`] (which adds the source's
/// name and hides details).
#[derive(Debug)]
pub enum RunError {
    /// No connection (connect, TLS, authentication, pool exhausted): details for the log.
    Connect(String),
    /// The connection failed under the statement (an I/O error: the server closed it
    /// while it sat in the pool, or went away): details for the log.
    Lost(String),
    /// Past the timeout.
    Timeout,
    /// Past the row cap.
    Rows,
    /// Past the byte cap.
    Bytes,
    /// The database refused a write (read-only transaction or connection).
    ReadOnly(String),
    /// The database failed the statement; the database's own message.
    Database(String),
    /// A value this build does not return (the sentence says what to do).
    Decode(String),
}

fn classify(error: sqlx::Error) -> RunError {
    match &error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let message = db.message().to_owned();
            match code.as_str() {
                // PostgreSQL: query_canceled (statement_timeout).
                "57014" => RunError::Timeout,
                // PostgreSQL: read_only_sql_transaction; MariaDB/MySQL: ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
                "25006" | "HY000"
                    if message.to_ascii_lowercase().contains("read only")
                        || message.to_ascii_lowercase().contains("read-only") =>
                {
                    RunError::ReadOnly(message)
                }
                "25006" => RunError::ReadOnly(message),
                // MariaDB max_statement_time, MySQL max_execution_time.
                _ if message.contains("max_statement_time")
                    || message.contains("maximum statement execution time") =>
                {
                    RunError::Timeout
                }
                // SQLite: interrupted by the progress handler; write on a read-only file.
                "9" => RunError::Timeout,
                "8" | "1032" => RunError::ReadOnly(message),
                _ if message.contains("readonly database") => RunError::ReadOnly(message),
                _ => RunError::Database(message),
            }
        }
        sqlx::Error::Io(_) => RunError::Lost(error.to_string()),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Configuration(_) => RunError::Connect(error.to_string()),
        other => RunError::Database(other.to_string()),
    }
}

/// Runs `sql` on `pool`; the columns, rows and the bytes counted.
pub async fn run(
    pool: &SourcePool,
    sql: &str,
    params: &[Param],
    viewer: Option<&Viewer>,
    bounds: Bounds,
) -> Result<(Columns, u64), RunError> {
    // Pooled connections are not pinged before use (`pg_release`): one the server closed
    // meanwhile fails with an I/O error and is closed, and the query runs once more on
    // another (read-only, so running it twice changes nothing).
    match pool {
        SourcePool::Postgres(pool) => match postgres(pool, sql, params, viewer, bounds).await {
            Err(RunError::Lost(_)) => postgres(pool, sql, params, viewer, bounds).await,
            done => done,
        },
        SourcePool::Mysql(pool) => match mysql(pool, sql, params, viewer, bounds).await {
            Err(RunError::Lost(_)) => mysql(pool, sql, params, viewer, bounds).await,
            done => done,
        },
        SourcePool::Sqlite(pool) => sqlite(pool, sql, params, bounds).await,
    }
}

/// Runs `body` on a connection of `pool` until `bounds.until` (plus a little for the
/// server's own timeout to answer first); a connection that failed or timed out is
/// closed instead of returned.
macro_rules! on_connection {
    ($pool:expr, $bounds:expr, |$conn:ident| $body:expr) => {{
        let mut pooled = tokio::time::timeout_at($bounds.until, $pool.acquire())
            .await
            .map_err(|_| RunError::Connect("no connection before the deadline".into()))?
            .map_err(|e| RunError::Connect(e.to_string()))?;
        let $conn = &mut *pooled;
        let grace = Duration::from_millis(250);
        let outcome = tokio::time::timeout_at($bounds.until + grace, $body).await;
        match outcome {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => {
                pooled.close_on_drop();
                Err(e)
            }
            Err(_) => {
                pooled.close_on_drop();
                Err(RunError::Timeout)
            }
        }
    }};
}

async fn postgres(
    pool: &sqlx::PgPool,
    sql: &str,
    params: &[Param],
    viewer: Option<&Viewer>,
    bounds: Bounds,
) -> Result<(Columns, u64), RunError> {
    on_connection!(pool, bounds, |conn| async move {
        // One round trip for the transaction and its settings (a simple-query batch; the
        // values are hex literals, which no text can break out of). The rollback is the
        // pool's `after_release` (`pg_release`), off the request's path.
        conn.execute(pg_session(bounds.timeout_ms, viewer).as_str())
            .await
            .map_err(classify)?;
        let mut query = sqlx::query::<Postgres>(sql);
        for p in params {
            query = match p {
                Param::Null => query.bind(None::<String>),
                Param::Bool(b) => query.bind(*b),
                Param::Int(i) => query.bind(*i),
                Param::Float(f) => query.bind(*f),
                Param::Text(t) => query.bind(t.as_str()),
            };
        }
        let collected = {
            let stream = query.fetch(&mut *conn);
            collect(stream, bounds, pg_row).await?
        };
        let collected = match collected {
            Some(done) => done,
            None => (Columns::new(described!(&mut *conn, sql)), 0),
        };
        Ok(collected)
    })
}

/// The batch that opens a query's transaction on PostgreSQL: read only, its statement
/// timeout and the viewer's identity as transaction-local settings.
fn pg_session(timeout_ms: u64, viewer: Option<&Viewer>) -> String {
    let (user, email, groups) = viewer_values(viewer);
    format!(
        "begin transaction isolation level repeatable read read only; \
         select set_config('statement_timeout', '{timeout_ms}', true), \
         set_config('tessera.user_id', {}, true), set_config('tessera.email', {}, true), \
         set_config('tessera.groups', {}, true)",
        pg_text(&user),
        pg_text(&email),
        pg_text(&groups)
    )
}

/// `value` as a PostgreSQL text expression made of hex digits only.
fn pg_text(value: &str) -> String {
    format!(
        "convert_from(decode('{}', 'hex'), 'UTF8')",
        hex::encode(value)
    )
}

/// What a PostgreSQL connection runs when it goes back to the pool: the end of the
/// query's transaction (and so of its settings) and of the session-level advisory locks
/// its query took (`pg_advisory_lock` outlives a rollback), so the next query on it
/// (another app's, another viewer's) never finds them held. A failure closes the
/// connection.
pub fn pg_release(
    conn: &mut sqlx::PgConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        conn.execute("rollback; select pg_advisory_unlock_all()")
            .await?;
        Ok(true)
    })
}

/// What a MySQL/MariaDB connection runs when it goes back to the pool: the end of the
/// query's transaction, the viewer's identity unset and the named locks its query took
/// released (`GET_LOCK` outlives a rollback; `RELEASE_ALL_LOCKS`: MariaDB 10.5, MySQL
/// 5.7), so the next query on it (another app's, another viewer's) never sees them. A
/// failure closes the connection (on an older server, every time: slower, still sound).
pub fn mysql_release(
    conn: &mut sqlx::MySqlConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        conn.execute(
            "rollback; set @tessera_user_id = null, @tessera_email = null, @tessera_groups = null; \
             do release_all_locks()",
        )
        .await?;
        Ok(true)
    })
}

async fn mysql(
    pool: &sqlx::MySqlPool,
    sql: &str,
    params: &[Param],
    viewer: Option<&Viewer>,
    bounds: Bounds,
) -> Result<(Columns, u64), RunError> {
    on_connection!(pool, bounds, |conn| async move {
        // One round trip for the identity, the timeout and the transaction (a batch; the
        // values are hex literals). MariaDB counts seconds in max_statement_time; MySQL
        // only knows max_execution_time (ms), so a MySQL server gets the batch again with
        // that. The rollback and the reset of the identity are the pool's `after_release`
        // (`mysql_release`), off the request's path.
        let seconds = format!("{:.3}", bounds.timeout_ms as f64 / 1000.0);
        let mariadb = mysql_session(viewer, "max_statement_time", &seconds);
        if let Err(error) = conn.execute(mariadb.as_str()).await {
            if !error.to_string().contains("max_statement_time") {
                return Err(classify(error));
            }
            let mysql = mysql_session(viewer, "max_execution_time", &bounds.timeout_ms.to_string());
            conn.execute(mysql.as_str()).await.map_err(classify)?;
        }
        let mut query = sqlx::query::<MySql>(sql);
        for p in params {
            query = match p {
                Param::Null => query.bind(None::<String>),
                Param::Bool(b) => query.bind(*b),
                Param::Int(i) => query.bind(*i),
                Param::Float(f) => query.bind(*f),
                Param::Text(t) => query.bind(t.as_str()),
            };
        }
        let collected = {
            let stream = query.fetch(&mut *conn);
            collect(stream, bounds, mysql_row).await?
        };
        Ok(match collected {
            Some(done) => done,
            None => (Columns::new(described!(&mut *conn, sql)), 0),
        })
    })
}

/// The batch that opens a query's transaction on MySQL/MariaDB: the viewer's identity as
/// user variables, the statement timeout `timeout_variable = timeout`, read only.
fn mysql_session(viewer: Option<&Viewer>, timeout_variable: &str, timeout: &str) -> String {
    let (user, email, groups) = viewer_values(viewer);
    // In the charset's default collation (usually the tables'), not the connection's: a
    // user variable compared with a column must not mix two collations.
    let text = |value: &str| format!("convert(X'{}' using utf8mb4)", hex::encode(value));
    format!(
        "set @tessera_user_id = {}, @tessera_email = {}, @tessera_groups = {}, \
         {timeout_variable} = {timeout}; start transaction read only",
        text(&user),
        text(&email),
        text(&groups)
    )
}

async fn sqlite(
    pool: &sqlx::SqlitePool,
    sql: &str,
    params: &[Param],
    bounds: Bounds,
) -> Result<(Columns, u64), RunError> {
    on_connection!(pool, bounds, |conn| async move {
        // SQLite has no statement timeout: the progress handler stops the statement at the
        // deadline, or as soon as the reader stopped at a cap.
        let stop = Arc::new(AtomicBool::new(false));
        let until = std::time::Instant::now()
            + bounds
                .until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(bounds.timeout_ms));
        {
            let stop = stop.clone();
            let mut handle = conn
                .lock_handle()
                .await
                .map_err(|e| RunError::Connect(e.to_string()))?;
            handle.set_progress_handler(1000, move || {
                !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until
            });
        }
        let mut query = sqlx::query::<Sqlite>(sql);
        for p in params {
            query = match p {
                Param::Null => query.bind(None::<String>),
                Param::Bool(b) => query.bind(*b),
                Param::Int(i) => query.bind(*i),
                Param::Float(f) => query.bind(*f),
                Param::Text(t) => query.bind(t.as_str()),
            };
        }
        let collected = {
            let stream = query.fetch(&mut *conn);
            let collected = collect(stream, bounds, sqlite_row).await;
            stop.store(true, Ordering::Relaxed);
            collected?
        };
        let collected = match collected {
            Some(done) => done,
            None => (Columns::new(described!(&mut *conn, sql)), 0),
        };
        if let Ok(mut handle) = conn.lock_handle().await {
            handle.remove_progress_handler();
        }
        Ok(collected)
    })
}

/// The viewer as the three strings the sources see; empty without a viewer.
fn viewer_values(viewer: Option<&Viewer>) -> (String, String, String) {
    match viewer {
        Some(v) => (
            v.user_id.0.to_string(),
            v.email.clone(),
            serde_json::to_string(&v.groups).unwrap_or_else(|_| "[]".into()),
        ),
        None => (String::new(), String::new(), String::new()),
    }
}

/// Reads rows from `stream` until it ends or a cap is passed (then it stops fetching).
/// `None` when there were no rows (the caller finds the column names another way).
async fn collect<R, S>(
    mut stream: S,
    bounds: Bounds,
    decode: fn(&R) -> Result<Vec<Cell>, RunError>,
) -> Result<Option<(Columns, u64)>, RunError>
where
    R: Row,
    S: futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let mut columns: Option<Columns> = None;
    let mut rows = 0u64;
    let mut bytes = 0u64;
    while let Some(row) = stream.next().await {
        let row = row.map_err(classify)?;
        rows += 1;
        if rows > bounds.max_rows {
            return Err(RunError::Rows);
        }
        let cells = decode(&row)?;
        bytes += cells.iter().map(|c| c.weight() as u64).sum::<u64>();
        if bytes > bounds.max_bytes {
            return Err(RunError::Bytes);
        }
        columns
            .get_or_insert_with(|| {
                Columns::new(row.columns().iter().map(|c| c.name().to_owned()).collect())
            })
            .push(cells);
    }
    Ok(columns.map(|c| (c, bytes)))
}

fn decode_error(name: &str, ty: &str) -> RunError {
    RunError::Decode(format!(
        "the column `{name}` has the type {ty}, which data sources do not return; cast it \
         to text, a number or a timestamp in the query"
    ))
}

fn get<'r, T, R>(row: &'r R, i: usize) -> Result<T, RunError>
where
    R: Row,
    T: sqlx::Decode<'r, R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    row.try_get_unchecked::<T, _>(i)
        .map_err(|e| RunError::Decode(format!("a value could not be read: {e}")))
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// 2000-01-01 (PostgreSQL's epoch) in days and microseconds since 1970-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

fn pg_row(row: &sqlx::postgres::PgRow) -> Result<Vec<Cell>, RunError> {
    let mut cells = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(classify)?;
        if raw.is_null() {
            cells.push(Cell::Null);
            continue;
        }
        let ty = column.type_info().name().to_owned();
        let bytes = || -> Result<&[u8], RunError> {
            raw.as_bytes()
                .map_err(|e| RunError::Decode(format!("a value could not be read: {e}")))
        };
        cells.push(match ty.as_str() {
            "BOOL" => Cell::Bool(get(row, i)?),
            "INT2" => Cell::Int(get::<i16, _>(row, i)?.into()),
            "INT4" => Cell::Int(get::<i32, _>(row, i)?.into()),
            "INT8" => Cell::Int(get(row, i)?),
            "OID" => Cell::Int(u32::from_be_bytes(fixed(bytes()?)?).into()),
            "FLOAT4" => Cell::Float(get::<f32, _>(row, i)?.into()),
            "FLOAT8" => Cell::Float(get(row, i)?),
            "NUMERIC" => Cell::Float(pg_numeric(bytes()?)?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "CITEXT" | "UNKNOWN" | "JSON"
            | "XML" => Cell::Text(get(row, i)?),
            "JSONB" => Cell::Text(
                String::from_utf8_lossy(bytes()?.get(1..).unwrap_or_default()).into_owned(),
            ),
            "UUID" => {
                let b: [u8; 16] = fixed(bytes()?)?;
                let h = hex::encode(b);
                Cell::Text(format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                ))
            }
            "BYTEA" => Cell::Bytes(get(row, i)?),
            "DATE" => {
                let days = i64::from(i32::from_be_bytes(fixed(bytes()?)?)) + PG_EPOCH_DAYS;
                Cell::Date(i32::try_from(days).unwrap_or(i32::MAX))
            }
            "TIMESTAMP" | "TIMESTAMPTZ" => {
                let micros = i64::from_be_bytes(fixed(bytes()?)?).saturating_add(PG_EPOCH_MICROS);
                if ty == "TIMESTAMP" {
                    Cell::Timestamp(micros)
                } else {
                    Cell::TimestampUtc(micros)
                }
            }
            other => return Err(decode_error(column.name(), other)),
        });
    }
    Ok(cells)
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], RunError> {
    bytes
        .try_into()
        .map_err(|_| RunError::Decode("a value has an unexpected size".into()))
}

/// PostgreSQL's binary NUMERIC as a float: base-10000 digits with a weight.
fn pg_numeric(b: &[u8]) -> Result<f64, RunError> {
    let short = || RunError::Decode("a NUMERIC value is truncated".into());
    let word = |at: usize| -> Result<i16, RunError> {
        Ok(i16::from_be_bytes(
            b.get(at..at + 2)
                .ok_or_else(short)?
                .try_into()
                .map_err(|_| short())?,
        ))
    };
    let ndigits = usize::try_from(word(0)?).map_err(|_| short())?;
    let weight = i32::from(word(2)?);
    let sign = word(4)? as u16;
    match sign {
        0xC000 => return Ok(f64::NAN),
        0xD000 => return Ok(f64::INFINITY),
        0xF000 => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let mut value = 0f64;
    for k in 0..ndigits {
        let digit = f64::from(word(8 + 2 * k)?);
        let exponent = weight - i32::try_from(k).map_err(|_| short())?;
        value += digit * 10_000f64.powi(exponent);
    }
    Ok(if sign == 0x4000 { -value } else { value })
}

fn mysql_row(row: &sqlx::mysql::MySqlRow) -> Result<Vec<Cell>, RunError> {
    let mut cells = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(classify)?;
        if raw.is_null() {
            cells.push(Cell::Null);
            continue;
        }
        let ty = column.type_info().name().to_owned();
        let bytes = || get::<&[u8], _>(row, i);
        cells.push(match ty.as_str() {
            "BOOLEAN" => Cell::Bool(get::<i64, _>(row, i)? != 0),
            t if t.ends_with("UNSIGNED") => {
                let v: u64 = get(row, i)?;
                match i64::try_from(v) {
                    Ok(v) => Cell::Int(v),
                    Err(_) => Cell::Float(v as f64),
                }
            }
            "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "YEAR" => {
                Cell::Int(get(row, i)?)
            }
            "FLOAT" => Cell::Float(get::<f32, _>(row, i)?.into()),
            "DOUBLE" => Cell::Float(get(row, i)?),
            "DECIMAL" => {
                let text = String::from_utf8_lossy(bytes()?).into_owned();
                Cell::Float(text.trim().parse().map_err(|_| {
                    RunError::Decode(format!("the DECIMAL {text:?} could not be read"))
                })?)
            }
            "DATE" | "DATETIME" | "TIMESTAMP" => mysql_datetime(bytes()?, ty == "DATE")?,
            "NULL" => Cell::Null,
            t if t.contains("BLOB") || t.contains("BINARY") || t == "BIT" || t == "GEOMETRY" => {
                Cell::Bytes(bytes()?.to_vec())
            }
            "TIME" => return Err(decode_error(column.name(), "TIME")),
            _ => Cell::Text(String::from_utf8_lossy(bytes()?).into_owned()),
        });
    }
    Ok(cells)
}

/// MySQL's binary DATE/DATETIME: a length byte, then year (2 bytes LE), month, day, and
/// optionally hour, minute, second and microseconds (4 bytes LE). The zero date is NULL.
fn mysql_datetime(b: &[u8], date_only: bool) -> Result<Cell, RunError> {
    let len = usize::from(*b.first().unwrap_or(&0));
    let b = b.get(1..1 + len).unwrap_or_default();
    if b.len() < 4 {
        return Ok(Cell::Null);
    }
    let year = i64::from(u16::from_le_bytes([b[0], b[1]]));
    let (month, day) = (i64::from(b[2]), i64::from(b[3]));
    if year == 0 && month == 0 && day == 0 {
        return Ok(Cell::Null);
    }
    let days = days_from_civil(year, month, day);
    if date_only {
        return Ok(Cell::Date(i32::try_from(days).unwrap_or(i32::MAX)));
    }
    let part = |k: usize| i64::from(*b.get(k).unwrap_or(&0));
    let micros = match b.get(7..11) {
        Some(m) => i64::from(u32::from_le_bytes([m[0], m[1], m[2], m[3]])),
        None => 0,
    };
    let seconds = days * 86_400 + part(4) * 3600 + part(5) * 60 + part(6);
    Ok(Cell::Timestamp(seconds * 1_000_000 + micros))
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Result<Vec<Cell>, RunError> {
    let mut cells = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(classify)?;
        if raw.is_null() {
            cells.push(Cell::Null);
            continue;
        }
        let storage = raw.type_info().name().to_owned();
        let declared = column.type_info().name().to_ascii_uppercase();
        cells.push(match storage.as_str() {
            "INTEGER" | "INT8" | "BIGINT" | "INT" | "NUMERIC" => {
                let v: i64 = get(row, i)?;
                if declared == "BOOLEAN" {
                    Cell::Bool(v != 0)
                } else {
                    Cell::Int(v)
                }
            }
            "REAL" | "FLOAT" | "DOUBLE" => Cell::Float(get(row, i)?),
            "BLOB" => Cell::Bytes(get(row, i)?),
            _ => Cell::Text(get(row, i)?),
        });
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), PG_EPOCH_DAYS);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn numerics_decode() {
        // 12345.678: ndigits 3, weight 1, sign +, dscale 3, digits 1 2345 6780.
        let b: Vec<u8> = [3i16, 1, 0, 3, 1, 2345, 6780]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert!((pg_numeric(&b).expect("decodes") - 12_345.678).abs() < 1e-9);
        let mut negative = b.clone();
        negative[4..6].copy_from_slice(&0x4000u16.to_be_bytes());
        assert!((pg_numeric(&negative).expect("decodes") + 12_345.678).abs() < 1e-9);
    }
}
