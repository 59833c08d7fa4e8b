//! Outbound HTTP of apps: which hosts an app may call (its allowlist, kept in the reserved
//! setting [`HOSTS_SETTING`]) and the operator's bounds (`[outbound]` in the config).
//!
//! The allowlist is an ordinary app setting so that it is set, listed, removed, audited and
//! policy-checked exactly like the others (`tessera apps settings`, `/api/v1/.../settings`),
//! and a change reloads the app like any settings change. Its value is checked when it is
//! set ([`check_hosts`], called by [`crate::settings::check_value`]); the sandbox enforces
//! it, with the address checks after DNS, in `sandbox/src/outbound.rs`. [`edit`] adds or
//! removes patterns (`tessera apps outbound allow|deny`) through the same store calls, so
//! an edit is audited as a settings change.

use crate::ids::{AppId, TenantId};
use crate::settings::InvalidSetting;
use crate::store::{self, Change, Store};
use sandbox::{HostPattern, OutboundPolicy};

/// The setting holding an app's outbound allowlist: patterns separated by spaces, commas or
/// newlines, in Spin's `allowed_outbound_hosts` syntax (`https://api.example.com`,
/// `https://*.example.com`, `http://host:8080`).
pub const HOSTS_SETTING: &str = "TESSERA_OUTBOUND_HOSTS";

/// The patterns of an allowlist value, or why it is refused (naming the bad pattern).
pub fn check_hosts(value: &str) -> Result<Vec<HostPattern>, InvalidSetting> {
    let patterns: Vec<&str> = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|p| !p.is_empty())
        .collect();
    OutboundPolicy::parse_hosts(&patterns)
        .map_err(|e| InvalidSetting(format!("{HOSTS_SETTING}: {e}")))
}

/// The policy an app is loaded with: the operator's bounds and the app's allowlist
/// (`hosts`, the value of [`HOSTS_SETTING`] if set). A value that no longer parses (stored
/// before this check existed) grants nothing and says so in the server log.
pub fn for_app(operator: &OutboundPolicy, hosts: Option<&str>) -> OutboundPolicy {
    let allowed_hosts = match hosts.map(check_hosts) {
        None => Vec::new(),
        Some(Ok(patterns)) => patterns,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "ignoring an invalid outbound allowlist");
            Vec::new()
        }
    };
    OutboundPolicy {
        allowed_hosts,
        ..operator.clone()
    }
}

/// An edit of an app's allowlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Add the patterns.
    Allow,
    /// Remove the patterns.
    Deny,
}

/// Why an allowlist could not be read or edited.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// A pattern does not parse, or the list would be over its limit.
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
    /// The allowlist was stored as a secret, which this command does not open.
    #[error("{HOSTS_SETTING} is stored as a secret; unset it and allow the hosts again")]
    Secret,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// An allowlist after an edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edited {
    /// The allowlist now.
    pub hosts: Vec<HostPattern>,
    /// The patterns the edit left alone (normalized): already listed for `Allow`, not
    /// listed for `Deny`. Neither is an error, as unsetting a missing setting is not.
    pub unchanged: Vec<HostPattern>,
}

/// The allowlist after `edit` of `patterns` on `current` (patterns compared once
/// normalized, so `https://a.example.com:443` is `https://a.example.com`).
pub fn edited(
    current: &[HostPattern],
    edit: Edit,
    patterns: &[String],
) -> Result<Edited, EditError> {
    let given = OutboundPolicy::parse_hosts(patterns)
        .map_err(|e| InvalidSetting(format!("{HOSTS_SETTING}: {e}")))?;
    let mut hosts = current.to_vec();
    let mut unchanged = Vec::new();
    for pattern in given {
        let at = hosts.iter().position(|p| *p == pattern);
        match (edit, at) {
            (Edit::Allow, None) => hosts.push(pattern),
            (Edit::Deny, Some(at)) => {
                hosts.remove(at);
            }
            (Edit::Allow, Some(_)) | (Edit::Deny, None) => unchanged.push(pattern),
        }
    }
    // The whole list once more: its length limit.
    check_hosts(&value(&hosts))?;
    Ok(Edited { hosts, unchanged })
}

