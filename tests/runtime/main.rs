//! Integration tests of the `berth` OCI runtime, run through the binary as a user would.
//!
//! The runtime under test is `BERTH_RUNTIME` (unset → the project's `berth`; `runc` →
//! /usr/bin/runc; or a path), so the suite doubles as a runc-compatibility check:
//!
//!     BERTH_RUNTIME=runc cargo test --release -p berth-tests --test runtime
//!     cargo test --release -p berth-tests --test runtime        # berth from target/release
//!
//! Each test builds its own busybox bundle (tests/src/bundle.rs) and uses its own `--root`
//! and container ids (tests/src/runtime.rs), so tests run in parallel; the `Runtime` guard
//! force-deletes whatever a test created, also when an assertion fails. Where runc
//! legitimately differs (or cannot work on this hybrid-cgroup host) a test prints
//! `SKIPPED for runc: <reason>` on stderr and returns.

// Every unsafe block says why it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]

mod bad_input;
mod cgroups;
mod checkpoint;
mod cli;
mod compat;
mod console;
mod containerd;
mod devices;
mod escape;
mod exec;
mod hooks;
mod hygiene;
mod mounts;
mod namespaces;
mod operations;
mod podman;
mod process;
mod seccomp;

pub use berth_tests::bundle::Bundle;
pub use berth_tests::runtime::{read, Out, Runtime};
pub use serde_json::json;
pub use std::time::Duration;

/// `let (mut b, rt, id) = setup!("name");` — a bundle, a runtime with a private root (declared
/// after the bundle so it is dropped, and its containers force-deleted, first) and an id.
#[macro_export]
macro_rules! setup {
    ($name:expr) => {{
        let b = $crate::Bundle::new($name);
        let rt = $crate::Runtime::new($name);
        let id = rt.id("");
        (b, rt, id)
    }};
}

/// Run `script` under `sh -c` in a foreground `run` of a bundle adjusted by `f`; assert the
/// runtime exits 0 and return the container's stdout.
#[track_caller]
pub fn sh_output(test: &str, f: impl FnOnce(&mut Bundle), script: &str) -> String {
    let mut b = Bundle::new(test);
    f(&mut b);
    b.sh(script);
    let rt = Runtime::new(test);
    let id = rt.id("");
    let o = rt.run(&id, &b);
    o.ok();
    let out = o.stdout.clone();
    drop(rt);
    out
}

/// Like `sh_output`, but returns the runtime's result (for expected failures).
pub fn sh_run(test: &str, f: impl FnOnce(&mut Bundle), script: &str) -> Out {
    let mut b = Bundle::new(test);
    f(&mut b);
    b.sh(script);
    let rt = Runtime::new(test);
    let id = rt.id("");
    let o = rt.run(&id, &b);
    if !o.success() {
        rt.assert_nothing_left(&id, &b);
    }
    drop(rt);
    o
}

/// The value after `key=` on a line of `out`.
pub fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines().find_map(|l| l.strip_prefix(&format!("{key}=")))
}

/// Namespace inode link of a process as the host sees it.
pub fn ns_link(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}
