//! berth-cri configuration, CRI-O style: `/etc/berth/berth.conf`, then drop-ins
//! `/etc/berth/berth.conf.d/*.conf` in name order, then command-line flags.

mod file;
mod render;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use file::{check_metrics_address, LOG_LEVELS};

pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/berth.conf";
pub const DEFAULT_CONFIG_DIR: &str = "/etc/berth/berth.conf.d";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {file}: {error}")]
    Read { file: PathBuf, error: std::io::Error },
    #[error("config file {file}{}: key `{key}`: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Invalid { file: PathBuf, key: String, line: Option<usize>, message: String },
    #[error("config directory {dir}: {source}")]
    ReadDir { dir: PathBuf, source: std::io::Error },
    #[error("flag {flag}: {message}")]
    Flag { flag: String, message: String },
}

/// The effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub runtime: RuntimeConfig,
    pub image: ImageConfig,
    pub network: NetworkConfig,
    pub streaming: StreamingConfig,
    pub metrics: MetricsConfig,
    /// Files that were applied, in order (not an option; shown in `config` output).
    #[serde(skip)]
    pub sources: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DaemonConfig {
    pub socket_path: PathBuf,
    pub state_root: PathBuf,
    pub log_level: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuntimeConfig {
    pub default_handler: String,
    pub monitor_path: PathBuf,
    /// `cgroupfs` or `systemd`: how the handlers' runtimes place containers (`--systemd-cgroup`
    /// for systemd) and what RuntimeConfig tells kubelet.
    pub cgroup_manager: String,
    /// User-namespaced pods that name no mappings get a 65536-id block from
    /// `userns_first_id + k * 65536`, `k < userns_pods`.
    pub userns_first_id: u32,
    pub userns_pods: u32,
    pub handlers: BTreeMap<String, Handler>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Handler {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageConfig {
    pub root: PathBuf,
    pub pause_image: String,
    pub registries_conf: PathBuf,
    pub registries_conf_dir: PathBuf,
    pub auth_file: PathBuf,
    pub max_layer_size: u64,
    pub allow_device_nodes: bool,
    pub max_manifest_size: u64,
    pub max_config_size: u64,
    pub max_error_body_size: u64,
    pub max_auth_token_size: u64,
    /// Seconds; 0 = no timeout.
    pub pull_progress_timeout: u64,
    pub max_layers: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkConfig {
    pub cni_conf_dir: PathBuf,
    pub cni_plugin_dirs: Vec<PathBuf>,
    /// A CNI config template rendered with the pod CIDR from UpdateRuntimeConfig into
    /// `cni_conf_dir` while that directory holds no config (as containerd's `conf_template`).
    pub cni_conf_template: Option<PathBuf>,
}

/// The streaming server (Exec, Attach, PortForward URLs).
#[derive(Debug, Clone, Serialize)]
pub struct StreamingConfig {
    /// IP address to listen on.
    pub address: String,
    /// TCP port; 0 = any free port.
    pub port: u16,
    /// PEM certificate chain and key: both set = HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Seconds without traffic after which a session is closed; 0 = never.
    pub idle_timeout: u64,
    /// Seconds a client has to open its streams after the upgrade.
    pub stream_creation_timeout: u64,
    /// Seconds a URL stays valid.
    pub token_ttl: u64,
}

/// The daemon's Prometheus endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsConfig {
    /// Serve `/metrics` at all.
    pub enable: bool,
    /// `ip:port` on loopback (validated when read); port 0 = any free port.
    pub address: String,
}

/// Values given on the command line; they win over every file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub config_dir: Option<PathBuf>,
    pub socket_path: Option<PathBuf>,
    pub state_root: Option<PathBuf>,
    pub image_root: Option<PathBuf>,
    pub log_level: Option<String>,
    pub registries_conf: Option<PathBuf>,
    pub registries_conf_dir: Option<PathBuf>,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

impl Default for Config {
    fn default() -> Self {
        let mut handlers = BTreeMap::new();
        handlers.insert("berth".to_string(), Handler { path: find_in_path("berth").unwrap_or_else(|| "/usr/local/bin/berth".into()) });
        Config {
            daemon: DaemonConfig { socket_path: "/run/berth/berth.sock".into(), state_root: "/run/berth".into(), log_level: "info".into() },
            runtime: RuntimeConfig {
                default_handler: "berth".into(),
                monitor_path: find_in_path("berth-mon").unwrap_or_else(|| "/usr/local/bin/berth-mon".into()),
                cgroup_manager: "cgroupfs".into(),
                userns_first_id: 1 << 20,
                userns_pods: 1024,
                handlers,
            },
            image: ImageConfig {
                root: "/var/lib/berth/images".into(),
                pause_image: "registry.k8s.io/pause:3.10".into(),
                registries_conf: "/etc/containers/registries.conf".into(),
                registries_conf_dir: "/etc/containers/registries.conf.d".into(),
                auth_file: "/etc/berth/auth.json".into(),
                max_layer_size: 16 << 30,
                allow_device_nodes: false,
                // containers/image's limits (CRI-O, podman): 4 MiB manifests and configs,
                // 1 MiB error bodies and token responses.
                max_manifest_size: 4 << 20,
                max_config_size: 4 << 20,
                max_error_body_size: 1 << 20,
                max_auth_token_size: 1 << 20,
                pull_progress_timeout: 120,
                max_layers: crate::image::pull::OVERLAY_MAX_LAYERS,
            },
            network: NetworkConfig {
                cni_conf_dir: "/etc/cni/net.d".into(),
                cni_plugin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
                cni_conf_template: None,
            },
            streaming: StreamingConfig {
                address: "127.0.0.1".into(),
                port: 0,
                tls_cert: None,
                tls_key: None,
                // kubelet's defaults: 4 h idle, 30 s to open the streams, 1 min per URL.
                idle_timeout: 4 * 3600,
                stream_creation_timeout: 30,
                token_ttl: 60,
            },
            // CRI-O's metrics port; off by default, as in CRI-O.
            metrics: MetricsConfig { enable: false, address: "127.0.0.1:9537".into() },
            sources: Vec::new(),
        }
    }
}

/// Drop-in files (`*.conf`) of a directory in name order; a missing directory has none.
pub fn drop_in_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ConfigError::ReadDir { dir: dir.to_path_buf(), source: e }),
    };
    let mut files = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| ConfigError::ReadDir { dir: dir.to_path_buf(), source: e })?;
        let p = ent.path();
        if p.extension().is_some_and(|e| e == "conf") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

