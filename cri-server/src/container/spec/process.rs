//! The container process: args, env and working directory.

use super::{clean_abs, invalid, no_nul, ImageConfig, SpecError};
use k8s_cri::v1::ContainerConfig;

/// PATH when neither the image nor the request sets one (the usual container default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Kubernetes' rule (the same in containerd and CRI-O):
///
/// | CRI command | CRI args | process                          |
/// |-------------|----------|----------------------------------|
/// | set         | set      | command + args                   |
/// | set         | empty    | command (the image's Cmd is dropped) |
/// | empty       | set      | image Entrypoint + args          |
/// | empty       | empty    | image Entrypoint + image Cmd     |
///
/// An image Entrypoint of `[""]` (docker's "reset") counts as none. Nothing left → InvalidArgument.
pub fn args(c: &ContainerConfig, image: &ImageConfig) -> Result<Vec<String>, SpecError> {
    let (entry, rest): (Vec<String>, Vec<String>) = if !c.command.is_empty() {
        (c.command.clone(), c.args.clone())
    } else {
        let entry = if image.entrypoint.len() == 1 && image.entrypoint[0].is_empty() { Vec::new() } else { image.entrypoint.clone() };
        (entry, if c.args.is_empty() { image.cmd.clone() } else { c.args.clone() })
    };
    let all: Vec<String> = entry.into_iter().chain(rest).collect();
    if all.is_empty() {
        return Err(invalid("no command: the request has no command or args and the image no Entrypoint or Cmd"));
    }
    if all[0].is_empty() {
        return Err(invalid("the container's command (argv[0]) is empty"));
    }
    for a in &all {
        no_nul("container argument", a)?;
    }
    Ok(all)
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && !k.contains('=') && !k.contains('\0')
}