/// The setting's value for `list`: the patterns separated by spaces.
fn value(list: &[HostPattern]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `list` for a message: the patterns separated by commas, or `nothing`.
pub fn shown(list: &[HostPattern]) -> String {
    if list.is_empty() {
        "nothing".to_owned()
    } else {
        list.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The app's allowlist as stored (empty when the setting is not set).
pub async fn list(store: &Store, app: AppId) -> Result<Vec<HostPattern>, EditError> {
    let stored = store.app_settings(app).await?;
    match stored.into_iter().find(|s| s.name == HOSTS_SETTING) {
        None => Ok(Vec::new()),
        Some(setting) if setting.secret => Err(EditError::Secret),
        Some(setting) => Ok(check_hosts(&setting.value)?),
    }
}

/// Applies `edit` of `patterns` to the app's allowlist and stores the result (or removes
/// the setting when nothing is left), audited like any settings change; running servers
/// reload the app within a second. Nothing is written when nothing changes. The list is
/// read and written in one transaction, so concurrent edits each keep their change.
pub async fn edit(
    store: &Store,
    tenant: TenantId,
    app: AppId,
    edit: Edit,
    patterns: &[String],
    change: &Change<'_>,
) -> Result<Edited, EditError> {
    store
        .update_app_setting(
            tenant,
            app,
            HOSTS_SETTING,
            crate::settings::MAX_SETTINGS_PER_APP,
            change,
            |stored| {
                let current = match stored {
                    None => Vec::new(),
                    Some(setting) if setting.secret => return Err(EditError::Secret),
                    Some(setting) => check_hosts(&setting.value)?,
                };
                let next = edited(&current, edit, patterns)?;
                let update = if next.hosts == current {
                    store::SettingUpdate::Keep
                } else if next.hosts.is_empty() {
                    store::SettingUpdate::Unset
                } else {
                    store::SettingUpdate::Set(value(&next.hosts))
                };
                Ok((update, next))
            },
        )
        .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowlist_setting_is_parsed_and_checked() {
        let hosts = check_hosts("https://api.example.com, https://*.example.org\nhttp://h:8080")
            .expect("valid");
        assert_eq!(hosts.len(), 3);
        assert!(check_hosts("").expect("empty is valid").is_empty());
        let error = check_hosts("https://ok.example.com api.example.com").expect_err("no scheme");
        assert!(
            error.0.contains("api.example.com") && error.0.contains("scheme"),
            "{error}"
        );
        let operator = OutboundPolicy {
            allow_private: true,
            ..OutboundPolicy::default()
        };
        let policy = for_app(&operator, Some("https://a.example.com"));
        assert!(policy.allow_private);
        assert_eq!(policy.allowed_hosts.len(), 1);
        assert!(
            for_app(&operator, Some("nonsense"))
                .allowed_hosts
                .is_empty()
        );
        assert!(for_app(&operator, None).allowed_hosts.is_empty());
    }

    #[test]
    fn allow_and_deny_edit_the_normalized_list() {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let list = edited(
            &[],
            Edit::Allow,
            &strings(&["https://a.example.com:443", "http://b.example.com:8080"]),
        )
        .expect("allowed");
        assert_eq!(
            value(&list.hosts),
            "https://a.example.com http://b.example.com:8080"
        );
        assert!(list.unchanged.is_empty());
        // Already listed (in another spelling): kept once, reported unchanged.
        let again = edited(
            &list.hosts,
            Edit::Allow,
            &strings(&["HTTPS://A.example.com/"]),
        )
        .expect("ok");
        assert_eq!(again.hosts, list.hosts);
        assert_eq!(shown(&again.unchanged), "https://a.example.com");
        let fewer = edited(
            &list.hosts,
            Edit::Deny,
            &strings(&["https://a.example.com"]),
        )
        .expect("denied");
        assert_eq!(value(&fewer.hosts), "http://b.example.com:8080");
        let same = edited(
            &fewer.hosts,
            Edit::Deny,
            &strings(&["https://a.example.com"]),
        )
        .expect("not listed is no error");
        assert_eq!(same.hosts, fewer.hosts);
        assert_eq!(shown(&same.unchanged), "https://a.example.com");
        let error = edited(&fewer.hosts, Edit::Allow, &strings(&["a.example.com"]))
            .expect_err("no scheme")
            .to_string();
        assert!(
            error.contains("a.example.com") && error.contains("scheme"),
            "{error}"
        );
        let full: Vec<String> = (0..sandbox::MAX_ALLOWED_HOSTS)
            .map(|i| format!("https://h{i}.example.com"))
            .collect();
        let full = edited(&[], Edit::Allow, &full).expect("at the limit");
        assert!(
            edited(
                &full.hosts,
                Edit::Allow,
                &strings(&["https://one-more.example.com"])
            )
            .is_err()
        );
    }
}
