//! `host.call`, the one door between a Python guest and the host: the frames of a request's
//! turn (`q`, `r`, `l`), a background callback's progress (`p`), a WebSocket callback's
//! streamed `set_props` (`t`) and props read from its page (`w`), and the app's
//! capabilities (`d` a data source query, `g`/`s`/`x` the cache, `v` the viewer, `h` an HTTP
//! request), which a component reaches through the 0.2.0 `data`, `cache` and `host`
//! imports and `wasi:http`.
//!
//! A capability frame is its kind byte, a 4-byte little-endian header length, a JSON header
//! and, for `s`, the value's bytes. Every argument is checked against the same caps as a
//! component's before anything is copied out of guest memory beyond the header, and the
//! capability runs without the call's core ([`without_core`]), until the call's deadline or
//! cancellation. The answer is a status byte and a payload: `0` done (a query's columns as
//! JSON, a cached value), `1` refused (a query's `{"kind", "message"}`, a cache's message),
//! `2` not in the cache.

use super::PyState;
use crate::capabilities::{
    CallContext, MAX_CACHE_KEY_BYTES, MAX_CACHE_VALUE_BYTES, MAX_PARAM_TEXT_BYTES,
    MAX_QUERY_PARAMS, MAX_SOURCE_NAME_BYTES, MAX_SQL_BYTES, NO_CACHE, NO_SOURCES, Param,
    QueryError, without_core,
};
use crate::capture::Level;
use http_body_util::BodyExt;
use serde::Deserialize;
use std::time::Duration;
use wasmtime::Caller;

/// Largest frame the guest may send through `host.call` (a callback's answer is one frame).
pub(super) const MAX_FRAME_BYTES: usize = 64 << 20;
/// Largest JSON header of a capability frame: a statement and its parameters' text fit.
const MAX_HEADER_BYTES: usize = MAX_SQL_BYTES + MAX_PARAM_TEXT_BYTES + (64 << 10);
/// Largest `h` frame: an HTTP request's header and body.
const MAX_FETCH_FRAME_BYTES: usize = 4 << 20;
/// Largest `w` frame: a component id and prop names within `host::get-props`'s bounds.
const MAX_PAGE_FRAME_BYTES: usize = 64 << 10;
/// `host.call`'s answers: done, or a fault the guest raises as `OSError`.
const DOOR_OK: i32 = 0;
const DOOR_FAULT: i32 = -2;

