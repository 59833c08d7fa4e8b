//! What a 0.2.0 component may ask of the platform beyond `host`: SQL on the tenant's data
//! sources (`data`) and a cache per tenant and app (`cache`), both served by the
//! [`Capabilities`] the platform hands over at load time, and `host.viewer`.
//!
//! These host calls block (a database or Redis round trip), so they are not made while
//! the guest holds its core: [`blocking`] gives the call's CPU ticket back, runs the
//! capability and takes a core again. The capability runs on a helper thread, which the
//! guest's thread waits for at most until the call's deadline, looking at the cancellation
//! flag every [`CANCEL_CHECK`]; or, when the implementation says it may
//! ([`Capabilities::runs_on_caller`]), on the guest's own thread, without the hop to
//! another thread, and then the implementation itself stops at the deadline or the
//! cancellation. A call past its deadline, or cancelled, fails exactly like one stopped
//! by an epoch tick, whatever the capability does afterwards.
//!
//! Arguments are checked against their caps while still in guest memory
//! ([`GuestStr`], [`WasmList`]) and copied only when they fit; an answer is checked against
//! the call's answer cap ([`CallContext::max_answer_bytes`]) before it is handed to the
//! guest, whose own allocation of it is then counted by the memory limiter.

use crate::bindings::v0_2::tessera::dashboard::data as wit;
use crate::config::Owner;
use crate::lift::GuestStr;
use crate::scheduler::Ticket;
use crate::state::State;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{ComponentType, Lift, Linker, WasmList};
use wasmtime::{StoreContextMut, Trap};

/// Longest data source name `query` accepts.
pub const MAX_SOURCE_NAME_BYTES: usize = 256;
/// Longest SQL statement `query` accepts.
pub const MAX_SQL_BYTES: usize = 64 << 10;
/// Most parameters one query binds.
pub const MAX_QUERY_PARAMS: usize = 4096;
/// Most bytes of text all parameters of one query hold together.
pub const MAX_PARAM_TEXT_BYTES: usize = 1 << 20;
/// Longest cache key.
pub const MAX_CACHE_KEY_BYTES: usize = 1024;
/// Largest cache value `set` accepts (further capped by the call's answer cap, since the
/// guest could not read back more).
pub const MAX_CACHE_VALUE_BYTES: usize = 16 << 20;

/// How often a waiting host call looks at its call's cancellation flag.
pub(crate) const CANCEL_CHECK: Duration = Duration::from_millis(50);

/// The data sources and the cache of one loaded app, implemented by the platform and
/// given in [`LoadOptions::capabilities`](crate::LoadOptions::capabilities).
///
/// # Threads
///
/// Unless [`Capabilities::runs_on_caller`] says otherwise, every method is called on a
/// plain helper thread the sandbox keeps for host calls (never a tokio worker, never
/// inside a runtime), so an implementation may block, for instance on
/// `tokio::runtime::Handle::block_on` of the platform's async domain functions. The
/// sandbox stops waiting at [`CallContext::deadline`] or when the call is cancelled
/// ([`CallContext::cancelled`]) and fails the call; the method's eventual answer is then
/// dropped. An implementation should end its own work by then too (a timeout at the
/// deadline), since until it returns it holds that thread and whatever it borrowed.
///
/// Errors are messages for the app's author: they must not carry credentials or host
/// names of the source.
pub trait Capabilities: Send + Sync + 'static {
    /// Runs one read-only statement on the data source `source` granted to the app of
    /// `call.owner` and answers an Arrow IPC stream of at most `call.max_answer_bytes`
    /// (a longer answer is refused with [`QueryError::Limit`] before the guest sees it).
    fn query(
        &self,
        call: &CallContext,
        source: &str,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<u8>, QueryError>;

    /// The cached value of `key` in the namespace of `call.owner` (tenant and app).
    fn cache_get(&self, call: &CallContext, key: &str) -> Result<Option<Vec<u8>>, String>;

    /// Stores `value` under `key` for `ttl` in the namespace of `call.owner`.
    fn cache_set(
        &self,
        call: &CallContext,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), String>;

    /// Removes `key` from the namespace of `call.owner`.
    fn cache_delete(&self, call: &CallContext, key: &str) -> Result<(), String>;

    /// Whether the host call being made on the current thread (the guest's) may run the
    /// methods above right here, without a helper thread. An implementation that answers
    /// `true` must be able to block this thread (for `Handle::block_on`: not a runtime's
    /// worker) and must itself return by [`CallContext::deadline`] and soon after
    /// [`CallContext::cancelled`] turns true, since nobody else is watching the call
    /// meanwhile. By default `false`: every call runs on a helper thread.
    fn runs_on_caller(&self) -> bool {
        false
    }
}

