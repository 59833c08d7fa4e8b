//! Job records in this process: the default when no Redis is configured. Finished records
//! are dropped [`RECORD_TTL`](super::RECORD_TTL) after their last change.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Job, RECORD_TTL};

struct Entry {
    job: Job,
    progress: Option<String>,
    cancel: bool,
    touched: Instant,
    /// When the job's page last asked about it.
    polled: Instant,
}

/// In-process job records.
#[derive(Default)]
pub struct MemoryJobs {
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryJobs {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Every critical section is a plain map update; a panic cannot leave it half done.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn put(&self, job: &Job) {
        let mut entries = self.lock();
        entries.retain(|_, entry| entry.touched.elapsed() < RECORD_TTL);
        let entry = entries.entry(job.id.clone()).or_insert_with(|| Entry {
            job: job.clone(),
            progress: None,
            cancel: false,
            touched: Instant::now(),
            polled: Instant::now(),
        });
        entry.job = job.clone();
        entry.touched = Instant::now();
    }

    pub(super) fn get(&self, id: &str) -> Option<Job> {
        self.lock().get(id).map(|entry| entry.job.clone())
    }

    pub(super) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub(super) fn take_progress(&self, id: &str) -> Option<String> {
        self.lock()
            .get_mut(id)
            .and_then(|entry| entry.progress.take())
    }

    pub(super) fn set_progress(&self, id: &str, json: &str) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.progress = Some(json.to_owned());
            entry.touched = Instant::now();
        }
    }

    pub(super) fn request_cancel(&self, id: &str) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.cancel = true;
        }
    }

    pub(super) fn cancel_requested(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|entry| entry.cancel)
    }

    pub(super) fn touch(&self, id: &str) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.polled = Instant::now();
        }
    }

    pub(super) fn polled_within(&self, id: &str, window: Duration) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|entry| entry.polled.elapsed() < window)
    }
}
