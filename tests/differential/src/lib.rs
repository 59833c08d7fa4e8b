//! Small apps written with Tessera's SDK, each the twin of one in `python/apps.py` written
//! with the real `dash` package. The differential test (`tests/it`) serves both the same
//! `_dash-update-component` bodies and compares what they answer.
//!
//! Every app here must stay a line-for-line translation of its Python twin: the point is
//! to catch where Tessera's protocol handling differs from Dash's, not to test the apps.

use sdk::{
    ALL, ALLSMALLER, App, Callback, ClientsideFunction, Figure, Input, MATCH, Output, Patch,
    PreventInitialCall, PreventUpdate, State, dcc, get_relative_path, html, no_update,
    strip_relative_path,
};
use serde_json::{Map, Value, json};

/// Every app by the name its Python twin is registered under.
pub fn apps() -> Vec<(&'static str, App)> {
    vec![
        ("multi_state", multi_state()),
        ("chained", chained()),
        ("prevent", prevent()),
        ("patterns", patterns()),
        ("context", context()),
        ("features", features()),
        ("shapes", shapes()),
    ]
}

/// Multiple outputs from several inputs and a state; a single output with state.
pub fn multi_state() -> App {
    App::new("multi_state")
        .layout(html::div().children((
            dcc::input().id("a").value(1),
            dcc::input().id("b").value(2),
            dcc::input().id("label").value("sum"),
            html::div().id("total"),
            dcc::input().id("half"),
            html::button().id("go"),
            dcc::input().id("name").value("Ada"),
            html::div().id("greeting"),
        )))
        .callback(
            [
                Output::new("total", "children"),
                Output::new("half", "value"),
            ],
            [Input::new("a", "value"), Input::new("b", "value")],
            State::new("label", "value"),
            |ctx| {
                let a: f64 = ctx.input("a")?;
                let b: f64 = ctx.input("b")?;
                let label: String = ctx.state("label")?;
                Ok(json!([
                    format!("{label}: {}", python_number(a + b)),
                    (a + b) / 2.0
                ]))
            },
        )
        .callback(
            Output::new("greeting", "children"),
            Input::new("go", "n_clicks"),
            State::new("name", "value"),
            |ctx| {
                let clicks: Option<u64> = ctx.input("go")?;
                let name: String = ctx.state("name")?;
                Ok(format!("Hello {name} ({} clicks)", clicks.unwrap_or(0)))
            },
        )
}

/// Python's `str` of a float: `3.0`, `2.5`.
fn python_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e16 {
        format!("{value:.1}")
    } else {
        value.to_string()
    }
}

/// A chain: country → city options → city value → a sentence from both.
pub fn chained() -> App {
    App::new("chained")
        .layout(html::div().children((
            dcc::radio_items().id("country").value("France"),
            dcc::radio_items().id("city"),
            html::div().id("display"),
        )))
        .callback(
            Output::new("city", "options"),
            Input::new("country", "value"),
            (),
            |ctx| {
                let country: String = ctx.input(0)?;
                Ok(cities(&country))
            },
        )
        .callback(
            Output::new("city", "value"),
            Input::new("city", "options"),
            (),
            |ctx| {
                let options: Vec<String> = ctx.input(0)?;
                Ok(options.first().cloned())
            },
        )
        .callback(
            Output::new("display", "children"),
            [Input::new("country", "value"), Input::new("city", "value")],
            (),
            |ctx| {
                let country: String = ctx.input(0)?;
                let city: Option<String> = ctx.input(1)?;
                Ok(format!(
                    "{} is in {country}",
                    city.unwrap_or_else(|| "None".into())
                ))
            },
        )
}

fn cities(country: &str) -> Vec<&'static str> {
    match country {
        "France" => vec!["Paris", "Lyon"],
        "Japan" => vec!["Tokyo", "Osaka", "Kyoto"],
        _ => vec![],
    }
}

