//! Configuration: drop-in order, flags over files, errors naming file and key, `config` output.

use crate::common::{stderr, Env};

fn config_out(env: &Env, extra: &[&str]) -> String {
    let mut args = vec!["config"];
    args.extend_from_slice(extra);
    let o = env.cli(&args);
    assert!(o.status.success(), "berth-cri config failed: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn value(out: &str, key: &str) -> String {
    out.lines().find_map(|l| l.strip_prefix(&format!("{key} = "))).unwrap_or_else(|| panic!("{key} missing in:\n{out}")).to_string()
}

#[test]
fn drop_ins_apply_in_name_order_and_flags_win() {
    let env = Env::new("");
    std::fs::write(env.p("berth.conf"), "[image]\npause_image = \"main/pause:1\"\nmax_layer_size = 100\n").unwrap();
    std::fs::write(env.p("conf.d/20-b.conf"), "[image]\npause_image = \"b/pause:1\"\n").unwrap();
    std::fs::write(env.p("conf.d/10-a.conf"), "[image]\npause_image = \"a/pause:1\"\nmax_layer_size = 200\n").unwrap();
    std::fs::write(env.p("conf.d/30-ignored.txt"), "garbage").unwrap();
    std::fs::write(env.p("conf.d/15-log.conf"), "[daemon]\nlog_level = \"warn\"\n").unwrap();
    let out = config_out(&env, &[]);
    assert_eq!(value(&out, "pause_image"), "\"b/pause:1\"");
    assert_eq!(value(&out, "max_layer_size"), "200");
    assert_eq!(value(&out, "log_level"), "\"warn\"");
    // Sources are listed in the order applied.
    let a = out.find("10-a.conf").unwrap();
    let b = out.find("20-b.conf").unwrap();
    assert!(out.find("berth.conf\n").unwrap() < a && a < b, "{out}");
    // Flags over files (env.args() already sets --image-root and --socket).
    assert_eq!(value(&out, "root"), format!("\"{}\"", env.image_root().display()));
    let out = config_out(&env, &["--log-level", "error"]);
    assert_eq!(value(&out, "log_level"), "\"error\"");
}

#[test]
fn unknown_key_and_bad_value_name_file_and_key() {
    let env = Env::new("");
    std::fs::write(env.p("conf.d/50-bad.conf"), "[image]\nmax_layer_sise = 5\n").unwrap();
    let o = env.cli(&["config"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("50-bad.conf") && e.contains("image.max_layer_sise") && e.contains("unknown field"), "{e}");

    std::fs::write(env.p("conf.d/50-bad.conf"), "[image]\nmax_layer_size = \"big\"\n").unwrap();
    let e = stderr(&env.cli(&["config"]));
    assert!(e.contains("50-bad.conf") && e.contains("image.max_layer_size") && e.contains("line 2"), "{e}");

    std::fs::write(env.p("conf.d/50-bad.conf"), "[daemon]\nlog_level = \"loud\"\n").unwrap();
    let e = stderr(&env.cli(&["config"]));
    assert!(e.contains("50-bad.conf") && e.contains("daemon.log_level") && e.contains("loud"), "{e}");

    std::fs::write(env.p("conf.d/50-bad.conf"), "[network]\ncni_conf_dir = \"relative\"\n").unwrap();
    let e = stderr(&env.cli(&["config"]));
    assert!(e.contains("network.cni_conf_dir") && e.contains("absolute"), "{e}");

    std::fs::remove_file(env.p("conf.d/50-bad.conf")).unwrap();
    let e = stderr(&env.cli(&["config", "--log-level", "loud"]));
    assert!(e.contains("--log-level"), "{e}");
    // The daemon refuses to start on a bad file too.
    std::fs::write(env.p("berth.conf"), "[bogus]\n").unwrap();
    let o = env.cli(&[]);
    assert!(!o.status.success() && stderr(&o).contains("berth.conf"), "{}", stderr(&o));
}

#[test]
fn config_output_is_documented_and_round_trips() {
    let env = Env::new("");
    std::fs::write(
        env.p("conf.d/10.conf"),
        "[runtime.handlers.kata]\npath = \"/opt/kata/bin/kata-runtime\"\n[network]\ncni_plugin_dirs = [\"/x/bin\"]\n",
    )
    .unwrap();
    let out = config_out(&env, &[]);
    for key in [
        "socket_path",
        "state_root",
        "log_level",
        "default_handler",
        "monitor_path",
        "root",
        "pause_image",
        "registries_conf",
        "registries_conf_dir",
        "auth_file",
        "max_layer_size",
        "allow_device_nodes",
        "cni_conf_dir",
        "cni_plugin_dirs",
    ] {
        let line = out.lines().position(|l| l.starts_with(&format!("{key} = "))).unwrap_or_else(|| panic!("{key}"));
        assert!(out.lines().nth(line - 1).unwrap().starts_with('#'), "{key} is not documented:\n{out}");
    }
    assert!(out.contains("[runtime.handlers.\"kata\"]") && out.contains("/opt/kata/bin/kata-runtime"), "{out}");
    // runc/crun are installed on the test host (scripts/deps.sh): added automatically.
    assert!(out.contains("[runtime.handlers.\"runc\"]"), "{out}");
    // The output is itself a valid config giving the same effective configuration.
    std::fs::write(env.p("berth.conf"), &out).unwrap();
    std::fs::remove_file(env.p("conf.d/10.conf")).unwrap();
    let again = config_out(&env, &[]);
    let strip = |s: &str| s.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&out), strip(&again));
}

