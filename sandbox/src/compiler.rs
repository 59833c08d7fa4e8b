//! Compiling components outside the server's process.
//!
//! Compilation is the one thing a tenant can make the host do that wasmtime does not bound:
//! Cranelift's time and memory grow faster than linearly on some inputs (deeply nested
//! control flow), and it cannot be interrupted. So a new component is compiled by a child
//! process under `prlimit` (address space and CPU time) and a wall-clock limit; the parent
//! only loads the artifact it wrote. A compile bomb then costs one killed process.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::config::{Compiler, MAX_COMPONENT_BYTES};
use crate::{Error, Result};

/// What the compiling process keeps of its own stderr for the error message.
const STDERR_KEPT: usize = 4 << 10;

/// The memory reservation of bounds-checked memories, in bytes (`0`: guard pages as usual;
/// [`crate::SandboxConfig::explicit_bounds_checks`]), in the compiling process's
/// environment: the child must compile for the parent's engine settings, and this is the
/// one that can change.
const EXPLICIT_BOUNDS_CHECKS_ENV: &str = "TESSERA_COMPILE_EXPLICIT_BOUNDS_CHECKS";

/// The child's side: compiles the component at `wasm` with the sandbox's engine settings
/// and writes the artifact to `artifact`. Run by the program named in [`Compiler`].
pub fn compile_artifact(wasm: &Path, artifact: &Path) -> std::result::Result<(), String> {
    let size = std::fs::metadata(wasm)
        .map_err(|e| format!("{}: {e}", wasm.display()))?
        .len();
    if size > MAX_COMPONENT_BYTES as u64 {
        return Err(format!(
            "the component is {size} bytes, over {MAX_COMPONENT_BYTES}"
        ));
    }
    let bytes = std::fs::read(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    let reservation = std::env::var(EXPLICIT_BOUNDS_CHECKS_ENV)
        .ok()
        .and_then(|bytes| bytes.parse::<u64>().ok())
        .filter(|bytes| *bytes > 0);
    let engine = Engine::new(&crate::sandbox::compile_settings(reservation))
        .map_err(|e| format!("{e:#}"))?;
    let compiled = engine
        .precompile_component(&bytes)
        .map_err(|e| format!("{e:#}"))?;
    std::fs::write(artifact, compiled).map_err(|e| format!("{}: {e}", artifact.display()))
}

/// The parent's side: compiles `wasm` in a child process under `compiler`'s limits and
/// loads the artifact into `engine`.
pub(crate) fn compile_outside(
    compiler: &Compiler,
    engine: &Engine,
    bounds_checked_reservation: Option<u64>,
    wasm: &[u8],
) -> Result<Component> {
    let dir = WorkDir::create(&std::env::temp_dir())?;
    let input = dir.0.join("component.wasm");
    let output = dir.0.join("component.cwasm");
    std::fs::write(&input, wasm).map_err(|source| Error::Io {
        context: format!("cannot write {}", input.display()),
        source,
    })?;
    let cpu_secs = compiler.time_limit.as_secs().max(1);
    let mut child = Command::new("prlimit")
        .arg(format!("--as={}", compiler.memory_bytes))
        .arg(format!("--cpu={cpu_secs}"))
        .arg("--")
        .arg(&compiler.program)
        .args(&compiler.args)
        .arg(&input)
        .arg(&output)
        .env(
            EXPLICIT_BOUNDS_CHECKS_ENV,
            bounds_checked_reservation.unwrap_or(0).to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Io {
            context: format!(
                "cannot start the compiler ({} through prlimit)",
                compiler.program.display()
            ),
            source,
        })?;
    // Read stderr on the side so a chatty child never blocks on a full pipe.
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..n.min(room)]);
            }
            String::from_utf8_lossy(&kept).into_owned()
        })
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= compiler.time_limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(source) => {
                let _ = child.kill();
                return Err(Error::Io {
                    context: "waiting for the compiler failed".to_string(),
                    source,
                });
            }
        }
    };
    let said = stderr
        .and_then(|reader| reader.join().ok())
        .unwrap_or_default();
    let limits = format!(
        "the compile limits are {} s and {} MiB",
        compiler.time_limit.as_secs_f64(),
        compiler.memory_bytes >> 20
    );
    let Some(status) = status else {
        return Err(Error::InvalidComponent {
            reason: format!(
                "compiling it took longer than the compile time limit ({limits}); it was stopped"
            ),
        });
    };
    if !status.success() {
        let said = said.trim();
        let signal = status_signal(&status);
        let reason = if said.contains("memory allocation") || said.contains("out of memory") {
            format!("compiling it needed more memory than the compile memory limit ({limits})")
        } else if signal == Some(SIGXCPU) {
            format!(
                "compiling it took longer than the compile time limit ({limits}); it was stopped"
            )
        } else if signal.is_some() {
            format!("compiling it ran over the compile limits ({limits}); it was stopped")
        } else if said.is_empty() {
            format!("the compiler failed ({status}; {limits})")
        } else {
            said.to_string()
        };
        return Err(Error::InvalidComponent { reason });
    }
    // SAFETY: `deserialize_file` maps and runs the machine code in the file. The file was
    // written a moment ago by our own compiler process (the program the platform named,
    // normally its own executable) into a directory this process just created, from the
    // bytes we gave it, with the engine settings of `compile_settings`; nothing else writes
    // there. The compiled input is untrusted, but so it would be when compiled in process:
    // the compiler's output is trusted the same way in both cases.
    unsafe { Component::deserialize_file(engine, &output) }.map_err(|e| Error::InvalidComponent {
        reason: format!("the compiler's artifact did not load: {e:#}"),
    })
}

/// The signal of an exhausted CPU-time limit (`prlimit --cpu`), on Linux.
const SIGXCPU: i32 = 24;

#[cfg(unix)]
fn status_signal(status: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// A private directory for one compilation, removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(root: &Path) -> Result<WorkDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "compile-{}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = root.join(name);
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path).map_err(|source| Error::Io {
            context: format!("cannot create {}", path.display()),
            source,
        })?;
        Ok(WorkDir(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
