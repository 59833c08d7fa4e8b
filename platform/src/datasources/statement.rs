//! What a query's text may be before it reaches a database: one statement that reads.
//!
//! This is a first gate, not the protection: the read-only transaction (PostgreSQL,
//! MariaDB) or the read-only connection (SQLite) is what keeps data unchanged. The gate
//! gives a clear `refused` early and closes what a read-only transaction does not: a
//! second statement (SQLite runs every statement of a text), `ATTACH` and `PRAGMA` in
//! SQLite, `SELECT … INTO OUTFILE` in MariaDB (a file written on the database server).
//!
//! The scan knows quotes (`'…'`, `"…"`, `` `…` ``, `[…]`) and comments (`--`, `#` for
//! MySQL, `/* */`); a `;` inside them is text. PostgreSQL dollar quotes are not parsed, so
//! a `;` inside one is refused: the safe side of the doubt.

use super::Kind;

/// Longest query text accepted.
pub const MAX_SQL_BYTES: usize = 64 << 10;

/// The words a statement may start with.
const READING: &[&str] = &["select", "with", "values", "table"];

/// Checks `sql` for `kind`; the error is a sentence for the app's authors.
pub fn check(kind: Kind, sql: &str) -> Result<(), String> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(format!(
            "the query is {} bytes; at most {MAX_SQL_BYTES} are allowed",
            sql.len()
        ));
    }
    if sql.contains('\0') {
        return Err("the query contains a NUL character".into());
    }
    let words = scan(kind, sql)?;
    let Some(first) = words.first() else {
        return Err("the query is empty".into());
    };
    if !READING.contains(&first.as_str()) {
        return Err(format!(
            "only a query that reads (SELECT, WITH, VALUES) may run on a data source, not {}",
            first.to_uppercase()
        ));
    }
    if kind == Kind::Mysql && words.iter().any(|w| w == "outfile" || w == "dumpfile") {
        return Err("SELECT … INTO OUTFILE/DUMPFILE writes a file and is refused".into());
    }
    // User variables outlive the statement on the pooled connection: one set by a query
    // would be read by the next query of another app or viewer.
    if kind == Kind::Mysql && words.iter().any(|w| w == "into" || w == ":=") {
        return Err(
            "assigning user variables (SELECT … INTO, :=) is refused in data-source queries".into(),
        );
    }
    Ok(())
}

/// The lowercase words outside quotes and comments; an error for a second statement or an
/// unterminated quote or comment.
fn scan(kind: Kind, sql: &str) -> Result<Vec<String>, String> {
    let bytes = sql.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    let mut ended = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if ended {
            return Err("only one statement may run per query (found text after `;`)".into());
        }
        match c {
            b';' => {
                ended = true;
                i += 1;
            }
            b'\'' | b'"' | b'`' | b'[' => {
                let close = if c == b'[' { b']' } else { c };
                i = skip_quoted(bytes, i + 1, close, kind)?;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_line(bytes, i),
            b'#' if kind == Kind::Mysql => i = skip_line(bytes, i),
            // MySQL runs the text of `/*! … */` and `/*M! … */`: not a comment to skip.
            b'/' if kind == Kind::Mysql
                && (sql[i..].starts_with("/*!") || sql[i..].starts_with("/*M!")) =>
            {
                return Err("executable comments (/*! … */) are refused".into());
            }
            b':' if kind == Kind::Mysql && bytes.get(i + 1) == Some(&b'=') => {
                words.push(":=".into());
                i += 2;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = sql[i + 2..]
                    .find("*/")
                    .ok_or("the query has an unterminated /* comment")?;
                i = i + 2 + end + 2;
            }
            b'$' if kind == Kind::Postgres
                && bytes.get(i + 1).is_some_and(|n| !n.is_ascii_digit()) =>
            {
                return Err(
                    "dollar-quoted strings are not accepted in data-source queries; use '…'".into(),
                );
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                words.push(sql[start..i].to_ascii_lowercase());
            }
            _ => i += 1,
        }
    }
    Ok(words)
}

fn skip_line(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i] != b'\n' {
        i += 1;
    }
    i
}

/// The index after the quote closing at `close`; a doubled quote is an escaped one, and
/// MySQL also escapes with a backslash in strings.
fn skip_quoted(bytes: &[u8], mut i: usize, close: u8, kind: Kind) -> Result<usize, String> {
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\\' && kind == Kind::Mysql && (close == b'\'' || close == b'"') {
            i += 2;
            continue;
        }
        if c == close {
            if close != b']' && bytes.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return Ok(i + 1);
        }
        i += 1;
    }
    Err("the query has an unterminated quote".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reading_statement_passes() {
        for sql in [
            "select 1",
            "  SELECT a, 'x;y' from t where b = $1;  ",
            "with c as (select 1) select * from c",
            "select \"a;b\" from t -- trailing; comment",
            "select /* ; */ 1",
            "values (1), (2)",
        ] {
            assert!(check(Kind::Postgres, sql).is_ok(), "{sql}");
        }
        assert!(check(Kind::Mysql, "select 'it\\'s;' # c;\n").is_ok());
    }

    #[test]
    fn writes_second_statements_and_tricks_are_refused() {
        for (kind, sql) in [
            (Kind::Postgres, "insert into t values (1)"),
            (Kind::Postgres, "update t set a = 1"),
            (Kind::Postgres, "drop table t"),
            (Kind::Postgres, "select 1; delete from t"),
            (Kind::Postgres, "select 1;;"),
            (Kind::Postgres, "select $$;$$"),
            (Kind::Postgres, "select 'unterminated"),
            (Kind::Postgres, "/* only a comment */"),
            (Kind::Postgres, ""),
            (Kind::Sqlite, "attach database '/etc/passwd' as x"),
            (Kind::Sqlite, "pragma query_only = off"),
            (Kind::Sqlite, "select 1; attach 'x' as y"),
            (Kind::Mysql, "select * from t into outfile '/tmp/x'"),
            (Kind::Mysql, "select 1 into dumpfile '/tmp/x'"),
            (Kind::Mysql, "select 'a\\';' ; delete from t"),
            (Kind::Mysql, "select @leak := 'x'"),
            (Kind::Mysql, "select 1 into @leak"),
            (Kind::Mysql, "select 1 /*! into @leak */"),
            (Kind::Mysql, "select 1 /*M!100000 into @leak */"),
        ] {
            assert!(check(kind, sql).is_err(), "{sql}");
        }
    }
}
