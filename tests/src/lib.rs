//! Shared helpers for berth's integration tests.

// Every unsafe block says why it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]

use std::path::PathBuf;

pub mod bundle;
pub mod cgroup2;
pub mod console;
pub mod containerd;
pub mod escape;
pub mod host_cgroup;
pub mod host_dirs;
pub mod hostile_registry;
pub mod monitor;
pub mod podman;
pub mod proc;
pub mod pty;
pub mod registry;
pub mod runtime;

/// Directory holding the built binaries (`berth`, `berth-cri`, ...).
///
/// `BERTH_BIN_DIR` overrides; otherwise it is the cargo profile directory this test
/// executable was built into (`target/<profile>/deps/<test>` → `target/<profile>`), so
/// tests always run against the binaries of the same build.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().and_then(|deps| deps.parent()).expect("test executable lives in target/<profile>/deps").to_path_buf()
}

/// Path of one of the project's binaries.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Ends a fixture's cleanup: what it found left behind fails the test, or is printed when
/// the test already failed (a second panic would abort and hide the first).
pub fn report_leftovers(fixture: &str, left: &[String]) {
    if left.is_empty() {
        return;
    }
    if std::thread::panicking() {
        eprintln!("{fixture} fixture cleanup:\n  {}", left.join("\n  "));
    } else {
        panic!("{fixture} left things behind:\n  {}", left.join("\n  "));
    }
}
