//! Progress reports of background callbacks.
//!
//! In a component a report goes to the `host.report-progress` import, where the platform
//! stores it with the job for the browser's next poll. Natively the latest report is kept
//! per thread so unit tests can look at it with [`last`].

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    static LAST: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Pass a report (a JSON array, one value per progress output) on.
pub(crate) fn report(json: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::export::report_progress(json);
    #[cfg(not(target_arch = "wasm32"))]
    LAST.with(|last| *last.borrow_mut() = Some(json.to_owned()));
}

/// The latest report made on this thread (native builds only, for tests).
#[cfg(not(target_arch = "wasm32"))]
#[cfg_attr(not(test), expect(dead_code, reason = "used by unit tests only"))]
pub(crate) fn last() -> Option<String> {
    LAST.with(|last| last.borrow().clone())
}
