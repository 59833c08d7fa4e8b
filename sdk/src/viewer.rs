//! Who is viewing: the signed-in person whose request runs the callback, so that an app
//! can show each viewer what they may see (or pass their id to a query as a parameter).
//!
//! A memoized callback cannot ask: its answer is shared between viewers, so [`viewer`]
//! answers an error there. Natively (`cargo test` of an app) there is no request to ask
//! about, and [`viewer`] answers an error saying so.

use std::fmt;

/// The signed-in viewer of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The platform's id of the user.
    pub user_id: String,
    /// Their email address, if the platform knows one.
    pub email: Option<String>,
    /// The names of their groups (the tenant's teams), sorted.
    pub groups: Vec<String>,
}

impl Viewer {
    /// Whether the viewer belongs to `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Why the viewer cannot be known (a memoized callback; a native build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerError(pub String);

impl fmt::Display for ViewerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "viewer: {}", self.0)
    }
}

impl std::error::Error for ViewerError {}

/// What [`viewer`] answers outside Tessera.
pub const NATIVE_NO_VIEWER: &str =
    "the viewer is only known inside Tessera (this is a native build)";

/// The viewer of the request running this callback; `None` for an anonymous viewer of a
/// public app, or outside a request.
///
/// # Errors
///
/// In a memoized callback, and natively.
pub fn viewer() -> Result<Option<Viewer>, ViewerError> {
    #[cfg(target_arch = "wasm32")]
    return crate::export::viewer().map_err(ViewerError);
    #[cfg(not(target_arch = "wasm32"))]
    return Err(ViewerError(NATIVE_NO_VIEWER.to_owned()));
}
