//! `berth ps`: the container's processes, as runc prints them: `-f json` a JSON array of
//! host pids; `-f table` the host's `ps` (default `-ef`, or the extra arguments) filtered to
//! the lines whose PID column is one of the container's processes.

use crate::cgroups;
use crate::error::{Error, Result};
use crate::state::State;
use std::path::Path;

/// Host pids of every process in the container's cgroup (and its sub-cgroups), sorted.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let st = State::load(root, id)?;
    let mut p = cgroups::pids(&st.cgroup);
    p.sort_unstable();
    p.dedup();
    Ok(p)
}

/// Runs `ps ARGS` and keeps the header and the lines of `pids`.
pub fn table(pids: &[i32], args: &[String]) -> Result<String> {
    let args: Vec<String> = if args.is_empty() { vec!["-ef".into()] } else { args.to_vec() };
    let out = std::process::Command::new("ps")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Init(format!("run ps: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Error::Init(format!("ps {}: {}{}", args.join(" "), text, String::from_utf8_lossy(&out.stderr).trim())));
    }
    filter(&text, pids)
}

fn filter(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col =
        header.split_whitespace().position(|t| t == "PID").ok_or_else(|| Error::Init("couldn't find PID field in ps output".into()))?;
    let mut out = format!("{header}\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|f| f.parse::<i32>().ok())
            .ok_or_else(|| Error::Init(format!("unable to parse pid in ps line {line:?}")))?;
        if pids.contains(&pid) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn keeps_header_and_own_pids() {
        let ps = "UID   PID  PPID  C STIME TTY TIME CMD\nroot    1     0  0 10:00 ?   00:00:01 init\nroot   42     1  0 10:00 ?   00:00:00 sleep 9\n";
        assert_eq!(filter(ps, &[42]).unwrap(), "UID   PID  PPID  C STIME TTY TIME CMD\nroot   42     1  0 10:00 ?   00:00:00 sleep 9\n");
        assert!(filter("USER COMMAND\nroot x\n", &[1]).is_err());
    }
}
