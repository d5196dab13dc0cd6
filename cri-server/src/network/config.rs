//! Network configuration files: which file is the default network, and parsing it into a
//! plugin list (a `.conf` holding one plugin is wrapped into a list, as libcni does).
//!
//! Selection follows CRI-O (ocicni): files ending in `.conflist`, `.conf` or `.json` in the
//! conf dir, in byte order of their names; the first one that parses and whose plugins all
//! exist is the default network. A broken file is skipped (its reason is kept for the
//! NetworkReady message) rather than failing the node. libcni itself does not pick a
//! default; containerd's go-cni would fail on the first broken file instead.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::exec;
use super::NetworkError;

/// Largest config file read.
pub const MAX_CONFIG_SIZE: u64 = 1 << 20;

/// Versions whose config and result shapes berth speaks (0.3.0 introduced the list format
/// and today's result shape; 1.1.0 is the newest spec).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A network: the list name, its version and its plugins, as they will be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    pub disable_check: bool,
    pub plugins: Vec<Map<String, Value>>,
    /// The list as a JSON object (a wrapped `.conf` is stored in list form): what is cached.
    pub raw: Value,
    /// Where it came from (for messages; a cached list names its original file).
    pub file: PathBuf,
}

impl NetworkList {
    /// Plugin types, in chain order.
    pub fn types(&self) -> Vec<&str> {
        self.plugins.iter().map(|p| p.get("type").and_then(Value::as_str).unwrap_or("")).collect()
    }
}

/// A network or container name as the spec allows it: an alphanumeric first character, then
/// alphanumerics, `_`, `.`, `-`. It is also what makes it safe as a cache directory name.
pub fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphanumeric())
        && c.all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'))
        && s.len() <= 253
}

/// Compares two dotted versions numerically (`0.10.0` > `0.4.0`).
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let n = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    n(a).cmp(&n(b))
}

/// Candidate files in name order; a missing dir has none.
pub fn candidate_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for ent in rd {
        let p = ent?.path();
        let ext_ok = p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "conflist" | "conf" | "json"));
        // Hidden files are editors' and atomic writers' temp files, not configs.
        let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if ext_ok && !hidden && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads at most [`MAX_CONFIG_SIZE`] bytes of a file.
pub fn read_bounded(file: &Path) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    f.take(MAX_CONFIG_SIZE + 1).read_to_end(&mut buf).map_err(|e| e.to_string())?;
    if buf.len() as u64 > MAX_CONFIG_SIZE {
        return Err(format!("larger than {MAX_CONFIG_SIZE} bytes"));
    }
    Ok(buf)
}

/// Parses a file's bytes: a `.conflist` is a list; a `.conf`/`.json` is one plugin, unless it
/// has a `plugins` key (libcni's rule for `.json` lists is by extension only; a `.conf` with
/// `plugins` and no `type` is reported as such, not silently run).
pub fn parse_file(file: &Path, bytes: &[u8]) -> Result<NetworkList, NetworkError> {
    let bad = |reason: String| NetworkError::BadConfig { file: file.to_path_buf(), reason };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let is_list = file.extension().is_some_and(|e| e == "conflist");
    let list = if is_list {
        v
    } else {
        let obj = v.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
        if !obj.contains_key("type") {
            return Err(bad(if obj.contains_key("plugins") {
                "a plugin list in a .conf/.json file (name it .conflist)".into()
            } else {
                "missing \"type\"".into()
            }));
        }
        let mut l = Map::new();
        for k in ["cniVersion", "name", "disableCheck"] {
            if let Some(x) = obj.get(k) {
                l.insert(k.into(), x.clone());
            }
        }
        l.insert("plugins".into(), Value::Array(vec![v.clone()]));
        Value::Object(l)
    };
    parse_list(file, list).map_err(bad)
}