/// `prevent_initial_call`, `PreventUpdate`, `no_update` (bare and per output), an
/// `allow_duplicate` output and a callback without outputs.
pub fn prevent() -> App {
    App::new("prevent")
        .layout(html::div().children((
            html::button().id("btn"),
            html::button().id("reset"),
            html::div().id("out"),
            html::div().id("x"),
            html::div().id("y"),
        )))
        .register(
            Callback::new(
                Output::new("out", "children"),
                Input::new("btn", "n_clicks"),
                (),
                |ctx| {
                    let Some(clicks) = ctx.input::<Option<u64>>(0)? else {
                        Err(PreventUpdate)?
                    };
                    if clicks % 3 == 0 {
                        return Ok(no_update());
                    }
                    Ok(json!(format!("clicked {clicks}")))
                },
            )
            .prevent_initial_call(true),
        )
        .callback(
            [Output::new("x", "children"), Output::new("y", "children")],
            Input::new("btn", "n_clicks"),
            (),
            |ctx| {
                let clicks: u64 = ctx.input::<Option<u64>>(0)?.unwrap_or(0);
                Ok(match clicks {
                    5 => json!([no_update(), no_update()]),
                    n if n % 2 == 0 => json!([no_update(), format!("y{n}")]),
                    _ => no_update(),
                })
            },
        )
        .register(
            Callback::new(
                Output::new("out", "children").allow_duplicate(),
                Input::new("reset", "n_clicks"),
                (),
                |_| Ok("reset"),
            )
            .prevent_initial_call(true),
        )
        .callback(
            (),
            Input::new("reset", "n_clicks"),
            State::new("out", "children"),
            |_| Ok(()),
        )
}

fn index_of(entry: &Value) -> Value {
    entry["id"]["index"].clone()
}

/// Pattern-matching ids: `MATCH` in and out, `ALL` in, `ALL` out with per-item
/// `no_update`, and `ALLSMALLER`.
pub fn patterns() -> App {
    let field = |index: u64| dcc::input().id(json!({"type": "f", "index": index}));
    App::new("patterns")
        .layout(html::div().children((
            field(0).value(1),
            field(1).value(2),
            field(2),
            dcc::input().id("scale").value(2),
            html::div().id("summary"),
        )))
        .callback(
            Output::new(json!({"type": "label", "index": MATCH}), "children"),
            Input::new(json!({"type": "f", "index": MATCH}), "value"),
            State::new(json!({"type": "f", "index": MATCH}), "id"),
            |ctx| {
                let value: Value = ctx.input(0)?;
                let id: Value = ctx.state(0)?;
                Ok(format!("{}: {}", id["index"], python_repr(&value)))
            },
        )
        .callback(
            Output::new("summary", "children"),
            Input::new(json!({"type": "f", "index": ALL}), "value"),
            (),
            |ctx| {
                let values: Vec<Option<f64>> = ctx.input(0)?;
                // A fold from +0.0: `sum()` of no f64 is -0.0, Python's is 0.0.
                let total = values.iter().flatten().fold(0.0, |sum, value| sum + value);
                Ok(format!(
                    "{} fields, total {}",
                    values.len(),
                    python_number(total)
                ))
            },
        )
        .callback(
            Output::new(json!({"type": "scaled", "index": ALL}), "children"),
            Input::new("scale", "value"),
            State::new(json!({"type": "f", "index": ALL}), "value"),
            |ctx| {
                let scale: f64 = ctx.input(0)?;
                let values: Vec<Option<f64>> = ctx.state(0)?;
                Ok(values
                    .into_iter()
                    .map(|value| value.map_or_else(no_update, |v| json!(v * scale)))
                    .collect::<Vec<_>>())
            },
        )
        .callback(
            Output::new(json!({"type": "running", "index": MATCH}), "children"),
            [
                Input::new(json!({"type": "f", "index": MATCH}), "value"),
                Input::new(json!({"type": "f", "index": ALLSMALLER}), "value"),
            ],
            (),
            |ctx| {
                let own: Option<f64> = ctx.input(0)?;
                let before: Vec<Option<f64>> = ctx.input(1)?;
                let sum = before.iter().flatten().fold(0.0, |sum, value| sum + value)
                    + own.unwrap_or(0.0);
                let indices: Vec<Value> = ctx.inputs_list()[1]
                    .as_array()
                    .map(|items| items.iter().map(index_of).collect())
                    .unwrap_or_default();
                Ok(json!({"after": indices, "sum": sum}))
            },
        )
}

