//! The dashboard as a whole: title, layout and callbacks, and the four entry points the
//! platform calls.
//!
//! [`App`] is plain Rust with no wasm in it: the component export forwards to
//! [`App::info`], [`App::layout_json`], [`App::dependencies_json`] and
//! [`App::run_callback`], and native tests and benchmarks call the same methods directly.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

use sha2::{Digest, Sha256};

use crate::callback::{
    Context, Dependencies, Entry, Input, Output, Request, Slot, State, is_no_update,
};
use crate::clientside::ClientsideFunction;
use crate::component::Component;
use crate::error::{CallbackError, Error, Result};
use crate::html;
use crate::id::Id;
use crate::pages::Pages;

/// The dependency key that carries an inline clientside function's source from the
/// component to the platform (which removes it before serving `_dash-dependencies`).
pub const INLINE_SOURCE_KEY: &str = "tessera_inline_source";

/// The layout key that carries the layouts of a multi-page app's pages from the component to
/// the platform, which removes it from `_dash-layout` and sends Dash's `validation_layout`
/// (these pages and the layout) in the index page's `_dash-config`, so the renderer finds
/// the ids of every page's callbacks as Dash's `use_pages` lets it.
pub const PAGE_LAYOUTS_KEY: &str = "tessera_page_layouts";

/// The layout key that carries Dash's app-wide `websocket_callbacks=True` from the
/// component to the platform, which removes it from `_dash-layout` and says so in
/// `_dash-config`.
pub const WEBSOCKET_CALLBACKS_KEY: &str = "tessera_websocket_callbacks";

/// The boxed form of a handler: JSON in through the context, one JSON value out.
type Handler = Box<dyn Fn(&Context<'_>) -> Result<Value> + Send + Sync>;

/// The boxed form of an error handler: the context and the handler's error in, the
/// replacement value out.
type ErrorHandler = Box<dyn Fn(&Context<'_>, &Error) -> Result<Value> + Send + Sync>;

/// When a callback runs on page load (Dash's `prevent_initial_call`). `bool` converts:
/// `true` is [`PreventInitialCall::Yes`], `false` [`PreventInitialCall::No`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreventInitialCall {
    /// Run on page load too.
    #[default]
    No,
    /// Run only when an input changes.
    Yes,
    /// Run on page load (Dash's `"initial_duplicate"`), and let its outputs say
    /// [`Output::allow_duplicate`] all the same.
    InitialDuplicate,
}

impl From<bool> for PreventInitialCall {
    fn from(prevent: bool) -> Self {
        if prevent {
            PreventInitialCall::Yes
        } else {
            PreventInitialCall::No
        }
    }
}

/// A callback: outputs computed from inputs (and state) by a handler.
///
/// [`App::callback`] covers the usual case; build a `Callback` and pass it to
/// [`App::register`] to set options such as [`Callback::prevent_initial_call`].
pub struct Callback {
    outputs: Vec<Output>,
    inputs: Vec<Input>,
    state: Vec<State>,
    multi: bool,
    prevent_initial_call: PreventInitialCall,
    /// `(output, value while running, value afterwards)` (Dash's `running=`): the renderer
    /// applies them around the request, for ordinary and background callbacks alike.
    running: Vec<(Output, Value, Value)>,
    /// Replaces the outputs when the handler fails (Dash's `on_error`).
    on_error: Option<ErrorHandler>,
    /// Hidden from Dash's dev tools callback graph (Dash's `hidden=True`).
    hidden: bool,
    /// Set for a callback the browser runs; its handler is then never called.
    clientside: Option<ClientsideFunction>,
    background: Option<Background>,
    /// Set by [`Callback::memoize`]: how long the platform keeps an answer.
    memoize: Option<std::time::Duration>,
    /// The renderer sends it over the page's WebSocket (Dash's `websocket=True`).
    websocket: bool,
    /// The page shows no "Updating..." title while it runs (Dash's `persistent=True`).
    persistent: bool,
    handler: Handler,
}

/// What makes a callback a background callback (Dash's `background=True`): it runs as a
/// job on the platform while the renderer polls every `interval_ms`.
#[derive(Clone, Debug, Default)]
struct Background {
    interval_ms: u64,
    progress: Vec<Output>,
    progress_default: Option<Vec<Value>>,
    cancel: Vec<Input>,
}

/// The Tessera-only key of a dependency entry that tells the platform a background
/// callback's progress outputs and cancel inputs. The platform removes it before serving
/// `_dash-dependencies`, which then reads exactly as Dash's.
pub const BACKGROUND_KEY: &str = "tessera_background";

/// The Tessera-only key of a dependency entry that marks a memoized callback,
/// `{"ttl_ms": N}`. The platform removes it before serving `_dash-dependencies`.
pub const MEMOIZE_KEY: &str = "tessera_memoize";

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("id", &self.id())
            .field("inputs", &self.inputs)
            .field("state", &self.state)
            .field("prevent_initial_call", &self.prevent_initial_call)
            .finish_non_exhaustive()
    }
}

