//! Outbound HTTP of apps: which hosts an app may call (its allowlist, kept in the reserved
//! setting [`HOSTS_SETTING`]) and the operator's bounds (`[outbound]` in the config).
//!
//! The allowlist is an ordinary app setting so that it is set, listed, removed, audited and
//! policy-checked exactly like the others (`tessera apps settings`, `/api/v1/.../settings`),
//! and a change reloads the app like any settings change. Its value is checked when it is
//! set ([`check_hosts`], called by [`crate::settings::check_value`]); the sandbox enforces
//! it, with the address checks after DNS, in `sandbox/src/outbound.rs`.

use crate::settings::InvalidSetting;
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
}
