//! An app's `assets/` folder: which files may travel with a deploy, how they are named,
//! typed and ordered on the index page the way Dash orders them.
//!
//! Rules only: reading a folder from disk for the CLI and the demo is the one I/O here;
//! storing is the store's job and serving is `http::dash`'s.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Largest single asset file.
pub const MAX_FILE_BYTES: usize = 2 << 20;
/// Largest total of an app version's assets.
pub const MAX_TOTAL_BYTES: usize = 16 << 20;
/// Most files one version may carry.
pub const MAX_FILES: usize = 256;
/// Longest asset path.
pub const MAX_PATH_CHARS: usize = 200;

/// Extensions an asset may have and the content type each is served with.
const TYPES: &[(&str, &str)] = &[
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("map", "application/json"),
    ("json", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("ico", "image/x-icon"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("svg", "image/svg+xml"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
];

/// Why a set of assets was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A path that is not a plain relative path of allowed characters.
    #[error(
        "asset path {0:?} is not allowed: use relative paths of letters, digits, '-', '_' and '.', without '..' or hidden files"
    )]
    BadPath(String),
    /// An extension outside the allowed list.
    #[error(
        "asset {0:?} has an extension that is not served (allowed: css, js, mjs, map, json, txt, ico, png, jpg, jpeg, gif, svg, webp, woff, woff2, ttf)"
    )]
    BadExtension(String),
    /// One file is too large.
    #[error("asset {path:?} is {size} bytes, more than the {MAX_FILE_BYTES}-byte maximum")]
    FileTooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: usize,
    },
    /// All files together are too large, or too many.
    #[error(
        "the assets are {files} files and {bytes} bytes, more than {MAX_FILES} files or {MAX_TOTAL_BYTES} bytes"
    )]
    TooMuch {
        /// How many files.
        files: usize,
        /// How many bytes.
        bytes: usize,
    },
    /// The same path twice.
    #[error("asset {0:?} is given twice")]
    Duplicate(String),
    /// Reading the folder failed.
    #[error("cannot read the assets folder: {0}")]
    Io(String),
}

/// One asset file about to be deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetFile {
    /// Path inside `assets/`, `/`-separated (`css/site.css`).
    pub path: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// What is known about a stored asset without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetMeta {
    /// Path inside `assets/`.
    pub path: String,
    /// Hex sha256 of the bytes; its first characters fingerprint the URL.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
}

impl AssetMeta {
    /// The URL of the asset under the app prefix, fingerprinted (`?m=`) like Dash's
    /// `?m=<mtime>` so browsers may cache it for good.
    pub fn url(&self, prefix: &str) -> String {
        format!("{prefix}assets/{}?m={}", self.path, self.fingerprint())
    }

    /// The fingerprint in the URL.
    pub fn fingerprint(&self) -> &str {
        self.sha256.get(..16).unwrap_or(&self.sha256)
    }
}

/// Hex sha256 of an asset's bytes.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The content type an asset path is served with, or `None` if its extension is not
/// allowed.
pub fn content_type(path: &str) -> Option<&'static str> {
    let (_, extension) = path.rsplit_once('.')?;
    let extension = extension.to_ascii_lowercase();
    TYPES
        .iter()
        .find(|(ext, _)| *ext == extension)
        .map(|(_, content_type)| *content_type)
}

/// Check one asset path: relative, `/`-separated segments of `[A-Za-z0-9._-]`, none empty
/// or starting with a dot (so no `..` and no hidden files), with an allowed extension.
pub fn check_path(path: &str) -> Result<(), Error> {
    let segment_ok = |segment: &str| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if path.len() > MAX_PATH_CHARS || !path.split('/').all(segment_ok) {
        return Err(Error::BadPath(path.to_owned()));
    }
    if content_type(path).is_none() {
        return Err(Error::BadExtension(path.to_owned()));
    }
    Ok(())
}

/// Check a whole set: every path, sizes, count, no duplicates.
pub fn check(files: &[AssetFile]) -> Result<(), Error> {
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0usize;
    for file in files {
        check_path(&file.path)?;
        if file.bytes.len() > MAX_FILE_BYTES {
            return Err(Error::FileTooLarge {
                path: file.path.clone(),
                size: file.bytes.len(),
            });
        }
        if !seen.insert(file.path.as_str()) {
            return Err(Error::Duplicate(file.path.clone()));
        }
        total = total.saturating_add(file.bytes.len());
    }
    if files.len() > MAX_FILES || total > MAX_TOTAL_BYTES {
        return Err(Error::TooMuch {
            files: files.len(),
            bytes: total,
        });
    }
    Ok(())
}

/// What a folder of assets is read within: [`check`]'s limits (reading stops past them).
pub const BUDGET: crate::deploy::tree::Budget = crate::deploy::tree::Budget {
    each: MAX_FILE_BYTES as u64,
    total: MAX_TOTAL_BYTES as u64,
    files: MAX_FILES,
};

