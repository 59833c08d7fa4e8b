//! The sandbox a build of pushed source runs in: bubblewrap (`bwrap`) with its own mount,
//! PID, network, IPC and UTS namespaces, an unprivileged user, only the directories the
//! build needs, and resource limits from `prlimit`.
//!
//! [`argv`] is a pure function from a [`Spec`] to the command line, so what the sandbox
//! grants can be read (and unit-tested) in one place; [`probe`] asks the host once whether
//! it can provide it. This module starts no build and knows nothing of git or tenants.
//!
//! Two ways to drop privileges, depending on who runs the server:
//! - **root**: bwrap runs without a user namespace (as root it may mount), and the command
//!   inside runs through `setpriv` as [`RunAs`] (a uid of its own, no groups, no
//!   capabilities). Files only root may read stay unreadable even if they were mounted.
//! - **any other user**: bwrap unshares a user namespace too (`--unshare-all`), and the
//!   build keeps the server's uid, seeing only what is bound in.
//!
//! In both cases bwrap runs the command under its own pid 1 with `--die-with-parent`: when
//! the command ends, or the server or the build's process group is killed, the kernel kills
//! every process left in the namespace (a `setsid` daemon included).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// `[builds] sandbox`: how builds of pushed source are confined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// bubblewrap namespaces, an unprivileged user, read-only toolchain (the default).
    #[default]
    Bubblewrap,
    /// No sandbox: the build runs as the server's user with only `prlimit`. For hosts
    /// that cannot provide namespaces and run only trusted code; warned about at start.
    None,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "bubblewrap" => Ok(Mode::Bubblewrap),
            "none" => Ok(Mode::None),
            other => Err(format!(
                "unknown build sandbox {other:?}: use \"bubblewrap\" or \"none\""
            )),
        }
    }
}

/// The user a build runs as when the server runs as root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// Its uid (a uid of its own: nothing else on the host should run as it).
    pub uid: u32,
    /// Its gid.
    pub gid: u32,
}

/// Resource limits of every process of the build (`prlimit`, inherited by children).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Address space (`RLIMIT_AS`), in MiB.
    pub memory_mb: u64,
    /// Processes and threads of the build's user (`RLIMIT_NPROC`).
    pub processes: u64,
    /// Largest file a process may write (`RLIMIT_FSIZE`), in MiB.
    pub file_mb: u64,
    /// CPU time of one process (`RLIMIT_CPU`), in seconds.
    pub cpu_secs: u64,
}

/// One command to run in the sandbox.
#[derive(Clone, Debug)]
pub struct Spec<'a> {
    /// The program (an absolute path inside the sandbox) and its arguments.
    pub program: &'a Path,
    /// Its arguments.
    pub args: &'a [OsString],
    /// Its whole environment (nothing else of the server's reaches it).
    pub env: &'a [(&'a str, OsString)],
    /// Directories (or files) bound read-only at the same path.
    pub read_only: &'a [PathBuf],
    /// Directories bound writable at the same path (after the read-only ones).
    pub writable: &'a [PathBuf],
    /// The working directory.
    pub cwd: &'a Path,
    /// Whether the network namespace is shared with the host (`cargo fetch` only).
    pub network: bool,
    /// `Some` when the server runs as root: the command drops to this user.
    pub run_as: Option<RunAs>,
    /// The limits.
    pub limits: Limits,
}

/// What every build sees of the host's system, read-only: programs and libraries (a
/// linker for build scripts), and the few files of `/etc` that name resolution, TLS and
/// `/usr/bin/cc` (an alternatives link) need. Paths that do not exist are skipped.
const SYSTEM: &[&str] = &[
    "/usr",
    "/bin",
    "/lib",
    "/lib64",
    "/sbin",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
];

fn push(argv: &mut Vec<OsString>, items: &[&str]) {
    argv.extend(items.iter().map(OsString::from));
}

fn bind(argv: &mut Vec<OsString>, flag: &str, path: &Path) {
    argv.push(flag.into());
    argv.push(path.into());
    argv.push(path.into());
}

/// `--dir` for each parent of `path` below `/` not made yet, outermost first.
fn parents(argv: &mut Vec<OsString>, made: &mut std::collections::BTreeSet<PathBuf>, path: &Path) {
    let mut ancestors: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .filter(|a| a.parent().is_some())
        .collect();
    ancestors.reverse();
    for ancestor in ancestors {
        if made.insert(ancestor.to_owned()) {
            argv.push("--dir".into());
            argv.push(ancestor.into());
        }
    }
}