/// `host.call(ptr, len, out_ptr_ptr, out_len_ptr) -> status`: the guest's frames.
pub(super) fn door(
    mut caller: Caller<'_, PyState>,
    ptr: i32,
    len: i32,
    out_ptr_ptr: i32,
    out_len_ptr: i32,
) -> wasmtime::Result<i32> {
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        return Ok(DOOR_FAULT);
    };
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    if len > MAX_FRAME_BYTES || ptr.saturating_add(len) > memory.data_size(&caller) {
        if len > MAX_FRAME_BYTES {
            caller.data_mut().oversized = Some(len);
        }
        return Ok(DOOR_FAULT);
    }
    let kind = memory.data(&caller)[ptr..ptr + len].first().copied();
    let reply: Vec<u8> = match kind {
        Some(b'q') => caller.data().request.clone(),
        Some(b'r') => {
            let cap = caller.data().output_cap;
            if len - 1 > cap.saturating_add(64) {
                caller.data_mut().oversized = Some(len - 1);
            } else {
                let answer = memory.data(&caller)[ptr + 1..ptr + len].to_vec();
                caller.data_mut().answer = Some(answer);
            }
            b"ok".to_vec()
        }
        Some(b'l') => {
            let text = &memory.data(&caller)[ptr + 1..ptr + len];
            let level = match text.first() {
                Some(b'0') => Level::Trace,
                Some(b'1') => Level::Debug,
                Some(b'3') => Level::Warn,
                Some(b'4') => Level::Error,
                _ => Level::Info,
            };
            let message = String::from_utf8_lossy(text.get(1..).unwrap_or_default()).into_owned();
            caller.data().logs.host(level, &message);
            b"ok".to_vec()
        }
        Some(b'v') => viewer(caller.data()),
        Some(b'p') => {
            let state = caller.data();
            let report = &memory.data(&caller)[ptr + 1..ptr + len];
            match std::str::from_utf8(report) {
                Ok(json) => crate::state::report_progress(
                    state.progress.as_ref(),
                    state.output_cap,
                    &state.logs,
                    json,
                ),
                Err(_) => return Ok(DOOR_FAULT),
            }
            b"ok".to_vec()
        }
        Some(b'h') => {
            if len - 1 > MAX_FETCH_FRAME_BYTES {
                refused(&format!(
                    "the request is over the limit of {MAX_FETCH_FRAME_BYTES} bytes"
                ))
            } else {
                let frame = memory.data(&caller)[ptr + 1..ptr + len].to_vec();
                fetch(caller.data_mut(), &frame)?
            }
        }
        Some(b't') => stream(caller.data(), &memory.data(&caller)[ptr + 1..ptr + len]),
        Some(b'w') => {
            if len - 1 > MAX_PAGE_FRAME_BYTES {
                refused(&format!(
                    "the request is over the limit of {MAX_PAGE_FRAME_BYTES} bytes"
                ))
            } else {
                page_props(caller.data(), &memory.data(&caller)[ptr + 1..ptr + len])?
            }
        }
        Some(kind @ (b'd' | b'g' | b's' | b'x')) => {
            let frame = &memory.data(&caller)[ptr + 1..ptr + len];
            capability(caller.data(), kind, frame)?
        }
        _ => return Ok(DOOR_FAULT),
    };
    let Some(alloc) = caller.get_export("host_alloc").and_then(|e| e.into_func()) else {
        return Ok(DOOR_FAULT);
    };
    let alloc = alloc.typed::<i32, i32>(&caller)?;
    let reply_len = i32::try_from(reply.len())?;
    let at = alloc.call(&mut caller, reply_len)? as u32 as usize;
    if at == 0 || at.saturating_add(reply.len()) > memory.data_size(&caller) {
        return Ok(DOOR_FAULT);
    }
    memory.write(&mut caller, at, &reply)?;
    memory.write(
        &mut caller,
        out_ptr_ptr as u32 as usize,
        &(at as u32).to_le_bytes(),
    )?;
    memory.write(
        &mut caller,
        out_len_ptr as u32 as usize,
        &(reply.len() as u32).to_le_bytes(),
    )?;
    Ok(DOOR_OK)
}

/// The `v` frame: the call's signed-in viewer as JSON (`user_id`, `email`, `groups`), `2`
/// for an anonymous one, refused in a memoized call (its answer is shared between viewers).
fn viewer(state: &PyState) -> Vec<u8> {
    if state.memoized {
        return refused(crate::host::MEMOIZED_VIEWER);
    }
    match &state.viewer {
        Some(viewer) => done(
            serde_json::json!({
                "user_id": viewer.user_id,
                "email": viewer.email,
                "groups": viewer.groups,
            })
            .to_string()
            .as_bytes(),
        ),
        None => vec![b'2'],
    }
}

/// The `t` frame: a 4-byte length, a component id and its props as a JSON dictionary, sent
/// to the WebSocket of the call at once (Dash's streaming `set_props`) within the bounds a
/// component's `stream-props` has. Done; `2` when the call has no socket (the guest then
/// answers the props with the callback's); refused past the bounds.
fn stream(state: &PyState, frame: &[u8]) -> Vec<u8> {
    let Some((length, rest)) = frame.split_first_chunk::<4>() else {
        return refused("malformed update");
    };
    let Some((id, props)) = rest.split_at_checked(u32::from_le_bytes(*length) as usize) else {
        return refused("malformed update");
    };
    let (Ok(id), Ok(props)) = (std::str::from_utf8(id), std::str::from_utf8(props)) else {
        return refused("the update is not UTF-8");
    };
    match crate::state::stream_props(
        state.stream.as_ref(),
        &state.streamed,
        state.output_cap,
        id,
        props,
    ) {
        Ok(true) => done(b""),
        Ok(false) => vec![b'2'],
        Err(why) => refused(&why),
    }
}

/// A `w` frame: which props of which component to read from the page.
#[derive(Deserialize)]
struct PagePropsHeader {
    id: String,
    names: Vec<String>,
}

