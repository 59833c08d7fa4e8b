//! Cross-crate tests live in tests/ and benches/; this library holds what the benchmark
//! drivers of src/bin (`noisy`, `lb`, `density`) share.

pub mod server;