impl Callback {
    /// A callback writing `outputs` from `inputs` and `state` through `handler`.
    ///
    /// With a single [`Output`] the handler returns the value itself; with a `Vec` or
    /// array of outputs it returns a list (a `Vec`, an array or a tuple), one value per
    /// output, or [`no_update`](crate::no_update) to leave them all. Anything
    /// `serde::Serialize` will do, including a [`Figure`](crate::Figure).
    pub fn new<T, F>(
        outputs: impl Dependencies<Output>,
        inputs: impl Dependencies<Input>,
        state: impl Dependencies<State>,
        handler: F,
    ) -> Self
    where
        T: Serialize,
        F: Fn(&Context<'_>) -> Result<T> + Send + Sync + 'static,
    {
        let multi = !outputs.is_single();
        Callback {
            outputs: outputs.into_list(),
            inputs: inputs.into_list(),
            state: state.into_list(),
            multi,
            prevent_initial_call: PreventInitialCall::No,
            running: Vec::new(),
            on_error: None,
            hidden: false,
            clientside: None,
            background: None,
            memoize: None,
            websocket: false,
            persistent: false,
            handler: Box::new(move |ctx| {
                let value = handler(ctx)?;
                serde_json::to_value(value).map_err(|error| {
                    Error::Failed(format!(
                        "callback `{}` returned a value that is not JSON: {error}",
                        ctx.callback_id()
                    ))
                })
            }),
        }
    }

    /// A clientside callback: the browser runs `function` (Dash's `clientside_callback`)
    /// and the platform refuses to run it on the server.
    ///
    /// With a single [`Output`] the function returns the value itself; with a list it
    /// returns an array. `window.dash_clientside.no_update` and
    /// `window.dash_clientside.PreventUpdate` work as in Dash.
    pub fn clientside(
        outputs: impl Dependencies<Output>,
        inputs: impl Dependencies<Input>,
        state: impl Dependencies<State>,
        function: ClientsideFunction,
    ) -> Self {
        let mut callback = Callback::new(outputs, inputs, state, |ctx| -> Result<Value> {
            Err(Error::InvalidInput(format!(
                "callback `{}` is a clientside callback: the browser runs it, not the server",
                ctx.callback_id()
            )))
        });
        callback.clientside = Some(function);
        callback
    }

    /// Hide the callback from Dash's dev tools callback graph, as Dash does for its own
    /// page-routing callbacks.
    pub fn hidden(mut self, hidden: bool) -> Self {
        self.hidden = hidden;
        self
    }

    /// The JavaScript function, for a clientside callback.
    pub fn clientside_function(&self) -> Option<&ClientsideFunction> {
        self.clientside.as_ref()
    }

    /// Do not run the callback when the page loads, only when an input changes: `true`,
    /// or a [`PreventInitialCall`] (`InitialDuplicate` runs it and allows duplicate
    /// outputs).
    pub fn prevent_initial_call(mut self, prevent: impl Into<PreventInitialCall>) -> Self {
        self.prevent_initial_call = prevent.into();
        self
    }

    /// When the handler fails, call `handler` with the error instead (Dash's `on_error`):
    /// its value replaces the outputs (`null` leaves them unchanged, like
    /// [`no_update`](crate::no_update)); it may call [`Context::set_props`] and return
    /// `Err(PreventUpdate)`. Takes precedence over [`App::on_error`].
    pub fn on_error<T, F>(mut self, handler: F) -> Self
    where
        T: Serialize,
        F: Fn(&Context<'_>, &Error) -> Result<T> + Send + Sync + 'static,
    {
        self.on_error = Some(error_handler(handler));
        self
    }

    /// Make this a background callback (Dash's `background=True`): the platform runs it
    /// as a job with its own, longer deadline, and the browser polls for the result every
    /// `interval_ms` (Dash's default is 1000).
    pub fn background(mut self, interval_ms: u64) -> Self {
        self.background
            .get_or_insert_with(Background::default)
            .interval_ms = interval_ms;
        self
    }

    /// Let the platform answer repeated requests from its shared cache for `ttl` (Dash's
    /// `@cache.memoize`): requests with the same inputs, state and outputs to the same app
    /// version get the stored answer without running the callback; a deploy starts afresh.
    /// Only answers with outputs are kept (not `PreventUpdate` or errors). The answer is
    /// shared by every viewer, so a memoized callback must not depend on who is looking.
    /// The platform caps the TTL (a day by default); a background callback is not memoized.
    pub fn memoize(mut self, ttl: std::time::Duration) -> Self {
        self.memoize = Some(ttl);
        self
    }

    /// Run this callback over the page's WebSocket instead of an HTTP request (Dash's
    /// `websocket=True`): the platform then advertises its `_dash-ws-callback` endpoint in
    /// `_dash-config`, and [`Context::set_props`] during the call reaches the browser at
    /// once instead of with the answer, so a callback can stream updates while it runs.
    /// A background callback keeps polling over HTTP, as in Dash.
    pub fn websocket(mut self) -> Self {
        self.websocket = true;
        self
    }

    /// Dash's `persistent=True`, for a callback that streams for a long time: the page
    /// does not show its "Updating..." title while it runs. As in Dash 4.4.1 this is all
    /// the flag does; the renderer itself runs a callback without outputs or inputs again
    /// when its WebSocket reconnects. The platform still stops every call at its deadline.
    pub fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }

    /// While the callback runs, set `output` to `on`; set it to `off` when it ends
    /// (Dash's `running=[(Output, on, off)]`). Call once per output. The browser applies
    /// both itself; an ordinary callback stays ordinary.
    pub fn running(mut self, output: Output, on: impl Serialize, off: impl Serialize) -> Self {
        // Values that are not JSON (a map with non-string keys) become null, as a `None`.
        let on = serde_json::to_value(on).unwrap_or(Value::Null);
        let off = serde_json::to_value(off).unwrap_or(Value::Null);
        self.running.push((output, on, off));
        self
    }

    /// Outputs the callback updates while it runs through
    /// [`Context::set_progress`] (Dash's `progress=`).
    pub fn progress(mut self, outputs: impl Dependencies<Output>) -> Self {
        self.background_spec().progress = outputs.into_list();
        self
    }

    /// Values of the progress outputs when the callback is not running (Dash's
    /// `progress_default=`), one per progress output.
    pub fn progress_default(mut self, values: Vec<Value>) -> Self {
        self.background_spec().progress_default = Some(values);
        self
    }

    /// Inputs whose change cancels the running job (Dash's `cancel=`).
    pub fn cancel(mut self, inputs: impl Dependencies<Input>) -> Self {
        self.background_spec().cancel = inputs.into_list();
        self
    }

    fn background_spec(&mut self) -> &mut Background {
        self.background.get_or_insert_with(|| Background {
            interval_ms: 1000,
            ..Background::default()
        })
    }

    /// The callback's id: its dependency `output` string, as Dash's `create_callback_id`
    /// builds it.
    ///
    /// One output gives `id.prop`; several give `..a.prop...b.prop..`. Dots inside a
    /// component id are escaped with a backslash so the two forms cannot be confused. An
    /// output with [`Output::allow_duplicate`] carries `@` and the sha256 of the inputs
    /// after its prop; a callback without outputs is named by that hash alone.
    pub fn id(&self) -> String {
        let hashed_inputs = || {
            let joined: Vec<String> = self.inputs.iter().map(Input::prop_id).collect();
            hex(&Sha256::digest(joined.join(".").as_bytes()))
        };
        if self.outputs.is_empty() {
            return hashed_inputs();
        }
        let part = |output: &Output| {
            let mut part = format!("{}.{}", output.id().replace('.', "\\."), output.property());
            if output.allows_duplicate() {
                part.push('@');
                part.push_str(&hashed_inputs());
            }
            part
        };
        if self.multi {
            let parts: Vec<String> = self.outputs.iter().map(part).collect();
            format!("..{}..", parts.join("..."))
        } else {
            self.outputs.iter().map(part).collect()
        }
    }

    /// The `_dash-dependencies` entry for this callback, in Dash 4.4.1's key order.
    fn dependency(&self) -> Value {
        let list = |items: Vec<Value>| Value::Array(items);
        let mut entry = Map::with_capacity(12);
        entry.insert("output".into(), Value::String(self.id()));
        entry.insert(
            "inputs".into(),
            list(self.inputs.iter().map(Input::to_value).collect()),
        );
        entry.insert(
            "state".into(),
            list(self.state.iter().map(State::to_value).collect()),
        );
        entry.insert(
            "clientside_function".into(),
            self.clientside
                .as_ref()
                .map_or(Value::Null, ClientsideFunction::to_value),
        );
        // Dash writes `prevent_initial_call is True`: "initial_duplicate" runs on load.
        entry.insert(
            "prevent_initial_call".into(),
            Value::Bool(self.prevent_initial_call == PreventInitialCall::Yes),
        );
        entry.insert(
            "background".into(),
            match &self.background {
                Some(background) => serde_json::json!({"interval": background.interval_ms}),
                None => Value::Null,
            },
        );
        // What Dash 4.4.1 writes: null for `app.callback` and `dash.callback` alike, false
        // for `clientside_callback` (checked by the differential test against the real
        // package).
        entry.insert(
            "dynamic_creator".into(),
            if self.clientside.is_some() {
                Value::Bool(false)
            } else {
                Value::Null
            },
        );
        entry.insert("no_output".into(), Value::Bool(self.outputs.is_empty()));
        entry.insert("optional".into(), Value::Bool(false));
        entry.insert("hidden".into(), Value::Bool(self.hidden));
        entry.insert("websocket".into(), Value::Bool(self.websocket));
        entry.insert("persistent".into(), Value::Bool(self.persistent));
        if !self.running.is_empty() {
            let mut on = Map::new();
            let mut off = Map::new();
            for (output, when_on, when_off) in &self.running {
                on.insert(output.prop_id(), when_on.clone());
                off.insert(output.prop_id(), when_off.clone());
            }
            entry.insert(
                "running".into(),
                serde_json::json!({"running": on, "runningOff": off}),
            );
        }
        // Not a Dash key: the platform takes the inline source out of the dependency, writes
        // it into the index page and serves `_dash-dependencies` without it.
        if let Some(source) = self
            .clientside
            .as_ref()
            .and_then(ClientsideFunction::source)
        {
            entry.insert(INLINE_SOURCE_KEY.into(), Value::String(source.into()));
        }
        if let Some(ttl) = self.memoize {
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            entry.insert(MEMOIZE_KEY.into(), serde_json::json!({ "ttl_ms": ttl_ms }));
        }
        if let Some(background) = &self.background {
            let mut private = Map::new();
            private.insert(
                "progress".into(),
                background
                    .progress
                    .iter()
                    .map(|output| Value::String(output.prop_id()))
                    .collect(),
            );
            if let Some(defaults) = &background.progress_default {
                private.insert("progressDefault".into(), Value::Array(defaults.clone()));
            }
            private.insert(
                "cancel".into(),
                background.cancel.iter().map(Input::to_value).collect(),
            );
            entry.insert(BACKGROUND_KEY.into(), Value::Object(private));
        }
        Value::Object(entry)
    }

    /// Check that the request's inputs and state are this callback's, in order: a plain
    /// or `MATCH` dependency gets one prop whose id fits it, an `ALL` or `ALLSMALLER` one a
    /// list of them.
    fn check_request(&self, id: &str, request: &Request) -> std::result::Result<(), String> {
        fn check<'d>(
            kind: &str,
            id: &str,
            declared: impl ExactSizeIterator<Item = (&'d Id, &'d str)>,
            sent: &[Entry],
        ) -> std::result::Result<(), String> {
            if declared.len() != sent.len() {
                return Err(format!(
                    "callback `{id}` takes {} {kind} values but the request carries {}",
                    declared.len(),
                    sent.len()
                ));
            }
            for (position, ((dep_id, property), entry)) in declared.zip(sent).enumerate() {
                let fits = |slot: &Slot| dep_id.matches(&slot.id) && slot.property == property;
                let ok = match entry {
                    Entry::One(slot) => !dep_id.is_list() && fits(slot),
                    Entry::Many(slots) => dep_id.is_list() && slots.iter().all(fits),
                };
                if !ok {
                    return Err(format!(
                        "callback `{id}` expects `{}.{property}` as {kind} {position}, \
                         the request sent `{}`",
                        dep_id.to_dash_string(),
                        entry.describe()
                    ));
                }
            }
            Ok(())
        }
        let inputs = self.inputs.iter().map(|i| (i.component_id(), i.property()));
        check("input", id, inputs, &request.inputs)?;
        let state = self.state.iter().map(|s| (s.component_id(), s.property()));
        check("state", id, state, &request.state)
    }