/// The `w` frame (`ctx.websocket.get_prop`): the props the page of the call's WebSocket
/// holds, as JSON by name, waited for without the call's core until its deadline or
/// cancellation, within `host::get-props`'s bounds; `2` when the call has no page.
fn page_props(state: &PyState, frame: &[u8]) -> wasmtime::Result<Vec<u8>> {
    let Some(page) = state.page.clone() else {
        return Ok(vec![b'2']);
    };
    let Ok(PagePropsHeader { id, names }) = serde_json::from_slice(frame) else {
        return Ok(refused("malformed request"));
    };
    let over = crate::host::names_over_bounds(names.len())
        .or_else(|| crate::host::id_over_bounds(id.len()))
        .or_else(|| {
            names
                .iter()
                .find_map(|name| crate::host::name_over_bounds(name.len()))
        });
    if let Some(why) = over {
        return Ok(refused(&why));
    }
    let answer = page(id, names);
    // The wait stops by itself at the deadline or the cancellation.
    without_core(state.call_context(), state.cpu.clone(), true, move |call| {
        match crate::host::wait_for_page(&answer, call) {
            Ok(props) => done(props.as_bytes()),
            Err(why) => refused(&why),
        }
    })
}

/// An `h` frame's header: an HTTP request (its body is the frame's tail).
#[derive(Deserialize)]
struct FetchHeader {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
}

