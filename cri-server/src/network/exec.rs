//! Running one CNI plugin: lookup in the plugin dirs, the `CNI_*` environment, the config on
//! stdin, the result (or the spec's error object) on stdout, stderr kept for messages, a
//! timeout after which the plugin is killed, and bounded reads of what it writes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::NetworkError;

/// Most stdout read from a plugin (results are a few KiB).
pub const MAX_OUTPUT: usize = 1 << 20;
/// Most stderr kept (for the error message).
const MAX_STDERR: usize = 64 << 10;
/// PATH given to plugins when the daemon has none: portmap and bridge run `iptables`.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A plugin type is a file name in a plugin dir, never a path.
pub fn check_plugin_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('/') || name.contains('\0') || name == "." || name.contains("..") {
        return Err(format!("plugin type {name:?} is not a plain file name"));
    }
    Ok(())
}

/// The first executable file `name` in `dirs`, in order.
pub fn find_plugin(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, NetworkError> {
    check_plugin_name(name).map_err(|reason| NetworkError::BadPluginName { plugin: name.to_string(), reason })?;
    for d in dirs {
        let p = d.join(name);
        if let Ok(m) = std::fs::metadata(&p) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(p);
            }
        }
    }
    Err(NetworkError::PluginNotFound { plugin: name.to_string(), dirs: dirs.to_vec() })
}

/// What varies between invocations of the same config.
pub struct Invocation<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub args: &'a str,
    pub plugin_dirs: &'a [PathBuf],
    pub timeout: Duration,
}

/// Runs `plugin` with `stdin`; returns its stdout on success (exit 0). A failure is the
/// plugin's error object when it printed one, else its exit status and stderr.
pub async fn run(plugin: &str, inv: &Invocation<'_>, stdin: &[u8]) -> Result<Vec<u8>, NetworkError> {
    let path = find_plugin(plugin, inv.plugin_dirs)?;
    let cni_path = std::env::join_paths(inv.plugin_dirs).map_err(|e| NetworkError::Io {
        context: "joining CNI plugin dirs".into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    let mut cmd = tokio::process::Command::new(&path);
    // The daemon's environment is passed on (libcni does the same; plugins need PATH), minus
    // any CNI_* it inherited, which would confuse the plugin about what it is asked to do.
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("CNI_")) {
            cmd.env_remove(k);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", DEFAULT_PATH);
    }
    cmd.env("CNI_COMMAND", inv.command)
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_ARGS", inv.args)
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| NetworkError::Io { context: format!("starting CNI plugin {}", path.display()), source: e })?;
    let mut sin = child.stdin.take().expect("piped stdin");
    let sout = child.stdout.take().expect("piped stdout");
    let serr = child.stderr.take().expect("piped stderr");
    let io = async {
        let write = async {
            // A plugin may exit before reading all of its config (EPIPE): its exit status and
            // output tell what happened, so the write error itself is not the story.
            let _ = sin.write_all(stdin).await;
            drop(sin);
        };
        let (out, err, ()) = tokio::join!(read_bounded(sout, MAX_OUTPUT), read_bounded(serr, MAX_STDERR), write);
        let status = child.wait().await;
        (out, err, status)
    };
    let (out, err, status) = match tokio::time::timeout(inv.timeout, io).await {
        Ok(r) => r,
        Err(_) => {
            // kill() also reaps, so no zombie is left behind.
            let _ = child.kill().await;
            return Err(NetworkError::Timeout {
                plugin: plugin.to_string(),
                command: inv.command.to_string(),
                secs: inv.timeout.as_secs(),
            });
        }
    };
    let io_err = |e: std::io::Error| NetworkError::Io { context: format!("CNI plugin {plugin} {}", inv.command), source: e };
    let status = status.map_err(io_err)?;
    let (out, out_over) = out.map_err(io_err)?;
    let (err, _) = err.map_err(io_err)?;
    let stderr = String::from_utf8_lossy(&err).trim().to_string();
    if !status.success() {
        return Err(plugin_error(plugin, inv.command, &out, status, stderr));
    }
    if out_over {
        return Err(NetworkError::BadOutput {
            plugin: plugin.to_string(),
            command: inv.command.to_string(),
            reason: format!("output larger than {MAX_OUTPUT} bytes"),
        });
    }
    Ok(out)
}

