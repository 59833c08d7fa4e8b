//! Rough timings, printed rather than asserted: run with
//! `cargo test --release -p sandbox --test it -- --ignored --nocapture measure`.

use crate::support::{REQUEST, hostile_wasm, limits, test_config};
use sandbox::{LoadOptions, Sandbox, SandboxConfig};
use std::time::{Duration, Instant};

/// The process's virtual memory size in bytes (Linux only; 0 elsewhere).
fn virtual_memory() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmSize:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib << 10)
        })
        .unwrap_or(0)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
#[ignore = "prints timings; run explicitly"]
fn measure_load_and_call_latency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SandboxConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..test_config()
    };
    let options = || LoadOptions {
        limits: limits(),
        data_dir: None,
        ..LoadOptions::default()
    };

    let before = virtual_memory();
    let started = Instant::now();
    let default_sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    println!(
        "Sandbox::new with the default config: {:?}, address space reserved: {} GiB",
        started.elapsed(),
        (virtual_memory() - before) >> 30
    );
    drop(default_sandbox);

    let started = Instant::now();
    let sandbox = Sandbox::new(config.clone()).expect("sandbox");
    println!("Sandbox::new (16 instances): {:?}", started.elapsed());

    let started = Instant::now();
    let compiled = sandbox.load(hostile_wasm(), options()).expect("load");
    println!(
        "load, compiling ({} KiB component): {:?}",
        hostile_wasm().len() / 1024,
        started.elapsed()
    );
    let started = Instant::now();
    let _memory = sandbox.load(hostile_wasm(), options()).expect("load");
    println!("load, compiled code in memory: {:?}", started.elapsed());
    let started = Instant::now();
    let _disk = Sandbox::new(config)
        .expect("sandbox")
        .load(hostile_wasm(), options())
        .expect("load");
    println!(
        "load, from the disk cache (new sandbox included): {:?}",
        started.elapsed()
    );

    let warm: Vec<Duration> = (0..2000)
        .map(|_| compiled.call("ok.children", REQUEST).expect("ok").duration)
        .collect();
    println!("call ok.children, warm instance: median {:?}", median(warm));

    let fresh_sandbox = Sandbox::new(SandboxConfig {
        max_calls_per_instance: 1,
        ..test_config()
    })
    .expect("sandbox");
    let fresh_component = fresh_sandbox.load(hostile_wasm(), options()).expect("load");
    let fresh: Vec<Duration> = (0..2000)
        .map(|_| {
            let started = Instant::now();
            fresh_component.call("ok.children", REQUEST).expect("ok");
            started.elapsed()
        })
        .collect();
    println!(
        "call ok.children, fresh instance each call (incl. drop): median {:?}",
        median(fresh)
    );
}
