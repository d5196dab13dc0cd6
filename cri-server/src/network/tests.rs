//! The ADD/DEL/CHECK flow against fake shell plugins that log what they were given.

use super::*;
use std::os::unix::fs::PermissionsExt;

struct Fx {
    dir: PathBuf,
}

impl Drop for Fx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fx {
    fn new(tag: &str) -> Fx {
        let dir = std::env::temp_dir().join(format!("berth-cni-flow-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["conf", "bin", "cache"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let fx = Fx { dir };
        let log = fx.log_path();
        // Logs "<plugin> <command> <ifname> <stdin>" and answers ADD with an eth0 result.
        let body = format!(
            r#"in=$(cat); echo "$(basename $0) $CNI_COMMAND $CNI_IFNAME $in" >> {log}
case "$(basename $0):$CNI_COMMAND" in
  failer:STATUS) echo '{{"cniVersion":"1.1.0","code":50,"msg":"plugin not available","details":"fake"}}'; exit 1;;
  failer:ADD) echo '{{"cniVersion":"1.0.0","code":11,"msg":"cannot do it","details":"fake"}}'; exit 1;;
esac
if [ "$CNI_COMMAND" = ADD ]; then
  if [ "$CNI_IFNAME" = lo ]; then echo '{{"cniVersion":"0.3.1"}}';
  else echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"eth0","sandbox":"/x"}}],"ips":[{{"interface":0,"address":"10.5.0.2/24"}}]}}'; fi
fi"#,
            log = log.display()
        );
        for p in ["loopback", "one", "two", "failer"] {
            let path = fx.dir.join("bin").join(p);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        fx
    }
    fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }
    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_path()).unwrap_or_default().lines().map(String::from).collect()
    }
    fn cni(&self) -> Cni {
        let cfg = crate::config::NetworkConfig {
            cni_conf_dir: self.dir.join("conf"),
            cni_plugin_dirs: vec![self.dir.join("nosuch"), self.dir.join("bin")],
            cni_conf_template: None,
        };
        Cni::new(&cfg, self.dir.join("cache")).with_timeout(Duration::from_secs(20))
    }
    fn conf(&self, name: &str, body: &str) {
        std::fs::write(self.dir.join("conf").join(name), body).unwrap();
    }
}

fn pod() -> PodNetwork {
    PodNetwork {
        id: "0123abcd".into(),
        name: "web".into(),
        namespace: "ns1".into(),
        uid: "uid-1".into(),
        netns: "/nonexistent/netns".into(),
        port_mappings: vec![PortMapping { host_port: 80, container_port: 8080, protocol: "tcp".into(), host_ip: String::new() }],
        ..Default::default()
    }
}

const LIST: &str = r#"{"cniVersion":"1.0.0","name":"fake","plugins":[{"type":"one"},{"type":"two","capabilities":{"portMappings":true}}]}"#;

#[tokio::test]
async fn add_chains_caches_and_del_uses_the_cache() {
    let fx = Fx::new("add");
    let cni = fx.cni();
    let e = cni.status().unwrap_err();
    assert!(e.contains("no network config found in"), "{e}");
    fx.conf("10-fake.conflist", LIST);
    cni.status().unwrap();

    let r = cni.add(&pod()).await.unwrap();
    assert_eq!(r.ips, vec!["10.5.0.2".parse::<IpAddr>().unwrap()]);
    let log = fx.log();
    assert_eq!(log.len(), 3, "{log:#?}");
    assert!(log[0].starts_with("loopback ADD lo "), "{}", log[0]);
    assert!(log[1].starts_with("one ADD eth0 ") && !log[1].contains("prevResult") && !log[1].contains("runtimeConfig"));
    assert!(log[2].starts_with("two ADD eth0 ") && log[2].contains("\"prevResult\"") && log[2].contains("\"portMappings\""));
    let cached = fx.dir.join("cache/fake/0123abcd.json");
    let entry: Value = serde_json::from_slice(&std::fs::read(&cached).unwrap()).unwrap();
    assert_eq!(entry["result"], r.raw);
    cni.check(&pod()).await.unwrap();

    // The config goes away; DEL still runs the cached chain, in reverse, with prevResult.
    std::fs::remove_file(fx.dir.join("conf/10-fake.conflist")).unwrap();
    std::fs::remove_file(fx.log_path()).unwrap();
    cni.del(&pod()).await.unwrap();
    let log = fx.log();
    assert_eq!(log.len(), 2, "{log:#?}");
    assert!(log[0].starts_with("two DEL eth0 ") && log[0].contains("\"prevResult\""));
    assert!(log[1].starts_with("one DEL eth0 "));
    assert!(!cached.exists());
    // Twice, and for a pod never seen: nothing to do, no error.
    cni.del(&pod()).await.unwrap();
    let mut other = pod();
    other.id = "ffff".into();
    cni.del(&other).await.unwrap();
    assert_eq!(fx.log().len(), 2);
    assert!(matches!(cni.check(&pod()).await, Err(NetworkError::NotAdded(_))));
}

