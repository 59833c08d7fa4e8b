//! A measurement of docs/python.md (not built by the workspace): a crate of its own with
//! `wasmtime = { version = "=48.0.8", features = ["cranelift", "runtime", "std", "gc", "gc-drc",
//! "parallel-compilation", "incremental-cache"] }`; `inc python-tessera.wasm app-snap.wasm`.
//! Does Cranelift's incremental cache make compiling a Wizer snapshot of python.wasm cheap?
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::{CacheStore, Config, Engine, Module};

#[derive(Debug, Default)]
struct Store {
    map: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    hits: Mutex<(u64, u64)>,
}

impl CacheStore for Store {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let found = self.map.lock().unwrap().get(key).cloned();
        let mut h = self.hits.lock().unwrap();
        if found.is_some() { h.0 += 1 } else { h.1 += 1 }
        found.map(Cow::Owned)
    }
    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        self.map.lock().unwrap().insert(key.to_vec(), value);
        true
    }
}

fn main() {
    let store = Arc::new(Store::default());
    let mut config = Config::new();
    config.wasm_exceptions(true).epoch_interruption(true).memory_init_cow(true);
    config.enable_incremental_compilation(store.clone()).unwrap();
    let engine = Engine::new(&config).unwrap();
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap();
        let started = Instant::now();
        let module = Module::new(&engine, &bytes).unwrap();
        let took = started.elapsed();
        let (hits, misses) = *store.hits.lock().unwrap();
        println!("{path}: {took:?} (cache hits {hits}, misses {misses}, entries {})", store.map.lock().unwrap().len());
        *store.hits.lock().unwrap() = (0, 0);
        drop(module);
    }
}