/// Read every file under `dir` (recursively) as assets, refusing anything [`check`]
/// refuses.
pub fn read_dir(dir: &Path) -> Result<Vec<AssetFile>, Error> {
    // Through the tree reader: a symbolic link anywhere inside is refused, naming it.
    let files = crate::deploy::tree::read_dir(dir, ".", BUDGET).map_err(|e| match e {
        crate::deploy::tree::Error::TooLarge { path, size, .. } => Error::FileTooLarge {
            path,
            size: usize::try_from(size).unwrap_or(usize::MAX),
        },
        other => Error::Io(other.to_string()),
    })?;
    let files: Vec<AssetFile> = files
        .into_iter()
        .map(|(path, bytes)| AssetFile { path, bytes })
        .collect();
    check(&files)?;
    Ok(files)
}

/// What the index page includes, in Dash's order: stylesheets and scripts sorted by
/// folder, then by file name (Dash walks `sorted(os.walk(assets))` and sorts each
/// folder's files), and `favicon.ico` at the top of the folder as the icon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexAssets<'a> {
    /// `.css` files, for `<link rel="stylesheet">` in the head.
    pub css: Vec<&'a AssetMeta>,
    /// `.js` files, for `<script>` before the renderer.
    pub js: Vec<&'a AssetMeta>,
    /// The favicon.
    pub favicon: Option<&'a AssetMeta>,
}

/// Sort and pick the assets the index page includes.
pub fn index_assets(assets: &[AssetMeta]) -> IndexAssets<'_> {
    let mut sorted: Vec<&AssetMeta> = assets.iter().collect();
    let key = |meta: &AssetMeta| -> (String, String) {
        match meta.path.rsplit_once('/') {
            Some((folder, file)) => (format!("/{folder}"), file.to_owned()),
            None => (String::new(), meta.path.clone()),
        }
    };
    sorted.sort_by_key(|meta| key(meta));
    let mut index = IndexAssets::default();
    for meta in sorted {
        // Dash tests `f.endswith("js")` / `"css"`; the extension check is stricter.
        if meta.path.ends_with(".js") {
            index.js.push(meta);
        } else if meta.path.ends_with(".css") {
            index.css.push(meta);
        } else if meta.path == "favicon.ico" {
            index.favicon = Some(meta);
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str) -> AssetMeta {
        AssetMeta {
            path: path.to_owned(),
            sha256: sha256(path.as_bytes()),
            size: 1,
        }
    }

    #[test]
    fn paths_that_leave_the_folder_or_hide_are_refused() {
        for bad in [
            "../x.css",
            "a/../x.css",
            "/x.css",
            "a//x.css",
            ".hidden.css",
            "a/.x/y.css",
            "x y.css",
            "a\\b.css",
            "",
            "x.css/",
        ] {
            assert_eq!(
                check_path(bad),
                Err(Error::BadPath(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(
            check_path("x.exe"),
            Err(Error::BadExtension("x.exe".into()))
        );
        assert_eq!(
            check_path("noext"),
            Err(Error::BadExtension("noext".into()))
        );
        assert_eq!(check_path("css/site.min.css"), Ok(()));
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("a/b.CSS"), Some("text/css; charset=utf-8"));
        assert_eq!(
            content_type("app.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(content_type("favicon.ico"), Some("image/x-icon"));
        assert_eq!(content_type("x.html"), None);
    }

    #[test]
    fn sizes_counts_and_duplicates_are_limited() {
        let big = AssetFile {
            path: "big.js".into(),
            bytes: vec![0; MAX_FILE_BYTES + 1],
        };
        assert!(matches!(check(&[big]), Err(Error::FileTooLarge { .. })));
        let one = AssetFile {
            path: "a.css".into(),
            bytes: vec![1],
        };
        assert_eq!(
            check(&[one.clone(), one]),
            Err(Error::Duplicate("a.css".into()))
        );
        let many: Vec<AssetFile> = (0..=MAX_FILES)
            .map(|i| AssetFile {
                path: format!("f{i}.css"),
                bytes: vec![],
            })
            .collect();
        assert!(matches!(check(&many), Err(Error::TooMuch { .. })));
    }

    #[test]
    fn index_order_is_dash_order_folder_then_file() {
        let assets = [
            meta("z.css"),
            meta("sub/a.css"),
            meta("a.css"),
            meta("b.js"),
            meta("favicon.ico"),
            meta("img/logo.png"),
            meta("sub/deeper/c.js"),
            meta("a.js"),
        ];
        let index = index_assets(&assets);
        let paths =
            |list: &[&AssetMeta]| -> Vec<String> { list.iter().map(|m| m.path.clone()).collect() };
        assert_eq!(paths(&index.css), ["a.css", "z.css", "sub/a.css"]);
        assert_eq!(paths(&index.js), ["a.js", "b.js", "sub/deeper/c.js"]);
        assert_eq!(index.favicon.map(|m| m.path.as_str()), Some("favicon.ico"));
        assert!(
            index.css[0]
                .url("/apps/t/a/")
                .starts_with("/apps/t/a/assets/a.css?m=")
        );
    }
}
