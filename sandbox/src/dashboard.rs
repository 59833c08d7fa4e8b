//! What serves one app version: a dashboard [`Component`], or a Python app restored from
//! its memory image ([`PythonApp`]). The platform holds a [`Dashboard`] and asks it for the
//! same things whatever the kind; this is the one place that tells the kinds apart.

use crate::component::{AppInfo, CallOptions, CallOutput, Component};
use crate::error::CallFailure;
use crate::python::PythonApp;
use std::sync::Arc;

/// A loaded app version of either kind. Cheap to clone.
#[derive(Clone)]
pub enum Dashboard {
    /// A WebAssembly component of the `tessera:dashboard` world.
    Component(Component),
    /// A Python `app.py` on the shared interpreter.
    Python(Arc<PythonApp>),
}

impl From<Component> for Dashboard {
    fn from(component: Component) -> Dashboard {
        Dashboard::Component(component)
    }
}

impl Dashboard {
    /// The app's title and build facts.
    pub fn info(&self) -> &AppInfo {
        match self {
            Dashboard::Component(component) => component.info(),
            Dashboard::Python(app) => app.info(),
        }
    }

    /// The layout, a JSON component tree.
    pub fn layout_json(&self) -> &str {
        match self {
            Dashboard::Component(component) => component.layout_json(),
            Dashboard::Python(app) => app.layout_json(),
        }
    }

    /// The callback dependencies, a JSON array.
    pub fn dependencies_json(&self) -> &str {
        match self {
            Dashboard::Component(component) => component.dependencies_json(),
            Dashboard::Python(app) => app.dependencies_json(),
        }
    }

    /// Whether its calls can learn who is viewing (a Python app can: `tessera.viewer()`,
    /// and its data sources may filter by viewer).
    pub fn sees_viewer(&self) -> bool {
        match self {
            Dashboard::Component(component) => component.sees_viewer(),
            Dashboard::Python(_) => true,
        }
    }

    /// Whether it can send HTTP requests at all (a Python app can: `tessera.fetch`).
    pub fn sends_http(&self) -> bool {
        match self {
            Dashboard::Component(component) => component.sends_http(),
            Dashboard::Python(_) => true,
        }
    }

    /// The host work that follows a heavy app's call runs where long calls run
    /// ([`Component::long_work_if_heavy`]).
    pub fn long_work_if_heavy(&self) -> Option<crate::LongWorkScope> {
        match self {
            Dashboard::Component(component) => component.long_work_if_heavy(),
            Dashboard::Python(app) => app.long_work_if_heavy(),
        }
    }

    /// The component, when it is one.
    pub fn as_component(&self) -> Option<&Component> {
        match self {
            Dashboard::Component(component) => Some(component),
            Dashboard::Python(_) => None,
        }
    }

    /// Runs the callback `callback_id` on `request_json`. Blocking.
    pub fn call(&self, callback_id: &str, request_json: &str) -> Result<CallOutput, CallFailure> {
        self.call_with(callback_id, request_json, CallOptions::default())
    }

    /// Runs the callback with [`CallOptions`]. Blocking.
    pub fn call_with(
        &self,
        callback_id: &str,
        request_json: &str,
        options: CallOptions,
    ) -> Result<CallOutput, CallFailure> {
        match self {
            Dashboard::Component(component) => {
                component.call_with(callback_id, request_json, options)
            }
            Dashboard::Python(app) => app.call_with(callback_id, request_json, options),
        }
    }
}
