//! One configuration file (`berth.conf` or a drop-in) as written on disk: every key optional,
//! unknown keys rejected. Errors name the file and the dotted key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub daemon: Option<DaemonSection>,
    pub runtime: Option<RuntimeSection>,
    pub image: Option<ImageSection>,
    pub network: Option<NetworkSection>,
    pub streaming: Option<StreamingSection>,
    pub metrics: Option<MetricsSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    pub enable: Option<bool>,
    pub address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamingSection {
    pub address: Option<String>,
    pub port: Option<u16>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub idle_timeout: Option<u64>,
    pub stream_creation_timeout: Option<u64>,
    pub token_ttl: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    pub socket_path: Option<PathBuf>,
    pub state_root: Option<PathBuf>,
    pub log_level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    pub default_handler: Option<String>,
    pub monitor_path: Option<PathBuf>,
    pub cgroup_manager: Option<String>,
    pub userns_first_id: Option<u32>,
    pub userns_pods: Option<u32>,
    pub handlers: Option<BTreeMap<String, HandlerSection>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerSection {
    pub path: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSection {
    pub root: Option<PathBuf>,
    pub pause_image: Option<String>,
    pub registries_conf: Option<PathBuf>,
    pub registries_conf_dir: Option<PathBuf>,
    pub auth_file: Option<PathBuf>,
    pub max_layer_size: Option<u64>,
    pub allow_device_nodes: Option<bool>,
    pub max_manifest_size: Option<u64>,
    pub max_config_size: Option<u64>,
    pub max_error_body_size: Option<u64>,
    pub max_auth_token_size: Option<u64>,
    pub pull_progress_timeout: Option<u64>,
    pub max_layers: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    pub cni_conf_dir: Option<PathBuf>,
    pub cni_plugin_dirs: Option<Vec<PathBuf>>,
    pub cni_conf_template: Option<PathBuf>,
}

pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

/// Parses one file; `Ok(None)` when it does not exist and `optional` is set.
pub fn parse_file(path: &Path, optional: bool) -> Result<Option<FileConfig>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ConfigError::Read { file: path.to_path_buf(), error: e }),
    };
    parse_str(path, &text).map(Some)
}

pub fn parse_str(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let de = toml::Deserializer::new(text);
    let cfg: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let msg = e.inner().message().to_string();
        let line =
            e.inner().span().filter(|_| !msg.starts_with("unknown field")).map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        ConfigError::Invalid { file: path.to_path_buf(), key, line, message: msg }
    })?;
    validate(path, &cfg)?;
    Ok(cfg)
}

fn bad(path: &Path, key: &str, message: String) -> ConfigError {
    ConfigError::Invalid { file: path.to_path_buf(), key: key.to_string(), line: None, message }
}

fn check_abs(path: &Path, key: &str, value: &Option<PathBuf>) -> Result<(), ConfigError> {
    match value {
        Some(p) if !p.is_absolute() => Err(bad(path, key, format!("must be an absolute path, got {:?}", p))),
        _ => Ok(()),
    }
}