/// The `h` frame: an HTTP request of the callback, under the app's outbound policy
/// (allowlist, public addresses only, the call's request cap, timeouts, the response cap:
/// `Outbound::fetch`, as a component's `wasi:http` request), sent without the call's core.
/// Done: a 4-byte header length, `{"status", "headers"}` and the body; refused: why.
fn fetch(state: &mut PyState, frame: &[u8]) -> wasmtime::Result<Vec<u8>> {
    let Some((length, rest)) = frame.split_first_chunk::<4>() else {
        return Ok(refused("malformed request"));
    };
    let length = u32::from_le_bytes(*length) as usize;
    let Some((header, body)) = rest.split_at_checked(length) else {
        return Ok(refused("malformed request"));
    };
    let Ok(header) = serde_json::from_slice::<FetchHeader>(header) else {
        return Ok(refused("malformed request"));
    };
    let mut request = http::Request::builder()
        .method(header.method.as_str())
        .uri(header.url.as_str());
    for (name, value) in &header.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let body = http_body_util::Full::new(bytes::Bytes::copy_from_slice(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let request = match request.body(body) {
        Ok(request) => request,
        Err(error) => return Ok(refused(&format!("not a valid request: {error}"))),
    };
    let Some(outbound) = state.outbound.as_mut() else {
        return Ok(refused("HTTP requests are sent only while a callback runs"));
    };
    let sending = match outbound.fetch(request) {
        Ok(sending) => sending,
        Err(error) => return Ok(refused(&http_refusal(&error))),
    };
    let (call, ticket) = (state.call_context(), state.cpu.clone());
    without_core(
        call,
        ticket,
        false,
        move |_| match wasmtime_wasi::runtime::in_tokio(sending) {
            Ok((head, body)) => {
                let headers: Vec<(&str, String)> = head
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.as_str(),
                            String::from_utf8_lossy(value.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                let meta = serde_json::json!({"status": head.status.as_u16(), "headers": headers})
                    .to_string();
                let mut payload = Vec::with_capacity(4 + meta.len() + body.len());
                payload.extend_from_slice(&(meta.len() as u32).to_le_bytes());
                payload.extend_from_slice(meta.as_bytes());
                payload.extend_from_slice(&body);
                done(&payload)
            }
            Err(error) => refused(&http_refusal(&error)),
        },
    )
}

/// What the guest is told about a failed request (the app's log says why a refused one was
/// refused, without its path or query).
fn http_refusal(error: &wasmtime_wasi_http::Error) -> String {
    match error {
        wasmtime_wasi_http::Error::HttpRequestDenied => {
            "refused: the app's outbound rules do not allow it (its log says which)".to_owned()
        }
        other => format!("failed: {other:?}"),
    }
}

/// A capability frame's header: a query.
#[derive(Deserialize)]
struct QueryHeader {
    source: String,
    sql: String,
    #[serde(default)]
    params: Vec<serde_json::Value>,
}

/// A capability frame's header: a cache operation.
#[derive(Deserialize)]
struct CacheHeader {
    key: String,
    #[serde(default)]
    ttl: u64,
}

fn done(payload: &[u8]) -> Vec<u8> {
    let mut reply = Vec::with_capacity(payload.len() + 1);
    reply.push(b'0');
    reply.extend_from_slice(payload);
    reply
}

fn refused(message: &str) -> Vec<u8> {
    let mut reply = Vec::with_capacity(message.len() + 1);
    reply.push(b'1');
    reply.extend_from_slice(message.as_bytes());
    reply
}

fn query_refused(error: &QueryError) -> Vec<u8> {
    let (kind, message) = match error {
        QueryError::NotGranted(m) => ("not-granted", m),
        QueryError::Refused(m) => ("refused", m),
        QueryError::Limit(m) => ("limit", m),
        QueryError::Failed(m) => ("failed", m),
        QueryError::Unavailable(m) => ("unavailable", m),
    };
    let body = serde_json::json!({"kind": kind, "message": message}).to_string();
    refused(&body)
}

/// One capability frame (`frame` is the frame after its kind byte, still in guest memory):
/// its answer, or a trap when the call is over (deadline, cancellation) meanwhile.
fn capability(state: &PyState, kind: u8, frame: &[u8]) -> wasmtime::Result<Vec<u8>> {
    let Some((length, rest)) = frame.split_first_chunk::<4>() else {
        return Ok(refused("malformed frame"));
    };
    let length = u32::from_le_bytes(*length) as usize;
    if length > MAX_HEADER_BYTES || length > rest.len() {
        let message = format!("the request is over the limit of {MAX_HEADER_BYTES} bytes");
        return Ok(match kind {
            b'd' => query_refused(&QueryError::Refused(message)),
            _ => refused(&message),
        });
    }
    let (header, tail) = rest.split_at(length);
    let call = state.call_context();
    let ticket = state.cpu.clone();
    if kind == b'd' {
        let Ok(header) = serde_json::from_slice::<QueryHeader>(header) else {
            return Ok(query_refused(&QueryError::Refused(
                "malformed query".to_owned(),
            )));
        };
        let Some(capabilities) = state.capabilities.clone() else {
            return Ok(query_refused(&QueryError::Unavailable(
                NO_SOURCES.to_owned(),
            )));
        };
        let (source, sql, params) = match checked_query(header) {
            Ok(query) => query,
            Err(error) => return Ok(query_refused(&error)),
        };
        let inline = capabilities.runs_on_caller();
        return without_core(call, ticket, inline, move |call| {
            match capabilities
                .query(call, &source, &sql, &params)
                .and_then(|answer| columns_json(&answer, call))
            {
                Ok(json) => done(json.as_bytes()),
                Err(error) => query_refused(&error),
            }
        });
    }
    let Ok(header) = serde_json::from_slice::<CacheHeader>(header) else {
        return Ok(refused("malformed cache request"));
    };
    let Some(capabilities) = state.capabilities.clone() else {
        return Ok(refused(NO_CACHE));
    };
    if header.key.len() > MAX_CACHE_KEY_BYTES {
        return Ok(refused(&format!(
            "the key is {} bytes, over the limit of {MAX_CACHE_KEY_BYTES}",
            header.key.len()
        )));
    }
    let key = header.key;
    let inline = capabilities.runs_on_caller();
    match kind {
        b'g' => without_core(call, ticket, inline, move |call| {
            match capabilities.cache_get(call, &key) {
                Ok(Some(value)) if value.len() > call.max_answer_bytes => refused(&format!(
                    "the cached value is {} bytes, over this call's limit of {}",
                    value.len(),
                    call.max_answer_bytes
                )),
                Ok(Some(value)) => done(&value),
                Ok(None) => vec![b'2'],
                Err(message) => refused(&message),
            }
        }),
        b's' => {
            let limit = MAX_CACHE_VALUE_BYTES.min(call.max_answer_bytes);
            if tail.len() > limit {
                return Ok(refused(&format!(
                    "the value is {} bytes, over the limit of {limit}",
                    tail.len()
                )));
            }
            if header.ttl == 0 || header.ttl > u64::from(u32::MAX) {
                return Ok(refused(
                    "the time-to-live must be a whole number of seconds, at least one",
                ));
            }
            let value = tail.to_vec();
            let ttl = Duration::from_secs(header.ttl);
            without_core(call, ticket, inline, move |call| {
                match capabilities.cache_set(call, &key, &value, ttl) {
                    Ok(()) => done(b""),
                    Err(message) => refused(&message),
                }
            })
        }
        _ => without_core(call, ticket, inline, move |call| {
            match capabilities.cache_delete(call, &key) {
                Ok(()) => done(b""),
                Err(message) => refused(&message),
            }
        }),
    }
}

/// A query's source, statement and parameters within the caps a component's query has.
fn checked_query(header: QueryHeader) -> Result<(String, String, Vec<Param>), QueryError> {
    let over = |what: &str, size: usize, limit: usize| {
        QueryError::Refused(format!(
            "the {what} is {size} bytes, over the limit of {limit}"
        ))
    };
    if header.source.len() > MAX_SOURCE_NAME_BYTES {
        return Err(over(
            "source name",
            header.source.len(),
            MAX_SOURCE_NAME_BYTES,
        ));
    }
    if header.sql.len() > MAX_SQL_BYTES {
        return Err(over("statement", header.sql.len(), MAX_SQL_BYTES));
    }
    if header.params.len() > MAX_QUERY_PARAMS {
        return Err(QueryError::Refused(format!(
            "{} parameters, over the limit of {MAX_QUERY_PARAMS}",
            header.params.len()
        )));
    }
    let mut text_bytes = 0usize;
    let mut params = Vec::with_capacity(header.params.len());
    for value in header.params {
        params.push(match value {
            serde_json::Value::Null => Param::Null,
            serde_json::Value::Bool(b) => Param::Boolean(b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Param::Integer(i),
                (None, Some(f)) if !n.is_u64() => Param::Float(f),
                _ => {
                    return Err(QueryError::Refused(format!(
                        "the parameter {n} does not fit a 64-bit integer"
                    )));
                }
            },
            serde_json::Value::String(text) => {
                text_bytes = text_bytes.saturating_add(text.len());
                if text_bytes > MAX_PARAM_TEXT_BYTES {
                    return Err(over("parameters' text", text_bytes, MAX_PARAM_TEXT_BYTES));
                }
                Param::Text(text)
            }
            _ => {
                return Err(QueryError::Refused(
                    "a parameter must be None, a bool, an int, a float or a str".to_owned(),
                ));
            }
        });
    }
    Ok((header.source, header.sql, params))
}

/// An Arrow IPC stream (a query's answer) as the JSON a Python guest builds its data frame
/// from: `{"columns": [{"name", "type", "values"}]}`, each column's values in row order
/// (`null` for NULL, binary as hex, dates as days and timestamps as microseconds since
/// 1970). Held to twice the call's answer cap, since numbers grow as text.
fn columns_json(ipc: &[u8], call: &CallContext) -> Result<String, QueryError> {
    use arrow_array::{Array, cast::AsArray, types};
    use arrow_schema::{DataType, TimeUnit};
    use serde_json::Value;

    let bad = |e: arrow_schema::ArrowError| QueryError::Failed(format!("unreadable answer: {e}"));
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None).map_err(bad)?;
    let schema = reader.schema();
    let mut columns: Vec<(&'static str, Vec<Value>)> = schema
        .fields()
        .iter()
        .map(|field| {
            let kind = match field.data_type() {
                DataType::Int64 => "int64",
                DataType::Float64 => "float64",
                DataType::Boolean => "bool",
                DataType::Binary => "binary",
                DataType::Date32 => "date32",
                DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamp_utc",
                DataType::Timestamp(TimeUnit::Microsecond, None) => "timestamp",
                _ => "utf8",
            };
            (kind, Vec::new())
        })
        .collect();
    for batch in reader {
        let batch = batch.map_err(bad)?;
        for (array, (kind, values)) in batch.columns().iter().zip(columns.iter_mut()) {
            for row in 0..array.len() {
                values.push(if array.is_null(row) {
                    Value::Null
                } else {
                    match *kind {
                        "int64" => array.as_primitive::<types::Int64Type>().value(row).into(),
                        "float64" => array.as_primitive::<types::Float64Type>().value(row).into(),
                        "bool" => array.as_boolean().value(row).into(),
                        "binary" => hex::encode(array.as_binary::<i32>().value(row)).into(),
                        "date32" => array.as_primitive::<types::Date32Type>().value(row).into(),
                        "timestamp" | "timestamp_utc" => array
                            .as_primitive::<types::TimestampMicrosecondType>()
                            .value(row)
                            .into(),
                        _ => match array.as_string_opt::<i32>() {
                            Some(text) => text.value(row).into(),
                            None => Value::Null,
                        },
                    }
                });
            }
        }
    }
    let columns: Vec<Value> = schema
        .fields()
        .iter()
        .zip(columns)
        .map(|(field, (kind, values))| {
            serde_json::json!({"name": field.name(), "type": kind, "values": values})
        })
        .collect();
    let json = serde_json::json!({ "columns": columns }).to_string();
    let cap = call.max_answer_bytes.saturating_mul(2);
    if json.len() > cap {
        return Err(QueryError::Limit(format!(
            "the answer is {} bytes as JSON, over this call's limit of {cap}",
            json.len()
        )));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn query_parameters_keep_their_types_and_caps() {
        let header: QueryHeader = serde_json::from_str(
            r#"{"source":"s","sql":"select ?","params":[null,true,7,-2.5,"x"]}"#,
        )
        .expect("header");
        let (_, _, params) = checked_query(header).expect("fits");
        assert_eq!(
            params,
            [
                Param::Null,
                Param::Boolean(true),
                Param::Integer(7),
                Param::Float(-2.5),
                Param::Text("x".to_owned())
            ]
        );
        for bad in [
            r#"{"source":"s","sql":"q","params":[18446744073709551615]}"#,
            r#"{"source":"s","sql":"q","params":[[1]]}"#,
        ] {
            let header: QueryHeader = serde_json::from_str(bad).expect("header");
            assert!(matches!(checked_query(header), Err(QueryError::Refused(_))));
        }
        let long = QueryHeader {
            source: "s".repeat(MAX_SOURCE_NAME_BYTES + 1),
            sql: "q".to_owned(),
            params: Vec::new(),
        };
        assert!(matches!(checked_query(long), Err(QueryError::Refused(_))));
    }

    #[test]
    fn an_arrow_answer_becomes_columns_of_json() {
        use arrow_array::{
            ArrayRef, BinaryArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
            TimestampMicrosecondArray,
        };
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("n", Arc::new(Int64Array::from(vec![Some(1), None]))),
            ("x", Arc::new(Float64Array::from(vec![1.5, f64::NAN]))),
            ("s", Arc::new(StringArray::from(vec![Some("a"), None]))),
            (
                "b",
                Arc::new(BinaryArray::from(vec![b"\x01\xff".as_slice(), b""])),
            ),
            ("d", Arc::new(Date32Array::from(vec![1, 2]))),
            (
                "t",
                Arc::new(TimestampMicrosecondArray::from(vec![3, 4]).with_timezone("UTC")),
            ),
        ];
        let batch = RecordBatch::try_from_iter(columns).expect("batch");
        let mut ipc = Vec::new();
        let mut writer =
            arrow_ipc::writer::StreamWriter::try_new(&mut ipc, &batch.schema()).expect("writer");
        writer.write(&batch).expect("write");
        writer.finish().expect("finish");
        drop(writer);
        let call = CallContext::new(
            crate::Owner::default(),
            None,
            false,
            std::time::Instant::now() + Duration::from_secs(5),
            1 << 20,
            None,
        );
        let json: serde_json::Value =
            serde_json::from_str(&columns_json(&ipc, &call).expect("converts")).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"columns": [
                {"name": "n", "type": "int64", "values": [1, null]},
                {"name": "x", "type": "float64", "values": [1.5, null]},
                {"name": "s", "type": "utf8", "values": ["a", null]},
                {"name": "b", "type": "binary", "values": ["01ff", ""]},
                {"name": "d", "type": "date32", "values": [1, 2]},
                {"name": "t", "type": "timestamp_utc", "values": [3, 4]},
            ]})
        );
        let small = CallContext::new(
            crate::Owner::default(),
            None,
            false,
            std::time::Instant::now() + Duration::from_secs(5),
            16,
            None,
        );
        assert!(matches!(
            columns_json(&ipc, &small),
            Err(QueryError::Limit(_))
        ));
        assert!(matches!(
            columns_json(b"junk", &call),
            Err(QueryError::Failed(_))
        ));
    }
}
