//! Integration tests of the sandbox: real guest components, built for wasm32-wasip2, run
//! against the real engine, and every limit is made to fire.
//!
//! The guests are built separately (`scripts/build-guests.sh guest-hostile guest-sockets guest-v0-1 guest-capable guest-http hello`);
//! a test fails, never skips, when they are missing.

mod alloc_watch;
mod cache;
mod cancel;
mod capabilities;
mod compile;
mod copies;
mod fair;
mod grants;
mod instances;
mod limits;
mod measure;
mod outbound;
mod park;
mod pool;
mod python;
mod support;