/// The command line: `prlimit` (limits), `bwrap` (namespaces and mounts), then, when the
/// server is root, `setpriv` (the unprivileged user), then the program.
pub fn argv(spec: &Spec<'_>) -> Vec<OsString> {
    let limits = spec.limits;
    let mut argv: Vec<OsString> = vec![
        "prlimit".into(),
        format!("--as={}", limits.memory_mb << 20).into(),
        format!("--nproc={}", limits.processes).into(),
        format!("--fsize={}", limits.file_mb << 20).into(),
        format!("--cpu={}", limits.cpu_secs).into(),
        "--".into(),
        "bwrap".into(),
    ];
    match spec.run_as {
        // As root, no user namespace: its uid map would map the build to root outside.
        Some(_) => {
            push(
                &mut argv,
                &[
                    "--unshare-ipc",
                    "--unshare-pid",
                    "--unshare-uts",
                    "--unshare-cgroup-try",
                ],
            );
            if !spec.network {
                push(&mut argv, &["--unshare-net"]);
            }
        }
        None => {
            push(&mut argv, &["--unshare-all"]);
            if spec.network {
                push(&mut argv, &["--share-net"]);
            }
        }
    }
    push(
        &mut argv,
        &["--die-with-parent", "--new-session", "--clearenv"],
    );
    // bwrap would create a bind's missing parents readable by root only (0700); made
    // here with `--dir` they are 0755, so the unprivileged build can reach its binds.
    let mut made = std::collections::BTreeSet::new();
    for path in SYSTEM {
        parents(&mut argv, &mut made, Path::new(path));
        bind(&mut argv, "--ro-bind-try", Path::new(path));
    }
    push(
        &mut argv,
        &[
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            // Writable by the build's user, sticky like the host's.
            "--perms",
            "1777",
            "--tmpfs",
            "/tmp",
            "--hostname",
            "tessera-build",
        ],
    );
    let binds = spec
        .read_only
        .iter()
        .map(|p| ("--ro-bind", p))
        .chain(spec.writable.iter().map(|p| ("--bind", p)));
    for (flag, path) in binds {
        parents(&mut argv, &mut made, path);
        bind(&mut argv, flag, path);
    }
    argv.push("--chdir".into());
    argv.push(spec.cwd.into());
    for (name, value) in spec.env {
        argv.push("--setenv".into());
        argv.push(OsStr::new(name).into());
        argv.push(value.clone());
    }
    argv.push("--".into());
    if let Some(user) = spec.run_as {
        argv.extend(
            [
                "setpriv".to_owned(),
                format!("--reuid={}", user.uid),
                format!("--regid={}", user.gid),
                "--clear-groups".to_owned(),
                "--inh-caps=-all".to_owned(),
                "--bounding-set=-all".to_owned(),
                "--".to_owned(),
            ]
            .map(OsString::from),
        );
    }
    argv.push(spec.program.into());
    argv.extend(spec.args.iter().cloned());
    argv
}

/// The user builds run as: `Some(run_as)` when this process is root, `None` otherwise.
pub fn run_as_for(server_uid: u32, configured: RunAs) -> Option<RunAs> {
    (server_uid == 0).then_some(configured)
}

/// This process's real uid (from `/proc`, so no unsafe code).
pub fn current_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

