//! The `tessera:dashboard/host` interface: what the platform grants a dashboard beyond
//! WASI. Every function is cheap and bounded; neither can block for long, because
//! epoch interruption cannot stop a guest while it is inside a host call.
//! `setting` reads the values handed over at load time.
//! `report-progress` hands the report to the sink the caller supplied for this call
//! ([`crate::CallOptions::progress`]) and returns at once.

use crate::bindings::host;
use crate::capture::Level;
use crate::data;
use crate::state::State;

impl host::Host for State {
    fn log(&mut self, level: host::Level, message: String) {
        let level = match level {
            host::Level::Trace => Level::Trace,
            host::Level::Debug => Level::Debug,
            host::Level::Info => Level::Info,
            host::Level::Warn => Level::Warn,
            host::Level::Error => Level::Error,
        };
        self.logs.host(level, message);
    }

    fn report_progress(&mut self, json: String) {
        self.report_progress(json);
    }

    fn setting(&mut self, name: String) -> Option<String> {
        self.settings.get(&name).map(str::to_owned)
    }

    fn read_data(&mut self, path: String) -> Result<Vec<u8>, String> {
        data::read(self.data_dir.as_deref(), &path, self.read_cap)
    }
}