/// Checks of values beyond their TOML type, done per file so the error names the file.
fn validate(path: &Path, cfg: &FileConfig) -> Result<(), ConfigError> {
    if let Some(d) = &cfg.daemon {
        check_abs(path, "daemon.socket_path", &d.socket_path)?;
        check_abs(path, "daemon.state_root", &d.state_root)?;
        if let Some(l) = &d.log_level {
            if !LOG_LEVELS.contains(&l.as_str()) {
                return Err(bad(path, "daemon.log_level", format!("invalid value {l:?}, expected one of {}", LOG_LEVELS.join(", "))));
            }
        }
    }
    if let Some(r) = &cfg.runtime {
        check_abs(path, "runtime.monitor_path", &r.monitor_path)?;
        if let Some(h) = &r.default_handler {
            if h.is_empty() {
                return Err(bad(path, "runtime.default_handler", "must not be empty".into()));
            }
        }
        if let Some(m) = &r.cgroup_manager {
            if m != "cgroupfs" && m != "systemd" {
                return Err(bad(path, "runtime.cgroup_manager", format!("invalid value {m:?}, expected cgroupfs or systemd")));
            }
        }
        if r.userns_pods == Some(0) {
            return Err(bad(path, "runtime.userns_pods", "must be at least 1".into()));
        }
        if r.userns_first_id == Some(0) {
            return Err(bad(path, "runtime.userns_first_id", "must not be 0 (the host's root)".into()));
        }
        for (name, h) in r.handlers.iter().flatten() {
            check_abs(path, &format!("runtime.handlers.{name}.path"), &Some(h.path.clone()))?;
        }
    }
    if let Some(i) = &cfg.image {
        check_abs(path, "image.root", &i.root)?;
        check_abs(path, "image.registries_conf", &i.registries_conf)?;
        check_abs(path, "image.registries_conf_dir", &i.registries_conf_dir)?;
        check_abs(path, "image.auth_file", &i.auth_file)?;
        for (key, v) in [
            ("image.max_layer_size", i.max_layer_size),
            ("image.max_manifest_size", i.max_manifest_size),
            ("image.max_config_size", i.max_config_size),
            ("image.max_error_body_size", i.max_error_body_size),
            ("image.max_auth_token_size", i.max_auth_token_size),
        ] {
            if v == Some(0) {
                return Err(bad(path, key, "must be greater than 0".into()));
            }
        }
        let most = crate::image::pull::OVERLAY_MAX_LAYERS;
        if let Some(n) = i.max_layers.filter(|n| !(1..=most).contains(n)) {
            return Err(bad(
                path,
                "image.max_layers",
                format!("must be between 1 and {most} (overlayfs stacks at most {most} layers), got {n}"),
            ));
        }
        if let Some(p) = &i.pause_image {
            if p.trim().is_empty() {
                return Err(bad(path, "image.pause_image", "must not be empty".into()));
            }
        }
    }
    if let Some(n) = &cfg.network {
        check_abs(path, "network.cni_conf_dir", &n.cni_conf_dir)?;
        check_abs(path, "network.cni_conf_template", &n.cni_conf_template)?;
        for (i, d) in n.cni_plugin_dirs.iter().flatten().enumerate() {
            check_abs(path, &format!("network.cni_plugin_dirs[{i}]"), &Some(d.clone()))?;
        }
    }
    if let Some(st) = &cfg.streaming {
        if let Some(a) = &st.address {
            if a.parse::<std::net::IpAddr>().is_err() {
                return Err(bad(path, "streaming.address", format!("must be an IP address, got {a:?}")));
            }
        }
        check_abs(path, "streaming.tls_cert", &st.tls_cert)?;
        check_abs(path, "streaming.tls_key", &st.tls_key)?;
        for (key, v) in [("streaming.stream_creation_timeout", st.stream_creation_timeout), ("streaming.token_ttl", st.token_ttl)] {
            if v == Some(0) {
                return Err(bad(path, key, "must be greater than 0".into()));
            }
        }
    }
    if let Some(a) = cfg.metrics.as_ref().and_then(|m| m.address.as_ref()) {
        check_metrics_address(a).map_err(|m| bad(path, "metrics.address", m))?;
    }
    Ok(())
}

/// The endpoint has no TLS and no authentication, and its labels name every operation the
/// node's kubelet runs: it stays on loopback, where only the node's own processes (a local
/// Prometheus agent, or a proxy that adds TLS) reach it.
pub fn check_metrics_address(a: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = a.parse().map_err(|_| format!("must be ip:port (e.g. \"127.0.0.1:9537\"), got {a:?}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("must be a loopback address (127.0.0.0/8 or [::1]): the endpoint has no TLS or authentication, got {a:?}"));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_address_is_loopback_ip_and_port() {
        assert_eq!(check_metrics_address("127.0.0.1:9537").unwrap().port(), 9537);
        assert!(check_metrics_address("[::1]:0").is_ok());
        assert!(check_metrics_address("127.0.0.1").unwrap_err().contains("ip:port"));
        assert!(check_metrics_address("localhost:9537").is_err());
        assert!(check_metrics_address("0.0.0.0:9537").unwrap_err().contains("loopback"));
        assert!(check_metrics_address("10.1.2.3:9537").unwrap_err().contains("loopback"));
    }

    #[test]
    fn a_file_with_a_remote_metrics_address_is_refused() {
        let e = parse_str(Path::new("/x.conf"), "[metrics]\nenable = true\naddress = \"0.0.0.0:9537\"\n").unwrap_err();
        assert!(e.to_string().contains("metrics.address"), "{e}");
        let ok = parse_str(Path::new("/x.conf"), "[metrics]\nenable = true\naddress = \"127.0.0.1:9999\"\n").unwrap();
        assert_eq!(ok.metrics.unwrap().enable, Some(true));
    }
}
