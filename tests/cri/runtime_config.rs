//! UpdateRuntimeConfig: the pod CIDR is checked, recorded, and rendered through
//! `network.cni_conf_template` while the node has no CNI config of its own.

use crate::common::{clients, Env};
use k8s_cri::v1 as cri;

fn update(cidr: &str) -> cri::UpdateRuntimeConfigRequest {
    cri::UpdateRuntimeConfigRequest {
        runtime_config: Some(cri::RuntimeConfig { network_config: Some(cri::NetworkConfig { pod_cidr: cidr.into() }) }),
    }
}

fn network_ready(s: &cri::StatusResponse) -> &cri::RuntimeCondition {
    s.status.as_ref().unwrap().conditions.iter().find(|c| c.r#type == "NetworkReady").unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_cidr_renders_the_cni_template() {
    let env = Env::new("");
    let template = r#"{"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
        {"type": "bridge", "bridge": "btnotused0", "ipam": {"type": "host-local", "ranges": {{.PodCIDRRanges}}, "routes": {{.Routes}}}},
        {"type": "portmap", "capabilities": {"portMappings": true}}]}"#;
    std::fs::write(env.p("template.conflist"), template).unwrap();
    std::fs::write(
        env.p("conf.d/10.conf"),
        format!(
            "[network]\ncni_conf_dir = \"{}\"\ncni_plugin_dirs = [\"/usr/lib/cni\"]\ncni_conf_template = \"{}\"\n",
            env.p("net.d").display(),
            env.p("template.conflist").display()
        ),
    )
    .unwrap();
    let d = env.start();
    let (mut rt, _) = clients(&d).await;
    let s = rt.status(cri::StatusRequest { verbose: false }).await.unwrap().into_inner();
    assert!(!network_ready(&s).status, "no config yet");

    for bad in ["10.0.0.0", "10.0.0.0/40", "nonsense/8"] {
        let e = rt.update_runtime_config(update(bad)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}: {e:?}");
    }
    assert!(!env.p("net.d").exists() || std::fs::read_dir(env.p("net.d")).unwrap().next().is_none(), "a refused CIDR renders nothing");
    // An empty config changes nothing.
    rt.update_runtime_config(cri::UpdateRuntimeConfigRequest::default()).await.unwrap();

    rt.update_runtime_config(update("10.244.3.0/24,fd00:10:244:3::/64")).await.unwrap();
    let rendered: serde_json::Value = serde_json::from_slice(&std::fs::read(env.p("net.d/10-berth-pod-cidr.conflist")).unwrap()).unwrap();
    let ipam = &rendered["plugins"][0]["ipam"];
    assert_eq!(ipam["ranges"][0][0]["subnet"], "10.244.3.0/24");
    assert_eq!(ipam["ranges"][1][0]["subnet"], "fd00:10:244:3::/64");
    assert_eq!(ipam["routes"], serde_json::json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]));
    let s = rt.status(cri::StatusRequest { verbose: true }).await.unwrap().into_inner();
    assert!(network_ready(&s).status, "the rendered config is the default network: {:?}", network_ready(&s));
    assert_eq!(s.info.get("podCIDR").map(String::as_str), Some("10.244.3.0/24,fd00:10:244:3::/64"));

    // A new CIDR re-renders berth-cri's own file.
    rt.update_runtime_config(update("10.244.9.0/24")).await.unwrap();
    let rendered: serde_json::Value = serde_json::from_slice(&std::fs::read(env.p("net.d/10-berth-pod-cidr.conflist")).unwrap()).unwrap();
    assert_eq!(rendered["plugins"][0]["ipam"]["ranges"], serde_json::json!([[{"subnet": "10.244.9.0/24"}]]));

    // Once the admin ships a config, the template is left alone.
    std::fs::remove_file(env.p("net.d/10-berth-pod-cidr.conflist")).unwrap();
    std::fs::write(env.p("net.d/05-admin.conflist"), r#"{"cniVersion":"1.0.0","name":"admin","plugins":[{"type":"loopback"}]}"#).unwrap();
    rt.update_runtime_config(update("10.244.10.0/24")).await.unwrap();
    assert!(!env.p("net.d/10-berth-pod-cidr.conflist").exists(), "an admin's config wins");
}