/// The call a capability is used by: whose it is and what bounds it.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The tenant and app of the component (as loaded).
    pub owner: Owner,
    /// The viewer of the request ([`CallOptions::viewer`](crate::CallOptions::viewer));
    /// `None` for an anonymous viewer and while the app loads.
    pub viewer: Option<Viewer>,
    /// Whether the call's answer is shared between viewers
    /// ([`CallOptions::memoized`](crate::CallOptions::memoized)).
    pub memoized: bool,
    /// When the call must end: the capability must answer before.
    pub deadline: Instant,
    /// Largest answer (query result, cache value) the guest may be handed.
    pub max_answer_bytes: usize,
    cancel: Option<Arc<AtomicBool>>,
}

impl CallContext {
    /// Whether the call has been cancelled (its answer is no longer wanted).
    pub fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    /// Time left until [`CallContext::deadline`] (zero once it passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Whether the call can no longer finish: cancelled or past its deadline.
    pub(crate) fn over(&self) -> bool {
        self.cancelled() || Instant::now() >= self.deadline
    }
}

/// The signed-in person whose request runs a callback (`host.viewer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    /// The platform's user id.
    pub user_id: String,
    /// Their email address, if known.
    pub email: Option<String>,
    /// The names of their groups (teams) in the app's tenant.
    pub groups: Vec<String>,
}

/// A bound parameter of a query.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Boolean(bool),
    /// A 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Float(f64),
    /// A string.
    Text(String),
}

/// Why a query gave no answer (the WIT's `query-error`; see its documentation).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No such source is granted to the app.
    #[error("not granted: {0}")]
    NotGranted(String),
    /// Refused before it ran (not one read-only statement, an argument over its limit).
    #[error("refused: {0}")]
    Refused(String),
    /// A timeout or a row or byte cap ended it.
    #[error("limit: {0}")]
    Limit(String),
    /// The database reported an error.
    #[error("failed: {0}")]
    Failed(String),
    /// The source (or every source, on a server without them) cannot be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<QueryError> for wit::QueryError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::NotGranted(m) => wit::QueryError::NotGranted(m),
            QueryError::Refused(m) => wit::QueryError::Refused(m),
            QueryError::Limit(m) => wit::QueryError::Limit(m),
            QueryError::Failed(m) => wit::QueryError::Failed(m),
            QueryError::Unavailable(m) => wit::QueryError::Unavailable(m),
        }
    }
}

/// What `query` answers without [`Capabilities`].
pub(crate) const NO_SOURCES: &str = "data sources are not available on this server";
/// What the cache answers without [`Capabilities`].
pub(crate) const NO_CACHE: &str = "the cache is not available on this server";

/// `param` of the WIT, with its text still in guest memory.
#[derive(ComponentType, Lift)]
#[component(variant)]
enum RawParam {
    #[component(name = "null")]
    Null,
    #[component(name = "boolean")]
    Boolean(bool),
    #[component(name = "integer")]
    Integer(i64),
    #[component(name = "float")]
    Float(f64),
    #[component(name = "text")]
    Text(GuestStr),
}

const DATA_INTERFACE: &str = "tessera:dashboard/data@0.2.0";
const CACHE_INTERFACE: &str = "tessera:dashboard/cache@0.2.0";

