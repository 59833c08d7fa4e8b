//! A source's connection settings: what an admin may give (fields or one URL), how they
//! are checked, sealed for the database, and shown back without the password.
//!
//! Checks that keep a tenant inside its own data:
//! - a host is a name or an address, never a socket path (`/var/run/postgresql`), and,
//!   unless the operator sets `[data_sources] allow_private_hosts`, never resolves to a
//!   loopback, private, link-local or unspecified address (where the platform's own
//!   database and other internal services live);
//! - a URL carries no query parameter but `sslmode`/`ssl-mode` (no `host=` socket, no
//!   `options=` that would change the session);
//! - a SQLite file lies in the tenant's own folder `{sqlite_dir}/{tenant}/`, checked on the
//!   canonical path (no `..`, no symlink leading out) at registration and at every
//!   connection.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Kind;
use crate::ids::TenantId;
use crate::secretbox::SecretBox;

/// How the connection is encrypted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it.
    #[default]
    Prefer,
    /// TLS, without checking the certificate.
    Require,
    /// TLS with a certificate valid for the host.
    VerifyFull,
}

impl TlsMode {
    fn parse(raw: &str) -> Result<Self, String> {
        Ok(match raw.to_ascii_lowercase().as_str() {
            "disable" | "disabled" => TlsMode::Disable,
            "prefer" | "preferred" => TlsMode::Prefer,
            "require" | "required" => TlsMode::Require,
            "verify-full" | "verify_identity" | "verify-identity" => TlsMode::VerifyFull,
            other => {
                return Err(format!(
                    "unknown TLS mode {other:?}: use disable, prefer, require or verify-full"
                ));
            }
        })
    }

    /// Its spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// The connection settings of a source, as sealed. `Debug` hides the password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Host name or address (PostgreSQL, MySQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port (default 5432 or 3306).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// TLS.
    #[serde(default)]
    pub tls: TlsMode,
    /// SQLite: the file, relative to the tenant's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .field("path", &self.path)
            .finish()
    }
}

/// What an admin gives: a URL, or the fields, or a URL with fields overriding it.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    /// `postgres://user:password@host:port/db?sslmode=…`, `mysql://…` (also `mariadb://`),
    /// or `sqlite:relative/file.db`.
    #[serde(default)]
    pub url: Option<String>,
    /// Host name or address.
    #[serde(default)]
    pub host: Option<String>,
    /// Port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Database name.
    #[serde(default)]
    pub database: Option<String>,
    /// User name.
    #[serde(default)]
    pub user: Option<String>,
    /// Password (write-only: never shown again).
    #[serde(default)]
    pub password: Option<String>,
    /// `disable`, `prefer` (default), `require` or `verify-full`.
    #[serde(default)]
    pub tls: Option<String>,
    /// SQLite: the file, relative to the tenant's folder under the sources directory.
    #[serde(default)]
    pub path: Option<String>,
}

impl std::fmt::Debug for ConnectionInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionInput(..)")
    }
}

fn text_field(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(format!(
            "the {what} must be 1 to {max} bytes without control characters"
        ));
    }
    Ok(())
}

