//! pause / resume, ps, events, update on a running container, checked by behaviour: a paused
//! busy loop makes no CPU progress and `state`/`list` say `paused`; `ps` lists exactly the
//! container's processes; `events --stats` reports the container's CPU time and process
//! count; a stream of `events` ends when the container goes. (berth freezes through cgroup2's
//! cgroup.freeze; runc 1.1 on this hybrid host through the v1 freezer: same behaviour.)

use crate::*;
use berth_tests::runtime::processes_in;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Instant;

const BUSY: &str = "while :; do :; done";

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let s = read(format!("/proc/{pid}/stat"));
    let rest = &s[s.rfind(')').expect("stat") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Waits until the process has used more than `ticks` of CPU; false after `timeout`.
fn wait_ticks_above(pid: i32, ticks: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while cpu_ticks(pid) <= ticks {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn started(name: &str, script: &str) -> (Bundle, Runtime, String) {
    let (mut b, rt, id) = setup!(name);
    b.sh(script);
    rt.create(&id, &b).ok();
    rt.start(&id).ok();
    (b, rt, id)
}

fn list_status(rt: &Runtime, id: &str) -> String {
    let o = rt.exec(&["list", "--format", "json"]);
    o.ok();
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    v.as_array().unwrap().iter().find(|c| c["id"] == id).map(|c| c["status"].as_str().unwrap().to_string()).unwrap_or_default()
}

#[test]
fn pause_stops_a_busy_loop_and_resume_restarts_it() {
    let (b, rt, id) = started("op_pause", BUSY);
    let pid = rt.pid(&id).unwrap();
    assert!(wait_ticks_above(pid, cpu_ticks(pid), Duration::from_secs(10)), "the loop runs before pause");
    rt.exec(&["pause", &id]).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("paused"));
    assert_eq!(list_status(&rt, &id), "paused");
    // pause returned once the freeze was complete: from now on the loop gets no CPU at all.
    let frozen = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(pid), frozen, "a paused container's loop made progress");
    rt.exec(&["pause", &id]).fails_mentioning(&["paused", "not running"]);
    rt.exec(&["resume", &id]).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    assert!(wait_ticks_above(pid, frozen, Duration::from_secs(10)), "the loop runs again after resume");
    rt.exec(&["resume", &id]).fails_mentioning(&["not paused", "running"]);
    rt.delete_force(&id).ok();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn paused_container_is_killed_by_delete_force() {
    let (b, rt, id) = started("op_pause_delete", BUSY);
    rt.exec(&["pause", &id]).ok();
    rt.delete_force(&id).ok();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn pause_of_a_stopped_container_fails() {
    let (b, rt, id) = started("op_pause_stopped", "true");
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)));
    rt.exec(&["pause", &id]).fails_mentioning(&["not running", "stopped"]);
    rt.exec(&["resume", &id]).fails_mentioning(&["not paused", "stopped"]);
    rt.delete(&id).ok();
    rt.assert_nothing_left(&id, &b);
}

