//! The smallest Tessera dashboard: type a name, get a greeting.
//!
//! It shows the whole authoring loop in a dozen lines: a layout, one callback, the
//! component export, and a native unit test of the callback. It has no data and no state;
//! its one setting, `GREETING`, shows how an app reads configuration its authors set on
//! the platform (`tessera apps settings set demo/hello GREETING=Bonjour`).

use sdk::{App, Input, Output, dcc, html};

/// Build the app: a heading, a text field `name` and a `greeting` that follows it.
pub fn app() -> App {
    App::new("Hello")
        .layout(html::div().children((
            html::h1().children("Hello"),
            dcc::input().id("name").value("world"),
            html::div().id("greeting"),
        )))
        .callback(
            Output::new("greeting", "children"),
            Input::new("name", "value"),
            (),
            |ctx| {
                // A cleared field arrives as null; greet nobody rather than fail.
                let name: Option<String> = ctx.input("name")?;
                let name = name.unwrap_or_default();
                Ok(match sdk::settings::get("GREETING") {
                    Some(greeting) => format!("{greeting}, {name}!"),
                    None => format!("Hello, {name}!"),
                })
            },
        )
}

sdk::export_app!(app);

#[cfg(test)]
mod tests {
    use super::*;
    use sdk::{CallbackError, Outcome};
    use serde_json::json;

    fn greet(value: serde_json::Value) -> Result<Outcome, CallbackError> {
        let request = json!({
            "outputs": [{"id": "greeting", "property": "children"}],
            "inputs": [{"id": "name", "property": "value", "value": value}],
            "changed_prop_ids": ["name.value"],
        });
        app().run_callback("greeting.children", &request.to_string())
    }

    #[test]
    fn greets_the_name() {
        assert_eq!(
            greet(json!("world")),
            Ok(Outcome::Outputs(r#"["Hello, world!"]"#.into()))
        );
    }

    #[test]
    fn cleared_name_greets_nobody() {
        assert_eq!(
            greet(serde_json::Value::Null),
            Ok(Outcome::Outputs(r#"["Hello, !"]"#.into()))
        );
    }

    #[test]
    fn number_instead_of_text_is_invalid_input() {
        assert!(
            matches!(greet(json!(7)), Err(CallbackError::InvalidInput(m)) if m.contains("name.value"))
        );
    }

    #[test]
    fn layout_has_the_three_components() {
        let layout: serde_json::Value =
            serde_json::from_str(&app().layout_json()).expect("layout is JSON");
        assert_eq!(layout["type"], "Div");
        let children = layout["props"]["children"]
            .as_array()
            .expect("the root has a list of children");
        assert_eq!(children[0]["props"]["children"], "Hello");
        assert_eq!(
            children[1]["props"],
            json!({"id": "name", "value": "world"})
        );
        assert_eq!(
            children[2]["props"],
            json!({"children": null, "id": "greeting"})
        );
        assert_eq!(app().info().title, "Hello");
    }
}
