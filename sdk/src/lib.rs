//! Write Tessera dashboards in Rust.
//!
//! A dashboard is an [`App`]: a title, a layout (a tree of [`Component`]s built with the
//! [`html`] and [`dcc`] modules) and callbacks that turn input values into output values.
//! The crate speaks Dash's own JSON shapes, so the stock Dash front end renders whatever
//! an app produces, and it compiles both to `wasm32-wasip2` (where [`export_app!`] turns the
//! app into a component of the `tessera:dashboard` world) and natively (where authors
//! unit-test callbacks with plain `cargo test` through [`App::run_callback`]).
//!
//! ```
//! use sdk::{App, Input, Output, dcc, html};
//!
//! fn app() -> App {
//!     App::new("Hello")
//!         .layout(html::div().children(vec![
//!             dcc::input().id("name").value("world").into(),
//!             html::div().id("greeting"),
//!         ]))
//!         .callback(
//!             Output::new("greeting", "children"),
//!             Input::new("name", "value"),
//!             (),
//!             |ctx| {
//!                 let name: String = ctx.input(0)?;
//!                 Ok(format!("Hello, {name}!"))
//!             },
//!         )
//! }
//!
//! sdk::export_app!(app);
//! # fn main() {
//! #     let outcome = app().run_callback(
//! #         "greeting.children",
//! #         r#"{"inputs": [{"id": "name", "property": "value", "value": "you"}]}"#,
//! #     );
//! #     assert_eq!(outcome, Ok(sdk::Outcome::Outputs(r#"["Hello, you!"]"#.into())));
//! # }
//! ```
//!
//! The crate never touches the network, the environment or the host file system on its
//! own: on wasm everything goes through the imports of the WIT world
//! (`tessera:dashboard@0.2.0`: `host`, `data`, `cache`, and `wasi:http` for [`http`]), and
//! the native stand-ins in [`log`], [`data`], [`settings`] and [`cache`] exist only so
//! tests behave alike; [`sql`], [`viewer()`] and [`http`] answer a clear "only inside
//! Tessera" error natively.

#![deny(missing_docs)]

mod app;
pub mod cache;
mod callback;
pub mod clientside;
mod component;
pub mod dash_table;
pub mod data;
pub mod dcc;
mod error;
#[cfg(target_arch = "wasm32")]
mod export;
pub mod figure;
#[cfg(feature = "frame")]
pub mod frame;
pub mod html;
pub mod http;
pub mod id;
pub mod log;
pub mod pages;
pub mod patch;
pub mod paths;
mod progress;
pub mod settings;
pub mod sql;
mod stream;
pub mod table;
pub mod viewer;

pub use app::{App, Callback, Info, Outcome, PreventInitialCall};
pub use callback::{Context, Dependencies, Input, Key, Output, State, Update, no_update};
pub use clientside::ClientsideFunction;
pub use component::{Component, IntoChildren, component};
pub use error::{CallbackError, Error, PreventUpdate, Result};
pub use figure::Figure;
pub use id::{ALL, ALLSMALLER, Id, MATCH, Wildcard};
pub use patch::Patch;
pub use paths::{get_relative_path, strip_relative_path};
pub use sql::query;
pub use viewer::{Viewer, viewer};

/// The version of this crate, reported to the platform through [`App::info`].
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Implementation details used by [`export_app!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    #[cfg(target_arch = "wasm32")]
    pub use crate::export::*;
}

/// Export an [`App`] as the `tessera:dashboard/app` interface of a component.
///
/// Pass the path of a function `fn() -> App`. The app is built once per component
/// instance, on the first call from the platform, and kept for the instance's lifetime.
/// On targets other than `wasm32` the macro expands to nothing, so the same crate builds
/// natively for unit tests.
///
/// ```ignore
/// fn app() -> sdk::App { sdk::App::new("Hello") }
/// sdk::export_app!(app);
/// ```
#[macro_export]
macro_rules! export_app {
    ($build:path) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static APP: ::std::sync::OnceLock<$crate::App> = ::std::sync::OnceLock::new();

            struct TesseraApp;

            impl $crate::__private::Guest for TesseraApp {
                fn info() -> $crate::__private::WitInfo {
                    $crate::__private::info(APP.get_or_init($build))
                }

                fn layout() -> ::std::string::String {
                    APP.get_or_init($build).layout_json()
                }

                fn dependencies() -> ::std::string::String {
                    APP.get_or_init($build).dependencies_json()
                }

                fn run_callback(
                    id: ::std::string::String,
                    request: ::std::string::String,
                ) -> ::std::result::Result<
                    $crate::__private::WitOutcome,
                    $crate::__private::WitCallbackError,
                > {
                    $crate::__private::run_callback(APP.get_or_init($build), &id, &request)
                }
            }

            $crate::__private::bindings::export!(
                TesseraApp with_types_in $crate::__private::bindings
            );
        };
    };
}
