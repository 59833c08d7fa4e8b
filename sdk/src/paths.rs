//! Paths inside the app, wherever the platform serves it (Dash's `get_relative_path` and
//! `strip_relative_path`).
//!
//! Tessera serves an app under `/apps/{tenant}/{app}/` (Dash's `requests_pathname_prefix`),
//! so a link written `/page-a` would leave the app. Write links with [`get_relative_path`]
//! (`get_relative_path("/page-a")` is `/apps/acme/sales/page-a`) and route `dcc.Location`
//! paths with [`strip_relative_path`] (`/apps/acme/sales/page-a/` is `page-a`), exactly as
//! in Dash. Both work in the layout and in callbacks: the platform hands the prefix to the
//! component when it loads it (the reserved setting [`PREFIX_SETTING`]). Natively (tests),
//! the prefix is `/` unless the environment variable
//! `TESSERA_SETTING_TESSERA_REQUESTS_PATHNAME_PREFIX` says otherwise.

use std::fmt;

/// The setting through which the platform tells a component its prefix. Authors cannot
/// set it.
pub const PREFIX_SETTING: &str = "TESSERA_REQUESTS_PATHNAME_PREFIX";

/// A path these functions cannot turn around (Dash's `UnsupportedRelativePath`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedRelativePath(String);

impl fmt::Display for UnsupportedRelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnsupportedRelativePath {}

impl From<UnsupportedRelativePath> for crate::Error {
    fn from(error: UnsupportedRelativePath) -> Self {
        crate::Error::Failed(error.0)
    }
}

/// Where the platform serves this app, with both slashes (`/apps/acme/sales/`); `/`
/// outside Tessera.
pub fn requests_pathname_prefix() -> String {
    crate::settings::get(PREFIX_SETTING)
        .filter(|prefix| prefix.starts_with('/') && prefix.ends_with('/'))
        .unwrap_or_else(|| "/".to_owned())
}

/// `path` inside the app as the browser must ask for it: `/page-2` becomes
/// `/apps/acme/sales/page-2`, `""` the app's root. Use it for `dcc.Link` and `html.A`
/// hrefs and `dcc.Location` redirects.
///
/// # Panics
///
/// If `path` is neither empty nor starts with `/` (Dash raises `UnsupportedRelativePath`):
/// a mistake in the app's code, found by its first deploy or test. Use
/// [`app_get_relative_path`] for paths that come from elsewhere.
pub fn get_relative_path(path: &str) -> String {
    match app_get_relative_path(&requests_pathname_prefix(), path) {
        Ok(relative) => relative,
        Err(error) => panic!("{error}"),
    }
}

/// [`get_relative_path`] for the prefix `requests_pathname`.
///
/// # Errors
///
/// If `path` is neither empty nor starts with `/`.
pub fn app_get_relative_path(
    requests_pathname: &str,
    path: &str,
) -> Result<String, UnsupportedRelativePath> {
    if path.is_empty() {
        return Ok(requests_pathname.to_owned());
    }
    if !path.starts_with('/') {
        return Err(UnsupportedRelativePath(format!(
            "Paths that aren't prefixed with a leading / are not supported. You supplied: {path}"
        )));
    }
    Ok(format!(
        "{}/{}",
        requests_pathname.trim_end_matches('/'),
        path.trim_start_matches('/')
    ))
}

/// The path inside the app of a browser path, without the prefix and without leading and
/// trailing slashes: `/apps/acme/sales/page-1/sub/` is `page-1/sub`, the app's root is
/// `""`. `None` stays `None` (a `dcc.Location` that has not reported yet).
///
/// # Errors
///
/// If `path` is not under the app's prefix. In a callback `?` turns this into a callback
/// error.
pub fn strip_relative_path(path: Option<&str>) -> Result<Option<String>, UnsupportedRelativePath> {
    app_strip_relative_path(&requests_pathname_prefix(), path)
}

/// [`strip_relative_path`] for the prefix `requests_pathname`.
///
/// # Errors
///
/// If `path` is not under `requests_pathname`.
pub fn app_strip_relative_path(
    requests_pathname: &str,
    path: Option<&str>,
) -> Result<Option<String>, UnsupportedRelativePath> {
    let Some(path) = path else {
        return Ok(None);
    };
    let root = requests_pathname.trim_end_matches('/');
    let inside = if requests_pathname == "/" {
        path.starts_with('/')
    } else {
        path.starts_with(root)
    };
    if !inside {
        return Err(UnsupportedRelativePath(format!(
            "Paths that aren't prefixed with requests_pathname_prefix are not supported. \
             You supplied: {path} and requests_pathname_prefix was {requests_pathname}"
        )));
    }
    // Dash replaces the first occurrence of the prefix, which is where it starts.
    let rest = if requests_pathname == "/" {
        path
    } else {
        &path[root.len()..]
    };
    Ok(Some(rest.trim_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "/apps/acme/sales/";

    #[test]
    fn relative_paths_are_dashs() {
        assert_eq!(app_get_relative_path("/", "").as_deref(), Ok("/"));
        assert_eq!(app_get_relative_path(PREFIX, "").as_deref(), Ok(PREFIX));
        assert_eq!(
            app_get_relative_path(PREFIX, "/page-2").as_deref(),
            Ok("/apps/acme/sales/page-2")
        );
        assert_eq!(app_get_relative_path(PREFIX, "/").as_deref(), Ok(PREFIX));
        assert_eq!(
            app_get_relative_path("/", "/page-2").as_deref(),
            Ok("/page-2")
        );
        assert_eq!(
            app_get_relative_path(PREFIX, "/assets/logo.png?x=1").as_deref(),
            Ok("/apps/acme/sales/assets/logo.png?x=1")
        );
        assert!(app_get_relative_path(PREFIX, "page-2").is_err());
    }

    #[test]
    fn stripped_paths_are_dashs() {
        let strip = |p: Option<&str>| app_strip_relative_path(PREFIX, p);
        assert_eq!(strip(None), Ok(None));
        assert_eq!(strip(Some("/apps/acme/sales")), Ok(Some(String::new())));
        assert_eq!(strip(Some("/apps/acme/sales/")), Ok(Some(String::new())));
        assert_eq!(
            strip(Some("/apps/acme/sales/page-1/sub-page-1/")),
            Ok(Some("page-1/sub-page-1".to_owned()))
        );
        assert!(strip(Some("/apps/other/x/page")).is_err());
        assert!(strip(Some("page")).is_err());
        assert_eq!(
            app_strip_relative_path("/", Some("/page-1/")),
            Ok(Some("page-1".to_owned()))
        );
        assert!(app_strip_relative_path("/", Some("page-1")).is_err());
        // Both directions agree.
        let there = app_get_relative_path(PREFIX, "/report/7").expect("relative");
        assert_eq!(strip(Some(&there)), Ok(Some("report/7".to_owned())));
    }

    #[test]
    fn natively_the_prefix_is_the_root() {
        // No test sets TESSERA_SETTING_TESSERA_REQUESTS_PATHNAME_PREFIX.
        assert_eq!(requests_pathname_prefix(), "/");
        assert_eq!(get_relative_path("/a"), "/a");
        assert_eq!(strip_relative_path(Some("/a/")), Ok(Some("a".to_owned())));
    }
}
