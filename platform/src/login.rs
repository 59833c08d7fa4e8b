//! The author's side of `tessera login`, `tessera logout`, `tessera credential` and
//! `tessera apps logs`: sign in through the browser (the device authorization grant, see
//! [`crate::cli_sign_in`]), keep the token in the author's configuration folder, hand it to
//! git when it pushes to that server and use it for the API. Nothing here reads the
//! server's configuration.
//!
//! The token file is `credentials.toml` in `$TESSERA_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/tessera`, else `~/.config/tessera`; it is written with mode 0600 and
//! holds one table per server.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::config::{AppsCommand, LoginArgs, LogoutArgs};

/// The user name git sends with the token (the server looks only at the password).
const GIT_USER: &str = "tessera";

/// What `tessera login` stored for one server.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Credential {
    /// The API token (`tsr_…`).
    pub token: String,
    /// The tenant it works in.
    pub tenant: String,
    /// Whose it is.
    pub email: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct CredentialsFile {
    #[serde(default)]
    servers: BTreeMap<String, Credential>,
}

/// The folder of the author's Tessera configuration.
fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("TESSERA_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("tessera"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither TESSERA_CONFIG_DIR, XDG_CONFIG_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".config/tessera"))
}

/// Where the tokens are kept.
pub fn credentials_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("credentials.toml"))
}

fn read_credentials() -> anyhow::Result<CredentialsFile> {
    let path = credentials_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CredentialsFile::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Replace the file as a whole (written beside it, then renamed), readable only by its
/// owner from the moment it exists.
fn write_credentials(file: &CredentialsFile) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = credentials_path()?;
    let dir = path.parent().context("the credentials file has a folder")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let text = toml::to_string(file).context("writing the credentials")?;
    let partial = dir.join(format!(".credentials.toml.{}", std::process::id()));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.sync_all())
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(path)
}