/// Defines `tessera:dashboard/data@0.2.0` and `tessera:dashboard/cache@0.2.0`.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    let mut data = linker.instance(DATA_INTERFACE)?;
    data.func_wrap(
        "query",
        |store: StoreContextMut<'_, State>,
         (source, sql, params): (GuestStr, GuestStr, WasmList<RawParam>)| {
            let answer = query(store, &source, &sql, &params)?;
            Ok((answer.map_err(wit::QueryError::from),))
        },
    )?;
    let mut cache = linker.instance(CACHE_INTERFACE)?;
    cache.func_wrap(
        "get",
        |store: StoreContextMut<'_, State>, (key,): (GuestStr,)| {
            let (capabilities, key) = match cache_key(&store, &key)? {
                Ok(found) => found,
                Err(refusal) => return Ok((Err(refusal),)),
            };
            let inline = capabilities.runs_on_caller();
            let answer = blocking(store, inline, move |call| {
                let value = capabilities.cache_get(call, &key)?;
                match value {
                    Some(value) if value.len() > call.max_answer_bytes => Err(format!(
                        "the cached value is {} bytes, over this call's limit of {}",
                        value.len(),
                        call.max_answer_bytes
                    )),
                    value => Ok(value),
                }
            })?;
            Ok((answer,))
        },
    )?;
    cache.func_wrap(
        "set",
        |store: StoreContextMut<'_, State>, (key, value, ttl): (GuestStr, WasmList<u8>, u32)| {
            let limit = MAX_CACHE_VALUE_BYTES.min(store.data().read_cap);
            if value.len() > limit {
                return Ok((Err(format!(
                    "the value is {} bytes, over the limit of {limit}",
                    value.len()
                )),));
            }
            if ttl == 0 {
                return Ok((Err(
                    "the time-to-live must be at least one second".to_string()
                ),));
            }
            let (capabilities, key) = match cache_key(&store, &key)? {
                Ok(found) => found,
                Err(refusal) => return Ok((Err(refusal),)),
            };
            let value = value.as_le_slice(&store).to_vec();
            let ttl = Duration::from_secs(u64::from(ttl));
            let inline = capabilities.runs_on_caller();
            let answer = blocking(store, inline, move |call| {
                capabilities.cache_set(call, &key, &value, ttl)
            })?;
            Ok((answer,))
        },
    )?;
    cache.func_wrap(
        "delete",
        |store: StoreContextMut<'_, State>, (key,): (GuestStr,)| {
            let (capabilities, key) = match cache_key(&store, &key)? {
                Ok(found) => found,
                Err(refusal) => return Ok((Err(refusal),)),
            };
            let inline = capabilities.runs_on_caller();
            let answer = blocking(store, inline, move |call| {
                capabilities.cache_delete(call, &key)
            })?;
            Ok((answer,))
        },
    )?;
    Ok(())
}

/// The cache and the key, copied once it is known to be within its cap; an error answer
/// without a cache or for an oversized key.
#[allow(clippy::type_complexity)]
fn cache_key(
    store: &StoreContextMut<'_, State>,
    key: &GuestStr,
) -> wasmtime::Result<Result<(Arc<dyn Capabilities>, String), String>> {
    let Some(capabilities) = store.data().capabilities.clone() else {
        return Ok(Err(NO_CACHE.to_string()));
    };
    let too_long = |size: usize| {
        Ok(Err(format!(
            "the key is {size} bytes, over the limit of {MAX_CACHE_KEY_BYTES}"
        )))
    };
    if key.units() > MAX_CACHE_KEY_BYTES {
        return too_long(key.units());
    }
    let key = key.to_str(store)?;
    if key.len() > MAX_CACHE_KEY_BYTES {
        return too_long(key.len());
    }
    Ok(Ok((capabilities, key.into_owned())))
}