/// `HOSTNAME=<pod hostname>`, then the image's Env, then the request's envs, each replacing an
/// earlier entry of the same key in place; `PATH` added when still missing, and `TERM=xterm`
/// for a tty (as CRI-O) unless set.
pub fn env(c: &ContainerConfig, image: &ImageConfig, hostname: &str) -> Result<Vec<String>, SpecError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match out.iter_mut().find(|(ek, _)| ek == k) {
        Some(e) => e.1 = v.to_string(),
        None => out.push((k.to_string(), v.to_string())),
    };
    if !hostname.is_empty() {
        no_nul("PodSandboxConfig.hostname", hostname)?;
        set("HOSTNAME", hostname);
    }
    for e in &image.env {
        // An image entry that is not KEY=value is dropped, as the runtimes do (they cannot pass it).
        match e.split_once('=') {
            Some((k, v)) if valid_key(k) && !v.contains('\0') => set(k, v),
            _ => tracing::debug!("image env entry {e:?} ignored"),
        }
    }
    for kv in &c.envs {
        if !valid_key(&kv.key) {
            return Err(invalid(format!("environment variable name {:?} is not valid", kv.key)));
        }
        no_nul(&format!("environment variable {}", kv.key), &kv.value)?;
        set(&kv.key, &kv.value);
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    if c.tty && !out.iter().any(|(k, _)| k == "TERM") {
        out.push(("TERM".into(), "xterm".into()));
    }
    Ok(out.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// The request's working_dir, else the image's WorkingDir, else `/`; absolute. (Creating it in
/// the rootfs is the runtime's job.)
pub fn cwd(c: &ContainerConfig, image: &ImageConfig) -> Result<String, SpecError> {
    let (field, d) = if !c.working_dir.is_empty() {
        ("ContainerConfig.working_dir", c.working_dir.as_str())
    } else if !image.working_dir.is_empty() {
        ("the image's WorkingDir", image.working_dir.as_str())
    } else {
        return Ok("/".into());
    };
    no_nul(field, d)?;
    if !d.starts_with('/') {
        return Err(invalid(format!("{field} {d:?} is not an absolute path")));
    }
    // `..` inside the container's root is harmless (the runtime resolves it in the rootfs), but a
    // cleaned path is what ContainerStatus and users expect; refuse it like mount paths.
    clean_abs(field, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::KeyValue;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn cfg(command: &[&str], args: &[&str]) -> ContainerConfig {
        ContainerConfig { command: s(command), args: s(args), ..Default::default() }
    }

    #[test]
    fn args_precedence_table() {
        let img = ImageConfig { entrypoint: s(&["/ep"]), cmd: s(&["c1", "c2"]), ..Default::default() };
        assert_eq!(args(&cfg(&["/cmd"], &["a"]), &img).unwrap(), s(&["/cmd", "a"]));
        assert_eq!(args(&cfg(&["/cmd"], &[]), &img).unwrap(), s(&["/cmd"]), "command drops the image Cmd");
        assert_eq!(args(&cfg(&[], &["a"]), &img).unwrap(), s(&["/ep", "a"]));
        assert_eq!(args(&cfg(&[], &[]), &img).unwrap(), s(&["/ep", "c1", "c2"]));
        let only_cmd = ImageConfig { cmd: s(&["sh"]), ..Default::default() };
        assert_eq!(args(&cfg(&[], &[]), &only_cmd).unwrap(), s(&["sh"]));
        assert_eq!(args(&cfg(&[], &["x"]), &only_cmd).unwrap(), s(&["x"]), "args replace Cmd");
        let reset = ImageConfig { entrypoint: s(&[""]), cmd: s(&["sh"]), ..Default::default() };
        assert_eq!(args(&cfg(&[], &[]), &reset).unwrap(), s(&["sh"]));
    }

    #[test]
    fn args_empty_or_bad_are_refused() {
        let e = args(&cfg(&[], &[]), &ImageConfig::default()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.to_string().contains("no command"), "{e}");
        assert!(args(&cfg(&[""], &["x"]), &ImageConfig::default()).is_err());
        assert!(args(&cfg(&["a\0b"], &[]), &ImageConfig::default()).is_err());
    }

    #[test]
    fn env_image_then_cri_override_in_place() {
        let img = ImageConfig { env: s(&["A=1", "PATH=/img", "B=2", "junk"]), ..Default::default() };
        let mut c = cfg(&["x"], &[]);
        c.envs = vec![
            KeyValue { key: "B".into(), value: "cri".into() },
            KeyValue { key: "C".into(), value: "a=b".into() },
            KeyValue { key: "HOSTNAME".into(), value: "mine".into() },
        ];
        assert_eq!(env(&c, &img, "pod").unwrap(), s(&["HOSTNAME=mine", "A=1", "PATH=/img", "B=cri", "C=a=b"]));
    }

    #[test]
    fn env_defaults_path_hostname_term() {
        let mut c = cfg(&["x"], &[]);
        assert_eq!(env(&c, &ImageConfig::default(), "h").unwrap(), vec!["HOSTNAME=h".to_string(), format!("PATH={DEFAULT_PATH}")]);
        c.tty = true;
        let e = env(&c, &ImageConfig::default(), "").unwrap();
        assert_eq!(e, vec![format!("PATH={DEFAULT_PATH}"), "TERM=xterm".to_string()]);
        c.envs = vec![KeyValue { key: "TERM".into(), value: "vt100".into() }];
        assert!(env(&c, &ImageConfig::default(), "").unwrap().contains(&"TERM=vt100".to_string()));
    }

    #[test]
    fn env_bad_keys_refused() {
        for k in ["", "A=B", "A\0"] {
            let mut c = cfg(&["x"], &[]);
            c.envs = vec![KeyValue { key: k.into(), value: "v".into() }];
            assert_eq!(env(&c, &ImageConfig::default(), "").unwrap_err().code(), tonic::Code::InvalidArgument, "{k:?}");
        }
    }

    #[test]
    fn cwd_rules() {
        let img = ImageConfig { working_dir: "/srv".into(), ..Default::default() };
        let mut c = cfg(&["x"], &[]);
        assert_eq!(cwd(&c, &ImageConfig::default()).unwrap(), "/");
        assert_eq!(cwd(&c, &img).unwrap(), "/srv");
        c.working_dir = "/work//dir/".into();
        assert_eq!(cwd(&c, &img).unwrap(), "/work/dir");
        c.working_dir = "rel".into();
        assert_eq!(cwd(&c, &img).unwrap_err().code(), tonic::Code::InvalidArgument);
        c.working_dir = "/a/../b".into();
        assert!(cwd(&c, &img).is_err());
        let rel = ImageConfig { working_dir: "app".into(), ..Default::default() };
        assert!(cwd(&cfg(&["x"], &[]), &rel).is_err());
    }
}
