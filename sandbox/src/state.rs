//! The data of one instance's `Store`: its deny-by-default WASI context, resource table,
//! limiter, log sink and the deadline of the call in progress.
//!
//! One `State` lives exactly as long as one instance; nothing in it is shared with another
//! instance except the (read-only) path of the app's data folder.

use crate::capabilities::{CallContext, Capabilities, Viewer};
use crate::capture::{LogSink, Pipe};
use crate::clock::ClockView;
use crate::config::{Limits, MAX_DATA_READ_BYTES, Owner};
use crate::limiter::Limiter;
use crate::outbound::{Outbound, OutboundPolicy, PollView};
use crate::scheduler::Ticket;
use crate::settings::Settings;
use crate::{Error, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Where the app's data folder appears inside the guest.
pub(crate) const DATA_GUEST_PATH: &str = "/data";

/// Most live resources (streams, pollables, open files) one instance may hold at once.
const MAX_RESOURCES: usize = 16_384;

/// Per-instance store data.
pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) logs: LogSink,
    /// Canonical path of the data folder, if the app has one.
    pub(crate) data_dir: Option<Arc<Path>>,
    /// Largest file `read-data` returns.
    pub(crate) read_cap: usize,
    /// Time origin of the guest's monotonic clock.
    origin: Instant,
    /// When the call in progress must end.
    deadline: Option<Instant>,
    /// Raised by the clock when it cut a sleep short at the deadline.
    sleep_cut_short: Arc<AtomicBool>,
    /// The cancellation flag of the call in progress, if it can be cancelled.
    pub(crate) cancel: Option<Arc<AtomicBool>>,
    /// Where progress reports of the call in progress go, if anywhere.
    pub(crate) progress: Option<ProgressSink>,
    /// Largest progress report passed on (the output cap).
    progress_cap: usize,
    /// Where `stream-props` updates of the call in progress go (a WebSocket callback's
    /// connection), if anywhere.
    pub(crate) stream: Option<StreamSink>,
    /// Updates and bytes streamed during the call in progress (bounded by
    /// [`MAX_STREAMED_UPDATES`] and the output cap).
    streamed: Streamed,
    /// Asks the page of the call's WebSocket connection for props (`host.get-props`), if
    /// the call came over one.
    pub(crate) page: Option<PageProps>,
    /// The app's settings and secrets (`host.setting`).
    pub(crate) settings: Settings,
    /// The CPU scheduler's claim of the call in progress: the epoch callback gives the core
    /// away and takes it back through it, and sleeps give it up.
    pub(crate) cpu: Option<Arc<Ticket>>,
    /// Whose instance this is (handed to the capabilities).
    owner: Owner,
    /// The app's data sources and cache, if the platform granted any.
    pub(crate) capabilities: Option<Arc<dyn Capabilities>>,
    /// The viewer of the call in progress (`host.viewer`).
    pub(crate) viewer: Option<Viewer>,
    /// Whether the call in progress is memoized (`host.viewer` then refuses).
    pub(crate) memoized: bool,
    /// `wasi:http` state and the app's outbound policy (see `outbound.rs`).
    http: WasiHttpCtx,
    outbound: Outbound,
}

/// Receives the progress reports of one call, as the JSON text the guest sent.
pub type ProgressSink = Arc<dyn Fn(String) + Send + Sync>;

/// Receives the `stream-props` updates of one call, in order: the component id (as Dash
/// stringifies it) and the props, a JSON dictionary checked to be one.
pub type StreamSink = Arc<dyn Fn(String, String) + Send + Sync>;

/// Asks the page of a WebSocket callback's connection for props (`host.get-props`): the
/// component id (as Dash stringifies it) and the prop names go out at once; the receiver
/// gets the page's answer, a JSON dictionary of those props. A closed connection drops the
/// sender (and raises the call's cancellation flag).
pub type PageProps = Arc<dyn Fn(String, Vec<String>) -> mpsc::Receiver<String> + Send + Sync>;

/// Passes a progress report to `sink`, if there is one and the report is within `cap`
/// (the output cap); anything else is dropped, a report over the cap with a log line.
/// The report may still be the guest's (borrowed from its memory): it is copied only once
/// it is known to be within the cap.
pub(crate) fn report_progress(sink: Option<&ProgressSink>, cap: usize, logs: &LogSink, json: &str) {
    let Some(sink) = sink else {
        return;
    };
    if json.len() > cap {
        logs.host(
            crate::capture::Level::Warn,
            &format!(
                "progress report of {} bytes dropped (over the output cap)",
                json.len()
            ),
        );
        return;
    }
    sink(json.to_owned());
}

/// What one call has streamed so far, against its bounds ([`stream_props`]).
#[derive(Default)]
pub(crate) struct Streamed {
    updates: AtomicUsize,
    bytes: AtomicUsize,
}

impl Streamed {
    /// A new call: nothing streamed yet.
    pub(crate) fn reset(&mut self) {
        *self.updates.get_mut() = 0;
        *self.bytes.get_mut() = 0;
    }
}