/// `https://host[:port]` of what the author typed (no path, no trailing slash): the key
/// of the credentials file and of git's configuration.
pub fn server_origin(server: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(server.trim())
        .with_context(|| format!("{server:?} is not a URL like https://tessera.example.org"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("{server:?} is not an http(s) URL");
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("give the server's address without a user name or password");
    }
    Ok(url.origin().ascii_serialization())
}

#[derive(Debug, Deserialize)]
struct Started {
    device_code: String,
    user_code: String,
    verification_uri_complete: String,
    expires_in: u64,
    interval: u64,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("tessera-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("setting up the HTTP client")
}

/// The error a failed API call answered, or its status.
async fn api_error(response: reqwest::Response) -> ErrorDetail {
    let status = response.status();
    match response.json::<ErrorBody>().await {
        Ok(body) => body.error,
        Err(_) => ErrorDetail {
            code: String::new(),
            message: format!("the server answered {status}"),
        },
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "a command line".to_owned())
}

/// `tessera login SERVER`: start a sign-in, show where to approve it, poll until the token
/// comes, store it and (unless `--no-git`) point git's credential helper at it.
pub async fn login(args: &LoginArgs) -> anyhow::Result<()> {
    let origin = server_origin(&args.server)?;
    let client = http_client()?;
    let client_name = args.client_name.clone().unwrap_or_else(host_name);
    let response = client
        .post(format!("{origin}/api/v1/cli/sign-ins"))
        .json(&serde_json::json!({"client_name": client_name, "tenant": args.tenant}))
        .send()
        .await
        .with_context(|| format!("reaching {origin}"))?;
    if !response.status().is_success() {
        let error = api_error(response).await;
        bail!("{origin} refused to start a sign-in: {}", error.message);
    }
    let started: Started = response.json().await.context("reading the sign-in")?;
    eprintln!(
        "Open this page in a browser where you are signed in to Tessera:\n\n    {}\n\n\
         and approve the sign-in if it shows the code below.\n\nYour code: {}\n",
        started.verification_uri_complete, started.user_code
    );
    let deadline = Instant::now() + Duration::from_secs(started.expires_in);
    let mut interval = Duration::from_secs(started.interval.max(1));
    let collected = loop {
        if Instant::now() >= deadline {
            bail!("the sign-in expired before it was approved: run `tessera login` again");
        }
        tokio::time::sleep(interval).await;
        let response = client
            .post(format!("{origin}/api/v1/cli/sign-ins/token"))
            .json(&serde_json::json!({"device_code": started.device_code}))
            .send()
            .await
            .with_context(|| format!("reaching {origin}"))?;
        if response.status().is_success() {
            break response
                .json::<Credential>()
                .await
                .context("reading the token")?;
        }
        let error = api_error(response).await;
        match error.code.as_str() {
            "authorization_pending" => {}
            "slow_down" => interval += Duration::from_secs(2),
            _ => bail!("{}", error.message),
        }
    };
    let mut file = read_credentials()?;
    file.servers.insert(origin.clone(), collected.clone());
    let path = write_credentials(&file)?;
    println!(
        "Signed in to {origin} as {} in tenant {}; the token is in {}.",
        collected.email,
        collected.tenant,
        path.display()
    );
    if !args.no_git {
        set_up_git(&origin)?;
        println!(
            "git now asks `tessera credential` for its password on {origin}: \
             git push {origin}/git/{}/<app>.git main",
            collected.tenant
        );
    }
    Ok(())
}

fn git_config(args: &[&str]) -> anyhow::Result<std::process::Output> {
    std::process::Command::new("git")
        .arg("config")
        .arg("--global")
        .args(args)
        .output()
        .context("running git config (is git installed?)")
}

/// Make git ask this binary, and only it, for the server's credentials: the empty value
/// first clears helpers configured more generally (as `gh auth setup-git` does).
fn set_up_git(origin: &str) -> anyhow::Result<()> {
    let key = format!("credential.{origin}.helper");
    let program = std::env::current_exe().context("finding this program")?;
    let program = program.to_string_lossy().replace('\'', "'\\''");
    // Absent is fine: nothing to remove.
    git_config(&["--unset-all", &key])?;
    for value in [String::new(), format!("!'{program}' credential")] {
        let output = git_config(&["--add", &key, &value])?;
        if !output.status.success() {
            bail!(
                "git config --global --add {key} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
    Ok(())
}

/// `tessera logout SERVER`: revoke the stored token on the server, forget it here and
/// remove git's helper for the server.
pub async fn logout(args: &LogoutArgs) -> anyhow::Result<()> {
    let origin = server_origin(&args.server)?;
    let mut file = read_credentials()?;
    let Some(credential) = file.servers.remove(&origin) else {
        bail!("not signed in to {origin}");
    };
    let public_id = credential
        .token
        .strip_prefix(crate::auth::token::PREFIX)
        .and_then(|rest| rest.split('_').next())
        .unwrap_or_default();
    let response = http_client()?
        .delete(format!(
            "{origin}/api/v1/tenants/{}/tokens/{public_id}",
            credential.tenant
        ))
        .bearer_auth(&credential.token)
        .send()
        .await;
    // A token the server no longer accepts is as good as revoked; an unreachable server
    // is said, and the token forgotten here all the same.
    let revoked = match response {
        Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::UNAUTHORIZED => {
            "revoked"
        }
        Ok(r) => {
            eprintln!(
                "the server did not revoke the token: {}",
                api_error(r).await.message
            );
            "not revoked (revoke it on the account page)"
        }
        Err(e) => {
            eprintln!("reaching {origin} failed: {e}");
            "not revoked (revoke it on the account page)"
        }
    };
    write_credentials(&file)?;
    git_config(&["--unset-all", &format!("credential.{origin}.helper")])?;
    println!("Signed out of {origin}: the token is forgotten here and {revoked}.");
    Ok(())
}

/// `tessera credential get|store|erase`: git's credential helper protocol. `get` answers
/// with the stored token when git asks for a server `tessera login` signed in to, and with
/// nothing otherwise (git then asks its other helpers or the person).
pub fn credential(operation: &str) -> anyhow::Result<()> {
    if operation != "get" {
        // git tells helpers about credentials it stored or rejected; the token is
        // managed by `tessera login` and `tessera logout` alone.
        return Ok(());
    }
    let stdin = std::io::stdin();
    let mut fields = BTreeMap::new();
    for line in stdin.lock().lines() {
        let line = line.context("reading git's request")?;
        if line.is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once('=') {
            fields.insert(key.to_owned(), value.to_owned());
        }
    }
    let (Some(protocol), Some(host)) = (fields.get("protocol"), fields.get("host")) else {
        return Ok(());
    };
    let Ok(origin) = server_origin(&format!("{protocol}://{host}")) else {
        return Ok(());
    };
    if let Some(credential) = read_credentials()?.servers.get(&origin) {
        let mut out = std::io::stdout().lock();
        writeln!(out, "username={GIT_USER}")?;
        writeln!(out, "password={}", credential.token)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::server_origin;

    #[test]
    fn servers_are_keyed_by_their_origin() {
        assert_eq!(
            server_origin("https://Tessera.example.org/").expect("ok"),
            "https://tessera.example.org"
        );
        assert_eq!(
            server_origin("http://127.0.0.1:8080/git/acme/sales.git").expect("ok"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            server_origin("https://tessera.example.org:443").expect("ok"),
            "https://tessera.example.org"
        );
        for bad in ["tessera.example.org", "ftp://x", "https://u:p@x.org", ""] {
            assert!(server_origin(bad).is_err(), "{bad}");
        }
    }
}

#[derive(Debug, Deserialize)]
struct LogLine {
    at: i64,
    version: i64,
    stream: String,
    message: String,
    request_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LogPage {
    lines: Vec<LogLine>,
    next: String,
}

/// `tessera apps logs TENANT/APP --server URL [-f]`: the app's log through the server's
/// API, with `--token` or the token `tessera login` stored for the server; `-f` asks for
/// newer lines every two seconds until interrupted.
pub async fn app_logs(command: &AppsCommand) -> anyhow::Result<()> {
    let AppsCommand::Logs {
        target,
        server,
        token,
        follow,
        lines,
    } = command
    else {
        bail!("not a logs command");
    };
    let Some((tenant, app)) = target.split_once('/') else {
        bail!("expected tenant/app, for example demo/sales-explorer (got {target:?})");
    };
    let (tenant, app) = (
        crate::ids::Slug::parse(tenant)?,
        crate::ids::Slug::parse(app)?,
    );
    let origin = server_origin(server)?;
    let token = match token {
        Some(token) => token.clone(),
        None => read_credentials()?
            .servers
            .remove(&origin)
            .map(|c| c.token)
            .with_context(|| {
                format!("not signed in to {origin}: run `tessera login {origin}` or give --token")
            })?,
    };
    let client = http_client()?;
    let url = format!("{origin}/api/v1/tenants/{tenant}/apps/{app}/logs");
    let mut query = vec![("limit", lines.to_string())];
    let mut out = std::io::stdout();
    loop {
        let response = client
            .get(&url)
            .query(&query)
            .bearer_auth(&token)
            .send()
            .await
            .with_context(|| format!("reaching {origin}"))?;
        if !response.status().is_success() {
            bail!("{}", api_error(response).await.message);
        }
        let page: LogPage = response.json().await.context("reading the log")?;
        for line in &page.lines {
            writeln!(out, "{}", log_line_text(line))?;
        }
        out.flush()?;
        if !follow {
            return Ok(());
        }
        query = vec![("limit", "500".to_owned()), ("after", page.next)];
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `2026-12-06 07:01:02  v3  stdout  the text  [request id]`.
fn log_line_text(line: &LogLine) -> String {
    let at = crate::cli::utc(line.at);
    let request = line
        .request_id
        .as_deref()
        .map(|id| format!("  [{id}]"))
        .unwrap_or_default();
    format!(
        "{at}  v{}  {:<9} {}{request}",
        line.version, line.stream, line.message
    )
}
