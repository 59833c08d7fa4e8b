//! `tessera backup DIR` and `tessera restore DIR`: the database's rows and the files that
//! only this data directory has.
//!
//! A backup folder holds `manifest.json` (format, schema version, tables and row counts),
//! `rows.jsonl` (one line per row: `[table index, cells…]`, tables parents first) and
//! `files/`: the secret key file (sealed settings and provider secrets need it), the git
//! repositories (`git/`) and the tenants' SQLite data sources (`sources/`). Components, data
//! blobs and assets are rows. What a server rebuilds by itself is left out: the compiled-
//! component cache, the local copies of data folders, build directories, push locks.
//!
//! A restore needs the same schema version (restore with the binary that made the backup,
//! then upgrade: docs/operations.md) and an empty database and data directory.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::store::Store;
use crate::store::backup::{Cell, Table};

/// The folder layout's version.
const FORMAT: u32 = 1;

/// Folders of the data directory a backup carries, relative to it.
const DATA_FOLDERS: &[&str] = &["git", "sources"];

/// `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The folder layout's version ([`FORMAT`]).
    pub format: u32,
    /// The newest migration of the database backed up.
    pub schema_version: i64,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The tables, in the order they are restored, with their row counts.
    pub tables: Vec<TableEntry>,
    /// Files copied (paths relative to `files/`).
    pub files: Vec<String>,
}

/// One table of the manifest.
#[derive(Debug, Serialize, Deserialize)]
pub struct TableEntry {
    /// The table and its columns.
    #[serde(flatten)]
    pub table: Table,
    /// How many rows were written.
    pub rows: u64,
}

/// What a backup or a restore did.
#[derive(Debug)]
pub struct Summary {
    /// Rows written or loaded.
    pub rows: u64,
    /// Tables.
    pub tables: usize,
    /// Files copied.
    pub files: usize,
}

fn is_empty_dir(dir: &Path) -> anyhow::Result<bool> {
    Ok(!dir.exists()
        || std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none())
}

/// Copies the tree at `from` into `to` (created). Links are skipped, never followed: a
/// repository's hook is installed again before its next push.
fn copy_tree(from: &Path, to: &Path, base: &Path, copied: &mut Vec<String>) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target, base, copied)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
            copied.push(
                target
                    .strip_prefix(base)
                    .unwrap_or(&target)
                    .display()
                    .to_string(),
            );
        } else {
            tracing::warn!(path = %entry.path().display(), "not a file or a folder: left out");
        }
    }
    Ok(())
}

