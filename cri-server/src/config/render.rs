//! Renders the effective configuration as TOML with every option documented.

use std::fmt::Write;
use std::path::Path;

use super::Config;

fn s(v: &str) -> String {
    toml::Value::String(v.to_string()).to_string()
}

fn p(v: &Path) -> String {
    s(&v.to_string_lossy())
}

pub fn render(c: &Config) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# berth-cri effective configuration.");
    if c.sources.is_empty() {
        let _ = writeln!(o, "# Sources: built-in defaults only.");
    } else {
        let _ = writeln!(o, "# Sources, in the order applied (later wins), then flags:");
        for f in &c.sources {
            let _ = writeln!(o, "#   {}", f.display());
        }
    }
    let _ = writeln!(o, "\n[daemon]");
    let _ = writeln!(o, "# Unix socket serving CRI v1 (RuntimeService and ImageService), mode 0660.");
    let _ = writeln!(o, "# Default: \"/run/berth/berth.sock\". Flag: --socket.");
    let _ = writeln!(o, "socket_path = {}", p(&c.daemon.socket_path));
    let _ = writeln!(o, "# Directory for runtime state (lock file preventing a second daemon).");
    let _ = writeln!(o, "# Default: \"/run/berth\". Flag: --state-root.");
    let _ = writeln!(o, "state_root = {}", p(&c.daemon.state_root));
    let _ = writeln!(o, "# Log level: trace, debug, info, warn or error. Default: \"info\". Flag: --log-level.");
    let _ = writeln!(o, "log_level = {}", s(&c.daemon.log_level));

    let _ = writeln!(o, "\n[runtime]");
    let _ = writeln!(o, "# Runtime handler used when a RunPodSandbox request names none. Default: \"berth\".");
    let _ = writeln!(o, "default_handler = {}", s(&c.runtime.default_handler));
    let _ = writeln!(o, "# Path of the container monitor (berth-mon). Default: berth-mon from PATH,");
    let _ = writeln!(o, "# else \"/usr/local/bin/berth-mon\".");
    let _ = writeln!(o, "monitor_path = {}", p(&c.runtime.monitor_path));
    let _ = writeln!(o, "cgroup_manager = {:?}", c.runtime.cgroup_manager);
    let _ = writeln!(o, "# User-namespaced pods (hostUsers: false) whose request names no id mappings get a");
    let _ = writeln!(o, "# block of 65536 uids and gids of their own: userns_first_id + k * 65536 for the first");
    let _ = writeln!(o, "# free k < userns_pods. Keep the range clear of /etc/subuid's and kubelet's.");
    let _ = writeln!(o, "# Defaults: 1048576 and 1024.");
    let _ = writeln!(o, "userns_first_id = {}", c.runtime.userns_first_id);
    let _ = writeln!(o, "userns_pods = {}", c.runtime.userns_pods);
    let _ = writeln!(o, "# Runtime handlers: name -> OCI runtime binary. \"berth\" is always defined");
    let _ = writeln!(o, "# (default: berth from PATH, else /usr/local/bin/berth); \"runc\" and \"crun\" are");
    let _ = writeln!(o, "# added automatically when found in PATH and not configured.");
    for (name, h) in &c.runtime.handlers {
        let _ = writeln!(o, "[runtime.handlers.{}]", s(name));
        let _ = writeln!(o, "path = {}", p(&h.path));
    }

    let _ = writeln!(o, "\n[image]");
    let _ = writeln!(o, "# Image store root (blobs, unpacked layers, image records, container rootfs).");
    let _ = writeln!(o, "# Default: \"/var/lib/berth/images\". Flag: --image-root.");
    let _ = writeln!(o, "root = {}", p(&c.image.root));
    let _ = writeln!(o, "# Image of the pod infrastructure (pause) container. Default: \"registry.k8s.io/pause:3.10\".");
    let _ = writeln!(o, "pause_image = {}", s(&c.image.pause_image));
    let _ = writeln!(o, "# containers-registries.conf(5) v2 file and drop-in directory (*.conf, name order).");
    let _ = writeln!(o, "# Defaults: \"/etc/containers/registries.conf\", \"/etc/containers/registries.conf.d\".");
    let _ = writeln!(o, "# Flags: --registries-conf, --registries-conf-dir.");
    let _ = writeln!(o, "registries_conf = {}", p(&c.image.registries_conf));
    let _ = writeln!(o, "# Drop-in directory for registries_conf.");
    let _ = writeln!(o, "registries_conf_dir = {}", p(&c.image.registries_conf_dir));
    let _ = writeln!(o, "# Docker-style credentials file ({{\"auths\": {{\"host\": {{\"auth\": base64(user:pass)}}}}}}),");
    let _ = writeln!(o, "# used when a PullImage request carries no AuthConfig. Missing file = no credentials.");
    let _ = writeln!(o, "# Default: \"/etc/berth/auth.json\".");
    let _ = writeln!(o, "auth_file = {}", p(&c.image.auth_file));
    let _ = writeln!(o, "# Decompression-bomb limit: maximum decompressed size of one layer, in bytes.");
    let _ = writeln!(o, "# Default: 17179869184 (16 GiB).");
    let _ = writeln!(o, "max_layer_size = {}", c.image.max_layer_size);
    let _ = writeln!(o, "# Whether layers may create character/block device nodes (overlay whiteouts, 0:0");
    let _ = writeln!(o, "# char devices made from .wh. entries, are always allowed). Default: false.");
    let _ = writeln!(o, "allow_device_nodes = {}", c.image.allow_device_nodes);
    let _ = writeln!(o, "# Largest manifest or image index read from a registry, in bytes; a larger one is");
    let _ = writeln!(o, "# refused before it is buffered. Default: 4194304 (4 MiB, as containers/image).");
    let _ = writeln!(o, "max_manifest_size = {}", c.image.max_manifest_size);
    let _ = writeln!(o, "# Largest image config, in bytes (checked against its descriptor before the download).");
    let _ = writeln!(o, "# Default: 4194304 (4 MiB).");
    let _ = writeln!(o, "max_config_size = {}", c.image.max_config_size);
    let _ = writeln!(o, "# Largest body of a registry's error response that is read, in bytes (errors and the");
    let _ = writeln!(o, "# log quote at most its first 200 bytes). Default: 1048576 (1 MiB).");
    let _ = writeln!(o, "max_error_body_size = {}", c.image.max_error_body_size);
    let _ = writeln!(o, "# Largest response of a registry's token (auth) endpoint, in bytes. Default: 1048576 (1 MiB).");
    let _ = writeln!(o, "max_auth_token_size = {}", c.image.max_auth_token_size);
    let _ = writeln!(o, "# Idle-read timeout of registry connections, in seconds: a pull attempt fails when the");
    let _ = writeln!(o, "# registry sends no data (headers or body) for this long. 0 = no timeout. Default: 120.");
    let _ = writeln!(o, "pull_progress_timeout = {}", c.image.pull_progress_timeout);
    let _ = writeln!(o, "# Most layers an image may have; more are refused at pull. 1 to 500 (overlayfs stacks at");
    let _ = writeln!(o, "# most 500 lower layers, and berth's rootfs mount reaches that). Default: 500.");
    let _ = writeln!(o, "max_layers = {}", c.image.max_layers);

    let _ = writeln!(o, "\n[network]");
    let _ = writeln!(o, "# CNI network configuration directory. Default: \"/etc/cni/net.d\".");
    let _ = writeln!(o, "cni_conf_dir = {}", p(&c.network.cni_conf_dir));
    let _ = writeln!(o, "# CNI plugin directories. Default: [\"/opt/cni/bin\", \"/usr/lib/cni\"].");
    let dirs: Vec<String> = c.network.cni_plugin_dirs.iter().map(|d| p(d)).collect();
    let _ = writeln!(o, "cni_plugin_dirs = [{}]", dirs.join(", "));
    let _ = writeln!(
        o,
        "# CNI config template rendered with the pod CIDR from UpdateRuntimeConfig while cni_conf_dir is empty. Default: unset."
    );
    match &c.network.cni_conf_template {
        Some(t) => {
            let _ = writeln!(o, "cni_conf_template = {}", p(t));
        }
        None => {
            let _ = writeln!(o, "# cni_conf_template = \"/etc/berth/cni-template.conflist\"");
        }
    }

    let st = &c.streaming;
    let _ = writeln!(o, "\n[streaming]");
    let _ = writeln!(o, "# Address of the streaming server (Exec, Attach, PortForward URLs). Default: \"127.0.0.1\".");
    let _ = writeln!(o, "address = {}", s(&st.address));
    let _ = writeln!(o, "# Its TCP port; 0 = a free port chosen at start. Default: 0.");
    let _ = writeln!(o, "port = {}", st.port);
    let _ = writeln!(o, "# PEM certificate chain and private key; both set = HTTPS. Default: unset (HTTP).");
    match (&st.tls_cert, &st.tls_key) {
        (Some(c), Some(k)) => {
            let _ = writeln!(o, "tls_cert = {}", p(c));
            let _ = writeln!(o, "tls_key = {}", p(k));
        }
        _ => {
            let _ = writeln!(o, "# tls_cert = \"/etc/berth/stream.crt\"");
            let _ = writeln!(o, "# tls_key = \"/etc/berth/stream.key\"");
        }
    }
    let _ = writeln!(o, "# Seconds without traffic after which a session is closed; 0 = never. Default: 14400.");
    let _ = writeln!(o, "idle_timeout = {}", st.idle_timeout);
    let _ = writeln!(o, "# Seconds a client has to open its streams after the upgrade. Default: 30.");
    let _ = writeln!(o, "stream_creation_timeout = {}", st.stream_creation_timeout);
    let _ = writeln!(o, "# Seconds a returned URL stays valid (it is single-use). Default: 60.");
    let _ = writeln!(o, "token_ttl = {}", st.token_ttl);

    let _ = writeln!(o, "\n[metrics]");
    let _ = writeln!(o, "# Serve the daemon's own Prometheus metrics (CRI calls, errors, latency, image pulls,");
    let _ = writeln!(o, "# containers and pods) at http://<address>/metrics. Default: false.");
    let _ = writeln!(o, "enable = {}", c.metrics.enable);
    let _ = writeln!(o, "# ip:port of that endpoint; loopback only (no TLS, no authentication); port 0 = a free");
    let _ = writeln!(o, "# port chosen at start. Default: \"127.0.0.1:9537\".");
    let _ = writeln!(o, "address = {}", s(&c.metrics.address));
    o
}