/// Validates a list object (from a file or from the cache).
pub fn parse_list(file: &Path, list: Value) -> Result<NetworkList, String> {
    let obj = list.as_object().ok_or("not a JSON object")?;
    let name = match obj.get("name") {
        Some(Value::String(s)) if valid_name(s) => s.clone(),
        Some(Value::String(s)) => return Err(format!("invalid network name {s:?}")),
        Some(_) => return Err("\"name\" is not a string".into()),
        None => return Err("missing \"name\"".into()),
    };
    let cni_version = pick_version(obj)?;
    let disable_check = match obj.get("disableCheck") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        // Some configs in the wild write "true"; libcni accepts the string form too.
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        Some(_) => return Err("\"disableCheck\" is not a boolean".into()),
    };
    let plugins = match obj.get("plugins") {
        Some(Value::Array(a)) if a.is_empty() => return Err("\"plugins\" is empty".into()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("\"plugins\" is not an array".into()),
        None => return Err("missing \"plugins\"".into()),
    };
    let mut out = Vec::new();
    for (i, p) in plugins.iter().enumerate() {
        let p = p.as_object().ok_or(format!("plugins[{i}] is not an object"))?;
        match p.get("type") {
            Some(Value::String(t)) => exec::check_plugin_name(t).map_err(|e| format!("plugins[{i}]: {e}"))?,
            Some(_) => return Err(format!("plugins[{i}]: \"type\" is not a string")),
            None => return Err(format!("plugins[{i}]: missing \"type\"")),
        }
        if let Some(c) = p.get("capabilities") {
            if !c.is_object() {
                return Err(format!("plugins[{i}]: \"capabilities\" is not an object"));
            }
        }
        out.push(p.clone());
    }
    Ok(NetworkList { name, cni_version, disable_check, plugins: out, raw: list, file: file.to_path_buf() })
}

/// `cniVersion`, or for a 1.1.0 list the highest supported entry of `cniVersions`.
fn pick_version(obj: &Map<String, Value>) -> Result<String, String> {
    if let Some(Value::Array(vs)) = obj.get("cniVersions") {
        let best = vs.iter().filter_map(Value::as_str).filter(|v| SUPPORTED_VERSIONS.contains(v)).max_by(|a, b| version_cmp(a, b));
        if let Some(b) = best {
            return Ok(b.to_string());
        }
    }
    match obj.get("cniVersion") {
        Some(Value::String(v)) if SUPPORTED_VERSIONS.contains(&v.as_str()) => Ok(v.clone()),
        Some(Value::String(v)) => Err(format!("unsupported cniVersion {v:?} (supported: {})", SUPPORTED_VERSIONS.join(", "))),
        Some(_) => Err("\"cniVersion\" is not a string".into()),
        None => Err("missing \"cniVersion\"".into()),
    }
}