fn percent_decoded(raw: &str) -> Result<String, String> {
    url::form_urlencoded::parse(format!("x={}", raw.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| "the URL cannot be decoded".to_owned())
}

/// The kind named by a URL's scheme.
pub fn kind_of_url(url: &str) -> Option<Kind> {
    let scheme = url.split_once(':')?.0.to_ascii_lowercase();
    match scheme.as_str() {
        "postgres" | "postgresql" => Some(Kind::Postgres),
        "mysql" | "mariadb" => Some(Kind::Mysql),
        "sqlite" => Some(Kind::Sqlite),
        _ => None,
    }
}

/// Checked settings of a source of `kind` from `input`.
pub fn parse(kind: Kind, input: &ConnectionInput) -> Result<Connection, String> {
    let mut c = Connection::default();
    if let Some(raw) = &input.url {
        if kind_of_url(raw) != Some(kind) {
            return Err(format!(
                "the URL's scheme does not name a {} source",
                kind.as_str()
            ));
        }
        if kind == Kind::Sqlite {
            let path = raw
                .split_once(':')
                .map(|(_, p)| p.trim_start_matches("//"))
                .unwrap_or_default();
            if path.contains('?') {
                return Err("a sqlite: URL takes no parameters".into());
            }
            c.path = Some(path.to_owned());
        } else {
            let url = url::Url::parse(raw).map_err(|e| format!("the URL does not parse: {e}"))?;
            c.host = url
                .host_str()
                .map(|h| h.trim_matches(['[', ']']).to_owned());
            c.port = url.port();
            let database = url.path().trim_start_matches('/');
            if !database.is_empty() {
                c.database = Some(percent_decoded(database)?);
            }
            if !url.username().is_empty() {
                c.user = Some(percent_decoded(url.username())?);
            }
            if let Some(p) = url.password() {
                c.password = Some(percent_decoded(p)?);
            }
            for (key, value) in url.query_pairs() {
                match key.as_ref() {
                    "sslmode" | "ssl-mode" => c.tls = TlsMode::parse(&value)?,
                    other => {
                        return Err(format!(
                            "the URL parameter {other:?} is not accepted (only sslmode)"
                        ));
                    }
                }
            }
        }
    }
    if input.host.is_some() {
        c.host.clone_from(&input.host);
    }
    if input.port.is_some() {
        c.port = input.port;
    }
    if input.database.is_some() {
        c.database.clone_from(&input.database);
    }
    if input.user.is_some() {
        c.user.clone_from(&input.user);
    }
    if input.password.is_some() {
        c.password.clone_from(&input.password);
    }
    if let Some(tls) = &input.tls {
        c.tls = TlsMode::parse(tls)?;
    }
    if input.path.is_some() {
        c.path.clone_from(&input.path);
    }
    check(kind, &c)?;
    Ok(c)
}

fn check(kind: Kind, c: &Connection) -> Result<(), String> {
    if kind == Kind::Sqlite {
        if c.host.is_some() || c.user.is_some() || c.password.is_some() || c.database.is_some() {
            return Err("a sqlite source takes only a path".into());
        }
        let path = c.path.as_deref().ok_or("a sqlite source needs a path")?;
        text_field("path", path, 255)?;
        if Path::new(path).is_absolute() {
            return Err(
                "the path of a sqlite source is relative to the tenant's folder of the sources directory"
                    .into(),
            );
        }
        return Ok(());
    }
    if c.path.is_some() {
        return Err(format!("a {} source takes no path", kind.as_str()));
    }
    let host = c.host.as_deref().ok_or("the source needs a host")?;
    text_field("host", host, 253)?;
    if !host
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | ':' | '_'))
    {
        return Err(
            "the host must be a name or an address (letters, digits, '.', '-', ':'), not a path"
                .into(),
        );
    }
    if c.port == Some(0) {
        return Err("the port must be 1 to 65535".into());
    }
    let user = c.user.as_deref().ok_or("the source needs a user")?;
    text_field("user", user, 128)?;
    let database = c.database.as_deref().ok_or("the source needs a database")?;
    text_field("database", database, 128)?;
    if let Some(p) = &c.password
        && (p.len() > 1024 || p.contains('\0'))
    {
        return Err("the password must be at most 1024 bytes without NUL".into());
    }
    Ok(())
}

/// The port the connection uses.
pub fn port(kind: Kind, c: &Connection) -> u16 {
    c.port.unwrap_or(match kind {
        Kind::Mysql => 3306,
        _ => 5432,
    })
}

/// What the settings are bound to when sealed: the tenant and the source's name.
fn context(tenant: TenantId, name: &str) -> Vec<u8> {
    format!("tessera data source:{}:{name}", tenant.0).into_bytes()
}

/// The sealed form for the database.
pub fn seal(sealer: &SecretBox, tenant: TenantId, name: &str, c: &Connection) -> String {
    let json = serde_json::to_vec(c).unwrap_or_default();
    sealer.seal_bound(&json, &context(tenant, name))
}

