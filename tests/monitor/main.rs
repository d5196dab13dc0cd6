//! Integration tests of the container monitor: `berth-mon` (or, with `BERTH_MONITOR=conmon`,
//! Debian's conmon, to show the tests check conmon's behaviour) driven directly the way
//! podman and CRI-O drive it, and podman using it as its `--conmon`.
//!
//!     cargo test --release -p berth-tests --test monitor
//!     BERTH_MONITOR=conmon cargo test --release -p berth-tests --test monitor
//!     BERTH_RUNTIME=runc cargo test --release -p berth-tests --test monitor
//!
//! Where berth-mon deliberately differs from conmon, the test prints `SKIPPED for conmon`.

// Every unsafe block says why it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]

mod direct;
mod exec;
mod logs;
mod podman;

pub use berth_tests::bundle::Bundle;
pub use berth_tests::monitor::*;
pub use berth_tests::runtime::{Out, Runtime};
pub use std::time::Duration;

pub const T: Duration = Duration::from_secs(20);

/// A runtime with a private root, a bundle and a monitor for one container.
pub fn setup(name: &str, f: impl FnOnce(&mut Bundle)) -> (Monitor, Bundle, Runtime) {
    let mut b = Bundle::new(name);
    f(&mut b);
    let rt = Runtime::new(name);
    let id = rt.id("");
    let m = Monitor::new(&rt, &b, &id);
    (m, b, rt)
}

/// Launch with the standard args plus `extra`, assert the pid message, start the container.
#[track_caller]
pub fn launch_and_start(m: &mut Monitor, extra: &[&str]) -> i32 {
    let pid = launch(m, extra);
    m.runtime(&["start", &m.cid.clone()]).ok();
    pid
}

/// Launch and return the container pid from the sync socket.
#[track_caller]
pub fn launch(m: &mut Monitor, extra: &[&str]) -> i32 {
    let mut a = m.args();
    a.extend(extra.iter().map(|s| s.to_string()));
    if !extra.iter().any(|e| e.starts_with("-l") || *e == "--log-path") {
        a.push("-l".into());
        a.push(format!("k8s-file:{}", m.log_path().display()));
    }
    let o = m.launch(&a);
    assert!(o.success(), "monitor launch failed: {}", o.describe());
    let msg = m.sync_msg(T);
    let pid = msg["data"].as_i64().unwrap_or_else(|| panic!("sync message {msg} has no pid"));
    assert!(pid > 0, "sync message {msg}: {}", m.launch_err());
    pid as i32
}