/// Waits until the bundle's rootfs has `n` processes; returns them sorted.
fn wait_procs(b: &Bundle, n: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut p = processes_in(&b.rootfs());
        p.sort_unstable();
        if p.len() >= n || Instant::now() > deadline {
            return p;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ps_lists_exactly_the_container_processes() {
    let (b, rt, id) = started("op_ps", "sleep 1000 & sleep 1001 & exec sleep 1002");
    let want = wait_procs(&b, 3);
    assert_eq!(want.len(), 3, "three sleeps: {want:?}");
    let o = rt.exec(&["ps", "--format", "json", &id]);
    o.ok();
    let mut got: Vec<i32> = serde_json::from_str(o.stdout.trim()).unwrap_or_else(|e| panic!("ps json {e}: {}", o.stdout));
    got.sort_unstable();
    assert_eq!(got, want, "ps -f json");

    // Table: ps -ef's header, then exactly one line per container process.
    let o = rt.exec(&["ps", &id]);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].split_whitespace().any(|c| c == "PID") && lines[0].contains("CMD"), "header: {}", o.stdout);
    let mut pids: Vec<i32> = lines[1..].iter().map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap()).collect();
    pids.sort_unstable();
    assert_eq!(pids, want, "ps table:\n{}", o.stdout);
    assert!(lines[1..].iter().all(|l| l.contains("sleep 100")), "{}", o.stdout);

    // Extra arguments go to ps.
    let o = rt.exec(&["ps", &id, "-o", "pid,comm"]);
    o.ok();
    assert_eq!(o.stdout.lines().next().map(|h| h.split_whitespace().collect::<Vec<_>>()), Some(vec!["PID", "COMMAND"]));
    assert_eq!(o.stdout.lines().skip(1).filter(|l| l.trim_end().ends_with("sleep")).count(), 3, "{}", o.stdout);
    rt.delete_force(&id).ok();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn events_stats_report_cpu_time_and_processes() {
    let (b, rt, id) = started("op_stats", &format!("sleep 1000 & {BUSY}"));
    let pid = rt.pid(&id).unwrap();
    assert!(wait_ticks_above(pid, 5, Duration::from_secs(20)), "the loop burned some CPU");
    wait_procs(&b, 2);
    let o = rt.exec(&["events", "--stats", &id]);
    o.ok();
    let v: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap_or_else(|e| panic!("events json {e}: {}", o.stdout));
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], id.as_str());
    let total = v["data"]["cpu"]["usage"]["total"].as_u64().unwrap_or(0);
    // The busy loop alone has used ≥ 5 ticks (≥ 50 ms) of CPU; total is in nanoseconds.
    assert!(total >= 50_000_000, "cpu usage total {total} ns: {}", o.stdout);
    let user = v["data"]["cpu"]["usage"]["user"].as_u64().unwrap();
    assert!(user > 0 && user <= total, "user {user} within total {total}");
    assert_eq!(v["data"]["pids"]["current"].as_u64(), Some(2), "pids.current: {}", o.stdout);
    rt.delete_force(&id).ok();
    rt.exec(&["events", "--stats", &id]).fails();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn events_stream_records_until_the_container_goes() {
    let (b, rt, id) = started("op_events", "exec sleep 1000");
    let mut cmd = rt.command(&["events", "--interval", "100ms", &id]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for n in 0..2 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("record {n} {e}: {line:?}"));
        assert_eq!((v["type"].as_str(), v["id"].as_str()), (Some("stats"), Some(id.as_str())), "{line}");
    }
    rt.delete_force(&id).ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.is_some(), "events did not end after the container was deleted");
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn events_interval_must_be_positive() {
    let (b, rt, id) = started("op_events_bad", "exec sleep 1000");
    rt.exec(&["events", "--interval", "0s", &id]).fails_mentioning(&["interval", "greater than 0"]);
    rt.delete_force(&id).ok();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn update_with_bad_input_fails_and_changes_nothing() {
    let (b, rt, id) = started("op_update_bad", "exec sleep 1000");
    let res = rt.scratch().join("bad.json");
    std::fs::write(&res, "{\"memory\": {\"limit\": ").unwrap();
    rt.exec(&["update", "-r", res.to_str().unwrap(), &id]).fails();
    rt.exec(&["update", "--cpu-period", "ten", &id]).fails_mentioning(&["cpu-period"]);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.delete_force(&id).ok();
    rt.exec(&["update", "--pids-limit", "10", &id]).fails();
    rt.assert_nothing_left(&id, &b);
}

#[test]
fn update_of_a_controller_the_hierarchy_lacks_names_it() {
    let (b, rt, id) = started("op_update_ctrl", "exec sleep 1000");
    if rt.skip_runc(
        "update_of_a_controller_the_hierarchy_lacks_names_it",
        "runc 1.1 applies pids limits through cgroup v1 on this hybrid host",
    ) {
        return;
    }
    let unified = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers");
    if unified.as_ref().map_or(true, |c| c.split_whitespace().any(|c| c == "pids")) {
        eprintln!("update_of_a_controller_the_hierarchy_lacks_names_it: SKIPPED: not a hybrid host whose cgroup2 lacks pids");
        return;
    }
    rt.exec(&["update", "--pids-limit", "10", &id]).fails_mentioning(&["pids"]);
    rt.delete_force(&id).ok();
    rt.assert_nothing_left(&id, &b);
}
