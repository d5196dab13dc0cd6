//! Running the `criu` command line for `checkpoint` and `restore`.
//!
//! berth drives CRIU through its CLI (no C library, no RPC): it builds the argument list,
//! runs the binary with a per-action log (`dump.log`, `restore.log`) in the work directory
//! and, when criu fails, quotes the `Error` lines of that log (and criu's stderr) in the
//! error, so the caller sees CRIU's own complaint (e.g. a kernel it cannot work with).

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The binary used unless `--criu` names another (found on PATH, as runc does).
pub const DEFAULT_BINARY: &str = "criu";

/// How many `Error` lines of criu's log an error quotes.
const QUOTED_LINES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    #[error("criu: cannot run {binary}: {cause} (install CRIU, or name it with --criu)")]
    NotRunnable { binary: String, cause: std::io::Error },
    #[error("criu {action} failed ({status}): {complaint}{log}")]
    Failed {
        action: &'static str,
        status: String,
        /// criu's own error lines, joined with " | ".
        complaint: String,
        /// ", log: <path>" when the log is kept, empty otherwise.
        log: String,
    },
}

/// One criu invocation.
pub struct Criu {
    binary: PathBuf,
    action: &'static str,
    args: Vec<OsString>,
    log: PathBuf,
}

impl Criu {
    /// `criu <action> -D images -W work -o <action>.log -v4`.
    pub fn new(binary: &Path, action: &'static str, images: &Path, work: &Path) -> Criu {
        let log_name = format!("{action}.log");
        let mut c = Criu { binary: binary.to_path_buf(), action, args: Vec::new(), log: work.join(&log_name) };
        c.arg(action).arg("--images-dir").arg(images).arg("--work-dir").arg(work).arg("--log-file").arg(log_name).arg("-v4");
        c
    }

    pub fn arg(&mut self, a: impl Into<OsString>) -> &mut Self {
        self.args.push(a.into());
        self
    }

    pub fn flag(&mut self, on: bool, name: &str) -> &mut Self {
        if on {
            self.arg(name);
        }
        self
    }

    /// `--external mnt[key]:value` (dump: key is the mount point, value the key recorded;
    /// restore: key as recorded, value the host path to bind there).
    pub fn ext_mount(&mut self, key: &str, value: &Path) -> &mut Self {
        let mut v = OsString::from(format!("mnt[{key}]:"));
        v.push(value);
        self.arg("--external").arg(v)
    }

    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    /// Where criu writes its log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Runs criu with berth's stdin, stdout and stderr (restore hands them to the restored
    /// init: `--inherit-fd fd[0..2]`); `pre_exec` runs in the child between fork and exec
    /// (async-signal-safe calls only). `log_kept` says whether the log survives a failure
    /// (the error then names it).
    pub fn run(
        &self,
        pre_exec: Option<Box<dyn FnMut() -> std::io::Result<()> + Send + Sync>>,
        log_kept: impl Fn() -> bool,
    ) -> Result<(), CriuError> {
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.args).stdin(Stdio::inherit()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
        if let Some(f) = pre_exec {
            // SAFETY: the closure only makes system calls (documented by the callers).
            unsafe { cmd.pre_exec(f) };
        }
        crate::logger::debug(&format!("running {} {:?}", self.binary.display(), self.args));
        let status = cmd.status().map_err(|cause| CriuError::NotRunnable { binary: self.binary.display().to_string(), cause })?;
        if status.success() {
            return Ok(());
        }
        let status = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown status".into(),
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let complaint = complaint(&log, "");
        let log = if log_kept() { format!(", log: {}", self.log.display()) } else { String::new() };
        Err(CriuError::Failed { action: self.action, status, complaint, log })
    }
}

/// criu's `Error` lines from its log (then its stderr), or the log's last line.
pub fn complaint(log: &str, stderr: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for l in log.lines().chain(stderr.lines()) {
        let l = l.trim();
        if l.contains("Error") && !lines.contains(&strip_stamp(l)) {
            lines.push(strip_stamp(l));
        }
    }
    if lines.is_empty() {
        let last = stderr.lines().chain(log.lines()).rev().find(|l| !l.trim().is_empty());
        return last.map(|l| strip_stamp(l.trim()).to_string()).unwrap_or_else(|| "no message".into());
    }
    let more = lines.len().saturating_sub(QUOTED_LINES);
    let mut s = lines.into_iter().take(QUOTED_LINES).collect::<Vec<_>>().join(" | ");
    if more > 0 {
        s.push_str(&format!(" | ... ({more} more)"));
    }
    s
}

/// criu's -v4 lines start with `(00.012345) `; the error reads better without it.
fn strip_stamp(l: &str) -> &str {
    match l.strip_prefix('(').and_then(|r| r.split_once(") ")) {
        Some((stamp, rest)) if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') => rest,
        _ => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complaint_quotes_error_lines_without_timestamps() {
        let log = "(00.000100) Version: 3.17.1\n(00.001000) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n\
                   (00.001001) Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.\n";
        let c = complaint(log, "");
        assert_eq!(c, "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds | Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.");
    }

    #[test]
    fn complaint_falls_back_to_the_last_line() {
        assert_eq!(complaint("", "something odd\n"), "something odd");
        assert_eq!(complaint("", ""), "no message");
    }

    #[test]
    fn args_start_with_action_dirs_and_log() {
        let c = Criu::new(Path::new("criu"), "dump", Path::new("/img"), Path::new("/work"));
        let a: Vec<String> = c.args().iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert_eq!(a, ["dump", "--images-dir", "/img", "--work-dir", "/work", "--log-file", "dump.log", "-v4"]);
        assert_eq!(c.log_path(), Path::new("/work/dump.log"));
    }
}