/// Writes a backup of `store` and `config`'s data directory into `dir`, which must not exist
/// or be empty.
pub async fn backup(
    config: &Config,
    store: &Store,
    dir: &Path,
    now: i64,
) -> anyhow::Result<Summary> {
    if !is_empty_dir(dir)? {
        bail!(
            "{} is not empty; a backup goes into a new folder",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tables = store.backup_tables().await?;
    let mut counts = vec![0u64; tables.len()];
    let rows_path = dir.join("rows.jsonl");
    let mut out = BufWriter::new(
        File::create(&rows_path).with_context(|| format!("creating {}", rows_path.display()))?,
    );
    store
        .backup_rows(&tables, |table, cells| {
            let index = tables
                .iter()
                .position(|t| t.name == table.name)
                .expect("a table of the list");
            counts[index] += 1;
            let mut line = vec![serde_json::json!(index)];
            line.extend(
                cells
                    .into_iter()
                    .map(|c| serde_json::to_value(c).expect("a cell is JSON")),
            );
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
            Ok(())
        })
        .await?;
    out.flush()?;
    out.into_inner()?.sync_all()?;

    let files_dir = dir.join("files");
    std::fs::create_dir_all(&files_dir)?;
    let mut files = Vec::new();
    if config.secret_key.is_none() && config.secret_key_file.is_file() {
        std::fs::copy(&config.secret_key_file, files_dir.join("secret.key"))
            .with_context(|| format!("copying {}", config.secret_key_file.display()))?;
        files.push("secret.key".to_owned());
    }
    for folder in DATA_FOLDERS {
        let source = data_folder(config, folder);
        if source.is_dir() {
            copy_tree(&source, &files_dir.join(folder), &files_dir, &mut files)?;
        }
    }
    let manifest = Manifest {
        format: FORMAT,
        schema_version: store.schema_version().await?,
        backend: format!("{:?}", store.backend()).to_lowercase(),
        created_at: now,
        tables: tables
            .into_iter()
            .zip(counts.iter())
            .map(|(table, rows)| TableEntry { table, rows: *rows })
            .collect(),
        files,
    };
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(Summary {
        rows: counts.iter().sum(),
        tables: manifest.tables.len(),
        files: manifest.files.len(),
    })
}

fn data_folder(config: &Config, folder: &str) -> PathBuf {
    match folder {
        "sources" => config.sources_dir(),
        other => config.data_dir.join(other),
    }
}

/// Loads the backup in `dir` into `store` (an empty database at the backup's schema
/// version) and `config`'s data directory.
pub async fn restore(config: &Config, store: &Store, dir: &Path) -> anyhow::Result<Summary> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(dir.join("manifest.json"))
            .with_context(|| format!("{} is not a backup (no manifest.json)", dir.display()))?,
    )
    .context("reading manifest.json")?;
    if manifest.format != FORMAT {
        bail!("backup format {} is not {FORMAT}", manifest.format);
    }
    let schema = store.schema_version().await?;
    if manifest.schema_version != schema {
        bail!(
            "the backup is at schema version {} and this binary's database at {schema}: restore with the version that made the backup, then upgrade",
            manifest.schema_version
        );
    }
    let tables = store.backup_tables().await?;
    for entry in &manifest.tables {
        if !tables.contains(&entry.table) {
            bail!(
                "the backup's table {} does not match this database's",
                entry.table.name
            );
        }
    }
    if let Some(table) = store.backup_target_is_empty(&tables).await? {
        bail!("the database is not empty ({table} has rows); restore into a new one");
    }
    let files_dir = dir.join("files");
    let key_in_backup = files_dir.join("secret.key");
    if key_in_backup.is_file() {
        if config.secret_key.is_some() {
            bail!("the backup carries its secret key file: unset TESSERA_SECRET_KEY to restore it");
        }
        if config.secret_key_file.exists() {
            bail!(
                "{} exists; the backup's key must replace it (move it away first)",
                config.secret_key_file.display()
            );
        }
    }
    for folder in DATA_FOLDERS {
        let target = data_folder(config, folder);
        if files_dir.join(folder).is_dir() && !is_empty_dir(&target)? {
            bail!(
                "{} is not empty; restore into a new data directory",
                target.display()
            );
        }
    }

    let rows_path = dir.join("rows.jsonl");
    let mut lines = BufReader::new(
        File::open(&rows_path).with_context(|| format!("opening {}", rows_path.display()))?,
    )
    .lines();
    let mut line_number = 0u64;
    let rows = store
        .restore_rows(|| {
            let Some(line) = lines.next() else {
                return Ok(None);
            };
            line_number += 1;
            let mut values: Vec<serde_json::Value> = serde_json::from_str(&line?)
                .with_context(|| format!("rows.jsonl line {line_number}"))?;
            if values.is_empty() {
                bail!("rows.jsonl line {line_number} is empty");
            }
            let index = values.remove(0).as_u64().context("a table index")? as usize;
            let entry = manifest
                .tables
                .get(index)
                .with_context(|| format!("rows.jsonl line {line_number}: no table {index}"))?;
            let cells = values
                .into_iter()
                .map(serde_json::from_value::<Cell>)
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("rows.jsonl line {line_number}"))?;
            Ok(Some((entry.table.clone(), cells)))
        })
        .await?;

    let mut files = Vec::new();
    if key_in_backup.is_file() {
        if let Some(parent) = config.secret_key_file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&key_in_backup, &config.secret_key_file)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            &config.secret_key_file,
            std::fs::Permissions::from_mode(0o600),
        )?;
        files.push("secret.key".to_owned());
    }
    for folder in DATA_FOLDERS {
        let source = files_dir.join(folder);
        if source.is_dir() {
            copy_tree(
                &source,
                &data_folder(config, folder),
                &files_dir,
                &mut files,
            )?;
        }
    }
    Ok(Summary {
        rows,
        tables: manifest.tables.len(),
        files: files.len(),
    })
}
