//! Signal names and numbers as `kill` accepts them (`TERM`, `SIGTERM`, `15`, `RTMIN+3`).

use crate::error::{Error, Result};
use nix::sys::signal::Signal;
use std::str::FromStr;

/// Parses a signal given by name (with or without `SIG`) or number.
pub fn parse(s: &str) -> Result<i32> {
    let bad = || Error::Signal(s.to_string());
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) { Ok(n) } else { Err(bad()) };
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rt) = name.strip_prefix("RTMIN") {
        return rt_offset(rt, libc::SIGRTMIN(), 1).ok_or_else(bad);
    }
    if let Some(rt) = name.strip_prefix("RTMAX") {
        return rt_offset(rt, libc::SIGRTMAX(), -1).ok_or_else(bad);
    }
    Signal::from_str(&format!("SIG{name}")).map(|s| s as i32).map_err(|_| bad())
}

fn rt_offset(rest: &str, base: i32, dir: i32) -> Option<i32> {
    let off = if rest.is_empty() {
        0
    } else {
        let (sign, num) = rest.split_at(1);
        let n: i32 = num.parse().ok()?;
        match (sign, dir) {
            ("+", 1) | ("-", -1) => n * dir,
            _ => return None,
        }
    };
    let sig = base + off;
    (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig).then_some(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert_eq!(parse("SIGRTMAX-1").unwrap(), libc::SIGRTMAX() - 1);
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "0", "-1", "65", "NOPE", "SIG", "RTMIN-1", "RTMAX+1", "9x"] {
            assert!(parse(s).is_err(), "{s} accepted");
        }
    }
}
