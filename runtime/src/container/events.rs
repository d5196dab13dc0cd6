//! `berth events`: the container's statistics in runc's JSON (`--stats`: once), or a stream
//! of one stats record every `--interval` plus an `oom` record whenever the kernel
//! OOM-kills a process of the container (memory.events `oom_kill` grows). The stream ends
//! when the container's cgroup has no process left (`cgroup.events` `populated 0`).
//!
//! Waiting is `poll(2)` on the two notification files with the time to the next tick as the
//! timeout: no sleeping, and an OOM is reported as it happens, not at the next tick.

use super::require;
use crate::cgroups::{self, events::Watch, stats::Event};
use crate::error::{Context, Error, Result};
use crate::state::{State, Status};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

fn line(kind: &str, id: &str, data: Option<&cgroups::stats::Stats>) -> String {
    serde_json::to_string(&Event { kind, id, data }).expect("event serializes")
}

fn running(root: &Path, id: &str) -> Result<State> {
    let st = State::load(root, id)?;
    require(&st, root, &[Status::Created, Status::Running, Status::Paused], &format!("container with id {id} is not running"))?;
    Ok(st)
}

/// One stats record (`--stats`).
pub fn stats_once(root: &Path, id: &str) -> Result<String> {
    let st = running(root, id)?;
    Ok(line("stats", id, Some(&cgroups::stats(&st.cgroup)?)))
}

/// Streams records to `out` until the container's processes are gone.
pub fn stream(root: &Path, id: &str, interval: Duration, out: &mut dyn Write) -> Result<()> {
    if interval.is_zero() {
        return Err(Error::Spec("duration interval must be greater than 0".into()));
    }
    let st = running(root, id)?;
    let dir = &st.cgroup;
    let mut cg = Watch::open(dir, "cgroup.events")?;
    // Without the memory controller (a hybrid host) there are no OOM records, only stats.
    let mut mem = dir.join("memory.events").exists().then(|| Watch::open(dir, "memory.events")).transpose()?;
    let mut ooms = match mem.as_mut() {
        Some(m) => m.get("oom_kill")?.unwrap_or(0),
        None => 0,
    };
    let mut emit = |s: String| -> Result<()> { writeln!(out, "{s}").and_then(|_| out.flush()).ctx("write event") };
    let mut next = Instant::now() + interval;
    loop {
        // OOM kills before emptiness: the kill that empties the cgroup is counted in
        // memory.events before cgroup.events says `populated 0`, and must still be reported.
        let empty = cg.get("populated")? == Some(0);
        if let Some(m) = mem.as_mut() {
            let now = m.get("oom_kill")?.unwrap_or(0);
            for _ in ooms..now {
                emit(line("oom", id, None))?;
            }
            ooms = ooms.max(now);
        }
        if empty {
            return Ok(());
        }
        if Instant::now() >= next {
            match cgroups::stats(dir) {
                Ok(s) => emit(line("stats", id, Some(&s)))?,
                Err(e) => crate::logger::warn(&format!("events: {e}")),
            }
            next += interval;
        }
        let mut fds = vec![cg.fd()];
        if let Some(m) = mem.as_ref() {
            fds.push(m.fd());
        }
        match nix::poll::poll(&mut fds, cgroups::events::poll_timeout(next)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).ctx("poll cgroup events"),
        }
    }
}

/// A Go duration as runc's `--interval` takes it: `5s`, `100ms`, `1m30s`, `1.5h`, `250us`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::Spec(format!("invalid duration {s:?} (expected e.g. 5s, 100ms, 1m30s)"));
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "s", "5x", "-1s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
