//! Compilation outside the process: new components are compiled by a child process under a
//! time and memory limit, so a compile bomb is refused in seconds, naming the limit.

use crate::support::{assert_ok_call, hostile_wasm, limits, test_config};
use sandbox::{ArtifactSource, Compiler, Error, LoadOptions, Sandbox, SandboxConfig};
use std::time::{Duration, Instant};

/// A component whose one function nests `depth` loops: about 3 bytes a level, and
/// Cranelift's time and memory grow with the depth (a million levels, 3 MB, take about 6 s
/// and 1.7 GiB to compile on the 2-core test machine).
fn nested_loops(depth: usize) -> Vec<u8> {
    let mut text = String::with_capacity(depth * 8 + 100);
    text.push_str("(component (core module (func (param i32) ");
    for _ in 0..depth {
        text.push_str("(loop ");
    }
    text.push_str("(br_if 0 (local.get 0))");
    for _ in 0..depth {
        text.push(')');
    }
    text.push_str(")))");
    wat::parse_str(&text).expect("the bomb is valid WebAssembly text")
}

fn compiling_sandbox(time_limit: Duration, memory_mb: u64) -> Sandbox {
    Sandbox::new(SandboxConfig {
        compiler: Some(Compiler {
            program: env!("CARGO_BIN_EXE_compile-component").into(),
            args: Vec::new(),
            time_limit,
            memory_bytes: memory_mb << 20,
        }),
        ..test_config()
    })
    .expect("sandbox")
}

fn options() -> LoadOptions {
    LoadOptions {
        limits: limits(),
        ..LoadOptions::default()
    }
}

#[test]
fn components_compiled_in_a_child_process_load_and_run() {
    let sandbox = compiling_sandbox(Duration::from_secs(120), 2048);
    let component = sandbox.load(hostile_wasm(), options()).expect("loads");
    assert_eq!(component.artifact_source(), ArtifactSource::Compiled);
    assert_ok_call(&component);
}

#[test]
fn a_compile_bomb_is_refused_at_the_time_limit_naming_it() {
    let bomb = nested_loops(1_000_000);
    let sandbox = compiling_sandbox(Duration::from_secs(1), 8192);
    let started = Instant::now();
    let refused = sandbox.load(&bomb, options());
    let took = started.elapsed();
    match refused {
        Err(Error::InvalidComponent { reason }) => {
            assert!(reason.contains("compile time limit"), "{reason}")
        }
        other => panic!(
            "expected a refusal, got {:?}",
            other.map(|c| c.sha256().to_string())
        ),
    }
    assert!(took < Duration::from_secs(10), "refused after {took:?}");
    // The second attempt is answered from memory, without compiling.
    let started = Instant::now();
    assert!(sandbox.load(&bomb, options()).is_err());
    assert!(started.elapsed() < Duration::from_millis(500));
    // The sandbox still compiles and runs ordinary components.
    assert_ok_call(&sandbox.load(hostile_wasm(), options()).expect("loads"));
}

#[test]
fn a_compile_bomb_is_refused_at_the_memory_limit_naming_it() {
    let bomb = nested_loops(1_000_000);
    let sandbox = compiling_sandbox(Duration::from_secs(300), 512);
    match sandbox.load(&bomb, options()) {
        Err(Error::InvalidComponent { reason }) => {
            assert!(reason.contains("compile memory limit"), "{reason}")
        }
        other => panic!(
            "expected a refusal, got {:?}",
            other.map(|c| c.sha256().to_string())
        ),
    }
}
