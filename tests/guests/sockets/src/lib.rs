//! A dashboard component that tries to open a network connection.
//!
//! Calling `std::net::TcpStream::connect` makes the Rust standard library for
//! wasm32-wasip2 import the `wasi:sockets` interfaces, which the sandbox never grants: the
//! host must refuse this component when it is loaded, before any callback runs.

wit_bindgen::generate!({
    path: "../../../wit/dashboard@0.1.0",
    world: "tessera:dashboard/dashboard",
});

use exports::tessera::dashboard::app::{AppInfo, CallbackError, Guest, Outcome};

struct Sockets;

impl Guest for Sockets {
    fn info() -> AppInfo {
        AppInfo {
            title: "sockets".to_string(),
            sdk_version: "guest-sockets".to_string(),
        }
    }

    fn layout() -> String {
        r#"{"type":"Div","namespace":"dash_html_components","props":{"children":"sockets"}}"#
            .to_string()
    }

    fn dependencies() -> String {
        "[]".to_string()
    }

    fn run_callback(_id: String, _request: String) -> Result<Outcome, CallbackError> {
        // The address is the loopback one on purpose: the sandbox must refuse the component
        // long before this line could run, and no test may send traffic off the machine.
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => Ok(Outcome::Outputs(r#"["connected"]"#.to_string())),
            Err(e) => Err(CallbackError::Failed(format!("connect failed: {e}"))),
        }
    }
}

export!(Sockets);
