//! berth's own AppArmor profile for RuntimeDefault (`apparmor/berth-default`, embedded in
//! the binary): loaded into the kernel with `apparmor_parser` the first time a container
//! needs it, unless a profile of that name is loaded already (an operator's own version
//! wins, as with CRI-O's and containerd's defaults). A node with AppArmor on but no parser
//! cannot honour RuntimeDefault: the container is refused with that reason rather than run
//! unconfined.

use std::path::Path;
use std::sync::Mutex;

pub const PROFILE: &str = "berth-default";
const TEXT: &str = include_str!("apparmor/berth-default");

static LOADED: Mutex<bool> = Mutex::new(false);

/// Makes sure `berth-default` is in the kernel; `scratch` is a directory for the profile
/// file the parser reads. Blocking (runs the parser once per daemon).
pub fn ensure_default(scratch: &Path) -> Result<&'static str, String> {
    let mut done = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if *done || crate::container::spec::security::apparmor_loaded(PROFILE) {
        *done = true;
        return Ok(PROFILE);
    }
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let file = scratch.join(PROFILE);
    crate::persist::write_atomic(&file, TEXT.as_bytes()).map_err(|e| format!("{}: {e}", file.display()))?;
    // -r replaces an older version of ours, -K keeps the parser's cache out of /etc.
    let out = std::process::Command::new("apparmor_parser")
        .args(["-r", "-K"])
        .arg(&file)
        .output()
        .map_err(|e| format!("cannot run apparmor_parser to load the {PROFILE} profile: {e}"))?;
    if !out.status.success() {
        return Err(format!("apparmor_parser could not load {PROFILE}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    *done = true;
    Ok(PROFILE)
}
