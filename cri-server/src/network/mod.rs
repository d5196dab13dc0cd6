//! CNI: the pod network. berth-cri runs the plugin chain of the default network (the first
//! config in `cni_conf_dir`) for each pod sandbox, as CRI-O and containerd do, and keeps on
//! disk what it ran so teardown never depends on today's config. See docs/CRI.md
//! "Networking (CNI)".
//!
//! - `config`: which file is the default network, parsing and validation;
//! - `exec`: running one plugin (lookup, environment, timeout, bounded output, errors);
//! - `args`: CNI_ARGS, capability args → runtimeConfig, per-plugin stdin;
//! - `result`: result versions and the pod IPs;
//! - `cache`: the record of each ADD;
//! - `template`: a CNI config rendered from the pod CIDR (UpdateRuntimeConfig).

pub mod args;
pub mod cache;
pub mod config;
pub mod exec;
pub mod result;
pub mod template;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use cache::{Cache, Entry};
use config::NetworkList;

/// The pod's interface name, as kubelet always asked for.
pub const POD_IFNAME: &str = "eth0";
/// How long one plugin may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The loopback network every pod gets besides the default one (CRI-O's and containerd's).
const LOOPBACK: &str = r#"{"cniVersion":"0.3.1","name":"cni-loopback","plugins":[{"type":"loopback"}]}"#;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("no network config found in {}{}", dir.display(), if skipped.is_empty() { String::new() } else { format!(" (skipped: {})", skipped.join("; ")) })]
    NoConfig { dir: PathBuf, skipped: Vec<String> },
    #[error("network config {}: {reason}", file.display())]
    BadConfig { file: PathBuf, reason: String },
    #[error("CNI plugin {plugin:?} not found in {}", dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))]
    PluginNotFound { plugin: String, dirs: Vec<PathBuf> },
    #[error("CNI plugin {plugin:?} refused: {reason}")]
    BadPluginName { plugin: String, reason: String },
    #[error("CNI plugin {plugin} {command} failed: {msg}{} (code {code}){}", if details.is_empty() { String::new() } else { format!(": {details}") }, if stderr.is_empty() { String::new() } else { format!("; stderr: {stderr}") })]
    Plugin { plugin: String, command: String, code: u64, msg: String, details: String, stderr: String },
    #[error("CNI plugin {plugin} {command} failed ({status}): {stderr}")]
    PluginFailed { plugin: String, command: String, status: String, stderr: String },
    #[error("CNI plugin {plugin} {command} timed out after {secs}s (killed)")]
    Timeout { plugin: String, command: String, secs: u64 },
    #[error("CNI plugin {plugin} {command}: {reason}")]
    BadOutput { plugin: String, command: String, reason: String },
    #[error("invalid pod for CNI: {0}")]
    InvalidPod(String),
    #[error("CNI cache entry {}: {reason}", path.display())]
    BadCache { path: PathBuf, reason: String },
    #[error("no CNI cache entry for pod {0} (never added, or already deleted)")]
    NotAdded(String),
    #[error("network {network} (cniVersion {version}) does not support CHECK")]
    CheckUnsupported { network: String, version: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

/// One pod as the network sees it.
#[derive(Debug, Clone, Default)]
pub struct PodNetwork {
    /// The sandbox id (CNI_CONTAINERID).
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// The pinned network namespace file.
    pub netns: PathBuf,
    pub port_mappings: Vec<PortMapping>,
    pub bandwidth: Option<Bandwidth>,
    pub dns: Option<Dns>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// tcp, udp or sctp.
    pub protocol: String,
    /// Empty: every host address.
    pub host_ip: String,
}

/// Bits per second and bits, as kubelet's `kubernetes.io/{ingress,egress}-bandwidth`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bandwidth {
    pub ingress_rate: u64,
    pub ingress_burst: u64,
    pub egress_rate: u64,
    pub egress_burst: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dns {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct NetworkResult {
    /// The pod's IPs on eth0, IPv4 first.
    pub ips: Vec<IpAddr>,
    /// The final CNI result, in the network's cniVersion.
    pub raw: Value,
}

pub struct Cni {
    conf_dir: PathBuf,
    plugin_dirs: Vec<PathBuf>,
    cache: Cache,
    timeout: Duration,
}

impl Cni {
    pub fn new(cfg: &crate::config::NetworkConfig, cache_dir: PathBuf) -> Cni {
        Cni {
            conf_dir: cfg.cni_conf_dir.clone(),
            plugin_dirs: cfg.cni_plugin_dirs.clone(),
            cache: Cache::new(cache_dir),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Per-plugin timeout (tests use short ones).
    pub fn with_timeout(mut self, t: Duration) -> Cni {
        self.timeout = t;
        self
    }

    /// The default network, read from the conf dir now: a new or edited file counts at once.
    pub fn default_network(&self) -> Result<NetworkList, NetworkError> {
        config::load_default(&self.conf_dir, &self.plugin_dirs)
    }

    /// NetworkReady: Ok when a usable default network exists (it parses and its plugins and
    /// the loopback plugin are found), else the reason.
    pub fn status(&self) -> Result<(), String> {
        self.default_network().map_err(|e| e.to_string())?;
        exec::find_plugin("loopback", &self.plugin_dirs).map_err(|e| e.to_string())?;
        Ok(())
    }

    pub async fn add(&self, pod: &PodNetwork) -> Result<NetworkResult, NetworkError> {
        validate(pod)?;
        let list = self.default_network()?;
        let cni_args = args::cni_args(pod);
        let caps = args::capability_args(pod);
        let mut entry = Entry::new(&list, &pod.id, POD_IFNAME, cni_args, caps);
        // Written before any plugin runs: if berth-cri dies during ADD, DEL after a restart
        // knows which config to undo with.
        let path = self.cache.write(&entry)?;
        let outcome = async {
            self.run_list(&loopback(), "ADD", pod, "lo", &entry, None).await.map_err(|e| (e, None))?;
            self.add_list(&list, pod, &entry).await
        }
        .await;
        let res = match outcome {
            Ok(r) => r,
            Err((e, partial)) => {
                self.undo(&list, pod, &entry, partial.as_ref(), &path).await;
                return Err(e);
            }
        };
        entry.result = res.clone();
        if let Err(e) = self.cache.write(&entry) {
            self.undo(&list, pod, &entry, Some(&res), &path).await;
            return Err(e);
        }
        Ok(NetworkResult { ips: result::pod_ips(&res, POD_IFNAME), raw: res })
    }

    /// The chain with prevResult passed along; on failure the error and what was built so far.
    async fn add_list(&self, list: &NetworkList, pod: &PodNetwork, entry: &Entry) -> Result<Value, (NetworkError, Option<Value>)> {
        let mut prev: Option<Value> = None;
        for (i, ty) in list.types().into_iter().enumerate() {
            let conf = args::plugin_config(list, i, &entry.capability_args, prev.as_ref());
            let out = self.exec(ty, "ADD", pod, POD_IFNAME, entry, &conf).await.map_err(|e| (e, prev.clone()))?;
            let r = result::parse(&out, &list.cni_version).map_err(|reason| {
                let e = NetworkError::BadOutput { plugin: ty.into(), command: "ADD".into(), reason };
                (e, prev.clone())
            })?;
            prev = Some(r);
        }
        Ok(prev.unwrap_or_else(|| result::empty(&list.cni_version)))
    }

    /// Best-effort DEL after a failed ADD; the ADD's error is what the caller hears.
    async fn undo(&self, list: &NetworkList, pod: &PodNetwork, entry: &Entry, prev: Option<&Value>, path: &Path) {
        match self.del_list(list, pod, entry, prev).await {
            Ok(()) => {
                let _ = self.cache.remove(path);
            }
            Err(e) => tracing::warn!(pod = %pod.id, "DEL after failed CNI ADD: {e} (cache entry kept for a later DEL)"),
        }
        if let Err(e) = self.run_list(&loopback(), "DEL", pod, "lo", entry, None).await {
            tracing::warn!(pod = %pod.id, "loopback DEL after failed CNI ADD: {e}");
        }
    }

    /// DEL with the cached config and result when there is an entry, else with the current
    /// default network (if any). Idempotent: an unknown pod, a vanished netns or a second DEL
    /// are fine. The cache entry goes only when every plugin succeeded, so a failed DEL can be
    /// retried.
    pub async fn del(&self, pod: &PodNetwork) -> Result<(), NetworkError> {
        validate(pod)?;
        let (list, entry, prev, path) = match self.cache.find(&pod.id)? {
            Some((path, e)) => {
                let prev = if e.result.is_null() { None } else { Some(e.result.clone()) };
                (e.list(&path)?, e, prev, Some(path))
            }
            None => match self.default_network() {
                Ok(l) => {
                    let e = Entry::new(&l, &pod.id, POD_IFNAME, args::cni_args(pod), args::capability_args(pod));
                    (l, e, None, None)
                }
                // Nothing was ever added by us and nothing is configured: nothing to undo.
                Err(e) => {
                    tracing::debug!(pod = %pod.id, "CNI DEL without cache entry or config: {e}");
                    return Ok(());
                }
            },
        };
        self.del_list(&list, pod, &entry, prev.as_ref()).await?;
        if pod.netns.exists() {
            // Only a formality (the namespace dies with the pod), so it does not fail DEL.
            if let Err(e) = self.run_list(&loopback(), "DEL", pod, "lo", &entry, None).await {
                tracing::warn!(pod = %pod.id, "loopback DEL: {e}");
            }
        }
        if let Some(p) = path {
            self.cache.remove(&p)?;
        }
        Ok(())
    }

    /// Plugins in reverse order; the result goes along as prevResult from 0.4.0 on (the spec
    /// added it to DEL there); the first failure stops, as in libcni.
    async fn del_list(&self, list: &NetworkList, pod: &PodNetwork, entry: &Entry, prev: Option<&Value>) -> Result<(), NetworkError> {
        let prev = match prev {
            Some(p) if config::version_cmp(&list.cni_version, "0.4.0").is_ge() => Some(
                result::convert(p.clone(), &list.cni_version)
                    .map_err(|reason| NetworkError::BadCache { path: self.cache.path(&list.name, &pod.id), reason })?,
            ),
            _ => None,
        };
        for (i, ty) in list.types().into_iter().enumerate().rev() {
            let conf = args::plugin_config(list, i, &entry.capability_args, prev.as_ref());
            self.exec(ty, "DEL", pod, &entry.if_name, entry, &conf).await?;
        }
        Ok(())
    }

    /// CHECK (cniVersion ≥ 0.4.0) of the cached network with the cached result; a list with
    /// `disableCheck` passes without running anything.
    /// NetworkReady with CNI 1.1's STATUS: `status()`, then, when the default network's
    /// cniVersion is 1.1.0 or later, every plugin of it asked whether it is ready (a plugin
    /// that cannot serve ADD yet says so with an error, which becomes the reason). Older
    /// versions have no STATUS: their readiness is `status()` alone.
    pub async fn ready(&self) -> Result<(), String> {
        self.status()?;
        let list = self.default_network().map_err(|e| e.to_string())?;
        if config::version_cmp(&list.cni_version, "1.1.0").is_lt() {
            return Ok(());
        }
        let none = Map::new();
        for (i, ty) in list.types().into_iter().enumerate() {
            let conf = args::plugin_config(&list, i, &none, None);
            self.exec_bare(ty, "STATUS", &conf).await.map_err(|e| format!("network {}: plugin {ty}: STATUS: {e}", list.name))?;
        }
        Ok(())
    }

    /// CNI 1.1's GC: every plugin of a 1.1+ default network is told which attachments are
    /// still valid (`cni.dev/valid-attachments`: the pods that have the network, each on
    /// eth0) and may release anything else — what a crash before a DEL could leave in a
    /// plugin's own state. A no-op for older versions.
    pub async fn gc(&self, valid_pods: &[String]) -> Result<(), NetworkError> {
        let list = self.default_network()?;
        if config::version_cmp(&list.cni_version, "1.1.0").is_lt() {
            return Ok(());
        }
        let valid: Vec<Value> = valid_pods.iter().map(|id| serde_json::json!({"containerID": id, "ifname": POD_IFNAME})).collect();
        let none = Map::new();
        for (i, ty) in list.types().into_iter().enumerate() {
            let mut conf = args::plugin_config(&list, i, &none, None);
            conf["cni.dev/valid-attachments"] = Value::Array(valid.clone());
            self.exec_bare(ty, "GC", &conf).await?;
        }
        Ok(())
    }

    /// A plugin call that concerns no one attachment (STATUS, GC): no container, netns or
    /// interface.
    async fn exec_bare(&self, ty: &str, command: &str, conf: &Value) -> Result<Vec<u8>, NetworkError> {
        let inv = exec::Invocation {
            command,
            container_id: "",
            netns: Path::new(""),
            ifname: "",
            args: "",
            plugin_dirs: &self.plugin_dirs,
            timeout: self.timeout,
        };
        let stdin = serde_json::to_vec(conf).expect("config serializes");
        exec::run(ty, &inv, &stdin).await
    }

    pub async fn check(&self, pod: &PodNetwork) -> Result<(), NetworkError> {
        validate(pod)?;
        let (path, entry) = self.cache.find(&pod.id)?.ok_or_else(|| NetworkError::NotAdded(pod.id.clone()))?;
        let list = entry.list(&path)?;
        if config::version_cmp(&list.cni_version, "0.4.0").is_lt() {
            return Err(NetworkError::CheckUnsupported { network: list.name, version: list.cni_version });
        }
        if list.disable_check {
            return Ok(());
        }
        if entry.result.is_null() {
            return Err(NetworkError::NotAdded(pod.id.clone()));
        }
        let prev = result::convert(entry.result.clone(), &list.cni_version)
            .map_err(|reason| NetworkError::BadCache { path: path.clone(), reason })?;
        for (i, ty) in list.types().into_iter().enumerate() {
            let conf = args::plugin_config(&list, i, &entry.capability_args, Some(&prev));
            self.exec(ty, "CHECK", pod, &entry.if_name, &entry, &conf).await?;
        }
        Ok(())
    }

    /// Runs a whole list without results (the loopback network).
    async fn run_list(
        &self,
        list: &NetworkList,
        command: &str,
        pod: &PodNetwork,
        ifname: &str,
        entry: &Entry,
        prev: Option<&Value>,
    ) -> Result<(), NetworkError> {
        let none = Map::new();
        let order: Vec<usize> = if command == "DEL" { (0..list.plugins.len()).rev().collect() } else { (0..list.plugins.len()).collect() };
        for i in order {
            let conf = args::plugin_config(list, i, &none, prev);
            self.exec(list.types()[i], command, pod, ifname, entry, &conf).await?;
        }
        Ok(())
    }

    async fn exec(
        &self,
        ty: &str,
        command: &str,
        pod: &PodNetwork,
        ifname: &str,
        entry: &Entry,
        conf: &Value,
    ) -> Result<Vec<u8>, NetworkError> {
        let a = args::cni_args_string(&entry.cni_args);
        let inv = exec::Invocation {
            command,
            container_id: &pod.id,
            netns: &pod.netns,
            ifname,
            args: &a,
            plugin_dirs: &self.plugin_dirs,
            timeout: self.timeout,
        };
        let stdin = serde_json::to_vec(conf).expect("config serializes");
        tracing::debug!(pod = %pod.id, plugin = ty, command, "running CNI plugin");
        exec::run(ty, &inv, &stdin).await
    }
}

fn loopback() -> NetworkList {
    config::parse_list(Path::new("<built-in loopback>"), serde_json::from_str(LOOPBACK).expect("valid JSON")).expect("valid list")
}

/// The id names a cache file and every value goes into CNI_ARGS, whose `;`/`=` cannot be
/// escaped.
fn validate(pod: &PodNetwork) -> Result<(), NetworkError> {
    if !config::valid_name(&pod.id) {
        return Err(NetworkError::InvalidPod(format!("pod id {:?} is not alphanumeric/._-", pod.id)));
    }
    for (k, v) in [("name", &pod.name), ("namespace", &pod.namespace), ("uid", &pod.uid)] {
        if v.contains([';', '=', '\0']) {
            return Err(NetworkError::InvalidPod(format!("pod {k} {v:?} holds ';', '=' or NUL")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
