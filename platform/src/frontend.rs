//! The stock Dash front end, served from the npm packages installed in `admin-ui/`.
//!
//! Maps the URLs Dash uses under `_dash-component-suites/` to files of the pinned npm
//! packages, fingerprints the index page's script URLs with a hash of each file (so they
//! can be cached forever), and refuses anything outside those packages.

use std::collections::HashMap;
use std::path::{Component as PathComponent, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Version of Dash whose front-end set is pinned in `admin-ui/package.json`.
pub const DASH_VERSION: &str = "4.4.1";

/// Where a URL prefix under `_dash-component-suites/` lives in `node_modules`.
const PACKAGE_DIRS: &[(&str, &str)] = &[
    ("dash/dash-renderer/build", "dash-renderer/build"),
    ("dash/dcc", "dash-core-components/dash_core_components"),
    ("dash/html", "dash-html-components/dash_html_components"),
    ("dash/dash_table", "dash-table/dash_table"),
];

/// Single files with Dash's own names.
const SINGLE_FILES: &[(&str, &str)] = &[
    (
        "dash/deps/polyfill@7.12.1.min.js",
        "@babel/polyfill/dist/polyfill.min.js",
    ),
    (
        "dash/deps/react@18.3.1.min.js",
        "react/umd/react.production.min.js",
    ),
    (
        "dash/deps/react-dom@18.3.1.min.js",
        "react-dom/umd/react-dom.production.min.js",
    ),
    (
        "dash/deps/prop-types@15.8.1.min.js",
        "prop-types/prop-types.min.js",
    ),
    // dcc's Graph loads plotly.js on demand from exactly this URL when serving locally.
    (
        "plotly/package_data/plotly.min.js",
        "plotly.js-dist-min/plotly.min.js",
    ),
];

/// The scripts of the index page, in Dash's order (app asset scripts go before the renderer).
const PRELUDE_SCRIPTS: &[&str] = &[
    "dash/deps/polyfill@7.12.1.min.js",
    "dash/deps/react@18.3.1.min.js",
    "dash/deps/react-dom@18.3.1.min.js",
    "dash/deps/prop-types@15.8.1.min.js",
];
/// The renderer's SharedWorker for WebSocket callbacks (`config.websocket.worker_url`).
const WS_WORKER_SCRIPT: &str = "dash/dash-renderer/build/dash-ws-worker.js";
const COMPONENT_SCRIPTS: &[&str] = &[
    "dash/dash-renderer/build/dash_renderer.min.js",
    "dash/dcc/dash_core_components.js",
    "dash/dcc/dash_core_components-shared.js",
    "dash/html/dash_html_components.min.js",
    "dash/dash_table/bundle.js",
];
/// The renderer as Dash serves it in debug mode, in place of the minified one: only this
/// build holds the dev tools' error pop-up, so an app's authors (`_dash-config` `ui`) get it.
const DEV_RENDERER: (&str, &str) = (
    "dash/dash-renderer/build/dash_renderer.min.js",
    "dash/dash-renderer/build/dash_renderer.dev.js",
);

/// Why the front end cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required file is missing: the npm packages are not installed.
    #[error(
        "the Dash front end is not installed: {0} is missing (run `npm ci` in admin-ui/, or set TESSERA_FRONTEND_DIR)"
    )]
    Missing(PathBuf),
}

/// A file to send.
#[derive(Debug)]
pub struct Asset {
    /// Its path on disk.
    pub path: PathBuf,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Whether the URL carried a fingerprint (then it may be cached forever).
    pub fingerprinted: bool,
}

/// The installed front end.
#[derive(Debug)]
pub struct Frontend {
    root: PathBuf,
    /// Fingerprint (`v…m…`) of each index-page script, by its Dash path.
    fingerprints: HashMap<&'static str, String>,
}

impl Frontend {
    /// Check that the pinned packages are installed under `root` and fingerprint the
    /// index page's scripts.
    pub fn open(root: &Path) -> Result<Self, Error> {
        let mut fingerprints = HashMap::new();
        let worker = [WS_WORKER_SCRIPT];
        for dash_path in PRELUDE_SCRIPTS
            .iter()
            .chain(COMPONENT_SCRIPTS)
            .chain(&worker)
            .chain([&DEV_RENDERER.1])
        {
            let file =
                resolve(root, dash_path).ok_or_else(|| Error::Missing(root.join(dash_path)))?;
            let bytes = std::fs::read(&file).map_err(|_| Error::Missing(file.clone()))?;
            let digest = Sha256::digest(&bytes);
            fingerprints.insert(
                *dash_path,
                format!(
                    "v{}m{}",
                    DASH_VERSION.replace('.', "_"),
                    &hex::encode(digest)[..12]
                ),
            );
        }
        let plotly = root.join("plotly.js-dist-min/plotly.min.js");
        if !plotly.is_file() {
            return Err(Error::Missing(plotly));
        }
        Ok(Self {
            root: root.to_path_buf(),
            fingerprints,
        })
    }

    /// URLs (relative to the app prefix) of the scripts before the app's own scripts.
    pub fn prelude_scripts(&self) -> Vec<String> {
        PRELUDE_SCRIPTS.iter().map(|p| self.url(p)).collect()
    }