/// `data.query`: arguments checked in place, then the capability on a helper thread.
fn query(
    mut store: StoreContextMut<'_, State>,
    source: &GuestStr,
    sql: &GuestStr,
    params: &WasmList<RawParam>,
) -> wasmtime::Result<Result<Vec<u8>, QueryError>> {
    let Some(capabilities) = store.data().capabilities.clone() else {
        return Ok(Err(QueryError::Unavailable(NO_SOURCES.to_string())));
    };
    let refused = |what: &str, size: usize, limit: usize| {
        Ok(Err(QueryError::Refused(format!(
            "the {what} is {size} bytes, over the limit of {limit}"
        ))))
    };
    if source.units() > MAX_SOURCE_NAME_BYTES {
        return refused("source name", source.units(), MAX_SOURCE_NAME_BYTES);
    }
    if sql.units() > MAX_SQL_BYTES {
        return refused("statement", sql.units(), MAX_SQL_BYTES);
    }
    if params.len() > MAX_QUERY_PARAMS {
        return Ok(Err(QueryError::Refused(format!(
            "{} parameters, over the limit of {MAX_QUERY_PARAMS}",
            params.len()
        ))));
    }
    let source_name = source.to_str(&store)?.into_owned();
    let statement = sql.to_str(&store)?.into_owned();
    if statement.len() > MAX_SQL_BYTES {
        return refused("statement", statement.len(), MAX_SQL_BYTES);
    }
    // Lifting a parameter reads only its tag and scalar or string bounds; texts are
    // copied once their total is known to stay within the cap.
    let mut raw = Vec::with_capacity(params.len());
    let mut text_bytes = 0usize;
    for param in params.iter(&mut store)? {
        let param = param?;
        if let RawParam::Text(text) = &param {
            text_bytes = text_bytes.saturating_add(text.units());
            if text_bytes > MAX_PARAM_TEXT_BYTES {
                return refused("parameters' text", text_bytes, MAX_PARAM_TEXT_BYTES);
            }
        }
        raw.push(param);
    }
    let mut bound = Vec::with_capacity(raw.len());
    for param in raw {
        bound.push(match param {
            RawParam::Null => Param::Null,
            RawParam::Boolean(b) => Param::Boolean(b),
            RawParam::Integer(i) => Param::Integer(i),
            RawParam::Float(f) => Param::Float(f),
            RawParam::Text(text) => Param::Text(text.to_str(&store)?.into_owned()),
        });
    }
    let inline = capabilities.runs_on_caller();
    blocking(store, inline, move |call| {
        let answer = capabilities.query(call, &source_name, &statement, &bound)?;
        if answer.len() > call.max_answer_bytes {
            return Err(QueryError::Limit(format!(
                "the answer is {} bytes, over this call's limit of {}",
                answer.len(),
                call.max_answer_bytes
            )));
        }
        Ok(answer)
    })
}

/// Runs `work` (a capability) for the call in progress without holding a core: gives the
/// call's CPU ticket back, runs `work` (right here when `inline`, else on a helper thread,
/// waiting for it until the call's deadline or its cancellation), then takes a core again.
/// A call that can no longer finish traps with [`Trap::Interrupt`], which the call turns
/// into its deadline or cancellation error, exactly as for an epoch tick.
pub(crate) fn blocking<T: Send + 'static>(
    store: StoreContextMut<'_, State>,
    inline: bool,
    work: impl FnOnce(&CallContext) -> T + Send + 'static,
) -> wasmtime::Result<T> {
    let state = store.data();
    without_core(state.call_context(), state.cpu.clone(), inline, work)
}