#[test]
fn registry_limits_are_configurable_and_checked() {
    let env = Env::new("");
    let out = config_out(&env, &[]);
    // Defaults no larger than containers/image's.
    assert_eq!(value(&out, "max_manifest_size"), "4194304");
    assert_eq!(value(&out, "max_config_size"), "4194304");
    assert_eq!(value(&out, "max_error_body_size"), "1048576");
    assert_eq!(value(&out, "max_auth_token_size"), "1048576");
    assert_eq!(value(&out, "pull_progress_timeout"), "120");
    assert_eq!(value(&out, "max_layers"), "500");
    std::fs::write(
        env.p("conf.d/10.conf"),
        "[image]\nmax_manifest_size = 1000\nmax_config_size = 2000\nmax_error_body_size = 3000\nmax_auth_token_size = 4000\npull_progress_timeout = 0\nmax_layers = 64\n",
    )
    .unwrap();
    let out = config_out(&env, &[]);
    for (k, v) in [
        ("max_manifest_size", "1000"),
        ("max_config_size", "2000"),
        ("max_error_body_size", "3000"),
        ("max_auth_token_size", "4000"),
        ("pull_progress_timeout", "0"),
        ("max_layers", "64"),
    ] {
        assert_eq!(value(&out, k), v, "{k}");
    }
    for (bad, key) in [
        ("max_layers = 501", "image.max_layers"),
        ("max_layers = 0", "image.max_layers"),
        ("max_manifest_size = 0", "image.max_manifest_size"),
        ("max_auth_token_size = 0", "image.max_auth_token_size"),
    ] {
        std::fs::write(env.p("conf.d/10.conf"), format!("[image]\n{bad}\n")).unwrap();
        let e = stderr(&env.cli(&["config"]));
        assert!(e.contains("10.conf") && e.contains(key), "{bad}: {e}");
    }
}

#[test]
fn every_option_is_documented() {
    let env = Env::new("");
    let out = config_out(&env, &[]);
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CRI.md")).unwrap();
    let mut section = String::new();
    let mut n = 0;
    for l in out.lines() {
        if l.starts_with('#') {
            continue;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, _)) = l.split_once(" = ") {
            if section.starts_with("runtime.handlers.") {
                continue; // documented as `runtime.handlers.<name>.path`
            }
            assert!(docs.contains(&format!("`{section}.{k}`")), "{section}.{k} is not documented in docs/CRI.md");
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} options found in:\n{out}");
}