/// The spec's error object `{code, msg, details}` when stdout holds one.
fn plugin_error(plugin: &str, command: &str, out: &[u8], status: std::process::ExitStatus, stderr: String) -> NetworkError {
    if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(out) {
        if let Some(msg) = o.get("msg").and_then(Value::as_str) {
            return NetworkError::Plugin {
                plugin: plugin.to_string(),
                command: command.to_string(),
                code: o.get("code").and_then(Value::as_u64).unwrap_or(0),
                msg: msg.to_string(),
                details: o.get("details").and_then(Value::as_str).unwrap_or("").to_string(),
                stderr,
            };
        }
    }
    NetworkError::PluginFailed {
        plugin: plugin.to_string(),
        command: command.to_string(),
        status: status.to_string(),
        stderr: if stderr.is_empty() { String::from_utf8_lossy(out).trim().to_string() } else { stderr },
    }
}

/// Reads up to `limit` bytes; the rest is drained (so the writer never blocks on a full pipe)
/// and only reported as "over".
async fn read_bounded<R: AsyncRead + Unpin>(r: R, limit: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    let mut take = r.take(limit as u64 + 1);
    take.read_to_end(&mut buf).await?;
    let over = buf.len() > limit;
    if over {
        buf.truncate(limit);
        tokio::io::copy(&mut take.into_inner(), &mut tokio::io::sink()).await?;
    }
    Ok((buf, over))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn inv<'a>(dirs: &'a [PathBuf], t: Duration) -> Invocation<'a> {
        Invocation {
            command: "ADD",
            container_id: "abc",
            netns: Path::new("/var/run/netns/x"),
            ifname: "eth0",
            args: "IgnoreUnknown=1",
            plugin_dirs: dirs,
            timeout: t,
        }
    }

    #[test]
    fn lookup_refuses_paths_and_keeps_order() {
        for bad in ["../x", "a/b", "/bin/sh", "..", "", "x..y"] {
            assert!(matches!(find_plugin(bad, &[PathBuf::from("/usr/bin")]), Err(NetworkError::BadPluginName { .. })), "{bad}");
        }
        let d = std::env::temp_dir().join(format!("berth-cni-lookup-{}", std::process::id()));
        let (a, b) = (d.join("a"), d.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        script(&b, "p", "");
        std::fs::write(a.join("p"), "not executable").unwrap();
        let dirs = vec![a.clone(), b.clone()];
        assert_eq!(find_plugin("p", &dirs).unwrap(), b.join("p"));
        script(&a, "p", "");
        assert_eq!(find_plugin("p", &dirs).unwrap(), a.join("p"));
        let e = find_plugin("q", &dirs).unwrap_err().to_string();
        assert!(e.contains(&a.display().to_string()) && e.contains(&b.display().to_string()), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn env_stdin_errors_timeout() {
        let d = std::env::temp_dir().join(format!("berth-cni-exec-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        script(
            &d,
            "echo",
            r#"cat >/dev/null; printf '{"cmd":"%s","id":"%s","ns":"%s","if":"%s","args":"%s","path":"%s"}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH""#,
        );
        script(&d, "cat", "cat");
        script(&d, "fail", r#"echo '{"cniVersion":"1.0.0","code":7,"msg":"no bridge","details":"b0 busy"}'; echo oops >&2; exit 1"#);
        script(&d, "crash", "echo 'panic: boom' >&2; exit 2");
        script(&d, "slow", "exec sleep 30");
        script(&d, "big", "head -c 2000000 /dev/zero");
        let dirs = vec![d.clone()];
        let t = Duration::from_secs(10);
        let out = run("echo", &inv(&dirs, t), b"{}").await.unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["cmd"], "ADD");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["ns"], "/var/run/netns/x");
        assert_eq!(v["if"], "eth0");
        assert_eq!(v["args"], "IgnoreUnknown=1");
        assert_eq!(v["path"], d.display().to_string());
        assert_eq!(run("cat", &inv(&dirs, t), b"{\"a\":1}").await.unwrap(), b"{\"a\":1}");
        match run("fail", &inv(&dirs, t), b"{}").await.unwrap_err() {
            NetworkError::Plugin { plugin, code, msg, details, stderr, .. } => {
                assert_eq!(
                    (plugin.as_str(), code, msg.as_str(), details.as_str(), stderr.as_str()),
                    ("fail", 7, "no bridge", "b0 busy", "oops")
                );
            }
            e => panic!("{e}"),
        }
        let e = run("crash", &inv(&dirs, t), b"{}").await.unwrap_err().to_string();
        assert!(e.contains("crash") && e.contains("panic: boom"), "{e}");
        let start = std::time::Instant::now();
        let e = run("slow", &inv(&dirs, Duration::from_millis(300)), b"{}").await.unwrap_err();
        assert!(matches!(e, NetworkError::Timeout { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
        let e = run("big", &inv(&dirs, t), b"{}").await.unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