    /// Turn the handler's value into one value per output. An `ALL` output takes a list
    /// as long as the request's list of concrete outputs for it.
    fn outputs(
        &self,
        id: &str,
        value: Value,
        concrete: Option<&[Value]>,
    ) -> std::result::Result<Vec<Value>, String> {
        if self.outputs.is_empty() {
            return Ok(Vec::new());
        }
        let values = if !self.multi {
            vec![value]
        } else {
            let count = self.outputs.len();
            if is_no_update(&value) {
                // Dash accepts a bare `no_update` for a multi-output callback: all unchanged.
                return Ok(vec![value; count]);
            }
            match value {
                Value::Array(values) if values.len() == count => values,
                Value::Array(values) => {
                    return Err(format!(
                        "callback `{id}` has {count} outputs but returned {} values",
                        values.len()
                    ));
                }
                other => {
                    return Err(format!(
                        "callback `{id}` has {count} outputs and must return a list of \
                         {count} values, not {}",
                        describe(&other)
                    ));
                }
            }
        };
        for (position, (output, value)) in self.outputs.iter().zip(&values).enumerate() {
            if !output.component_id().is_list() || is_no_update(value) {
                continue;
            }
            let want = concrete
                .and_then(|entries| entries.get(position))
                .and_then(Value::as_array)
                .map(Vec::len);
            match (value, want) {
                (Value::Array(items), Some(want)) if items.len() != want => {
                    return Err(format!(
                        "callback `{id}`: output `{}` matches {want} components but the \
                         callback returned {} values for it",
                        output.prop_id(),
                        items.len()
                    ));
                }
                (Value::Array(_), _) => {}
                (other, _) => {
                    return Err(format!(
                        "callback `{id}`: output `{}` is a pattern with ALL and takes a \
                         list, not {}",
                        output.prop_id(),
                        describe(other)
                    ));
                }
            }
        }
        Ok(values)
    }
}

/// Box an error handler, turning its value into JSON.
fn error_handler<T, F>(handler: F) -> ErrorHandler
where
    T: Serialize,
    F: Fn(&Context<'_>, &Error) -> Result<T> + Send + Sync + 'static,
{
    Box::new(move |ctx, error| {
        let value = handler(ctx, error)?;
        serde_json::to_value(value).map_err(|error| {
            Error::Failed(format!(
                "the error handler of callback `{}` returned a value that is not JSON: {error}",
                ctx.callback_id()
            ))
        })
    })
}

/// Lowercase hex of a digest.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A short description of a JSON value for error messages.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// What a callback run produced; mirrors the WIT world's `outcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A JSON array with one value per output, in order.
    Outputs(String),
    /// Dash's `PreventUpdate`: nothing changes in the browser.
    PreventUpdate,
}

/// Facts about an app that do not change while it runs; mirrors the WIT world's `info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The page title.
    pub title: String,
    /// The version of this SDK.
    pub sdk_version: String,
}

/// A dashboard: a title, a layout and callbacks.
///
/// Build one in a function `fn app() -> App` and export it with
/// [`export_app!`](crate::export_app). Registering two callbacks that write the same
/// output panics while the app is built, as Dash refuses duplicate outputs.
pub struct App {
    title: String,
    layout: Component,
    callbacks: Vec<Callback>,
    /// Callback id → position in `callbacks`. Ordered, so error messages that list the
    /// callbacks read the same on every run.
    by_id: BTreeMap<String, usize>,
    /// Every `id.prop` written by some callback, to refuse duplicates.
    outputs: BTreeSet<String>,
    /// The error handler of callbacks without their own (Dash's `Dash(on_error=…)`).
    on_error: Option<ErrorHandler>,
    /// Every page's layout of a multi-page app, for Dash's `validation_layout`.
    page_layouts: Vec<Component>,
    /// Every callback goes over the page's WebSocket (Dash's `websocket_callbacks=True`).
    websocket_callbacks: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("title", &self.title)
            .field("layout", &self.layout)
            .field("callbacks", &self.callbacks)
            .finish_non_exhaustive()
    }
}