    /// URLs (relative to the app prefix) of the renderer and component suites; with
    /// `dev_tools`, the renderer's development build (Dash's debug mode), whose dev tools
    /// show callback errors.
    pub fn component_scripts(&self, dev_tools: bool) -> Vec<String> {
        COMPONENT_SCRIPTS
            .iter()
            .map(|&p| match p {
                p if dev_tools && p == DEV_RENDERER.0 => self.url(DEV_RENDERER.1),
                p => self.url(p),
            })
            .collect()
    }

    /// URL (relative to the app prefix) of the renderer's WebSocket worker script.
    pub fn ws_worker_url(&self) -> String {
        self.url(WS_WORKER_SCRIPT)
    }

    fn url(&self, dash_path: &str) -> String {
        let fingerprint = self
            .fingerprints
            .get(dash_path)
            .map(String::as_str)
            .unwrap_or("v0m0");
        format!(
            "_dash-component-suites/{}",
            with_fingerprint(dash_path, fingerprint)
        )
    }

    /// The file behind `_dash-component-suites/{path}`, if it is one of ours.
    pub fn asset(&self, path: &str) -> Option<Asset> {
        let (clean, fingerprinted) = strip_fingerprint(path);
        let file = resolve(&self.root, &clean)?;
        if !file.is_file() {
            return None;
        }
        Some(Asset {
            content_type: content_type(&clean)?,
            path: file,
            fingerprinted,
        })
    }
}

/// Map a Dash path to a file of the installed packages, refusing anything that could
/// leave them (`..`, absolute paths, unknown prefixes).
fn resolve(root: &Path, dash_path: &str) -> Option<PathBuf> {
    if let Some((_, file)) = SINGLE_FILES.iter().find(|(url, _)| *url == dash_path) {
        return Some(root.join(file));
    }
    let (dir, rest) = PACKAGE_DIRS.iter().find_map(|(prefix, dir)| {
        Some((dir, dash_path.strip_prefix(prefix)?.strip_prefix('/')?))
    })?;
    let relative = Path::new(rest);
    let safe = !rest.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, PathComponent::Normal(_)));
    safe.then(|| root.join(dir).join(relative))
}

fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "js" => "application/javascript",
        "map" | "json" => "application/json",
        "css" => "text/css",
        "txt" => "text/plain; charset=utf-8",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => return None,
    })
}

/// `dash/dcc/x.js` + `v1m2` → `dash/dcc/x.v1m2.js`, as Dash names cacheable files.
fn with_fingerprint(path: &str, fingerprint: &str) -> String {
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    let (stem, extension) = file.split_once('.').unwrap_or((file, ""));
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    format!("{prefix}{stem}.{fingerprint}.{extension}")
}

/// Undo [`with_fingerprint`]: a second dot-separated part of the file name matching
/// `v[\w-]+m[0-9a-f]+` is a fingerprint.
fn strip_fingerprint(path: &str) -> (String, bool) {
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    let parts: Vec<&str> = file.split('.').collect();
    let is_fingerprint = |s: &str| {
        s.strip_prefix('v')
            .and_then(|rest| rest.rsplit_once('m'))
            .is_some_and(|(version, hash)| {
                !version.is_empty()
                    && version
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    && !hash.is_empty()
                    && hash.chars().all(|c| c.is_ascii_hexdigit())
            })
    };
    if parts.len() > 2 && is_fingerprint(parts[1]) {
        let mut kept = vec![parts[0]];
        kept.extend(&parts[2..]);
        let file = kept.join(".");
        let joined = if dir.is_empty() {
            file
        } else {
            format!("{dir}/{file}")
        };
        (joined, true)
    } else {
        (path.to_owned(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip() {
        let named = with_fingerprint("dash/deps/react@18.3.1.min.js", "v4_4_1m0abc");
        // Dash splits at the first dot too, so versioned names keep working.
        assert_eq!(named, "dash/deps/react@18.v4_4_1m0abc.3.1.min.js");
        assert_eq!(strip_fingerprint(&named).0, "dash/deps/react@18.3.1.min.js");
        let plain = with_fingerprint("dash/dcc/async-graph.js", "v1m2");
        assert_eq!(plain, "dash/dcc/async-graph.v1m2.js");
        assert_eq!(
            strip_fingerprint(&plain),
            ("dash/dcc/async-graph.js".to_owned(), true)
        );
        assert_eq!(
            strip_fingerprint("dash/dcc/async-graph.js"),
            ("dash/dcc/async-graph.js".to_owned(), false)
        );
    }

    #[test]
    fn paths_outside_the_packages_are_refused() {
        let root = Path::new("/srv/node_modules");
        for bad in [
            "dash/dcc/../../etc/passwd",
            "dash/dcc/",
            "other/x.js",
            "dash/dcc//etc/passwd",
            "/etc/passwd",
        ] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
        assert_eq!(
            resolve(root, "dash/dcc/async-graph.js"),
            Some(root.join("dash-core-components/dash_core_components/async-graph.js"))
        );
    }
}
