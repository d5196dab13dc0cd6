//! The pod CIDR kubelet hands over in UpdateRuntimeConfig, turned into a CNI config: when
//! `network.cni_conf_template` is set and `cni_conf_dir` holds no config of its own, the
//! template is rendered with the CIDRs into `cni_conf_dir/TEMPLATE_FILE` (what containerd's
//! `conf_template` does; CRI-O only logs the CIDR). A node whose admin ships a CNI config
//! ignores the pod CIDR, as with both of them.
//!
//! Placeholders (a fixed set, not Go templates; anything else in `{{ }}` is refused):
//! - `{{.PodCIDR}}`: the first CIDR;
//! - `{{.PodCIDRRanges}}`: host-local `ranges`, one range set per CIDR, as JSON;
//! - `{{.Routes}}`: a default route per address family present, as JSON.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The file berth-cri renders (and only ever rewrites or removes that one).
pub const TEMPLATE_FILE: &str = "10-berth-pod-cidr.conflist";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("pod CIDR {0:?}: not an address/prefix")]
    BadCidr(String),
    #[error("CNI config template {}: {reason}", path.display())]
    Template { path: PathBuf, reason: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

/// One CIDR, checked: `addr/prefix` with the prefix in range for the family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// kubelet's `pod_cidr`: one CIDR or a comma-separated dual-stack pair; empty = none.
pub fn parse_cidrs(s: &str) -> Result<Vec<Cidr>, TemplateError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || TemplateError::BadCidr(part.to_string());
        let (a, p) = part.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        out.push(Cidr { addr, prefix });
    }
    Ok(out)
}

/// The template with the placeholders filled in; it must then be valid JSON.
pub fn render(path: &Path, template: &str, cidrs: &[Cidr]) -> Result<String, TemplateError> {
    let bad = |reason: String| TemplateError::Template { path: path.to_path_buf(), reason };
    let first = cidrs.first().ok_or_else(|| bad("no pod CIDR to render with".into()))?;
    let ranges: Vec<serde_json::Value> = cidrs.iter().map(|c| serde_json::json!([{ "subnet": c.to_string() }])).collect();
    let mut routes = Vec::new();
    if cidrs.iter().any(|c| c.addr.is_ipv4()) {
        routes.push(serde_json::json!({ "dst": "0.0.0.0/0" }));
    }
    if cidrs.iter().any(|c| c.addr.is_ipv6()) {
        routes.push(serde_json::json!({ "dst": "::/0" }));
    }
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after.find("}}").ok_or_else(|| bad("unclosed {{".into()))?;
        match after[..j].trim() {
            ".PodCIDR" => out.push_str(&first.to_string()),
            ".PodCIDRRanges" => out.push_str(&serde_json::Value::Array(ranges.clone()).to_string()),
            ".Routes" => out.push_str(&serde_json::Value::Array(routes.clone()).to_string()),
            other => return Err(bad(format!("unknown placeholder {{{{{other}}}}} (known: .PodCIDR, .PodCIDRRanges, .Routes)"))),
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    serde_json::from_str::<serde_json::Value>(&out).map_err(|e| bad(format!("rendered config is not JSON: {e}")))?;
    Ok(out)
}

/// Renders the template into `conf_dir` unless the directory has a config berth-cri did not
/// write. Returns whether the rendered file is now in place.
pub fn apply(conf_dir: &Path, template: &Path, cidrs: &[Cidr]) -> Result<bool, TemplateError> {
    let io = |context: String| move |source| TemplateError::Io { context, source };
    let others = super::config::candidate_files(conf_dir)
        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(vec![]) } else { Err(e) })
        .map_err(io(format!("read {}", conf_dir.display())))?
        .into_iter()
        .any(|f| f.file_name().is_some_and(|n| n != TEMPLATE_FILE));
    if others {
        return Ok(false);
    }
    let text = std::fs::read_to_string(template).map_err(io(format!("read {}", template.display())))?;
    let rendered = render(template, &text, cidrs)?;
    std::fs::create_dir_all(conf_dir).map_err(io(format!("create {}", conf_dir.display())))?;
    let dst = conf_dir.join(TEMPLATE_FILE);
    crate::persist::write_atomic_mode(&dst, rendered.as_bytes(), 0o644).map_err(io(format!("write {}", dst.display())))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_refuse() {
        let c = parse_cidrs("10.88.0.0/16, fd00:10::/64").unwrap();
        assert_eq!(c.iter().map(|c| c.to_string()).collect::<Vec<_>>(), ["10.88.0.0/16", "fd00:10::/64"]);
        assert!(parse_cidrs("").unwrap().is_empty());
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "fd00::/129", "10.0.0.0/-1"] {
            assert!(parse_cidrs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders_render_to_json() {
        let t = r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":{{.PodCIDRRanges}},"routes":{{ .Routes }}},"x":"{{.PodCIDR}}"}]}"#;
        let out = render(Path::new("t"), t, &parse_cidrs("10.1.0.0/24,fd00::/64").unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let p = &v["plugins"][0];
        assert_eq!(p["x"], "10.1.0.0/24");
        assert_eq!(p["ipam"]["ranges"][1][0]["subnet"], "fd00::/64");
        assert_eq!(p["ipam"]["routes"].as_array().unwrap().len(), 2);
        assert!(render(Path::new("t"), "{{.Nope}}", &parse_cidrs("10.0.0.0/8").unwrap()).is_err());
        assert!(render(Path::new("t"), "{\"a\": {{.PodCIDR}}}", &parse_cidrs("10.0.0.0/8").unwrap()).is_err(), "unquoted: not JSON");
        assert!(render(Path::new("t"), "{}", &[]).is_err());
    }
}
