//! The part of a Kubernetes Pod manifest `berth-cri play` understands, and its translation
//! into CRI requests. Unknown fields are ignored (a real manifest carries many); a field we
//! do read with a wrong type is an error naming it.

use k8s_cri::v1 as cri;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Deserialize)]
pub struct Pod {
    #[serde(default)]
    pub kind: String,
    pub metadata: Metadata,
    pub spec: PodSpec,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default = "default_ns")]
    pub namespace: String,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}
fn default_ns() -> String {
    "default".into()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Vec<Container>,
    #[serde(default)]
    pub restart_policy: Option<String>,
    #[serde(default)]
    pub host_network: bool,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub dns_config: Option<DnsConfig>,
}

#[derive(Debug, Deserialize)]
pub struct DnsConfig {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub searches: Vec<String>,
    #[serde(default)]
    pub options: Vec<DnsOption>,
}
#[derive(Debug, Deserialize)]
pub struct DnsOption {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub stdin: bool,
}

#[derive(Debug, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    pub container_port: i32,
    #[serde(default)]
    pub host_port: Option<i32>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default, rename = "hostIP")]
    pub host_ip: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Resources {
    #[serde(default)]
    pub limits: HashMap<String, yaml_serde::Value>,
    #[serde(default)]
    pub requests: HashMap<String, yaml_serde::Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    #[serde(default)]
    pub run_as_user: Option<i64>,
    #[serde(default)]
    pub run_as_group: Option<i64>,
    #[serde(default)]
    pub privileged: Option<bool>,
    #[serde(default)]
    pub read_only_root_filesystem: Option<bool>,
    #[serde(default)]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Capabilities {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub drop: Vec<String>,
}

pub fn parse(text: &str) -> Result<Pod, String> {
    let pod: Pod = yaml_serde::from_str(text).map_err(|e| format!("not a Pod manifest: {e}"))?;
    if !pod.kind.is_empty() && pod.kind != "Pod" {
        return Err(format!("kind {:?}: only Pod manifests can be played", pod.kind));
    }
    if pod.spec.containers.is_empty() {
        return Err("spec.containers is empty".into());
    }
    Ok(pod)
}

/// A quantity as Kubernetes writes it: CPU in cores ("500m", "1.5") → millicores, memory in
/// bytes ("64Mi", "1G", "1000") → bytes.
pub fn quantity(v: &yaml_serde::Value, cpu: bool) -> Result<i64, String> {
    let s = match v {
        yaml_serde::Value::Number(n) => n.to_string(),
        yaml_serde::Value::String(s) => s.clone(),
        other => return Err(format!("bad quantity {other:?}")),
    };
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("bad quantity {s:?}"))?;
    let mult: f64 = match unit {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1048576.0,
        "Gi" => 1073741824.0,
        "Ti" => 1099511627776.0,
        _ => return Err(format!("bad quantity {s:?}")),
    };
    let v = n * mult;
    Ok(if cpu { (v * 1000.0).round() as i64 } else { v.round() as i64 })
}

impl Pod {
    pub fn uid(&self) -> String {
        self.metadata.uid.clone().unwrap_or_else(|| crate::persist::new_id()[..32].to_string())
    }

    pub fn sandbox_config(&self, uid: &str, log_dir: &str) -> cri::PodSandboxConfig {
        let ns = if self.spec.host_network { cri::NamespaceMode::Node } else { cri::NamespaceMode::Pod };
        let port_mappings = self
            .spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter())
            .filter_map(|p| {
                p.host_port.map(|hp| cri::PortMapping {
                    protocol: match p.protocol.as_deref() {
                        Some("UDP") => cri::Protocol::Udp as i32,
                        Some("SCTP") => cri::Protocol::Sctp as i32,
                        _ => cri::Protocol::Tcp as i32,
                    },
                    container_port: p.container_port,
                    host_port: hp,
                    host_ip: p.host_ip.clone().unwrap_or_default(),
                })
            })
            .collect();
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: self.metadata.name.clone(),
                uid: uid.into(),
                namespace: self.metadata.namespace.clone(),
                attempt: 0,
            }),
            hostname: self.spec.hostname.clone().unwrap_or_else(|| self.metadata.name.clone()),
            log_directory: log_dir.into(),
            dns_config: self.spec.dns_config.as_ref().map(|d| cri::DnsConfig {
                servers: d.nameservers.clone(),
                searches: d.searches.clone(),
                options: d
                    .options
                    .iter()
                    .map(|o| match &o.value {
                        Some(v) => format!("{}:{v}", o.name),
                        None => o.name.clone(),
                    })
                    .collect(),
            }),
            port_mappings,
            labels: self.metadata.labels.clone(),
            annotations: self.metadata.annotations.clone(),
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: ns as i32,
                        pid: cri::NamespaceMode::Container as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

