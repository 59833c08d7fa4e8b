//! {title}: a Tessera dashboard. Edit, commit and `git push`; the server builds it.

use sdk::{App, Input, Output, dcc, html};

pub fn app() -> App {
    App::new("{title}")
        .layout(html::div().children((
            html::h1().children("{title}"),
            dcc::input().id("name").value("world"),
            html::div().id("greeting"),
        )))
        .callback(
            Output::new("greeting", "children"),
            Input::new("name", "value"),
            (),
            |ctx| {
                let name: Option<String> = ctx.input("name")?;
                Ok(format!("Hello, {}!", name.unwrap_or_default()))
            },
        )
}

sdk::export_app!(app);
