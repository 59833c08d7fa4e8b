//! Every table's rows, read and written portably for `tessera backup` and `tessera restore`
//! (`crate::backup` owns the files). The tables, their columns and the order that satisfies
//! their foreign keys are read from the database itself, so a migration that adds a table
//! needs no change here.

use anyhow::{Context, bail};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::{Row, ValueRef};

use super::{Backend, Store};

/// Tables never copied: the migration ledger (the schema comes from the binary) and the
/// push locks of running servers.
const SKIPPED: &[&str] = &["_sqlx_migrations", "leases"];

/// Filled by the migrations themselves: emptied before a restore loads the backup's row.
const SEEDED: &[&str] = &["change_counter"];

/// One table and its columns, in the order of the database.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Table {
    /// The table's name.
    pub name: String,
    /// Its columns.
    pub columns: Vec<String>,
}

/// One value. Integers and text as JSON numbers and strings; bytes in hex.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer (timestamps, ids, flags: the schema has no booleans on PostgreSQL).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (components, blobs, assets).
    Bytes {
        /// Hex of the bytes.
        hex: String,
    },
    /// A floating-point number.
    Real {
        /// The value.
        real: f64,
    },
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

impl Store {
    /// The tables a backup holds, each after the tables its foreign keys point to.
    pub async fn backup_tables(&self) -> anyhow::Result<Vec<Table>> {
        let names: Vec<String> = match self.backend {
            Backend::Sqlite => sqlx::query_scalar(
                "select name from sqlite_master where type = 'table' \
                 and name not like 'sqlite_%' order by name",
            ),
            Backend::Postgres => sqlx::query_scalar(
                "select table_name::text from information_schema.tables \
                 where table_schema = current_schema() and table_type = 'BASE TABLE' \
                 order by table_name",
            ),
        }
        .fetch_all(&self.pool)
        .await?;
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| !SKIPPED.contains(&n.as_str()))
            .collect();
        let mut parents = std::collections::HashMap::<String, Vec<String>>::new();
        for name in &names {
            let referenced: Vec<String> = match self.backend {
                Backend::Sqlite => {
                    sqlx::query_scalar("select \"table\" from pragma_foreign_key_list($1)")
                }
                Backend::Postgres => sqlx::query_scalar(
                    "select distinct ccu.table_name::text \
                     from information_schema.table_constraints tc \
                     join information_schema.constraint_column_usage ccu \
                       on ccu.constraint_name = tc.constraint_name \
                      and ccu.constraint_schema = tc.constraint_schema \
                     where tc.constraint_type = 'FOREIGN KEY' \
                       and tc.table_schema = current_schema() and tc.table_name = $1",
                ),
            }
            .bind(name.as_str())
            .fetch_all(&self.pool)
            .await?;
            parents.insert(
                name.clone(),
                referenced.into_iter().filter(|p| p != name).collect(),
            );
        }
        // Parents first (a depth-first topological order; the schema has no cycles).
        let mut ordered: Vec<String> = Vec::new();
        fn visit(
            name: &str,
            parents: &std::collections::HashMap<String, Vec<String>>,
            ordered: &mut Vec<String>,
            path: &mut Vec<String>,
        ) -> anyhow::Result<()> {
            if ordered.iter().any(|o| o == name) || !parents.contains_key(name) {
                return Ok(());
            }
            if path.iter().any(|p| p == name) {
                bail!("foreign keys form a cycle through {name}");
            }
            path.push(name.to_owned());
            for parent in &parents[name] {
                visit(parent, parents, ordered, path)?;
            }
            path.pop();
            ordered.push(name.to_owned());
            Ok(())
        }
        for name in &names {
            visit(name, &parents, &mut ordered, &mut Vec::new())?;
        }
        let mut tables = Vec::with_capacity(ordered.len());
        for name in ordered {
            let columns: Vec<String> = match self.backend {
                Backend::Sqlite => {
                    sqlx::query_scalar("select name from pragma_table_info($1) order by cid")
                }
                Backend::Postgres => sqlx::query_scalar(
                    "select column_name::text from information_schema.columns \
                     where table_schema = current_schema() and table_name = $1 \
                     order by ordinal_position",
                ),
            }
            .bind(name.as_str())
            .fetch_all(&self.pool)
            .await?;
            tables.push(Table { name, columns });
        }
        Ok(tables)
    }

    /// Every row of `tables`, read in one transaction (one consistent snapshot), handed to
    /// `row` one at a time (a table of components never sits in memory whole).
    pub async fn backup_rows(
        &self,
        tables: &[Table],
        mut row: impl FnMut(&Table, Vec<Cell>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("set transaction isolation level repeatable read, read only")
                .execute(&mut *tx)
                .await?;
        }
        for table in tables {
            let columns: Vec<String> = table.columns.iter().map(|c| quote(c)).collect();
            let sql = format!("select {} from {}", columns.join(", "), quote(&table.name));
            let mut rows = sqlx::query(&sql).fetch(&mut *tx);
            while let Some(found) = rows.try_next().await? {
                let mut cells = Vec::with_capacity(found.columns().len());
                for i in 0..found.columns().len() {
                    cells.push(
                        cell(&found, i).with_context(|| {
                            format!("reading {}.{}", table.name, table.columns[i])
                        })?,
                    );
                }
                row(table, cells)?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether a restore may load into this database: no table holds a row, except those
    /// the migrations fill.
    pub async fn backup_target_is_empty(&self, tables: &[Table]) -> anyhow::Result<Option<String>> {
        for table in tables {
            if SEEDED.contains(&table.name.as_str()) {
                continue;
            }
            let sql = format!("select count(*) from {}", quote(&table.name));
            let count: i64 = sqlx::query_scalar(&sql).fetch_one(&self.pool).await?;
            if count > 0 {
                return Ok(Some(table.name.clone()));
            }
        }
        Ok(None)
    }

    /// Loads rows into an empty database, all in one transaction: `next` yields the backup's
    /// rows table by table (in the backup's order), `None` at the end. Identity sequences
    /// (PostgreSQL) continue after the highest restored id.
    pub async fn restore_rows(
        &self,
        mut next: impl FnMut() -> anyhow::Result<Option<(Table, Vec<Cell>)>>,
    ) -> anyhow::Result<u64> {
        let mut tx = self.pool.begin().await?;
        for seeded in SEEDED {
            sqlx::query(&format!("delete from {}", quote(seeded)))
                .execute(&mut *tx)
                .await?;
        }
        let mut restored = 0u64;
        let mut touched: Vec<Table> = Vec::new();
        while let Some((table, cells)) = next()? {
            if cells.len() != table.columns.len() {
                bail!(
                    "a row of {} has {} values for {} columns",
                    table.name,
                    cells.len(),
                    table.columns.len()
                );
            }
            let columns: Vec<String> = table.columns.iter().map(|c| quote(c)).collect();
            // A NULL is written as a literal: a bound NULL would carry a type (text) that
            // PostgreSQL refuses for a bigint or bytea column.
            let mut bound = 0;
            let marks: Vec<String> = cells
                .iter()
                .map(|cell| match cell {
                    Cell::Null => "null".to_owned(),
                    _ => {
                        bound += 1;
                        format!("${bound}")
                    }
                })
                .collect();
            let sql = format!(
                "insert into {} ({}) values ({})",
                quote(&table.name),
                columns.join(", "),
                marks.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for cell in cells {
                query = match cell {
                    Cell::Null => query,
                    Cell::Int(i) => query.bind(i),
                    Cell::Text(t) => query.bind(t),
                    Cell::Bytes { hex } => query.bind(
                        hex::decode(&hex)
                            .with_context(|| format!("bytes of a row of {}", table.name))?,
                    ),
                    Cell::Real { real } => query.bind(real),
                };
            }
            query
                .execute(&mut *tx)
                .await
                .with_context(|| format!("restoring a row of {}", table.name))?;
            restored += 1;
            if !touched.iter().any(|t| t.name == table.name) {
                touched.push(table);
            }
        }
        if self.backend == Backend::Postgres {
            for table in &touched {
                for column in &table.columns {
                    let sequence: Option<String> =
                        sqlx::query_scalar("select pg_get_serial_sequence($1, $2)::text")
                            .bind(quote(&table.name))
                            .bind(column)
                            .fetch_one(&mut *tx)
                            .await?;
                    if let Some(sequence) = sequence {
                        let sql = format!(
                            "select setval($1::regclass, coalesce((select max({}) from {}), 0) + 1, false)::bigint",
                            quote(column),
                            quote(&table.name)
                        );
                        let _: i64 = sqlx::query_scalar(&sql)
                            .bind(sequence)
                            .fetch_one(&mut *tx)
                            .await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(restored)
    }
}

/// Column `i` of `row` as a [`Cell`], whatever the backend's type.
fn cell(row: &sqlx::any::AnyRow, i: usize) -> anyhow::Result<Cell> {
    if row.try_get_raw(i)?.is_null() {
        return Ok(Cell::Null);
    }
    if let Ok(v) = row.try_get::<i64, _>(i) {
        return Ok(Cell::Int(v));
    }
    if let Ok(v) = row.try_get::<i32, _>(i) {
        return Ok(Cell::Int(i64::from(v)));
    }
    if let Ok(v) = row.try_get::<String, _>(i) {
        return Ok(Cell::Text(v));
    }
    if let Ok(v) = row.try_get::<Vec<u8>, _>(i) {
        return Ok(Cell::Bytes {
            hex: hex::encode(v),
        });
    }
    if let Ok(v) = row.try_get::<f64, _>(i) {
        return Ok(Cell::Real { real: v });
    }
    if let Ok(v) = row.try_get::<bool, _>(i) {
        return Ok(Cell::Int(i64::from(v)));
    }
    bail!("a value of a type a backup cannot carry")
}