impl Container {
    pub fn config(&self, attempt: u32) -> Result<cri::ContainerConfig, String> {
        let mut res = cri::LinuxContainerResources::default();
        if let Some(r) = &self.resources {
            if let Some(v) = r.limits.get("cpu") {
                let m = quantity(v, true)?;
                res.cpu_period = 100_000;
                res.cpu_quota = m * 100;
            }
            if let Some(v) = r.requests.get("cpu").or_else(|| r.limits.get("cpu")) {
                // kubelet's shares: millicores * 1024 / 1000, at least 2.
                res.cpu_shares = (quantity(v, true)? * 1024 / 1000).max(2);
            }
            if let Some(v) = r.limits.get("memory") {
                res.memory_limit_in_bytes = quantity(v, false)?;
            }
        }
        let sc = self.security_context.as_ref();
        let caps = sc.and_then(|s| s.capabilities.as_ref());
        let security = cri::LinuxContainerSecurityContext {
            capabilities: caps.map(|c| cri::Capability {
                add_capabilities: c.add.clone(),
                drop_capabilities: c.drop.clone(),
                add_ambient_capabilities: vec![],
            }),
            privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
            run_as_user: sc.and_then(|s| s.run_as_user).map(|v| cri::Int64Value { value: v }),
            run_as_group: sc.and_then(|s| s.run_as_group).map(|v| cri::Int64Value { value: v }),
            readonly_rootfs: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
            no_new_privs: sc.and_then(|s| s.allow_privilege_escalation).map(|a| !a).unwrap_or(false),
            seccomp: Some(cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: self.name.clone(), attempt }),
            image: Some(cri::ImageSpec { image: self.image.clone(), ..Default::default() }),
            command: self.command.clone(),
            args: self.args.clone(),
            working_dir: self.working_dir.clone().unwrap_or_default(),
            envs: self.env.iter().map(|e| cri::KeyValue { key: e.name.clone(), value: e.value.clone() }).collect(),
            log_path: format!("{}/{attempt}.log", self.name),
            tty: self.tty,
            stdin: self.stdin,
            linux: Some(cri::LinuxContainerConfig { resources: Some(res), security_context: Some(security) }),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hello
  labels: {app: hello}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: localhost/busybox:latest
    command: ["sh", "-c"]
    args: ["echo hi"]
    env: [{name: GREETING, value: hello}]
    ports: [{containerPort: 80, hostPort: 8080}]
    resources:
      limits: {cpu: 500m, memory: 64Mi}
    securityContext: {runAsUser: 1000, capabilities: {drop: [ALL]}}
"#;

    #[test]
    fn pod_manifest_to_cri() {
        let p = parse(POD).unwrap();
        assert_eq!(p.metadata.namespace, "default");
        let s = p.sandbox_config("u1", "/var/log/pods/x");
        assert_eq!(s.port_mappings.len(), 1);
        assert_eq!(s.port_mappings[0].host_port, 8080);
        let c = p.spec.containers[0].config(0).unwrap();
        let r = c.linux.as_ref().unwrap().resources.as_ref().unwrap();
        assert_eq!((r.cpu_quota, r.cpu_period, r.cpu_shares, r.memory_limit_in_bytes), (50_000, 100_000, 512, 64 << 20));
        assert_eq!(c.envs[0].key, "GREETING");
        assert_eq!(c.log_path, "main/0.log");
        assert_eq!(c.linux.unwrap().security_context.unwrap().run_as_user.unwrap().value, 1000);
        assert!(parse("kind: Deployment\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b}]}").is_err());
        assert!(parse("metadata: {name: x}\nspec: {containers: []}").is_err());
        assert_eq!(quantity(&yaml_serde::Value::String("1.5".into()), true).unwrap(), 1500);
        assert_eq!(quantity(&yaml_serde::Value::String("1G".into()), false).unwrap(), 1_000_000_000);
    }
}
