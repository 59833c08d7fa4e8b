//! `compile-component COMPONENT.wasm ARTIFACT`: the sandbox's out-of-process compiler, for
//! the sandbox's own tests (the platform runs `tessera compile-component`, the same call).

fn main() {
    let args: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let [wasm, artifact] = &args[..] else {
        eprintln!("usage: compile-component COMPONENT.wasm ARTIFACT");
        std::process::exit(2);
    };
    if let Err(message) = sandbox::compile_artifact(wasm, artifact) {
        eprintln!("{message}");
        std::process::exit(1);
    }
}
