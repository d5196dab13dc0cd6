//! The container monitor on a pure cgroup v2 host: an OOM kill in the container's cgroup is
//! recorded (the `oom` file in the persist dir and the bundle) before the exit files.

use crate::limits::setup;
use berth_tests::monitor::{stream_bytes, Monitor};
use serde_json::json;
use std::time::Duration;

#[test]
fn monitor_records_an_oom_kill() {
    if berth_tests::cgroup2::skip("monitor_records_an_oom_kill") {
        return;
    }
    let mut s = setup("mon-oom");
    s.b.set("/linux/resources/memory", json!({"limit": 16777216, "swap": 16777216}));
    s.b.sh("echo before; exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    let mut m = Monitor::new(&s.rt, &s.b, &s.id);
    let mut a = m.args();
    a.extend(["-l".into(), format!("k8s-file:{}", m.log_path().display())]);
    let o = m.launch(&a);
    assert!(o.success(), "{}", o.describe());
    assert!(m.sync_msg(Duration::from_secs(20))["data"].as_i64().unwrap() > 0);
    assert!(!m.path("persist/oom").exists());
    s.rt.start(&s.id).ok();
    assert_eq!(m.exit_code(Duration::from_secs(30)), 137, "killed by SIGKILL");
    assert!(m.path("persist/oom").exists(), "oom recorded in the persist dir");
    assert!(s.b.dir().join("oom").exists(), "and in the bundle");
    assert_eq!(stream_bytes(&m.records(), "stdout"), b"before\n");
    let _ = std::fs::remove_file(s.b.dir().join("oom"));
}
