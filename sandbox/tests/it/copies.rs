//! Host-side copies are checked before they are made: an oversized output, log line or
//! progress report stays in guest memory. Each test watches the largest allocation the
//! calling thread makes during the call (`alloc_watch`), which would be the 20 MiB string
//! if the host copied it.

use crate::alloc_watch::largest_allocation_during;
use crate::support::{REQUEST, limits, load_hostile, sandbox};
use sandbox::{CallOptions, Error, Level, Limits, LogStream, ProgressSink};
use std::sync::{Arc, Mutex};

/// Far below the guests' 20 MiB strings, far above anything else a call allocates.
const MOST_EXPECTED: usize = 1 << 20;

#[test]
fn an_oversized_output_is_refused_without_a_host_copy() {
    let sandbox = sandbox();
    let cap = 1 << 20;
    let component = load_hostile(
        &sandbox,
        Limits {
            output_bytes: cap,
            ..limits()
        },
    );
    let (result, largest) = largest_allocation_during(|| component.call("flood.children", REQUEST));
    match result.map(|output| output.outcome) {
        Err(failure) => match failure.error {
            Error::OutputTooLarge { size, limit } => {
                assert_eq!(limit, cap);
                assert!(size > 20 << 20, "size {size}");
            }
            other => panic!("expected OutputTooLarge, got {other:?}"),
        },
        Ok(outcome) => panic!("a 20 MiB output passed a 1 MiB cap: {outcome:?}"),
    }
    assert!(
        largest < MOST_EXPECTED,
        "the host allocated {largest} bytes at once for a refused output"
    );
    // An output within the cap is still copied whole.
    let (output, _) = largest_allocation_during(|| component.call("ok.children", REQUEST));
    assert!(output.is_ok());
}

#[test]
fn an_oversized_log_line_is_cut_without_a_host_copy() {
    let sandbox = sandbox();
    let component = load_hostile(&sandbox, limits());
    let (result, largest) = largest_allocation_during(|| component.call("shout.children", REQUEST));
    let output = result.expect("a long log line does not fail the call");
    assert!(
        largest < MOST_EXPECTED,
        "the host allocated {largest} bytes at once for a 20 MiB log line"
    );
    let kept: usize = output
        .logs
        .iter()
        .filter(|line| line.stream == LogStream::Host(Level::Info))
        .map(|line| line.message.len())
        .sum();
    assert_eq!(
        kept,
        limits().log_bytes,
        "the line is cut at the log budget"
    );
}

#[test]
fn an_oversized_progress_report_is_dropped_without_a_host_copy() {
    let sandbox = sandbox();
    let component = load_hostile(
        &sandbox,
        Limits {
            output_bytes: 1 << 20,
            ..limits()
        },
    );
    let received = Arc::new(Mutex::new(Vec::<usize>::new()));
    let sink: ProgressSink = {
        let received = received.clone();
        Arc::new(move |json: String| received.lock().expect("lock").push(json.len()))
    };
    let options = CallOptions {
        progress: Some(sink),
        ..CallOptions::default()
    };
    let (result, largest) =
        largest_allocation_during(|| component.call_with("boast.children", REQUEST, options));
    let output = result.expect("an oversized report does not fail the call");
    assert!(
        largest < MOST_EXPECTED,
        "the host allocated {largest} bytes at once for a 20 MiB progress report"
    );
    assert!(received.lock().expect("lock").is_empty());
    assert!(
        output
            .logs
            .iter()
            .any(|line| line.message.contains("progress report of")),
        "{:?}",
        output.logs
    );
}

#[test]
fn a_dependency_list_over_the_output_cap_is_refused_at_load() {
    let sandbox = sandbox();
    // The hostile guest's dependency list is several KiB, its layout about 100 bytes.
    let options = sandbox::LoadOptions {
        limits: Limits {
            output_bytes: 1 << 10,
            ..limits()
        },
        ..sandbox::LoadOptions::default()
    };
    match sandbox.load(crate::support::hostile_wasm(), options) {
        Err(Error::OutputTooLarge { size, limit }) => {
            assert_eq!(limit, 1 << 10);
            assert!(size > 1 << 10, "size {size}");
        }
        other => panic!("expected OutputTooLarge, got {:?}", other.map(|_| ())),
    }
}