impl Config {
    /// Loads defaults, the main file (optional unless given with `--config`), drop-ins, flags.
    pub fn load(ov: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        let main = ov.config_file.clone().unwrap_or_else(|| DEFAULT_CONFIG_FILE.into());
        if let Some(f) = file::parse_file(&main, ov.config_file.is_none())? {
            cfg.apply(f);
            cfg.sources.push(main);
        }
        let dir = ov.config_dir.clone().unwrap_or_else(|| DEFAULT_CONFIG_DIR.into());
        for p in drop_in_files(&dir)? {
            if let Some(f) = file::parse_file(&p, false)? {
                cfg.apply(f);
                cfg.sources.push(p);
            }
        }
        cfg.apply_overrides(ov)?;
        cfg.add_installed_handlers();
        Ok(cfg)
    }

    fn apply(&mut self, f: file::FileConfig) {
        if let Some(d) = f.daemon {
            set(&mut self.daemon.socket_path, d.socket_path);
            set(&mut self.daemon.state_root, d.state_root);
            set(&mut self.daemon.log_level, d.log_level);
        }
        if let Some(r) = f.runtime {
            set(&mut self.runtime.default_handler, r.default_handler);
            set(&mut self.runtime.monitor_path, r.monitor_path);
            set(&mut self.runtime.cgroup_manager, r.cgroup_manager);
            set(&mut self.runtime.userns_first_id, r.userns_first_id);
            set(&mut self.runtime.userns_pods, r.userns_pods);
            for (name, h) in r.handlers.unwrap_or_default() {
                self.runtime.handlers.insert(name, Handler { path: h.path });
            }
        }
        if let Some(i) = f.image {
            set(&mut self.image.root, i.root);
            set(&mut self.image.pause_image, i.pause_image);
            set(&mut self.image.registries_conf, i.registries_conf);
            set(&mut self.image.registries_conf_dir, i.registries_conf_dir);
            set(&mut self.image.auth_file, i.auth_file);
            set(&mut self.image.max_layer_size, i.max_layer_size);
            set(&mut self.image.allow_device_nodes, i.allow_device_nodes);
            set(&mut self.image.max_manifest_size, i.max_manifest_size);
            set(&mut self.image.max_config_size, i.max_config_size);
            set(&mut self.image.max_error_body_size, i.max_error_body_size);
            set(&mut self.image.max_auth_token_size, i.max_auth_token_size);
            set(&mut self.image.pull_progress_timeout, i.pull_progress_timeout);
            set(&mut self.image.max_layers, i.max_layers);
        }
        if let Some(n) = f.network {
            set(&mut self.network.cni_conf_dir, n.cni_conf_dir);
            set(&mut self.network.cni_plugin_dirs, n.cni_plugin_dirs);
            if n.cni_conf_template.is_some() {
                self.network.cni_conf_template = n.cni_conf_template;
            }
        }
        if let Some(st) = f.streaming {
            set(&mut self.streaming.address, st.address);
            set(&mut self.streaming.port, st.port);
            if st.tls_cert.is_some() {
                self.streaming.tls_cert = st.tls_cert;
            }
            if st.tls_key.is_some() {
                self.streaming.tls_key = st.tls_key;
            }
            set(&mut self.streaming.idle_timeout, st.idle_timeout);
            set(&mut self.streaming.stream_creation_timeout, st.stream_creation_timeout);
            set(&mut self.streaming.token_ttl, st.token_ttl);
        }
        if let Some(m) = f.metrics {
            set(&mut self.metrics.enable, m.enable);
            set(&mut self.metrics.address, m.address);
        }
    }

