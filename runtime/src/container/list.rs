//! `berth state` and `berth list`.

use crate::error::Result;
use crate::state::{self, OciState, State};
use std::path::Path;

pub fn state(root: &Path, id: &str) -> Result<OciState> {
    let st = State::load(root, id)?;
    Ok(st.oci(st.status(root)))
}

/// All containers, skipping any whose state vanished meanwhile.
pub fn list(root: &Path) -> Result<Vec<OciState>> {
    let mut out = Vec::new();
    for id in state::list_ids(root)? {
        if let Ok(s) = state(root, &id) {
            out.push(s);
        }
    }
    Ok(out)
}

/// runc's table: tab-aligned columns at least 12 wide with 3 spaces of padding.
pub fn table(items: &[OciState]) -> String {
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from).to_vec()];
    for s in items {
        rows.push(vec![
            s.id.clone(),
            s.pid.to_string(),
            s.status.to_string(),
            s.bundle.display().to_string(),
            s.created.clone(),
            s.owner.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|c| rows.iter().map(|r| r[c].len() + 3).max().unwrap_or(0).max(12)).collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c == 5 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