/// Whether the host can run a trivial command in the sandbox: `Err` says why not (bwrap
/// missing, user namespaces refused, `setpriv` missing, …).
pub fn probe(run_as: Option<RunAs>) -> Result<(), String> {
    let cwd = PathBuf::from("/");
    let spec = Spec {
        program: Path::new("/usr/bin/true"),
        args: &[],
        env: &[],
        read_only: &[],
        writable: &[],
        cwd: &cwd,
        network: false,
        run_as,
        limits: Limits {
            memory_mb: 256,
            processes: 64,
            file_mb: 1,
            cpu_secs: 5,
        },
    };
    let argv = argv(&spec);
    let output = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", argv[0]))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!(
        "bubblewrap could not start a sandbox ({}): {}",
        output.status,
        stderr.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(
        run_as: Option<RunAs>,
        network: bool,
        read_only: &'a [PathBuf],
        writable: &'a [PathBuf],
        env: &'a [(&'a str, OsString)],
    ) -> Spec<'a> {
        Spec {
            program: Path::new("/tc/bin/cargo"),
            args: &[],
            env,
            read_only,
            writable,
            cwd: Path::new("/data/work/src"),
            network,
            run_as,
            limits: Limits {
                memory_mb: 4096,
                processes: 512,
                file_mb: 1024,
                cpu_secs: 600,
            },
        }
    }

    fn text(argv: &[OsString]) -> String {
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_non_root_server_unshares_everything_including_the_user() {
        let ro = [PathBuf::from("/tc"), PathBuf::from("/sdk")];
        let rw = [PathBuf::from("/data/work/src")];
        let env = [("PATH", OsString::from("/tc/bin:/usr/bin"))];
        let line = text(&argv(&spec(None, false, &ro, &rw, &env)));
        assert!(
            line.starts_with(
                "prlimit --as=4294967296 --nproc=512 --fsize=1073741824 --cpu=600 -- bwrap --unshare-all --die-with-parent --new-session --clearenv "
            ),
            "{line}"
        );
        assert!(
            !line.contains("--share-net") && !line.contains("setpriv"),
            "{line}"
        );
        assert!(line.contains("--ro-bind /tc /tc --ro-bind /sdk /sdk --dir /data --dir /data/work --bind /data/work/src /data/work/src --chdir /data/work/src --setenv PATH /tc/bin:/usr/bin -- /tc/bin/cargo"), "{line}");
        // A fresh /proc, a minimal /dev and a private /tmp come before the binds (which
        // may lie under /tmp).
        let tmp = line.find("--tmpfs /tmp").expect("tmpfs");
        assert!(tmp < line.find("--ro-bind /tc").expect("bind"), "{line}");
        assert!(
            line.contains("--proc /proc --dev /dev --perms 1777 --tmpfs /tmp"),
            "{line}"
        );
        // Nothing of the host's home, data or /etc beyond the listed files.
        assert!(
            !line.contains("--ro-bind-try /etc /etc") && !line.contains("/root"),
            "{line}"
        );
    }

    #[test]
    fn a_root_server_drops_to_its_build_user_inside_without_a_user_namespace() {
        let user = RunAs {
            uid: 64000,
            gid: 64001,
        };
        let line = text(&argv(&spec(Some(user), false, &[], &[], &[])));
        assert!(
            line.contains("bwrap --unshare-ipc --unshare-pid --unshare-uts --unshare-cgroup-try --unshare-net --die-with-parent"),
            "{line}"
        );
        assert!(!line.contains("--unshare-all"), "{line}");
        assert!(
            line.ends_with("-- setpriv --reuid=64000 --regid=64001 --clear-groups --inh-caps=-all --bounding-set=-all -- /tc/bin/cargo"),
            "{line}"
        );
    }

    #[test]
    fn only_the_fetch_shares_the_network() {
        let user = RunAs { uid: 1, gid: 1 };
        assert!(
            text(&argv(&spec(None, true, &[], &[], &[]))).contains("--unshare-all --share-net")
        );
        let root_fetch = text(&argv(&spec(Some(user), true, &[], &[], &[])));
        assert!(!root_fetch.contains("--unshare-net"), "{root_fetch}");
    }

    #[test]
    fn modes_parse_and_the_root_server_alone_changes_user() {
        assert_eq!("none".parse::<Mode>(), Ok(Mode::None));
        assert!("docker".parse::<Mode>().is_err());
        let user = RunAs { uid: 7, gid: 7 };
        assert_eq!(run_as_for(0, user), Some(user));
        assert_eq!(run_as_for(1000, user), None);
    }

    /// Run as root, the build user cannot read a root-only file even when it is bound
    /// into the sandbox (skipped when the tests do not run as root, or without bwrap).
    #[test]
    fn the_build_user_cannot_read_root_only_files_even_when_mounted() {
        if current_uid() != Some(0) || probe(None).is_err() {
            eprintln!("skipped: needs root and bubblewrap");
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret.key");
        std::fs::write(&secret, b"top secret").expect("write");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let ro = [dir.path().to_owned()];
        let args = [OsString::from(&secret)];
        let user = RunAs {
            uid: 64000,
            gid: 64000,
        };
        let mut spec = spec(Some(user), false, &ro, &[], &[]);
        spec.program = Path::new("/usr/bin/cat");
        spec.args = &args;
        spec.cwd = Path::new("/");
        let argv = argv(&spec);
        let output = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .expect("runs");
        assert!(!output.status.success());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("Permission denied"),
            "{output:?}"
        );
        assert!(output.stdout.is_empty());
    }
}
