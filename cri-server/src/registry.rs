//! The server's view of its pods and containers: a cache of the records on disk (loaded at
//! start, written through on every change — the disk is the truth), the name reservations
//! that make duplicate names AlreadyExists, and one lock per object so that concurrent RPCs on
//! the same pod or container run one after another while different ones run in parallel.

use crate::container::record::Container;
use crate::sandbox::Sandbox;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct Registry {
    pub root: PathBuf,
    sandboxes: Mutex<HashMap<String, Sandbox>>,
    containers: Mutex<HashMap<String, Container>>,
    names: Mutex<HashMap<String, String>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn load_dir<T>(d: &Path, f: impl Fn(&Path) -> std::io::Result<T>) -> Vec<(PathBuf, std::io::Result<T>)> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && crate::persist::valid_id(&e.file_name().to_string_lossy()) {
                let r = f(&p);
                v.push((p, r));
            }
        }
    }
    v
}

impl Registry {
    /// Load every record under `root`. Directories whose record cannot be read (a crash before
    /// the first write) are returned for cleanup.
    pub fn load(root: &Path) -> (Registry, Vec<PathBuf>) {
        let reg = Registry {
            root: root.to_path_buf(),
            sandboxes: Mutex::default(),
            containers: Mutex::default(),
            names: Mutex::default(),
            locks: Mutex::default(),
        };
        let mut broken = Vec::new();
        for (p, r) in load_dir(&root.join("sandboxes"), Sandbox::load) {
            match r {
                Ok(s) => {
                    reg.names.lock().unwrap().insert(format!("pod:{}", s.record.name_key), s.record.id.clone());
                    reg.sandboxes.lock().unwrap().insert(s.record.id.clone(), s);
                }
                Err(e) => {
                    tracing::warn!(dir = %p.display(), error = %e, "unreadable sandbox record");
                    broken.push(p);
                }
            }
        }
        for (p, r) in load_dir(&root.join("containers"), Container::load) {
            match r {
                Ok(c) => {
                    reg.names.lock().unwrap().insert(format!("ctr:{}", c.record.name_key), c.record.id.clone());
                    reg.containers.lock().unwrap().insert(c.record.id.clone(), c);
                }
                Err(e) => {
                    tracing::warn!(dir = %p.display(), error = %e, "unreadable container record");
                    broken.push(p);
                }
            }
        }
        (reg, broken)
    }

    /// Reserve `key` for `id`; Err(holder) when another object has it.
    pub fn reserve(&self, key: &str, id: &str) -> Result<(), String> {
        let mut n = self.names.lock().unwrap();
        match n.get(key) {
            Some(holder) if holder != id => Err(holder.clone()),
            _ => {
                n.insert(key.to_string(), id.to_string());
                Ok(())
            }
        }
    }

    pub fn release(&self, key: &str, id: &str) {
        let mut n = self.names.lock().unwrap();
        if n.get(key).is_some_and(|h| h == id) {
            n.remove(key);
        }
    }

    pub fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().unwrap().entry(id.to_string()).or_default().clone()
    }

    fn forget_lock(&self, id: &str) {
        self.locks.lock().unwrap().remove(id);
    }

    pub fn put_sandbox(&self, s: Sandbox) -> std::io::Result<()> {
        s.save(&self.root)?;
        self.sandboxes.lock().unwrap().insert(s.record.id.clone(), s);
        Ok(())
    }

    pub fn sandbox(&self, id: &str) -> Option<Sandbox> {
        self.sandboxes.lock().unwrap().get(id).cloned()
    }

    pub fn sandboxes(&self) -> Vec<Sandbox> {
        self.sandboxes.lock().unwrap().values().cloned().collect()
    }

    /// Forget a sandbox and delete its record directory.
    pub fn remove_sandbox(&self, id: &str) -> std::io::Result<()> {
        if let Some(s) = self.sandboxes.lock().unwrap().remove(id) {
            self.release(&format!("pod:{}", s.record.name_key), id);
        }
        self.forget_lock(id);
        remove_dir(&crate::sandbox::dir(&self.root, id))
    }

    pub fn put_container(&self, c: Container) -> std::io::Result<()> {
        c.save(&self.root)?;
        self.containers.lock().unwrap().insert(c.record.id.clone(), c);
        Ok(())
    }

    /// A container with its state brought up to date from the monitor's files.
    pub fn container(&self, id: &str) -> Option<Container> {
        let mut m = self.containers.lock().unwrap();
        let c = m.get_mut(id)?;
        if c.refresh(&self.root) {
            if let Err(e) = c.save(&self.root) {
                tracing::warn!(id, error = %e, "cannot save container record");
            }
        }
        Some(c.clone())
    }

    pub fn containers(&self) -> Vec<Container> {
        let ids: Vec<String> = self.containers.lock().unwrap().keys().cloned().collect();
        ids.iter().filter_map(|i| self.container(i)).collect()
    }

    pub fn remove_container(&self, id: &str) -> std::io::Result<()> {
        if let Some(c) = self.containers.lock().unwrap().remove(id) {
            self.release(&format!("ctr:{}", c.record.name_key), id);
        }
        self.forget_lock(id);
        let _ = std::fs::remove_file(crate::container::record::exit_dir(&self.root).join(id));
        remove_dir(&crate::container::record::dir(&self.root, id))
    }

    /// A full id from an id or a unique prefix of one (crictl shows truncated ids).
    pub fn resolve(&self, which: Kind, prefix: &str) -> Option<String> {
        if prefix.is_empty() {
            return None;
        }
        let ids: Vec<String> = match which {
            Kind::Sandbox => self.sandboxes.lock().unwrap().keys().cloned().collect(),
            Kind::Container => self.containers.lock().unwrap().keys().cloned().collect(),
        };
        let mut hits = ids.into_iter().filter(|i| i.starts_with(prefix));
        let first = hits.next()?;
        hits.next().is_none().then_some(first)
    }
}

#[derive(Clone, Copy)]
pub enum Kind {
    Sandbox,
    Container,
}

fn remove_dir(d: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(d) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