/// The default network of `dir`: the first file that parses and whose plugins are all found.
/// With none, `NoConfig` carries why each candidate was skipped.
pub fn load_default(dir: &Path, plugin_dirs: &[PathBuf]) -> Result<NetworkList, NetworkError> {
    let files =
        candidate_files(dir).map_err(|e| NetworkError::Io { context: format!("reading CNI config dir {}", dir.display()), source: e })?;
    let mut skipped = Vec::new();
    for f in files {
        let list = match read_bounded(&f) {
            Ok(b) => parse_file(&f, &b),
            Err(reason) => Err(NetworkError::BadConfig { file: f.clone(), reason }),
        };
        let list = match list {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("skipping CNI config: {e}");
                skipped.push(e.to_string());
                continue;
            }
        };
        let missing: Vec<String> =
            list.types().iter().filter_map(|t| exec::find_plugin(t, plugin_dirs).err().map(|e| e.to_string())).collect();
        if !missing.is_empty() {
            let reason = format!("network config {}: {}", f.display(), missing.join("; "));
            tracing::warn!("skipping CNI config: {reason}");
            skipped.push(reason);
            continue;
        }
        return Ok(list);
    }
    Err(NetworkError::NoConfig { dir: dir.to_path_buf(), skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn conflist_parses() {
        let l = parse_file(
            &p("/x/10-a.conflist"),
            br#"{"cniVersion":"1.0.0","name":"net1","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .unwrap();
        assert_eq!(l.name, "net1");
        assert_eq!(l.cni_version, "1.0.0");
        assert_eq!(l.types(), ["bridge", "portmap"]);
        assert!(!l.disable_check);
    }

    #[test]
    fn conf_is_wrapped() {
        let l = parse_file(&p("/x/10-a.conf"), br#"{"cniVersion":"0.3.1","name":"n","type":"bridge","disableCheck":true,"bridge":"b0"}"#)
            .unwrap();
        assert_eq!(l.types(), ["bridge"]);
        assert!(l.disable_check);
        assert_eq!(l.raw["plugins"][0]["bridge"], "b0");
        assert_eq!(l.raw["name"], "n");
    }

    #[test]
    fn cni_versions_picks_highest_supported() {
        let l = parse_file(
            &p("/x/a.conflist"),
            br#"{"cniVersion":"0.4.0","cniVersions":["0.4.0","1.0.0","9.9.9"],"name":"n","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        assert_eq!(l.cni_version, "1.0.0");
    }

    #[test]
    fn errors_name_file_and_reason() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("/d/a.conflist", b"{", "invalid JSON"),
            ("/d/a.conflist", br#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#, "missing \"name\""),
            ("/d/a.conflist", br#"{"cniVersion":"1.0.0","name":"n"}"#, "missing \"plugins\""),
            ("/d/a.conflist", br#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#, "empty"),
            ("/d/a.conflist", br#"{"cniVersion":"1.0.0","name":"n","plugins":[{}]}"#, "missing \"type\""),
            ("/d/a.conflist", br#"{"cniVersion":"0.2.0","name":"n","plugins":[{"type":"x"}]}"#, "unsupported cniVersion \"0.2.0\""),
            ("/d/a.conflist", br#"{"name":"n","plugins":[{"type":"x"}]}"#, "missing \"cniVersion\""),
            ("/d/a.conflist", br#"{"cniVersion":"1.0.0","name":"../n","plugins":[{"type":"x"}]}"#, "invalid network name"),
            ("/d/a.conflist", br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../x"}]}"#, "plugins[0]"),
            ("/d/a.conf", br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x"}]}"#, "name it .conflist"),
            ("/d/a.conf", br#"{"cniVersion":"1.0.0","name":"n"}"#, "missing \"type\""),
        ];
        for (f, b, want) in cases {
            let e = parse_file(&p(f), b).unwrap_err().to_string();
            assert!(e.contains(f) && e.contains(want), "{f}: {e} (want {want})");
        }
    }

    #[test]
    fn selection_skips_broken_and_missing_plugins() {
        let d = std::env::temp_dir().join(format!("berth-cni-sel-{}", std::process::id()));
        let plugins = d.join("bin");
        std::fs::create_dir_all(&plugins).unwrap();
        let conf = d.join("conf");
        std::fs::create_dir_all(&conf).unwrap();
        let bin = plugins.join("good");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dirs = vec![plugins.clone()];

        let e = load_default(&conf, &dirs).unwrap_err().to_string();
        assert!(e.contains("no network config found in"), "{e}");

        std::fs::write(conf.join("00-broken.conflist"), "{").unwrap();
        std::fs::write(conf.join("05-notes.txt"), "{").unwrap();
        std::fs::write(conf.join(".10-tmp.conflist"), "{").unwrap();
        std::fs::write(conf.join("10-missing.conflist"), r#"{"cniVersion":"1.0.0","name":"m","plugins":[{"type":"nosuch"}]}"#).unwrap();
        std::fs::write(conf.join("20-good.conf"), r#"{"cniVersion":"1.0.0","name":"g","type":"good"}"#).unwrap();
        std::fs::write(conf.join("30-later.conflist"), r#"{"cniVersion":"1.0.0","name":"l","plugins":[{"type":"good"}]}"#).unwrap();
        let l = load_default(&conf, &dirs).unwrap();
        assert_eq!(l.name, "g");
        std::fs::remove_file(conf.join("20-good.conf")).unwrap();
        assert_eq!(load_default(&conf, &dirs).unwrap().name, "l");
        std::fs::remove_file(conf.join("30-later.conflist")).unwrap();
        let e = load_default(&conf, &dirs).unwrap_err().to_string();
        assert!(e.contains("00-broken.conflist") && e.contains("nosuch"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn versions_compare_numerically() {
        use std::cmp::Ordering::*;
        assert_eq!(version_cmp("0.4.0", "0.10.0"), Less);
        assert_eq!(version_cmp("1.0.0", "0.4.0"), Greater);
        assert_eq!(version_cmp("1.0.0", "1.0.0"), Equal);
    }
}
