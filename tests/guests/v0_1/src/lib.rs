//! A dashboard component built for `tessera:dashboard@0.1.0` with bindings generated
//! straight from that WIT (not through the SDK, which follows the newest version): the
//! sandbox tests load it beside a 0.2.0 component to show that a component built before
//! 0.2.0 keeps working unchanged.

wit_bindgen::generate!({
    path: "../../../wit/dashboard@0.1.0",
    world: "tessera:dashboard/dashboard",
});

use exports::tessera::dashboard::app::{AppInfo, CallbackError, Guest, Outcome};
use tessera::dashboard::host::{self, Level};

struct V01;

impl Guest for V01 {
    fn info() -> AppInfo {
        AppInfo {
            title: "built for 0.1.0".to_string(),
            sdk_version: "guest-v0-1".to_string(),
        }
    }

    fn layout() -> String {
        r#"{"type":"Div","namespace":"dash_html_components","props":{"id":"root","children":"0.1.0"}}"#
            .to_string()
    }

    fn dependencies() -> String {
        r#"[{"output":"hello.children","inputs":[{"id":"go","property":"n_clicks"}],"state":[],"clientside_function":null,"prevent_initial_call":true,"background":null,"dynamic_creator":false,"no_output":false,"optional":false,"hidden":null,"websocket":false,"persistent":false}]"#
            .to_string()
    }

    fn run_callback(id: String, _request: String) -> Result<Outcome, CallbackError> {
        match id.as_str() {
            "hello.children" => {
                host::log(Level::Info, "hello from a 0.1.0 component");
                let region = host::setting("REGION").unwrap_or_else(|| "none".to_string());
                Ok(Outcome::Outputs(format!(
                    r#"["hello from 0.1.0, region {region}"]"#
                )))
            }
            other => Err(CallbackError::Failed(format!("unknown callback {other}"))),
        }
    }
}

export!(V01);