impl App {
    /// An app titled `title` with an empty layout and no callbacks.
    pub fn new(title: impl Into<String>) -> Self {
        App {
            title: title.into(),
            layout: html::div(),
            callbacks: Vec::new(),
            by_id: BTreeMap::new(),
            outputs: BTreeSet::new(),
            on_error: None,
            page_layouts: Vec::new(),
            websocket_callbacks: false,
        }
    }

    /// Send every callback over the page's WebSocket (Dash's
    /// `Dash(websocket_callbacks=True)`), not only those marked [`Callback::websocket`]:
    /// `_dash-config` says so and the renderer sends each request over the socket, so
    /// [`Context::set_props`] reaches the page while a callback runs. Background
    /// callbacks keep polling over HTTP, as in Dash.
    pub fn websocket_callbacks(mut self, enabled: bool) -> Self {
        self.websocket_callbacks = enabled;
        self
    }

    /// The error handler of every callback without its own [`Callback::on_error`] (Dash's
    /// app-wide `on_error`); it receives the failing callback's context.
    pub fn on_error<T, F>(mut self, handler: F) -> Self
    where
        T: Serialize,
        F: Fn(&Context<'_>, &Error) -> Result<T> + Send + Sync + 'static,
    {
        self.on_error = Some(error_handler(handler));
        self
    }

    /// Set the layout: the root component of the page.
    pub fn layout(mut self, root: impl Into<Component>) -> Self {
        self.layout = root.into();
        self
    }

    /// Register a callback; see [`Callback::new`] for the arguments.
    ///
    /// # Panics
    ///
    /// If an output is already written by another callback, or twice by this one.
    pub fn callback<T, F>(
        self,
        outputs: impl Dependencies<Output>,
        inputs: impl Dependencies<Input>,
        state: impl Dependencies<State>,
        handler: F,
    ) -> Self
    where
        T: Serialize,
        F: Fn(&Context<'_>) -> Result<T> + Send + Sync + 'static,
    {
        self.register(Callback::new(outputs, inputs, state, handler))
    }

    /// Register a clientside callback: `function` runs in the browser; see
    /// [`Callback::clientside`].
    ///
    /// # Panics
    ///
    /// As [`App::register`].
    pub fn clientside_callback(
        self,
        outputs: impl Dependencies<Output>,
        inputs: impl Dependencies<Input>,
        state: impl Dependencies<State>,
        function: ClientsideFunction,
    ) -> Self {
        self.register(Callback::clientside(outputs, inputs, state, function))
    }

    /// Make this a multi-page app: register the routing callback that fills
    /// [`pages::container`](crate::pages::container) (its navigation bar, the page for the
    /// browser's path and the page title) whenever the path changes, as Dash's `use_pages`.
    ///
    /// # Panics
    ///
    /// If the app already has pages (their ids would be written twice).
    pub fn pages(mut self, pages: Pages) -> Self {
        self.page_layouts = pages.validation_layouts();
        let (router, title) = pages.into_callbacks();
        self.register(router).register(title)
    }

    /// Register a callback built with [`Callback::new`].
    ///
    /// # Panics
    ///
    /// If an output is already written by another callback (and neither says
    /// [`Output::allow_duplicate`]), or twice by this one; if an output allows duplicates
    /// but the callback runs on page load (Dash requires `prevent_initial_call`); if a
    /// callback has neither outputs nor inputs; or if another callback has the same id.
    pub fn register(mut self, callback: Callback) -> Self {
        let id = callback.id();
        assert!(
            !(callback.outputs.is_empty() && callback.inputs.is_empty()),
            "a callback needs an Output or an Input (state: {:?})",
            callback.state
        );
        for output in &callback.outputs {
            let prop_id = output.prop_id();
            if output.allows_duplicate() {
                assert!(
                    callback.prevent_initial_call != PreventInitialCall::No,
                    "Output `{prop_id}` allows duplicates, which Dash only accepts with \
                     prevent_initial_call (true or InitialDuplicate; in callback `{id}`)"
                );
                continue;
            }
            assert!(
                self.outputs.insert(prop_id.clone()),
                "Duplicate callback output `{prop_id}` (in callback `{id}`): another callback \
                 of app `{}` already writes it, and Dash allows one callback per output",
                self.title
            );
        }
        let previous = self.by_id.insert(id.clone(), self.callbacks.len());
        assert!(
            previous.is_none(),
            "Duplicate callback `{id}` in app `{}`",
            self.title
        );
        let cancels: Vec<Input> = callback
            .background
            .as_ref()
            .map(|background| background.cancel.clone())
            .unwrap_or_default();
        self.callbacks.push(callback);
        for input in cancels {
            // Dash registers one callback per cancel input, writing the input's own `id`
            // and answering no_update; the renderer attaches `cancelJob` to its request.
            let canceller = Callback::new(
                Output::new(input.component_id().clone(), "id"),
                input,
                (),
                |_| Ok(crate::no_update()),
            )
            .prevent_initial_call(true);
            if !self.by_id.contains_key(&canceller.id()) {
                self = self.register(canceller);
            }
        }
        self
    }

    /// Title and SDK version.
    pub fn info(&self) -> Info {
        Info {
            title: self.title.clone(),
            sdk_version: crate::SDK_VERSION.to_owned(),
        }
    }

    /// The root component.
    pub fn root(&self) -> &Component {
        &self.layout
    }

    /// The layout as Dash's `_dash-layout` body; a multi-page app's also carries its
    /// pages' layouts under [`PAGE_LAYOUTS_KEY`], and an app with
    /// [`App::websocket_callbacks`] the flag [`WEBSOCKET_CALLBACKS_KEY`], which the
    /// platform takes out.
    pub fn layout_json(&self) -> String {
        if self.page_layouts.is_empty() && !self.websocket_callbacks {
            return serialize(&self.layout);
        }
        let mut layout = Value::from(self.layout.clone());
        if let Value::Object(root) = &mut layout {
            if !self.page_layouts.is_empty() {
                let pages = self.page_layouts.iter().cloned().map(Value::from).collect();
                root.insert(PAGE_LAYOUTS_KEY.into(), Value::Array(pages));
            }
            if self.websocket_callbacks {
                root.insert(WEBSOCKET_CALLBACKS_KEY.into(), Value::Bool(true));
            }
        }
        serialize(&layout)
    }

    /// The callbacks as Dash's `_dash-dependencies` body.
    pub fn dependencies_json(&self) -> String {
        let entries: Vec<Value> = self.callbacks.iter().map(Callback::dependency).collect();
        serialize(&entries)
    }

    /// Run the callback whose id (dependency `output` string) is `id` on a request
    /// `{"outputs", "inputs", "state", "changed_prop_ids"}`.
    ///
    /// # Errors
    ///
    /// [`CallbackError::InvalidInput`] for an unknown callback, a malformed request or an
    /// input of the wrong type; [`CallbackError::Failed`] when the handler fails or
    /// returns the wrong number of values.
    pub fn run_callback(
        &self,
        id: &str,
        request: &str,
    ) -> std::result::Result<Outcome, CallbackError> {
        let Some(callback) = self.by_id.get(id).map(|&index| &self.callbacks[index]) else {
            let known: Vec<&str> = self.by_id.keys().map(String::as_str).collect();
            return Err(CallbackError::InvalidInput(format!(
                "app `{}` has no callback `{id}` (it has: {})",
                self.title,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        };
        let request = Request::parse(request).map_err(|error| {
            CallbackError::InvalidInput(format!("malformed request for callback `{id}`: {error}"))
        })?;
        callback
            .check_request(id, &request)
            .map_err(CallbackError::InvalidInput)?;
        let mut context = Context::declared(
            id,
            &request,
            &callback.inputs,
            &callback.state,
            callback.multi,
        );
        context.progress_outputs = callback
            .background
            .as_ref()
            .map_or(0, |background| background.progress.len());
        let value = match (callback.handler)(&context) {
            Ok(value) => value,
            Err(Error::PreventUpdate) => return Ok(Outcome::PreventUpdate),
            Err(error) => {
                let Some(handler) = callback.on_error.as_ref().or(self.on_error.as_ref()) else {
                    return Err(CallbackError::from_handler(error));
                };
                // As Dash: the handler's value replaces the outputs, `None` leaves them.
                match handler(&context, &error) {
                    Ok(Value::Null) if !callback.outputs.is_empty() => crate::no_update(),
                    Ok(value) => value,
                    Err(Error::PreventUpdate) => return Ok(Outcome::PreventUpdate),
                    Err(error) => return Err(CallbackError::from_handler(error)),
                }
            }
        };
        let outputs = callback
            .outputs(id, value, request.outputs.as_deref())
            .map_err(CallbackError::Failed)?;
        let side_updates = context.take_side_updates();
        if side_updates.is_empty() {
            return Ok(Outcome::Outputs(serialize(&outputs)));
        }
        // The envelope the platform reads beside the plain array (WIT 0.2.0, `outputs`).
        Ok(Outcome::Outputs(serialize(&serde_json::json!({
            "outputs": outputs,
            "side_update": side_updates,
        }))))
    }
}

/// JSON text of a value built from JSON values only.
fn serialize(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect(
        "serialising JSON values and components cannot fail: every map key is a string and \
         no Serialize impl involved returns an error",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PreventUpdate, dcc, no_update};
    use serde_json::json;

    fn demo() -> App {
        App::new("Demo")
            .layout(html::div().children((
                dcc::input().id("name").value("world"),
                html::div().id("greeting"),
            )))
            .callback(
                Output::new("greeting", "children"),
                Input::new("name", "value"),
                (),
                |ctx| {
                    let name: String = ctx.input(0)?;
                    if name.is_empty() {
                        Err(PreventUpdate)?;
                    }
                    if name == "boom" {
                        return Err("the name must not be boom".into());
                    }
                    Ok(format!("Hello, {name}!"))
                },
            )
            .callback(
                [Output::new("a.b", "children"), Output::new("c", "value")],
                [Input::new("name", "value"), Input::new("x", "n_clicks")],
                [State::new("s", "data")],
                |ctx| {
                    let clicks: Option<u32> = ctx.input("x")?;
                    match clicks {
                        None => Ok(json!(no_update())),
                        Some(1) => Ok(json!([no_update(), 1])),
                        Some(2) => Ok(json!([1])),
                        Some(n) => Ok(json!([n, ctx.state::<Value>(0)?])),
                    }
                },
            )
    }

    fn name_request(name: &str) -> String {
        json!({
            "outputs": {"id": "greeting", "property": "children"},
            "inputs": [{"id": "name", "property": "value", "value": name}],
            "changed_prop_ids": ["name.value"],
        })
        .to_string()
    }

    fn multi_request(clicks: Option<u32>) -> String {
        let mut x = json!({"id": "x", "property": "n_clicks"});
        if let Some(clicks) = clicks {
            x["value"] = json!(clicks);
        }
        json!({
            "outputs": [{"id": "a.b", "property": "children"}, {"id": "c", "property": "value"}],
            "inputs": [{"id": "name", "property": "value", "value": "n"}, x],
            "state": [{"id": "s", "property": "data", "value": {"k": 1}}],
            "changed_prop_ids": [],
        })
        .to_string()
    }

    #[test]
    fn clientside_callbacks_carry_their_function_and_never_run_natively() {
        let app = App::new("C")
            .clientside_callback(
                Output::new("out", "children"),
                Input::new("in", "value"),
                (),
                crate::ClientsideFunction::inline("function(v) { return v; }"),
            )
            .clientside_callback(
                Output::new("b", "children"),
                Input::new("in", "n_clicks"),
                (),
                crate::ClientsideFunction::named("ui", "count"),
            );
        let deps: Value = serde_json::from_str(&app.dependencies_json()).expect("json");
        assert_eq!(
            deps[0]["clientside_function"]["namespace"],
            json!("_dashprivate_clientside_funcs")
        );
        assert_eq!(
            deps[0][INLINE_SOURCE_KEY],
            json!("function(v) { return v; }")
        );
        assert_eq!(
            deps[1]["clientside_function"],
            json!({"namespace": "ui", "function_name": "count"})
        );
        assert!(deps[1].get(INLINE_SOURCE_KEY).is_none());
        let request = json!({"inputs": [{"id": "in", "property": "value", "value": 1}]});
        assert!(matches!(
            app.run_callback("out.children", &request.to_string()),
            Err(CallbackError::InvalidInput(message)) if message.contains("clientside")
        ));
    }

    #[test]
    fn triggered_values_and_update_read_as_in_dash() {
        let app = App::new("T")
            .layout(html::div())
            .callback(
                Output::new("out", "children"),
                [
                    Input::new("a", "value"),
                    Input::new(json!({"type": "b", "index": crate::ALL}), "value"),
                ],
                (),
                |ctx| Ok(ctx.triggered_values()),
            )
            .callback(
                Output::new("maybe", "children"),
                Input::new("a", "value"),
                (),
                |ctx| {
                    let a: Option<i64> = ctx.input(0)?;
                    Ok(crate::Update::from(a.filter(|a| *a > 0)))
                },
            );
        let run = |id: &str, request: Value| match app.run_callback(id, &request.to_string()) {
            Ok(Outcome::Outputs(json)) => serde_json::from_str::<Value>(&json).expect("json"),
            other => panic!("{other:?}"),
        };
        let inputs = json!([
            {"id": "a", "property": "value", "value": 3},
            [{"id": {"index": 1, "type": "b"}, "property": "value", "value": "x"}],
        ]);
        let initial = run("out.children", json!({"inputs": inputs}));
        assert_eq!(initial, json!([[{"prop_id": ".", "value": null}]]));
        let changed = run(
            "out.children",
            json!({"inputs": inputs, "changed_prop_ids": ["{\"index\":1,\"type\":\"b\"}.value", "a.value"]}),
        );
        assert_eq!(
            changed,
            json!([[
                {"prop_id": "{\"index\":1,\"type\":\"b\"}.value", "value": "x"},
                {"prop_id": "a.value", "value": 3},
            ]])
        );
        let set = run(
            "maybe.children",
            json!({"inputs": [{"id": "a", "property": "value", "value": 2}]}),
        );
        assert_eq!(set, json!([2]));
        let kept = run(
            "maybe.children",
            json!({"inputs": [{"id": "a", "property": "value", "value": 0}]}),
        );
        assert_eq!(kept, json!([no_update()]));
    }

    #[test]
    fn info_reports_title_and_sdk_version() {
        let info = demo().info();
        assert_eq!(info.title, "Demo");
        assert_eq!(info.sdk_version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn layout_json_is_dash_shaped() {
        assert_eq!(
            demo().layout_json(),
            r#"{"props":{"children":[{"props":{"id":"name","value":"world"},"type":"Input","namespace":"dash_core_components"},{"props":{"children":null,"id":"greeting"},"type":"Div","namespace":"dash_html_components"}]},"type":"Div","namespace":"dash_html_components"}"#
        );
    }

    #[test]
    fn dependency_entries_have_dash_keys_in_dash_order() {
        let deps: Value =
            serde_json::from_str(&demo().dependencies_json()).expect("dependencies are JSON");
        let first = deps[0].as_object().expect("an entry is an object");
        let keys: Vec<&str> = first.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "output",
                "inputs",
                "state",
                "clientside_function",
                "prevent_initial_call",
                "background",
                "dynamic_creator",
                "no_output",
                "optional",
                "hidden",
                "websocket",
                "persistent"
            ]
        );
        assert_eq!(
            deps[0],
            json!({
                "output": "greeting.children",
                "inputs": [{"id": "name", "property": "value"}],
                "state": [],
                "clientside_function": null,
                "prevent_initial_call": false,
                "background": null,
                "dynamic_creator": null,
                "no_output": false,
                "optional": false,
                "hidden": false,
                "websocket": false,
                "persistent": false,
            })
        );
    }

    #[test]
    fn multi_output_id_uses_dash_form_and_escapes_dots() {
        let deps: Value =
            serde_json::from_str(&demo().dependencies_json()).expect("dependencies are JSON");
        assert_eq!(deps[1]["output"], json!("..a\\.b.children...c.value.."));
        assert_eq!(deps[1]["state"], json!([{"id": "s", "property": "data"}]));
    }

    #[test]
    fn prevent_initial_call_is_carried_into_the_dependency() {
        let app = App::new("P").register(
            Callback::new(
                Output::new("o", "children"),
                Input::new("i", "value"),
                (),
                |_| Ok("x"),
            )
            .prevent_initial_call(true),
        );
        let deps: Value = serde_json::from_str(&app.dependencies_json()).expect("JSON");
        assert_eq!(deps[0]["prevent_initial_call"], json!(true));
    }

    #[test]
    fn single_output_callback_returns_one_element_array() {
        assert_eq!(
            demo().run_callback("greeting.children", &name_request("Ada")),
            Ok(Outcome::Outputs(r#"["Hello, Ada!"]"#.into()))
        );
    }

    #[test]
    fn prevent_update_and_author_error_are_told_apart() {
        let app = demo();
        assert_eq!(
            app.run_callback("greeting.children", &name_request("")),
            Ok(Outcome::PreventUpdate)
        );
        assert_eq!(
            app.run_callback("greeting.children", &name_request("boom")),
            Err(CallbackError::Failed("the name must not be boom".into()))
        );
    }

    #[test]
    fn wrong_input_type_is_invalid_input_naming_the_input() {
        let request = json!({
            "inputs": [{"id": "name", "property": "value", "value": 42}],
        })
        .to_string();
        assert_eq!(
            demo().run_callback("greeting.children", &request),
            Err(CallbackError::InvalidInput(
                "callback `greeting.children`: input `name.value` has the wrong type: \
                 invalid type: integer `42`, expected a string"
                    .into()
            ))
        );
    }

    #[test]
    fn multi_output_no_update_is_encoded_per_output() {
        let app = demo();
        let id = "..a\\.b.children...c.value..";
        let marker = r#"{"_dash_no_update":"_dash_no_update"}"#;
        assert_eq!(
            app.run_callback(id, &multi_request(None)),
            Ok(Outcome::Outputs(format!("[{marker},{marker}]")))
        );
        assert_eq!(
            app.run_callback(id, &multi_request(Some(1))),
            Ok(Outcome::Outputs(format!("[{marker},1]")))
        );
        assert_eq!(
            app.run_callback(id, &multi_request(Some(5))),
            Ok(Outcome::Outputs(r#"[5,{"k":1}]"#.into()))
        );
    }

    #[test]
    fn multi_output_with_wrong_count_is_the_authors_failure() {
        assert_eq!(
            demo().run_callback("..a\\.b.children...c.value..", &multi_request(Some(2))),
            Err(CallbackError::Failed(
                "callback `..a\\.b.children...c.value..` has 2 outputs but returned 1 values"
                    .into()
            ))
        );
    }

    #[test]
    fn unknown_callback_and_malformed_request_are_invalid_input() {
        let app = demo();
        assert!(matches!(
            app.run_callback("nope.children", "{}"),
            Err(CallbackError::InvalidInput(message)) if message.contains("no callback `nope.children`")
        ));
        assert!(matches!(
            app.run_callback("greeting.children", "not json"),
            Err(CallbackError::InvalidInput(message)) if message.starts_with("malformed request")
        ));
    }

    #[test]
    fn request_with_other_inputs_than_declared_is_invalid_input() {
        let request = json!({
            "inputs": [{"id": "other", "property": "value", "value": "x"}],
        })
        .to_string();
        assert_eq!(
            demo().run_callback("greeting.children", &request),
            Err(CallbackError::InvalidInput(
                "callback `greeting.children` expects `name.value` as input 0, \
                 the request sent `other.value`"
                    .into()
            ))
        );
    }

    #[test]
    #[should_panic(expected = "Duplicate callback output `greeting.children`")]
    fn duplicate_output_panics_while_building() {
        let _ = demo().callback(
            Output::new("greeting", "children"),
            Input::new("other", "value"),
            (),
            |_| Ok("again"),
        );
    }

    #[test]
    fn allow_duplicate_and_no_output_ids_are_dashs_hashes() {
        // Expected ids printed by Dash 4.4.1's create_callback_id for the same callbacks.
        let app = App::new("Ids")
            .register(
                Callback::new(
                    Output::new("a", "children").allow_duplicate(),
                    [
                        Input::new(json!({"type": "f", "index": crate::ALL}), "value"),
                        Input::new("b", "n_clicks"),
                    ],
                    (),
                    |_| Ok(1),
                )
                .prevent_initial_call(true),
            )
            .callback(
                (),
                Input::new("b", "n_clicks"),
                State::new("c", "value"),
                |_| Ok(()),
            );
        let deps: Value = serde_json::from_str(&app.dependencies_json()).expect("JSON");
        assert_eq!(
            deps[0]["output"],
            json!("a.children@c4f037b11496d550502512ff1df6999bc669addef738c278063cdaf2ab6c692b")
        );
        assert_eq!(
            deps[0]["inputs"][0],
            json!({"id": r#"{"index":["ALL"],"type":"f"}"#, "property": "value"})
        );
        let no_output = "5b2e8bd50e92d71d4864130afe574ff58273b3c193f9c93b946617ae6a1237f9";
        assert_eq!(deps[1]["output"], json!(no_output));
        assert_eq!(deps[1]["no_output"], json!(true));
        let request = json!({
            "inputs": [{"id": "b", "property": "n_clicks", "value": 1}],
            "state": [{"id": "c", "property": "value"}],
        });
        assert_eq!(
            app.run_callback(no_output, &request.to_string()),
            Ok(Outcome::Outputs("[]".into()))
        );
    }

    #[test]
    #[should_panic(expected = "only accepts with prevent_initial_call")]
    fn allow_duplicate_without_prevent_initial_call_panics() {
        let _ = demo().callback(
            Output::new("greeting", "children").allow_duplicate(),
            Input::new("other", "value"),
            (),
            |_| Ok("again"),
        );
    }

    #[test]
    fn all_outputs_take_one_value_per_matching_component() {
        let app = App::new("All").callback(
            Output::new(json!({"type": "label", "index": crate::ALL}), "children"),
            Input::new(json!({"type": "f", "index": crate::ALL}), "value"),
            (),
            |ctx| {
                let values: Vec<Option<String>> = ctx.input(0)?;
                Ok(values
                    .into_iter()
                    .map(|value| value.unwrap_or_default())
                    .collect::<Vec<_>>())
            },
        );
        let id = r#"{"index":["ALL"],"type":"label"}.children"#;
        let request = |inputs: Value, outputs: Value| {
            json!({"outputs": [outputs], "inputs": [inputs]}).to_string()
        };
        let two_inputs = json!([
            {"id": {"index": 1, "type": "f"}, "property": "value", "value": "x"},
            {"id": {"index": 2, "type": "f"}, "property": "value"}
        ]);
        let two_outputs = json!([
            {"id": {"index": 1, "type": "label"}, "property": "children"},
            {"id": {"index": 2, "type": "label"}, "property": "children"}
        ]);
        assert_eq!(
            app.run_callback(id, &request(two_inputs.clone(), two_outputs)),
            Ok(Outcome::Outputs(r#"[["x",""]]"#.into()))
        );
        let one_output = json!([{"id": {"index": 1, "type": "label"}, "property": "children"}]);
        assert!(matches!(
            app.run_callback(id, &request(two_inputs, one_output)),
            Err(CallbackError::Failed(message)) if message.contains("matches 1 components")
        ));
        let wrong_pattern = json!([{"id": {"index": 1, "type": "g"}, "property": "value"}]);
        assert!(matches!(
            app.run_callback(id, &request(wrong_pattern, json!([]))),
            Err(CallbackError::InvalidInput(message)) if message.contains("expects")
        ));
    }
}

#[cfg(test)]
mod background_tests {
    use super::*;
    use crate::no_update;
    use serde_json::json;

    fn report_app() -> App {
        App::new("Report").register(
            Callback::new(
                Output::new("result", "children"),
                Input::new("run", "n_clicks"),
                (),
                |ctx| {
                    ctx.set_progress(json!(["3", "10"]))?;
                    Ok("done")
                },
            )
            .background(500)
            .running(Output::new("run", "disabled"), true, false)
            .progress([Output::new("bar", "value"), Output::new("bar", "max")])
            .progress_default(vec![json!("0"), json!("10")])
            .cancel(Input::new("stop", "n_clicks"))
            .prevent_initial_call(true),
        )
    }

    #[test]
    fn memoize_travels_in_the_private_key() {
        let app = App::new("memo").callback(
            Output::new("out", "children"),
            Input::new("in", "value"),
            (),
            |_ctx| Ok("x"),
        );
        let plain: Value = serde_json::from_str(&app.dependencies_json()).expect("JSON");
        assert!(plain[0].get(MEMOIZE_KEY).is_none());
        let memoized = App::new("memo").register(
            Callback::new(
                Output::new("out", "children"),
                Input::new("in", "value"),
                (),
                |_ctx| Ok("x"),
            )
            .memoize(std::time::Duration::from_secs(90)),
        );
        let deps: Value = serde_json::from_str(&memoized.dependencies_json()).expect("JSON");
        assert_eq!(deps[0][MEMOIZE_KEY], json!({"ttl_ms": 90_000}));
    }

    #[test]
    fn background_dependency_carries_dash_keys_and_the_private_spec() {
        let deps: Value = serde_json::from_str(&report_app().dependencies_json()).expect("JSON");
        let entry = &deps[0];
        assert_eq!(entry["background"], json!({"interval": 500}));
        assert_eq!(
            entry["running"],
            json!({"running": {"run.disabled": true}, "runningOff": {"run.disabled": false}})
        );
        assert_eq!(
            entry[BACKGROUND_KEY],
            json!({"progress": ["bar.value", "bar.max"], "progressDefault": ["0", "10"],
                   "cancel": [{"id": "stop", "property": "n_clicks"}]})
        );
        // The cancel input gets Dash's no-op callback writing its own id.
        assert_eq!(deps[1]["output"], "stop.id");
        assert_eq!(deps[1]["prevent_initial_call"], true);
        assert_eq!(deps[1]["background"], Value::Null);
    }

    #[test]
    fn set_progress_reports_one_value_per_progress_output() {
        let outcome = report_app().run_callback(
            "result.children",
            r#"{"inputs": [{"id": "run", "property": "n_clicks", "value": 1}]}"#,
        );
        assert_eq!(outcome, Ok(Outcome::Outputs(r#"["done"]"#.into())));
        assert_eq!(crate::progress::last().as_deref(), Some(r#"["3","10"]"#));
        let cancel = report_app().run_callback(
            "stop.id",
            r#"{"inputs": [{"id": "stop", "property": "n_clicks", "value": 1}]}"#,
        );
        assert_eq!(
            cancel,
            Ok(Outcome::Outputs(
                r#"[{"_dash_no_update":"_dash_no_update"}]"#.into()
            ))
        );
    }

    fn features_app() -> App {
        App::new("Features")
            .on_error(|ctx, error| {
                ctx.set_props("log", json!({"children": format!("app-wide: {error}")}))?;
                Ok(Value::Null)
            })
            .callback(
                Output::new("out", "children"),
                Input::new("go", "n_clicks"),
                (),
                |ctx| {
                    ctx.set_props("status", json!({"children": "saving"}))?;
                    ctx.set_props(json!({"type": "card", "index": 1}), json!({"a": 1}))?;
                    ctx.set_props("status", json!({"title": "t", "children": "saved"}))?;
                    Ok("done")
                },
            )
            .callback((), Input::new("ping", "n_clicks"), (), |ctx| {
                let clicks: Option<u64> = ctx.input(0)?;
                if clicks.is_some() {
                    ctx.set_props("status", json!({"children": "pinged"}))?;
                }
                Ok(())
            })
            .register(
                Callback::new(
                    [Output::new("a", "children"), Output::new("b", "children")],
                    Input::new("fail", "n_clicks"),
                    (),
                    |_| -> Result<Value> { Err("boom".into()) },
                )
                .on_error(|ctx, error| {
                    ctx.set_props("log", json!({"children": error.to_string()}))?;
                    Ok(json!(["fallback", no_update()]))
                }),
            )
            .callback(
                Output::new("c", "children"),
                Input::new("fail2", "n_clicks"),
                (),
                |_| -> Result<Value> { Err("kaput".into()) },
            )
    }

    fn clicks(id: &str, clicks: Option<u64>) -> String {
        let mut input = json!({"id": id, "property": "n_clicks"});
        if let Some(clicks) = clicks {
            input["value"] = json!(clicks);
        }
        json!({"inputs": [input]}).to_string()
    }

    fn outputs_of(outcome: std::result::Result<Outcome, CallbackError>) -> Value {
        match outcome {
            Ok(Outcome::Outputs(text)) => serde_json::from_str(&text).expect("JSON"),
            other => panic!("expected outputs, got {other:?}"),
        }
    }

    #[test]
    fn set_props_streams_each_update_when_the_call_can_and_marks_the_dependency() {
        let app = features_app();
        crate::stream::capture();
        let outcome = app.run_callback("out.children", &clicks("go", Some(1)));
        let streamed = crate::stream::take();
        // Streamed in order, one message per call, nothing kept for the answer.
        assert_eq!(outputs_of(outcome), json!(["done"]));
        assert_eq!(
            streamed,
            [
                ("status".to_owned(), r#"{"children":"saving"}"#.to_owned()),
                (
                    r#"{"index":1,"type":"card"}"#.to_owned(),
                    r#"{"a":1}"#.to_owned()
                ),
                (
                    "status".to_owned(),
                    r#"{"title":"t","children":"saved"}"#.to_owned()
                ),
            ]
        );
        let ws = App::new("ws").register(
            Callback::new(
                Output::new("o", "children"),
                Input::new("i", "n_clicks"),
                (),
                |_| Ok("x"),
            )
            .websocket(),
        );
        let deps: Value = serde_json::from_str(&ws.dependencies_json()).expect("JSON");
        assert_eq!(deps[0]["websocket"], json!(true));
        assert_eq!(deps[0]["persistent"], json!(false));
        // Without a connection there is no page to read props from.
        let reader = App::new("reader").callback(
            Output::new("o", "children"),
            Input::new("i", "n_clicks"),
            (),
            |ctx| Ok(ctx.get_props("i", &["n_clicks"])?.is_none()),
        );
        let outcome = reader.run_callback("o.children", &clicks("i", Some(1)));
        assert_eq!(outputs_of(outcome), json!([true]));
    }

    #[test]
    fn the_app_wide_websocket_flag_and_persistent_reach_the_platform() {
        let plain = App::new("plain").layout(html::div().id("root"));
        let layout: Value = serde_json::from_str(&plain.layout_json()).expect("JSON");
        assert_eq!(layout.get(WEBSOCKET_CALLBACKS_KEY), None);
        let app = App::new("all")
            .layout(html::div().id("root"))
            .websocket_callbacks(true)
            .register(
                Callback::new((), Input::new("i", "n_clicks"), (), |_| Ok(json!([]))).persistent(),
            );
        let layout: Value = serde_json::from_str(&app.layout_json()).expect("JSON");
        assert_eq!(layout[WEBSOCKET_CALLBACKS_KEY], json!(true));
        assert_eq!(layout["props"]["id"], "root");
        let deps: Value = serde_json::from_str(&app.dependencies_json()).expect("JSON");
        assert_eq!(deps[0]["persistent"], json!(true));
        // Dash keeps the per-callback flag false in app-wide mode.
        assert_eq!(deps[0]["websocket"], json!(false));
    }

    #[test]
    fn set_props_travels_beside_the_outputs_keyed_by_dash_id_and_merged() {
        let app = features_app();
        assert_eq!(
            outputs_of(app.run_callback("out.children", &clicks("go", Some(1)))),
            json!({
                "outputs": ["done"],
                "side_update": {
                    "status": {"children": "saved", "title": "t"},
                    r#"{"index":1,"type":"card"}"#: {"a": 1},
                }
            })
        );
        let ping = app
            .by_id
            .keys()
            .find(|id| !id.contains('.'))
            .expect("the no-output callback")
            .clone();
        assert_eq!(
            outputs_of(app.run_callback(&ping, &clicks("ping", Some(1)))),
            json!({"outputs": [], "side_update": {"status": {"children": "pinged"}}})
        );
        // Without side updates the answer stays the plain array 0.1.0 platforms read.
        assert_eq!(
            app.run_callback(&ping, &clicks("ping", None)),
            Ok(Outcome::Outputs("[]".into()))
        );
    }

    #[test]
    fn set_props_refuses_what_is_not_a_dictionary() {
        let app = App::new("Bad").callback(
            Output::new("o", "children"),
            Input::new("i", "value"),
            (),
            |ctx| {
                ctx.set_props("x", json!([1]))?;
                Ok(1)
            },
        );
        let request = json!({"inputs": [{"id": "i", "property": "value", "value": 1}]});
        assert_eq!(
            app.run_callback("o.children", &request.to_string()),
            Err(CallbackError::Failed(
                "callback `o.children`: set_props takes a dictionary of props".into()
            ))
        );
    }

    #[test]
    fn on_error_replaces_the_outputs_and_the_app_wide_one_covers_the_rest() {
        let app = features_app();
        assert_eq!(
            outputs_of(app.run_callback("..a.children...b.children..", &clicks("fail", Some(1)))),
            json!({
                "outputs": ["fallback", no_update()],
                "side_update": {"log": {"children": "boom"}},
            })
        );
        // The app-wide handler returns None: the output stays as it is.
        assert_eq!(
            outputs_of(app.run_callback("c.children", &clicks("fail2", Some(1)))),
            json!({
                "outputs": [no_update()],
                "side_update": {"log": {"children": "app-wide: kaput"}},
            })
        );
        // Without a handler the failure is the author's error, as before.
        let plain = App::new("Plain").callback(
            Output::new("c", "children"),
            Input::new("fail2", "n_clicks"),
            (),
            |_| -> Result<Value> { Err("kaput".into()) },
        );
        assert_eq!(
            plain.run_callback("c.children", &clicks("fail2", Some(1))),
            Err(CallbackError::Failed("kaput".into()))
        );
    }

    #[test]
    fn running_keeps_an_ordinary_callback_ordinary() {
        let app = App::new("Run").register(
            Callback::new(
                Output::new("out", "children"),
                Input::new("go", "n_clicks"),
                (),
                |_| Ok("ok"),
            )
            .running(Output::new("go", "disabled"), true, false),
        );
        let deps: Value = serde_json::from_str(&app.dependencies_json()).expect("JSON");
        assert_eq!(deps[0]["background"], Value::Null);
        assert!(deps[0].get(BACKGROUND_KEY).is_none());
        assert_eq!(
            deps[0]["running"],
            json!({"running": {"go.disabled": true}, "runningOff": {"go.disabled": false}})
        );
        let keys: Vec<&String> = deps[0].as_object().expect("object").keys().collect();
        assert_eq!(keys.last().map(|k| k.as_str()), Some("running"));
    }

    #[test]
    fn initial_duplicate_runs_on_load_and_allows_duplicate_outputs() {
        let app = App::new("Dup")
            .callback(
                Output::new("greeting", "children"),
                Input::new("name", "value"),
                (),
                |_| Ok("hi"),
            )
            .register(
                Callback::new(
                    Output::new("greeting", "children").allow_duplicate(),
                    Input::new("other", "value"),
                    (),
                    |_| Ok("again"),
                )
                .prevent_initial_call(PreventInitialCall::InitialDuplicate),
            );
        let deps: Value = serde_json::from_str(&app.dependencies_json()).expect("JSON");
        let duplicate = deps
            .as_array()
            .expect("list")
            .iter()
            .find(|entry| entry["output"].as_str().is_some_and(|o| o.contains('@')))
            .expect("the duplicate callback");
        assert_eq!(duplicate["prevent_initial_call"], json!(false));
        assert_eq!(
            PreventInitialCall::from(true),
            PreventInitialCall::Yes,
            "bool keeps working"
        );
    }
}
