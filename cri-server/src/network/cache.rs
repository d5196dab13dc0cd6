//! The on-disk record of what ADD did: `<cache_dir>/<network-name>/<pod-id>.json` holding the
//! exact network list used, the CNI_ARGS and capability args, and the result. DEL and CHECK
//! use it so they work after a daemon restart and after the conf file changed or vanished
//! (libcni keeps the same kind of record under /var/lib/cni/results).
//!
//! The entry is written before the first plugin runs (result `null`) and again with the
//! result, so a crash in the middle of ADD still leaves DEL the config to undo it with.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::{self, NetworkList};
use super::NetworkError;

const KIND: &str = "berthCniCacheV1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub kind: String,
    pub container_id: String,
    pub network_name: String,
    pub if_name: String,
    /// The conf file the list was read from (informational).
    pub config_file: PathBuf,
    /// The network list exactly as it was run.
    pub config: Value,
    pub cni_args: Vec<(String, String)>,
    pub capability_args: Map<String, Value>,
    /// The final result; `null` while ADD is in progress.
    pub result: Value,
}

impl Entry {
    pub fn new(list: &NetworkList, id: &str, ifname: &str, args: Vec<(String, String)>, caps: Map<String, Value>) -> Entry {
        Entry {
            kind: KIND.into(),
            container_id: id.into(),
            network_name: list.name.clone(),
            if_name: ifname.into(),
            config_file: list.file.clone(),
            config: list.raw.clone(),
            cni_args: args,
            capability_args: caps,
            result: Value::Null,
        }
    }

    /// The cached list, validated as a file's would be.
    pub fn list(&self, path: &Path) -> Result<NetworkList, NetworkError> {
        let mut l = config::parse_list(&self.config_file, self.config.clone())
            .map_err(|reason| NetworkError::BadCache { path: path.to_path_buf(), reason })?;
        l.file = self.config_file.clone();
        Ok(l)
    }
}

pub struct Cache {
    dir: PathBuf,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> NetworkError {
    move |source| NetworkError::Io { context, source }
}

impl Cache {
    pub fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    pub fn path(&self, network: &str, id: &str) -> PathBuf {
        self.dir.join(network).join(format!("{id}.json"))
    }

    /// temp file + fsync + rename + fsync of the dir: a reader sees the old or the new entry.
    pub fn write(&self, e: &Entry) -> Result<PathBuf, NetworkError> {
        let dir = self.dir.join(&e.network_name);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating CNI cache dir {}", dir.display())))?;
        let path = self.path(&e.network_name, &e.container_id);
        let tmp = dir.join(format!(".{}.json.tmp", e.container_id));
        let data = serde_json::to_vec_pretty(e).expect("cache entry serializes");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        };
        write().map_err(|err| {
            let _ = std::fs::remove_file(&tmp);
            NetworkError::Io { context: format!("writing CNI cache {}", path.display()), source: err }
        })?;
        Ok(path)
    }

    /// The entry of pod `id`, whichever network it was added to.
    pub fn find(&self, id: &str) -> Result<Option<(PathBuf, Entry)>, NetworkError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("reading CNI cache dir {}", self.dir.display()))(e)),
        };
        let mut names: Vec<String> = rd.filter_map(|d| d.ok()?.file_name().into_string().ok()).collect();
        names.sort();
        for n in names {
            let p = self.path(&n, id);
            if !p.is_file() {
                continue;
            }
            let bytes = config::read_bounded(&p).map_err(|reason| NetworkError::BadCache { path: p.clone(), reason })?;
            let e: Entry =
                serde_json::from_slice(&bytes).map_err(|err| NetworkError::BadCache { path: p.clone(), reason: err.to_string() })?;
            if e.kind != KIND || e.container_id != id || e.network_name != n {
                return Err(NetworkError::BadCache { path: p, reason: "entry does not match its path".into() });
            }
            return Ok(Some((p, e)));
        }
        Ok(None)
    }

    pub fn remove(&self, path: &Path) -> Result<(), NetworkError> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("removing CNI cache {}", path.display()))(e)),
        }
        // The network's dir goes with its last entry (a leftover empty dir is harmless).
        if let Some(d) = path.parent() {
            let _ = std::fs::remove_dir(d);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_find_remove() {
        let d = std::env::temp_dir().join(format!("berth-cni-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let c = Cache::new(d.clone());
        assert!(c.find("p1").unwrap().is_none());
        let list =
            config::parse_file(Path::new("/etc/cni/net.d/10-n.conf"), br#"{"cniVersion":"0.4.0","name":"net-a","type":"bridge"}"#).unwrap();
        let mut caps = Map::new();
        caps.insert("portMappings".into(), serde_json::json!([{"hostPort":1}]));
        let mut e = Entry::new(&list, "p1", "eth0", vec![("IgnoreUnknown".into(), "1".into())], caps);
        let p = c.write(&e).unwrap();
        assert_eq!(p, d.join("net-a/p1.json"));
        e.result = serde_json::json!({"cniVersion":"0.4.0","ips":[]});
        c.write(&e).unwrap();
        let (p2, back) = c.find("p1").unwrap().unwrap();
        assert_eq!(p2, p);
        assert_eq!(back, e);
        assert_eq!(back.list(&p).unwrap(), list);
        assert!(c.find("p2").unwrap().is_none());
        assert_eq!(std::fs::read_dir(d.join("net-a")).unwrap().count(), 1, "no temp file left");
        // An entry copied to another pod's name is refused, not trusted.
        std::fs::copy(&p, d.join("net-a/p3.json")).unwrap();
        assert!(matches!(c.find("p3"), Err(NetworkError::BadCache { .. })));
        std::fs::remove_file(d.join("net-a/p3.json")).unwrap();
        c.remove(&p).unwrap();
        c.remove(&p).unwrap();
        assert!(c.find("p1").unwrap().is_none());
        assert!(!d.join("net-a").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
