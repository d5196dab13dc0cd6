//! What a pod adds to a network config: `CNI_ARGS` (kubelet's `K8S_POD_*` keys) and the
//! `runtimeConfig` of the capabilities each plugin declares (CNI CONVENTIONS.md), and the
//! per-plugin config that goes to a plugin's stdin.

use serde_json::{json, Map, Value};

use super::config::NetworkList;
use super::PodNetwork;

/// `IgnoreUnknown=1` first, so plugins that know none of the keys do not fail (kubelet's,
/// CRI-O's and containerd's set).
pub fn cni_args(pod: &PodNetwork) -> Vec<(String, String)> {
    vec![
        ("IgnoreUnknown".into(), "1".into()),
        ("K8S_POD_NAMESPACE".into(), pod.namespace.clone()),
        ("K8S_POD_NAME".into(), pod.name.clone()),
        ("K8S_POD_INFRA_CONTAINER_ID".into(), pod.id.clone()),
        ("K8S_POD_UID".into(), pod.uid.clone()),
    ]
}

/// `K=V;K=V`. `;` and `=` cannot be escaped in CNI_ARGS, so values holding them are refused by
/// the caller's validation (Kubernetes names never hold them).
pub fn cni_args_string(args: &[(String, String)]) -> String {
    args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
}

/// All capability arguments this pod has (only the present ones; a plugin gets the subset it
/// declares).
pub fn capability_args(pod: &PodNetwork) -> Map<String, Value> {
    let mut m = Map::new();
    if !pod.port_mappings.is_empty() {
        let pms: Vec<Value> = pod
            .port_mappings
            .iter()
            .map(|p| {
                let mut o = json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": p.protocol.to_ascii_lowercase(),
                });
                if !p.host_ip.is_empty() {
                    o["hostIP"] = json!(p.host_ip);
                }
                o
            })
            .collect();
        m.insert("portMappings".into(), Value::Array(pms));
    }
    if let Some(b) = &pod.bandwidth {
        let mut o = Map::new();
        // A zero rate means "no limit" in kubelet's annotations; the bandwidth plugin wants
        // rate and burst set together, so a direction without a rate is left out.
        if b.ingress_rate > 0 {
            o.insert("ingressRate".into(), json!(b.ingress_rate));
            o.insert("ingressBurst".into(), json!(b.ingress_burst));
        }
        if b.egress_rate > 0 {
            o.insert("egressRate".into(), json!(b.egress_rate));
            o.insert("egressBurst".into(), json!(b.egress_burst));
        }
        if !o.is_empty() {
            m.insert("bandwidth".into(), Value::Object(o));
        }
    }
    if let Some(d) = &pod.dns {
        m.insert("dns".into(), json!({ "servers": d.servers, "searches": d.searches, "options": d.options }));
    }
    m
}

/// The config one plugin gets: its own object plus the list's `name` and `cniVersion`, the
/// `runtimeConfig` of its declared capabilities, and `prevResult` when given.
pub fn plugin_config(list: &NetworkList, i: usize, caps: &Map<String, Value>, prev: Option<&Value>) -> Value {
    let mut c = list.plugins[i].clone();
    c.insert("name".into(), json!(list.name));
    c.insert("cniVersion".into(), json!(list.cni_version));
    let declared = c.get("capabilities").and_then(Value::as_object);
    let mut rt = Map::new();
    if let Some(declared) = declared {
        for (k, on) in declared {
            if on.as_bool() == Some(true) {
                if let Some(v) = caps.get(k) {
                    rt.insert(k.clone(), v.clone());
                }
            }
        }
    }
    if rt.is_empty() {
        // A runtimeConfig written in the file itself is not ours to pass on (libcni drops it
        // too; it is only ever filled from capabilities).
        c.remove("runtimeConfig");
    } else {
        c.insert("runtimeConfig".into(), Value::Object(rt));
    }
    match prev {
        Some(p) => c.insert("prevResult".into(), p.clone()),
        None => c.remove("prevResult"),
    };
    Value::Object(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Bandwidth, Dns, PortMapping};
    use std::path::Path;

    fn pod() -> PodNetwork {
        PodNetwork {
            id: "abc123".into(),
            name: "web".into(),
            namespace: "default".into(),
            uid: "u-1".into(),
            netns: "/var/run/netns/x".into(),
            port_mappings: vec![PortMapping { host_port: 8080, container_port: 80, protocol: "TCP".into(), host_ip: "127.0.0.1".into() }],
            bandwidth: Some(Bandwidth { ingress_rate: 1000000, ingress_burst: 2000000, egress_rate: 0, egress_burst: 0 }),
            dns: Some(Dns { servers: vec!["10.0.0.10".into()], searches: vec!["svc".into()], options: vec!["ndots:5".into()] }),
        }
    }

    #[test]
    fn args_string() {
        assert_eq!(
            cni_args_string(&cni_args(&pod())),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1"
        );
    }

    #[test]
    fn capabilities_are_filtered_per_plugin() {
        let list = crate::network::config::parse_file(
            Path::new("/d/a.conflist"),
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[
                {"type":"bridge","runtimeConfig":{"stale":1}},
                {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}},
                {"type":"bandwidth","capabilities":{"bandwidth":true}},
                {"type":"x","capabilities":{"dns":true,"ips":true}}]}"#,
        )
        .unwrap();
        let caps = capability_args(&pod());
        let c0 = plugin_config(&list, 0, &caps, None);
        assert!(c0.get("runtimeConfig").is_none());
        assert_eq!(c0["name"], "n");
        assert_eq!(c0["cniVersion"], "1.0.0");
        let prev = json!({"cniVersion":"1.0.0"});
        let c1 = plugin_config(&list, 1, &caps, Some(&prev));
        assert_eq!(
            c1["runtimeConfig"],
            json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}]})
        );
        assert_eq!(c1["prevResult"], prev);
        let c2 = plugin_config(&list, 2, &caps, None);
        assert_eq!(c2["runtimeConfig"], json!({"bandwidth":{"ingressRate":1000000,"ingressBurst":2000000}}));
        let c3 = plugin_config(&list, 3, &caps, None);
        assert_eq!(c3["runtimeConfig"], json!({"dns":{"servers":["10.0.0.10"],"searches":["svc"],"options":["ndots:5"]}}));
        let mut bare = pod();
        bare.port_mappings.clear();
        bare.bandwidth = None;
        bare.dns = None;
        assert!(capability_args(&bare).is_empty());
        assert!(plugin_config(&list, 1, &capability_args(&bare), None).get("runtimeConfig").is_none());
    }
}
