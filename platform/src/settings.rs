//! App settings and secrets: what a name and a value may be, how a secret is sealed for the
//! database, and the [`sandbox::Settings`] a loaded app reads through `host.setting`.
//!
//! A setting is configuration the app's authors keep out of the code (a region, a feature
//! switch); a secret is a setting whose value is sealed at rest, never shown again by the
//! CLI or the API, and masked in the app's logs. Both reach the guest only through the host
//! import, never through an environment. Values change without a deploy: every change bumps
//! the app's settings revision, and running servers load the live version again with the new
//! values within the runtime's refresh interval.

use crate::ids::AppId;
use crate::secretbox::SecretBox;
use crate::store::{self, Store, StoredSetting};

/// Most settings one app may have.
pub const MAX_SETTINGS_PER_APP: usize = 100;
/// Largest value, in bytes (UTF-8).
pub const MAX_VALUE_BYTES: usize = 32 << 10;
/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A setting name or value that cannot be stored (the message says why).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub String);

/// Why an app's settings could not be handed to its guest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A secret does not open: sealed under another key (a replica with a different
    /// `TESSERA_SECRET_KEY`) or altered in the database.
    #[error(
        "the secret {name} of this app cannot be decrypted: it was sealed under another key \
         (do all replicas share TESSERA_SECRET_KEY?) or altered; set it again"
    )]
    Unreadable {
        /// The setting's name (never its value).
        name: String,
    },
}

/// Checks a name: a letter or `_`, then letters, digits and `_`, at most
/// [`MAX_NAME_CHARS`]; the spelling of an environment variable, so that names carry over
/// from other platforms unchanged.
pub fn check_name(name: &str) -> Result<(), InvalidSetting> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME_CHARS;
    if valid {
        Ok(())
    } else {
        Err(InvalidSetting(format!(
            "invalid setting name {name:?}: use a letter or '_' followed by letters, digits \
             and '_', at most {MAX_NAME_CHARS} characters (like REGION or API_KEY)"
        )))
    }
}

/// Checks a value: at most [`MAX_VALUE_BYTES`] and no NUL character; the reserved
/// outbound allowlist ([`crate::outbound::HOSTS_SETTING`]) must also parse, and
/// [`PATHNAME_PREFIX_SETTING`] is the platform's own.
pub fn check_value(name: &str, value: &str) -> Result<(), InvalidSetting> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(InvalidSetting(format!(
            "the value of {name} is {} bytes; at most {MAX_VALUE_BYTES} are allowed",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(InvalidSetting(format!(
            "the value of {name} contains a NUL character"
        )));
    }
    if name == crate::outbound::HOSTS_SETTING {
        crate::outbound::check_hosts(value)?;
    }
    if name == PATHNAME_PREFIX_SETTING {
        return Err(InvalidSetting(format!(
            "{name} is set by the platform: it tells the app where it is served"
        )));
    }
    Ok(())
}

/// What a secret is bound to when sealed: its app and its name.
fn context(app: AppId, name: &str) -> Vec<u8> {
    format!("tessera app secret:{}:{name}", app.0).into_bytes()
}

/// The stored form of a value: as is for a plain setting, sealed for a secret.
pub fn stored_value(
    sealer: &SecretBox,
    app: AppId,
    name: &str,
    value: &str,
    secret: bool,
) -> String {
    if secret {
        sealer.seal_bound(value.as_bytes(), &context(app, name))
    } else {
        value.to_owned()
    }
}

/// The plain value of a stored setting (a secret is opened).
pub fn open_value(sealer: &SecretBox, app: AppId, stored: &StoredSetting) -> Result<String, Error> {
    if !stored.secret {
        return Ok(stored.value.clone());
    }
    let unreadable = || Error::Unreadable {
        name: stored.name.clone(),
    };
    let bytes = sealer
        .open_bound(&stored.value, &context(app, &stored.name))
        .map_err(|_| unreadable())?;
    String::from_utf8(bytes).map_err(|_| unreadable())
}

/// The setting through which the platform tells a guest where it serves the app (Dash's
/// `requests_pathname_prefix`, `/apps/{tenant}/{app}/`), for the SDK's `get_relative_path`
/// in layouts and callbacks alike. Authors cannot set it.
pub const PATHNAME_PREFIX_SETTING: &str = "TESSERA_REQUESTS_PATHNAME_PREFIX";

/// Where the platform serves `tenant/app` (Dash's `requests_pathname_prefix`).
pub fn pathname_prefix(tenant: &str, app: &str) -> String {
    format!("/apps/{tenant}/{app}/")
}

/// Everything the guest of `app` (served under `pathname_prefix`) may read through
/// `host.setting`, secrets opened, and the platform's [`PATHNAME_PREFIX_SETTING`].
pub async fn for_guest(
    store: &Store,
    sealer: &SecretBox,
    app: AppId,
    pathname_prefix: &str,
) -> Result<sandbox::Settings, Error> {
    let stored = store.app_settings(app).await?;
    let mut entries = Vec::with_capacity(stored.len());
    for setting in &stored {
        entries.push((
            setting.name.clone(),
            open_value(sealer, app, setting)?,
            setting.secret,
        ));
    }
    // Last, so it wins over anything stored under its name before the name was reserved.
    entries.push((
        PATHNAME_PREFIX_SETTING.to_owned(),
        pathname_prefix.to_owned(),
        false,
    ));
    Ok(sandbox::Settings::new(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_environment_variable_spelling() {
        for good in [
            "REGION",
            "api_key",
            "_X",
            "A1_2",
            &"N".repeat(MAX_NAME_CHARS),
        ] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1ABC",
            "A-B",
            "A.B",
            "A B",
            "É",
            "A=B",
            &"N".repeat(MAX_NAME_CHARS + 1),
        ] {
            let error = check_name(bad).expect_err(bad);
            assert!(
                error.to_string().contains("invalid setting name"),
                "{error}"
            );
        }
    }

    #[test]
    fn values_are_bounded_and_free_of_nul() {
        assert!(check_value("A", "").is_ok());
        assert!(check_value("A", "multi\nline ünïcode").is_ok());
        assert!(check_value("A", &"x".repeat(MAX_VALUE_BYTES)).is_ok());
        let long = check_value("A", &"x".repeat(MAX_VALUE_BYTES + 1)).expect_err("too long");
        assert!(long.to_string().contains("at most 32768"), "{long}");
        assert!(check_value("A", "a\0b").is_err());
    }

    #[test]
    fn a_secret_is_sealed_for_its_app_and_name() {
        let sealer = SecretBox::from_key(&[9; 32]);
        let sealed = stored_value(&sealer, AppId(1), "API_KEY", "sk-1234", true);
        assert!(!sealed.contains("sk-1234"));
        let setting = |name: &str, value: &str| StoredSetting {
            name: name.into(),
            secret: true,
            value: value.into(),
            updated_at: 0,
            updated_by: "test".into(),
        };
        let stored = setting("API_KEY", &sealed);
        assert_eq!(
            open_value(&sealer, AppId(1), &stored).expect("opens"),
            "sk-1234"
        );
        // Copied to another app or renamed, it no longer opens.
        assert!(matches!(
            open_value(&sealer, AppId(2), &stored),
            Err(Error::Unreadable { .. })
        ));
        assert!(open_value(&sealer, AppId(1), &setting("OTHER", &sealed)).is_err());
        let plain = stored_value(&sealer, AppId(1), "REGION", "eu", false);
        assert_eq!(plain, "eu");
    }
}
