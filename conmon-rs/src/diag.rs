//! berth-mon's own messages (not the container's): to stderr while the caller still reads
//! it, and to syslog (`/dev/log`) with `--syslog`, filtered by `--log-level`.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
    Trace = 4,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);
static SYSLOG: AtomicBool = AtomicBool::new(false);
static STDERR: AtomicBool = AtomicBool::new(true);
static TAG: OnceLock<String> = OnceLock::new();

/// conmon's level names; an unknown one is an error.
pub fn parse_level(s: &str) -> Option<Level> {
    Some(match s.to_ascii_lowercase().as_str() {
        "error" | "fatal" | "panic" => Level::Error,
        "warn" | "warning" => Level::Warn,
        "info" => Level::Info,
        "debug" => Level::Debug,
        "trace" => Level::Trace,
        _ => return None,
    })
}

pub fn configure(level: Level, syslog: bool, cid: &str) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    SYSLOG.store(syslog, Ordering::Relaxed);
    let short: String = cid.chars().take(12).collect();
    let _ = TAG.set(format!("berth-mon {short}"));
}

/// stderr now goes to /dev/null: stop writing there.
pub fn detached() {
    STDERR.store(false, Ordering::Relaxed);
}

pub fn enabled(l: Level) -> bool {
    l as u8 <= LEVEL.load(Ordering::Relaxed)
}

pub fn log(l: Level, msg: &str) {
    if !enabled(l) {
        return;
    }
    let tag = TAG.get().map(String::as_str).unwrap_or("berth-mon");
    if STDERR.load(Ordering::Relaxed) {
        let _ = writeln!(std::io::stderr(), "[{tag}]: {msg}");
    }
    if SYSLOG.load(Ordering::Relaxed) {
        // RFC 3164 framing as syslog(3) writes it; facility daemon (3).
        let sev = match l {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            _ => 7,
        };
        let line = format!("<{}>{tag}[{}]: {msg}", 3 * 8 + sev, std::process::id());
        if let Ok(s) = UnixDatagram::unbound() {
            let _ = s.send_to(line.as_bytes(), "/dev/log");
        }
    }
}

pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}
pub fn info(msg: &str) {
    log(Level::Info, msg)
}
pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}