/// Python's `repr` of a scalar JSON value, as the Python twin formats it.
fn python_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(text) => format!("'{text}'"),
        Value::Number(number) if number.is_f64() => {
            python_number(number.as_f64().unwrap_or_default())
        }
        other => other.to_string(),
    }
}

/// The callback context: `triggered_id`, `triggered_prop_ids` and the three lists.
pub fn context() -> App {
    App::new("context")
        .layout(html::div().children((
            html::button().id("b1"),
            html::button().id(json!({"type": "btn", "index": 1})),
            html::button().id(json!({"type": "btn", "index": 2})),
            dcc::input().id("s").value("state"),
            dcc::store().id("ctx"),
            dcc::store().id("ctx-multi"),
            dcc::store().id("other"),
        )))
        .callback(
            Output::new("ctx", "data"),
            [
                Input::new("b1", "n_clicks"),
                Input::new(json!({"type": "btn", "index": ALL}), "n_clicks"),
            ],
            State::new("s", "value"),
            |ctx| Ok(describe(ctx)),
        )
        .callback(
            [
                Output::new("ctx-multi", "data"),
                Output::new("other", "data"),
            ],
            Input::new(json!({"type": "btn", "index": ALL}), "n_clicks"),
            (),
            |ctx| Ok(json!([describe(ctx), ctx.triggered()])),
        )
}

fn describe(ctx: &sdk::Context<'_>) -> Value {
    let triggered_prop_ids: Map<String, Value> = ctx
        .triggered_prop_ids()
        .into_iter()
        .map(|(prop_id, id)| (prop_id.to_owned(), id))
        .collect();
    json!({
        "triggered_id": ctx.triggered_id(),
        "triggered_prop_ids": triggered_prop_ids,
        "inputs_list": ctx.inputs_list(),
        "states_list": ctx.states_list(),
        "outputs_list": ctx.outputs_list(),
    })
}