/// Passes one streamed update (a component's `stream-props`, a Python app's `set_props`
/// over the WebSocket) to `sink`: `Ok(false)` without a sink, an error past the call's
/// bounds ([`MAX_STREAMED_UPDATES`], bytes over `cap`, the output cap, counted in
/// `streamed` over the whole call) or for props that are not a JSON dictionary. The
/// strings may still be the guest's: they are copied only once they are within bounds.
pub(crate) fn stream_props(
    sink: Option<&StreamSink>,
    streamed: &Streamed,
    cap: usize,
    id: &str,
    props: &str,
) -> std::result::Result<bool, String> {
    let Some(sink) = sink else {
        return Ok(false);
    };
    // One guest thread calls at a time; the atomics only make `&self` enough.
    let updates = streamed.updates.load(Ordering::Relaxed);
    if updates >= MAX_STREAMED_UPDATES {
        return Err(format!(
            "this call already streamed {MAX_STREAMED_UPDATES} updates, its limit"
        ));
    }
    let bytes = streamed
        .bytes
        .load(Ordering::Relaxed)
        .saturating_add(id.len())
        .saturating_add(props.len());
    if bytes > cap {
        return Err(format!(
            "streaming {} more bytes would take this call past its output cap of {cap} bytes",
            id.len() + props.len(),
        ));
    }
    // Valid JSON that starts with `{` is a dictionary; checked without building it.
    if !props.trim_start().starts_with('{')
        || serde_json::from_str::<serde::de::IgnoredAny>(props).is_err()
    {
        return Err(NOT_A_DICTIONARY.to_string());
    }
    streamed.updates.store(updates + 1, Ordering::Relaxed);
    streamed.bytes.store(bytes, Ordering::Relaxed);
    sink(id.to_owned(), props.to_owned());
    Ok(true)
}

/// Most `stream-props` updates one call may send.
pub const MAX_STREAMED_UPDATES: usize = 10_000;

/// Why a `stream-props` update was not sent.
const NOT_A_DICTIONARY: &str = "stream-props takes a JSON dictionary of props";

impl State {
    /// Fresh state for a new instance: nothing granted but the data folder, read-only, and
    /// the app's settings through `host.setting`.
    pub(crate) fn new(
        limits: &Limits,
        data_dir: Option<&Arc<Path>>,
        settings: &Settings,
        owner: Owner,
        capabilities: Option<&Arc<dyn Capabilities>>,
        outbound: &Arc<OutboundPolicy>,
    ) -> Result<State> {
        let logs = LogSink::new(limits.log_bytes);
        let mut wasi = WasiCtx::builder();
        // No env, args or stdin are set, so the guest sees none. Networking is not even
        // linked; refusing it here as well keeps a future linker change from granting it.
        wasi.stdout(logs.stream(Pipe::Stdout))
            .stderr(logs.stream(Pipe::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // Calls already block their thread, so file reads may too, which avoids a hop
            // through a tokio blocking thread for every read.
            .allow_blocking_current_thread(true);
        if let Some(dir) = data_dir {
            wasi.preopened_dir(dir, DATA_GUEST_PATH, FsPerms::ReadOnly)
                .map_err(|e| Error::Io {
                    context: "cannot open the app's data folder".to_string(),
                    source: std::io::Error::other(format!("{e:#}")),
                })?;
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Ok(State {
            wasi: wasi.build(),
            table,
            limiter: Limiter::new(limits.memory_bytes),
            logs: logs.clone(),
            data_dir: data_dir.cloned(),
            read_cap: MAX_DATA_READ_BYTES.min(limits.memory_bytes),
            origin: Instant::now(),
            deadline: None,
            sleep_cut_short: Arc::default(),
            cancel: None,
            progress: None,
            progress_cap: limits.output_bytes,
            stream: None,
            page: None,
            streamed: Streamed::default(),
            settings: settings.clone(),
            cpu: None,
            owner,
            capabilities: capabilities.cloned(),
            viewer: None,
            memoized: false,
            http: WasiHttpCtx::new(),
            outbound: Outbound::new(outbound.clone(), logs),
        })
    }

    /// The view the deadline-aware monotonic clock works on.
    pub(crate) fn clock(&mut self) -> ClockView<'_> {
        ClockView {
            table: &mut self.table,
            origin: self.origin,
            deadline: self.deadline,
            cut_short: &self.sleep_cut_short,
            cancel: self.cancel.as_ref(),
            cpu: self.cpu.as_ref(),
        }
    }

    /// Starts a call that must end by `deadline`.
    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
        self.sleep_cut_short.store(false, Ordering::Relaxed);
        self.outbound.begin_call(deadline);
    }

    /// Whether the guest slept into its deadline during this call.
    pub(crate) fn slept_past_deadline(&self) -> bool {
        self.sleep_cut_short.load(Ordering::Relaxed)
    }

    /// Whether the call in progress has been cancelled.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    /// What a capability is told about the call in progress (outside a call, which never
    /// happens for a guest's host call, the deadline is now).
    pub(crate) fn call_context(&self) -> CallContext {
        CallContext::new(
            self.owner,
            self.viewer.clone(),
            self.memoized,
            self.deadline.unwrap_or_else(Instant::now),
            self.read_cap,
            self.cancel.clone(),
        )
    }

    /// The deadline of the call in progress.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Passes a progress report to the call's sink ([`report_progress`]).
    pub(crate) fn report_progress(&self, json: &str) {
        report_progress(self.progress.as_ref(), self.progress_cap, &self.logs, json);
    }

    /// Starts a call that streams to `sink` (or nowhere) and reads props from `page` (or
    /// nowhere), with fresh streaming bounds.
    pub(crate) fn set_stream(&mut self, sink: Option<StreamSink>, page: Option<PageProps>) {
        self.stream = sink;
        self.page = page;
        self.streamed.reset();
    }

    /// Passes one `stream-props` update to the call's sink ([`stream_props`]).
    pub(crate) fn stream_props(&self, id: &str, props: &str) -> std::result::Result<bool, String> {
        stream_props(
            self.stream.as_ref(),
            &self.streamed,
            self.progress_cap,
            id,
            props,
        )
    }

    /// The view of `wasi:io/poll`, whose waits give the call's core up.
    pub(crate) fn poll(&mut self) -> PollView<'_> {
        PollView {
            table: &mut self.table,
            cpu: self.cpu.as_ref(),
            deadline: self.deadline,
        }
    }

    /// The resource table, for the `wasi:io` interfaces.
    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