/// The settings of a stored source; `None` when they do not open (another key, altered).
pub fn open(sealer: &SecretBox, tenant: TenantId, name: &str, sealed: &str) -> Option<Connection> {
    let bytes = sealer.open_bound(sealed, &context(tenant, name)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The tenant's folder of SQLite sources.
pub fn tenant_dir(sources_dir: &Path, tenant_slug: &str) -> PathBuf {
    sources_dir.join(tenant_slug)
}

/// The canonical path of a SQLite source's file, if it is a regular file inside the
/// tenant's folder (after resolving every symlink); an error sentence for the admin
/// otherwise.
pub fn sqlite_file(sources_dir: &Path, tenant_slug: &str, path: &str) -> Result<PathBuf, String> {
    let dir = tenant_dir(sources_dir, tenant_slug);
    let root = dir.canonicalize().map_err(|_| {
        format!("the tenant's folder of SQLite sources does not exist (the operator creates {tenant_slug}/ in the sources directory)")
    })?;
    let file = root
        .join(path)
        .canonicalize()
        .map_err(|_| format!("no SQLite file {path:?} in the tenant's folder"))?;
    if !file.starts_with(&root) || file == root {
        return Err(format!(
            "the SQLite file {path:?} is outside the tenant's folder of the sources directory"
        ));
    }
    if !std::fs::metadata(&file).is_ok_and(|m| m.is_file()) {
        return Err(format!("{path:?} is not a regular file"));
    }
    Ok(file)
}

/// Whether `ip` is an address a tenant's source may not name unless the operator allows
/// private hosts: loopback, private, link-local, shared (CGNAT), unspecified, multicast,
/// broadcast, unique-local.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Resolves `host` and refuses it when any of its addresses is private (unless allowed).
/// The error is for the admin and the server log, never for a guest.
pub async fn check_host(host: &str, port: u16, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let addresses: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("the host {host:?} does not resolve: {e}"))?
        .collect();
    if addresses.is_empty() {
        return Err(format!("the host {host:?} does not resolve"));
    }
    if let Some(private) = addresses.iter().find(|a| is_private(a.ip())) {
        return Err(format!(
            "the host {host:?} resolves to {}, a loopback, private or link-local address; \
             the operator does not allow those ([data_sources] allow_private_hosts)",
            private.ip()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> ConnectionInput {
        ConnectionInput {
            url: Some(u.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_url_gives_the_fields_and_fields_override_it() {
        let c = parse(
            Kind::Postgres,
            &url("postgres://ro%40x:p%2Fw+d@db.example.org:6543/sales?sslmode=require"),
        )
        .expect("parses");
        assert_eq!(c.host.as_deref(), Some("db.example.org"));
        assert_eq!(c.port, Some(6543));
        assert_eq!(c.user.as_deref(), Some("ro@x"));
        assert_eq!(c.password.as_deref(), Some("p/w+d"));
        assert_eq!(c.database.as_deref(), Some("sales"));
        assert_eq!(c.tls, TlsMode::Require);
        let mut input = url("mysql://u@h/d");
        input.password = Some("s3cret".into());
        let c = parse(Kind::Mysql, &input).expect("parses");
        assert_eq!(c.password.as_deref(), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn sockets_options_and_wrong_kinds_are_refused() {
        for (kind, u) in [
            (Kind::Postgres, "postgres://u@h/d?host=/var/run/postgresql"),
            (
                Kind::Postgres,
                "postgres://u@h/d?options=-c%20default_transaction_read_only%3Doff",
            ),
            (Kind::Postgres, "mysql://u@h/d"),
            (Kind::Postgres, "postgres://h/d"),
            (Kind::Sqlite, "sqlite:/etc/passwd"),
        ] {
            assert!(parse(kind, &url(u)).is_err(), "{u}");
        }
        let socket = ConnectionInput {
            host: Some("/var/run/postgresql".into()),
            user: Some("u".into()),
            database: Some("d".into()),
            ..Default::default()
        };
        assert!(parse(Kind::Postgres, &socket).is_err());
    }

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["8.8.8.8", "2001:4860:4860::8888"] {
            assert!(!is_private(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn settings_are_sealed_for_their_tenant_and_name() {
        let sealer = SecretBox::from_key(&[3; 32]);
        let c = Connection {
            host: Some("h".into()),
            password: Some("pw-123".into()),
            ..Default::default()
        };
        let sealed = seal(&sealer, TenantId(1), "sales", &c);
        assert!(!sealed.contains("pw-123"));
        assert_eq!(open(&sealer, TenantId(1), "sales", &sealed), Some(c));
        assert_eq!(open(&sealer, TenantId(2), "sales", &sealed), None);
        assert_eq!(open(&sealer, TenantId(1), "other", &sealed), None);
    }
}