/// `set_props` side updates (from a callback with outputs and one without), `Patch`,
/// `on_error` per callback and app-wide, `running` on an ordinary callback and
/// `prevent_initial_call="initial_duplicate"`.
pub fn features() -> App {
    App::new("features")
        .on_error(|ctx, error| {
            ctx.set_props("log", json!({"children": format!("app: {error}")}))?;
            Ok(Value::Null)
        })
        .layout(html::div().children((
            html::button().id("save"),
            html::div().id("out"),
            html::div().id("status"),
            html::button().id("ping"),
            html::div().id("pinged"),
            html::button().id("fail"),
            html::div().id("result"),
            html::div().id("log"),
            html::div().children((
                html::button().id("fail2"),
                html::div().id("c2"),
                html::button().id("add"),
                dcc::store().id("doc"),
                html::button().id("go"),
                html::div().id("ran"),
                html::button().id("reset"),
            )),
        )))
        .callback(
            Output::new("out", "children"),
            Input::new("save", "n_clicks"),
            (),
            |ctx| {
                let clicks: Option<u64> = ctx.input(0)?;
                let clicks = clicks.unwrap_or(0);
                ctx.set_props("status", json!({"children": format!("saved {clicks}")}))?;
                ctx.set_props(json!({"type": "card", "index": 1}), json!({"title": "t"}))?;
                ctx.set_props("status", json!({"title": "merged"}))?;
                Ok(format!("out {clicks}"))
            },
        )
        .callback((), Input::new("ping", "n_clicks"), (), |ctx| {
            let clicks: Option<u64> = ctx.input(0)?;
            if let Some(clicks) = clicks {
                ctx.set_props("pinged", json!({"children": format!("ping {clicks}")}))?;
            }
            Ok(())
        })
        .register(
            Callback::new(
                [
                    Output::new("result", "children"),
                    Output::new("log", "children"),
                ],
                Input::new("fail", "n_clicks"),
                (),
                |ctx| {
                    let clicks: u64 = ctx.input::<Option<u64>>(0)?.unwrap_or(0);
                    if clicks % 2 == 1 {
                        return Err("boom".into());
                    }
                    Ok(json!(["ok", "fine"]))
                },
            )
            .on_error(|ctx, error| {
                ctx.set_props("status", json!({"children": "handled"}))?;
                Ok(json!([format!("failed: {error}"), no_update()]))
            }),
        )
        .callback(
            Output::new("c2", "children"),
            Input::new("fail2", "n_clicks"),
            (),
            |_| -> sdk::Result<Value> { Err("kaput".into()) },
        )
        .callback(
            Output::new("doc", "data"),
            Input::new("add", "n_clicks"),
            (),
            |ctx| {
                let clicks: u64 = ctx.input::<Option<u64>>(0)?.unwrap_or(0);
                let mut patch = Patch::new();
                patch.at("rows").append(clicks);
                patch.at("rows").prepend(0);
                patch.at("rows").insert(1, "x");
                patch.at("rows").extend([7, 8]);
                patch.at("rows").remove(2);
                patch.at("count").add(clicks);
                patch.at("total").sub(1);
                patch.at("scale").mul(2);
                patch.at("ratio").div(4);
                patch.at("meta").merge(json!({"by": "me"}));
                patch.delete("old");
                patch.at("rows").assign(0, "first");
                patch.at("tmp").clear();
                patch.at("order").reverse();
                Ok(patch)
            },
        )
        .register(
            Callback::new(
                Output::new("ran", "children"),
                Input::new("go", "n_clicks"),
                (),
                |ctx| {
                    let clicks: Option<u64> = ctx.input(0)?;
                    Ok(format!("ran {}", clicks.unwrap_or(0)))
                },
            )
            .running(Output::new("go", "disabled"), true, false),
        )
        .register(
            Callback::new(
                Output::new("out", "children").allow_duplicate(),
                Input::new("reset", "n_clicks"),
                (),
                |_| Ok("reset"),
            )
            .prevent_initial_call(PreventInitialCall::InitialDuplicate),
        )
}

/// Shapes the renderer may depend on: `"children": null`, options as written, an inline
/// clientside callback, relative paths, a figure with plotly's default template.
pub fn shapes() -> App {
    App::new("shapes")
        .layout(
            html::div().children((
                html::div().id("empty"),
                dcc::link().id("link").href("/page-2"),
                dcc::markdown().id("md"),
                dcc::dropdown()
                    .id("dd")
                    .options(["North", "South"])
                    .value("North"),
                dcc::checklist().id("nums").options([1.0, 2.5]),
                dcc::location().id("loc"),
                html::div().id("rel"),
                html::div().id("cs"),
                dcc::graph().id("chart"),
            )),
        )
        .clientside_callback(
            Output::new("cs", "children"),
            Input::new("dd", "value"),
            (),
            ClientsideFunction::inline("function(value) { return value; }"),
        )
        .callback(
            Output::new("rel", "children"),
            Input::new("loc", "pathname"),
            (),
            |ctx| {
                let pathname: Option<String> = ctx.input(0)?;
                Ok(json!([
                    get_relative_path("/page-2"),
                    strip_relative_path(pathname.as_deref())?
                ]))
            },
        )
        .callback(
            Output::new("chart", "figure"),
            Input::new("dd", "value"),
            (),
            |ctx| {
                let value: String = ctx.input(0)?;
                let mut plot = plotly::Plot::new();
                plot.add_trace(plotly::Bar::new(vec![value], vec![3]));
                Ok(Figure::from(plot))
            },
        )
}
