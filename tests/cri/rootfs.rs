//! Container rootfs mounts of many layers: berth's mount reaches overlayfs' own limit of 500
//! lower layers (`image.max_layers` may not exceed it), whatever the store root's length.

use berth_cri::image::store::{ImageRecord, LayerRef, Store};
use berth_cri::image::unpack::UnpackOptions;
use berth_tests::registry::sha256;

use crate::common::Env;

/// An image of `n` layers, each holding one file `f<i>`, written straight into the store's
/// layout (unpacking 500 layers through a pull would only make the test slow).
fn image(store: &Store, root: &std::path::Path, n: usize) -> String {
    let mut layers = Vec::new();
    for i in 0..n {
        let d = sha256(format!("layer {i}").as_bytes());
        let diff = store.layer_diff(&d).unwrap();
        std::fs::create_dir_all(&diff).unwrap();
        std::fs::write(diff.join(format!("f{i}")), i.to_string()).unwrap();
        std::fs::write(diff.parent().unwrap().join("layer.json"), format!("{{\"diff_id\":\"{d}\",\"size\":0}}")).unwrap();
        layers.push(LayerRef { digest: d.clone(), diff_id: d, size: 0 });
    }
    let id = sha256(format!("config of {n}").as_bytes());
    let rec = ImageRecord {
        id: id.clone(),
        repo_tags: vec![format!("example.com/layers:{n}")],
        repo_digests: vec![],
        manifest_digest: id.clone(),
        layers,
        size: 0,
        user: None,
        source: root.display().to_string(),
        created: 0,
    };
    store.put_image(rec).unwrap();
    id
}

#[test]
fn rootfs_mounts_as_many_layers_as_overlayfs_stacks() {
    let env = Env::new("");
    // A long store root: the old absolute lowerdir list would pass the page limit at ~30 layers.
    let root = env.p(&format!("images/{}", "r".repeat(100)));
    let store = Store::open(&root, UnpackOptions { max_size: 1 << 20, allow_devices: false }).unwrap();
    let id = image(&store, &root, 500);
    let merged = store.create_rootfs(&id, &"c".repeat(128), None).unwrap();
    for i in [0, 250, 499] {
        assert_eq!(std::fs::read_to_string(merged.join(format!("f{i}"))).unwrap(), i.to_string());
    }
    store.remove_rootfs(&"c".repeat(128)).unwrap();
    assert!(!merged.exists());
    // One more is the kernel's limit, not berth's: the mount itself fails (and is cleaned up).
    let id = image(&store, &root, 501);
    let e = store.create_rootfs(&id, "c501", None).unwrap_err();
    assert!(e.to_string().contains("mounting rootfs of c501"), "{e}");
    assert!(!root.join("containers/c501").exists());
}