    fn apply_overrides(&mut self, ov: &Overrides) -> Result<(), ConfigError> {
        let abs = |flag: &str, p: &Option<PathBuf>| -> Result<Option<PathBuf>, ConfigError> {
            match p {
                Some(p) if !p.is_absolute() => {
                    Err(ConfigError::Flag { flag: flag.into(), message: format!("must be an absolute path, got {p:?}") })
                }
                other => Ok(other.clone()),
            }
        };
        set(&mut self.daemon.socket_path, abs("--socket", &ov.socket_path)?);
        set(&mut self.daemon.state_root, abs("--state-root", &ov.state_root)?);
        set(&mut self.image.root, abs("--image-root", &ov.image_root)?);
        set(&mut self.image.registries_conf, abs("--registries-conf", &ov.registries_conf)?);
        set(&mut self.image.registries_conf_dir, abs("--registries-conf-dir", &ov.registries_conf_dir)?);
        if let Some(l) = &ov.log_level {
            if !LOG_LEVELS.contains(&l.as_str()) {
                return Err(ConfigError::Flag {
                    flag: "--log-level".into(),
                    message: format!("invalid value {l:?}, expected one of {}", LOG_LEVELS.join(", ")),
                });
            }
            self.daemon.log_level = l.clone();
        }
        Ok(())
    }

    /// `runc` and `crun` become handlers automatically when installed and not configured.
    fn add_installed_handlers(&mut self) {
        for name in ["runc", "crun"] {
            if !self.runtime.handlers.contains_key(name) {
                if let Some(path) = find_in_path(name) {
                    self.runtime.handlers.insert(name.to_string(), Handler { path });
                }
            }
        }
    }

    /// The effective configuration as documented TOML (output of `berth-cri config`).
    pub fn to_documented_toml(&self) -> String {
        render::render(self)
    }

    /// Path of the daemon's single-instance lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.daemon.state_root.join("berth-cri.lock")
    }
}

fn set<T>(dst: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *dst = v;
    }
}
