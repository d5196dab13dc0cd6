//! The cgroup v2 freezer (`cgroup.freeze`, a core file present in every non-root cgroup, so
//! it works on hybrid hosts too): freezing returns once `cgroup.events` says `frozen 1`.

use super::{events, fs};
use crate::error::{Error, Result};
use std::path::Path;
use std::time::Duration;

/// How long a freeze may take: tasks in uninterruptible sleep freeze only when they wake.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// Freezes (`true`) or thaws the cgroup and its descendants and waits until the kernel reports it done.
pub fn set(dir: &Path, frozen: bool) -> Result<()> {
    fs::write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    if events::wait(dir, "frozen", u64::from(frozen), FREEZE_TIMEOUT)? {
        return Ok(());
    }
    if frozen {
        // Leave nothing half-frozen behind.
        let _ = fs::write(dir, "cgroup.freeze", "0");
    }
    Err(Error::Cgroup(format!("{} did not {} within {}s", dir.display(), if frozen { "freeze" } else { "thaw" }, FREEZE_TIMEOUT.as_secs())))
}

/// Whether the kernel reports the cgroup frozen.
pub fn is_frozen(dir: &Path) -> bool {
    fs::read_keyed(dir, "cgroup.events").is_ok_and(|p| fs::keyed(&p, "frozen") == Some(1))
}
