//! An app's settings and secrets as its guest reads them through `host.setting`.
//!
//! The platform hands the values over at load time (secrets already decrypted); every
//! instance of the component shares them read-only. Secret values are also kept out of
//! what leaves the sandbox in text: a call's log lines and the guest's error messages have
//! every occurrence replaced by `[secret NAME]`, so an author who logs a secret by mistake
//! does not publish it. `Debug` shows names only.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{Error, LogLine};

/// Secrets shorter than this are not masked in logs: masking a one- or two-character
/// value would shred every log line without protecting anything worth protecting.
pub const MIN_MASKED_SECRET_CHARS: usize = 4;

/// The settings of one app: names to values, each value plain or secret.
#[derive(Clone, Default)]
pub struct Settings {
    values: Arc<BTreeMap<String, Value>>,
}

struct Value {
    text: String,
    secret: bool,
}

impl Settings {
    /// Settings from `(name, value, secret)` triples; a later duplicate name wins.
    pub fn new(entries: impl IntoIterator<Item = (String, String, bool)>) -> Settings {
        let values = entries
            .into_iter()
            .map(|(name, text, secret)| (name, Value { text, secret }))
            .collect();
        Settings {
            values: Arc::new(values),
        }
    }

    /// The value of `name`, plain or secret.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|value| value.text.as_str())
    }

    /// How many settings there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret value of [`MIN_MASKED_SECRET_CHARS`] or more replaced by
    /// `[secret NAME]`. Longer secrets are replaced first, so a secret that contains
    /// another is masked whole.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut secrets: Vec<(&str, &str)> = self
            .values
            .iter()
            .filter(|(_, value)| {
                value.secret && value.text.chars().count() >= MIN_MASKED_SECRET_CHARS
            })
            .map(|(name, value)| (name.as_str(), value.text.as_str()))
            .collect();
        if secrets.is_empty() || !secrets.iter().any(|(_, secret)| text.contains(secret)) {
            return Cow::Borrowed(text);
        }
        secrets.sort_by_key(|(_, secret)| std::cmp::Reverse(secret.len()));
        let mut out = text.to_owned();
        for (name, secret) in secrets {
            if out.contains(secret) {
                out = out.replace(secret, &format!("[secret {name}]"));
            }
        }
        Cow::Owned(out)
    }

    /// Whether any secret would be masked by [`Settings::redact`].
    pub(crate) fn has_maskable_secrets(&self) -> bool {
        self.values
            .values()
            .any(|value| value.secret && value.text.chars().count() >= MIN_MASKED_SECRET_CHARS)
    }

    /// Every setting as `(name, value)`, secrets included: what a Python app's
    /// `os.environ` holds during its callbacks.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .map(|(name, value)| (name.as_str(), value.text.as_str()))
    }

    /// `logs` with the app's secrets masked.
    pub(crate) fn redact_logs(&self, mut logs: Vec<LogLine>) -> Vec<LogLine> {
        if self.has_maskable_secrets() {
            for line in &mut logs {
                if let Cow::Owned(masked) = self.redact(&line.message) {
                    line.message = masked;
                }
            }
        }
        logs
    }

    /// `error` with the app's secrets masked in the messages the guest controls.
    pub(crate) fn redact_error(&self, mut error: Error) -> Error {
        if let Error::Panic { message }
        | Error::Callback { message }
        | Error::InvalidInput { message }
        | Error::Trap { message } = &mut error
            && let Cow::Owned(masked) = self.redact(message)
        {
            *message = masked;
        }
        error
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: a `Debug` of load options must never print a secret (or a setting,
        // which may still be sensitive to the author).
        f.debug_set()
            .entries(self.values.iter().map(|(name, value)| {
                if value.secret {
                    format!("{name} (secret)")
                } else {
                    name.clone()
                }
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::new([
            ("REGION".to_string(), "eu-west".to_string(), false),
            ("API_KEY".to_string(), "k-12345".to_string(), true),
            ("LONG".to_string(), "k-12345-and-more".to_string(), true),
            ("PIN".to_string(), "42".to_string(), true),
        ])
    }

    #[test]
    fn values_are_read_by_name() {
        let s = settings();
        assert_eq!(s.get("REGION"), Some("eu-west"));
        assert_eq!(s.get("API_KEY"), Some("k-12345"));
        assert_eq!(s.get("api_key"), None);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn secrets_are_masked_and_plain_values_are_not() {
        let s = settings();
        assert_eq!(
            s.redact("key k-12345 in eu-west, long k-12345-and-more, pin 42"),
            "key [secret API_KEY] in eu-west, long [secret LONG], pin 42"
        );
        assert!(matches!(s.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn debug_shows_names_only() {
        let shown = format!("{:?}", settings());
        assert!(shown.contains("API_KEY (secret)"), "{shown}");
        assert!(shown.contains("REGION"), "{shown}");
        for value in ["eu-west", "k-12345", "42"] {
            assert!(!shown.contains(value), "{shown} shows {value}");
        }
    }
}
