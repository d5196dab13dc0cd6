//! Images: names, registries configuration, credentials, the store, pulling, unpacking
//! and air-gapped import.

pub mod auth;
pub mod distribution;
pub mod gc;
pub mod import;
pub mod manifest;
pub mod pull;
pub mod reference;
pub mod registries;
#[allow(unsafe_code)] // overlay mounts: fsopen/fsconfig/fsmount/open_tree/mount_setattr
pub mod rootfs;
pub mod store;
#[allow(unsafe_code)] // *at() system calls that keep layer extraction inside the rootfs
pub mod unpack;

/// The names a user-given reference may be stored under (short names qualified with every
/// search registry; docker.io normalised). Invalid references yield none.
pub fn lookup_names(reference: &str, regs: &registries::Registries) -> Vec<String> {
    let Ok(n) = reference::ImageName::parse(reference) else {
        return Vec::new();
    };
    if n.is_short() {
        regs.unqualified_search_registries.iter().map(|r| n.qualify(r).to_string()).collect()
    } else {
        vec![n.to_string()]
    }
}