/// [`blocking`] for any guest: the call's context and its CPU ticket, if it holds one.
pub(crate) fn without_core<T: Send + 'static>(
    call: CallContext,
    ticket: Option<Arc<Ticket>>,
    inline: bool,
    work: impl FnOnce(&CallContext) -> T + Send + 'static,
) -> wasmtime::Result<T> {
    if call.over() {
        return Err(Trap::Interrupt.into());
    }
    if let Some(ticket) = &ticket {
        ticket.release();
    }
    let answer = if inline {
        // The implementation stops by itself at the deadline or the cancellation
        // (`Capabilities::runs_on_caller`); an answer that comes too late is dropped.
        let answer = work(&call);
        if call.over() {
            Err(Trap::Interrupt.into())
        } else {
            Ok(answer)
        }
    } else {
        let (sender, receiver) = mpsc::sync_channel(1);
        let context = call.clone();
        let spawned = on_helper(move || {
            // The receiver is gone when the call stopped waiting; the answer is dropped.
            let _ = sender.send(work(&context));
        });
        match spawned {
            Ok(_) => wait(&receiver, &call),
            Err(error) => Err(wasmtime::format_err!(
                "cannot start a thread for a host call: {error}"
            )),
        }
    };
    if let Some(ticket) = &ticket
        && ticket.acquire(call.deadline).is_err()
    {
        return Err(Trap::Interrupt.into());
    }
    answer
}

/// A host call's work, run on a helper thread.
type Job = Box<dyn FnOnce() + Send>;

/// Helper threads waiting for their next host call, newest last.
static IDLE_HELPERS: Mutex<Vec<(u64, mpsc::SyncSender<Job>)>> = Mutex::new(Vec::new());
/// How long a helper thread waits for another call before it exits.
const HELPER_IDLE: Duration = Duration::from_secs(10);
/// Most helper threads kept waiting; the others exit once their call is done.
const MAX_IDLE_HELPERS: usize = 32;

/// Runs `work` on an idle helper thread, or on a new one: a host call does not pay a
/// thread start each time. A helper runs one call at a time, so a call that blocks (a
/// slow database) holds only its own thread, as before.
fn on_helper(work: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let mut job: Job = Box::new(work);
    loop {
        let idle = IDLE_HELPERS.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let Some((_, helper)) = idle else { break };
        match helper.send(job) {
            Ok(()) => return Ok(()),
            // That helper has exited: try the next one.
            Err(mpsc::SendError(back)) => job = back,
        }
    }
    std::thread::Builder::new()
        .name("tessera-host-call".to_string())
        .spawn(move || helper(job))
        .map(|_| ())
}

/// A helper thread: its first call, then the calls handed to it while it waits.
fn helper(first: Job) {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut job = first;
    loop {
        job();
        let (sender, receiver) = mpsc::sync_channel(1);
        {
            let mut idle = IDLE_HELPERS.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() >= MAX_IDLE_HELPERS {
                return;
            }
            idle.push((id, sender));
        }
        job = match receiver.recv_timeout(HELPER_IDLE) {
            Ok(next) => next,
            Err(_) => {
                let mut idle = IDLE_HELPERS.lock().unwrap_or_else(|e| e.into_inner());
                match idle.iter().position(|(other, _)| *other == id) {
                    Some(at) => {
                        idle.remove(at);
                        return;
                    }
                    // A caller took this helper just now: its call is on the way.
                    None => {
                        drop(idle);
                        match receiver.recv() {
                            Ok(next) => next,
                            Err(_) => return,
                        }
                    }
                }
            }
        };
    }
}

/// The helper thread's answer, or [`Trap::Interrupt`] once the call is over.
fn wait<T>(receiver: &mpsc::Receiver<T>, call: &CallContext) -> wasmtime::Result<T> {
    loop {
        match receiver.recv_timeout(CANCEL_CHECK.min(call.remaining())) {
            Ok(answer) => return Ok(answer),
            Err(RecvTimeoutError::Timeout) if call.over() => return Err(Trap::Interrupt.into()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(wasmtime::format_err!(
                    "the platform's capability failed while answering"
                ));
            }
        }
    }
}

impl CallContext {
    /// The context of a call: built by the instance's state.
    pub(crate) fn new(
        owner: Owner,
        viewer: Option<Viewer>,
        memoized: bool,
        deadline: Instant,
        max_answer_bytes: usize,
        cancel: Option<Arc<AtomicBool>>,
    ) -> CallContext {
        CallContext {
            owner,
            viewer,
            memoized,
            deadline,
            max_answer_bytes,
            cancel,
        }
    }
}
