//! SQL on the tenant's data sources: [`query`] runs one read-only statement on a source an
//! administrator registered for the tenant and granted to this app, and answers the raw
//! Arrow IPC stream bytes (one column per result column).
//!
//! The app names the source; it never sees a host, a user or a password. Bind values
//! with [`Param`]s (`$1`, `$2`, … or `?`, as the source's dialect writes them) rather than
//! formatting them into the SQL. The platform runs the statement in a read-only
//! transaction under the source's statement timeout, caps on rows and bytes, and the
//! callback's deadline.
//!
//! Natively (`cargo test` of an app) there is no platform to ask: [`query`] answers
//! [`QueryError::Unavailable`] saying so, and tests should exercise the code around it.

use std::fmt;

/// A bound parameter of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Boolean(bool),
    /// A 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Float(f64),
    /// A string.
    Text(String),
}

impl From<bool> for Param {
    fn from(value: bool) -> Self {
        Param::Boolean(value)
    }
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Param::Integer(value)
    }
}

impl From<i32> for Param {
    fn from(value: i32) -> Self {
        Param::Integer(value.into())
    }
}

impl From<f64> for Param {
    fn from(value: f64) -> Self {
        Param::Float(value)
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Param::Text(value.to_owned())
    }
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Param::Text(value)
    }
}

impl<T: Into<Param>> From<Option<T>> for Param {
    fn from(value: Option<T>) -> Self {
        value.map_or(Param::Null, Into::into)
    }
}

/// Why a query gave no answer; mirrors the WIT world's `query-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// No source of that name is granted to this app (or it does not exist).
    NotGranted(String),
    /// Refused before it ran: not one read-only statement, or an argument over its limit.
    Refused(String),
    /// A timeout or a row or byte cap ended it.
    Limit(String),
    /// The database reported an error (syntax, missing table, permission).
    Failed(String),
    /// The source cannot be reached, or data sources are not available here.
    Unavailable(String),
}

impl QueryError {
    /// The message, whichever the kind.
    pub fn message(&self) -> &str {
        match self {
            QueryError::NotGranted(m)
            | QueryError::Refused(m)
            | QueryError::Limit(m)
            | QueryError::Failed(m)
            | QueryError::Unavailable(m) => m,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            QueryError::NotGranted(_) => "not granted",
            QueryError::Refused(_) => "refused",
            QueryError::Limit(_) => "over a limit",
            QueryError::Failed(_) => "failed",
            QueryError::Unavailable(_) => "unavailable",
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query {}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for QueryError {}

/// What [`query`] answers outside Tessera.
pub const NATIVE_UNAVAILABLE: &str =
    "data sources are only available inside Tessera (this is a native build)";

/// Runs `sql` with `params` bound on the data source `source` and returns the answer as
/// an Arrow IPC stream.
///
/// ```no_run
/// use sdk::sql::{Param, query};
///
/// # fn main() -> Result<(), sdk::sql::QueryError> {
/// let arrow = query(
///     "warehouse",
///     "select region, sum(amount) from sales where year = $1 group by region",
///     &[Param::from(2026)],
/// )?;
/// # let _ = arrow;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// See [`QueryError`]; natively always [`QueryError::Unavailable`].
pub fn query(source: &str, sql: &str, params: &[Param]) -> Result<Vec<u8>, QueryError> {
    #[cfg(target_arch = "wasm32")]
    return crate::export::query(source, sql, params);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (source, sql, params);
        Err(QueryError::Unavailable(NATIVE_UNAVAILABLE.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natively_a_query_says_where_it_works() {
        let error = query("main", "select 1", &[Param::from(1)]).expect_err("native");
        assert_eq!(
            error,
            QueryError::Unavailable(NATIVE_UNAVAILABLE.to_owned())
        );
        assert!(error.to_string().contains("only available inside Tessera"));
        assert_eq!(Param::from(None::<i64>), Param::Null);
        assert_eq!(Param::from("a"), Param::Text("a".into()));
    }
}