#[tokio::test]
async fn failed_add_is_undone_and_reports_the_plugin() {
    let fx = Fx::new("fail");
    fx.conf("10-f.conflist", r#"{"cniVersion":"0.4.0","name":"f","plugins":[{"type":"one"},{"type":"failer"}]}"#);
    let cni = fx.cni();
    match cni.add(&pod()).await.unwrap_err() {
        NetworkError::Plugin { plugin, code, msg, .. } => assert_eq!((plugin.as_str(), code, msg.as_str()), ("failer", 11, "cannot do it")),
        e => panic!("{e}"),
    }
    let log = fx.log();
    let cmds: Vec<String> = log.iter().map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(cmds, ["loopback ADD", "one ADD", "failer ADD", "failer DEL", "one DEL", "loopback DEL"]);
    // 0.4.0: the DEL after a failure carries what was built so far.
    assert!(log[3].contains("\"prevResult\"") && log[3].contains("\"version\":\"4\""), "{}", log[3]);
    assert!(!fx.dir.join("cache/f").join("0123abcd.json").exists());
}

#[tokio::test]
async fn conf_file_old_version_and_check_rules() {
    let fx = Fx::new("old");
    fx.conf("10-o.conf", r#"{"cniVersion":"0.3.1","name":"o","type":"one"}"#);
    let cni = fx.cni();
    let r = cni.add(&pod()).await.unwrap();
    assert_eq!(r.raw["cniVersion"], "0.3.1");
    assert_eq!(r.raw["ips"][0]["version"], "4");
    assert!(matches!(cni.check(&pod()).await, Err(NetworkError::CheckUnsupported { .. })));
    std::fs::remove_file(fx.log_path()).unwrap();
    cni.del(&pod()).await.unwrap();
    // Before 0.4.0 DEL carries no prevResult.
    let log = fx.log();
    assert!(log.len() == 1 && !log[0].contains("prevResult"), "{log:#?}");

    fx.conf("05-d.conflist", r#"{"cniVersion":"1.0.0","name":"d","disableCheck":true,"plugins":[{"type":"one"}]}"#);
    cni.add(&pod()).await.unwrap();
    std::fs::remove_file(fx.log_path()).unwrap();
    cni.check(&pod()).await.unwrap();
    assert!(fx.log().is_empty(), "disableCheck runs nothing");
    cni.del(&pod()).await.unwrap();
}

#[tokio::test]
async fn bad_input_is_refused_before_any_plugin() {
    let fx = Fx::new("bad");
    fx.conf("10-fake.conflist", LIST);
    let cni = fx.cni();
    for (id, name) in [("../x", "web"), ("a/b", "web"), ("", "web"), ("ok", "a;b"), ("ok", "a=b")] {
        let mut p = pod();
        p.id = id.into();
        p.name = name.into();
        assert!(matches!(cni.add(&p).await, Err(NetworkError::InvalidPod(_))), "{id} {name}");
        assert!(matches!(cni.del(&p).await, Err(NetworkError::InvalidPod(_))), "{id} {name}");
    }
    assert!(fx.log().is_empty());
}

#[tokio::test]
async fn missing_plugin_names_the_dirs() {
    let fx = Fx::new("missing");
    let cni = fx.cni();
    fx.conf("10-m.conflist", r#"{"cniVersion":"1.0.0","name":"m","plugins":[{"type":"absent"}]}"#);
    let e = cni.status().unwrap_err();
    assert!(e.contains("\"absent\" not found in") && e.contains("nosuch") && e.contains("10-m.conflist"), "{e}");
    assert!(matches!(cni.add(&pod()).await, Err(NetworkError::NoConfig { .. })));
}

#[tokio::test]
async fn status_and_gc_run_for_cni_1_1_only() {
    let fx = Fx::new("statusgc");
    let cni = fx.cni();
    fx.conf("10-old.conflist", LIST);
    cni.ready().await.unwrap();
    cni.gc(&["0123abcd".into()]).await.unwrap();
    assert!(fx.log().is_empty(), "1.0.0 has neither STATUS nor GC: {:?}", fx.log());

    fx.conf("05-new.conflist", r#"{"cniVersion":"1.1.0","name":"new","plugins":[{"type":"one"},{"type":"two"}]}"#);
    cni.ready().await.unwrap();
    cni.gc(&["0123abcd".into(), "4567ef".into()]).await.unwrap();
    let log = fx.log();
    assert_eq!(log.len(), 4, "{log:#?}");
    assert!(log[0].starts_with("one STATUS ") && log[1].starts_with("two STATUS "), "{log:#?}");
    assert!(log[2].starts_with("one GC ") && log[3].starts_with("two GC "), "{log:#?}");
    let conf: Value = serde_json::from_str(log[2].split_once(' ').unwrap().1.split_once(' ').unwrap().1.trim_start()).unwrap();
    assert_eq!(
        conf["cni.dev/valid-attachments"],
        serde_json::json!([{"containerID": "0123abcd", "ifname": "eth0"}, {"containerID": "4567ef", "ifname": "eth0"}])
    );
    assert_eq!(conf["name"], "new");

    // A plugin that is not ready makes the network not ready, with its message.
    fx.conf("01-failing.conflist", r#"{"cniVersion":"1.1.0","name":"failing","plugins":[{"type":"one"},{"type":"failer"}]}"#);
    let e = cni.ready().await.unwrap_err();
    assert!(e.contains("failer") && e.contains("plugin not available"), "{e}");
}
