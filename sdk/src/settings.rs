//! The app's settings and secrets, as its authors set them on the platform.
//!
//! Authors keep configuration out of the code: a region, a feature switch, an API key.
//! They set it per app (`tessera apps settings set`, or the REST API), plain or as a
//! secret (encrypted at rest, never shown again), and the app reads it here by name. In a
//! component, [`get`] asks the platform through the `host.setting` import; the values are
//! those the instance started with, and a change reloads the app. Natively (tests) the value
//! of `NAME` comes from the environment variable `TESSERA_SETTING_NAME`, so a test can set
//! one without a platform.
//!
//! Secrets that the app writes to its log are masked by the platform, but the platform
//! cannot stop an app from showing a secret in its page: keep them out of outputs.

/// The prefix of the environment variables that stand in for settings natively.
pub const NATIVE_VAR_PREFIX: &str = "TESSERA_SETTING_";

/// The value of the setting `name`, or `None` when the app has none by that name.
pub fn get(name: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return crate::export::setting(name);
    #[cfg(not(target_arch = "wasm32"))]
    return std::env::var(format!("{NATIVE_VAR_PREFIX}{name}")).ok();
}

/// The value of the setting `name`, or `default` when it is not set.
pub fn get_or(name: &str, default: &str) -> String {
    get(name).unwrap_or_else(|| default.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_settings_come_from_prefixed_variables() {
        // SAFETY: this test is the only one in the crate touching this variable.
        unsafe { std::env::set_var("TESSERA_SETTING_SDK_TEST_REGION", "eu-west") };
        assert_eq!(get("SDK_TEST_REGION").as_deref(), Some("eu-west"));
        assert_eq!(get("SDK_TEST_UNSET"), None);
        assert_eq!(get_or("SDK_TEST_UNSET", "fallback"), "fallback");
    }
}
