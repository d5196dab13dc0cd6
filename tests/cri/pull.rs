//! ImageService against a real registry (Debian's docker-registry), images pushed by skopeo.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;

use berth_cri::image::store::Store;
use berth_cri::image::unpack::UnpackOptions;
use berth_tests::registry::{busybox, layer_tar, Built, Comp, Entry, Layout, Registry};
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use tonic::transport::Channel;

use crate::common::{clients, image_spec, insecure_registries, tree, Env};

pub const LONG: &str = "etc/a-very-long-file-name-that-does-not-fit-in-the-hundred-bytes-of-a-plain-ustar-header-at-all-really.txt";

/// Three layers (gzip, zstd, plain): busybox with a hard link and a symlink, then whiteouts
/// (a removed file, an opaque dir), then a long name.
pub fn test_image(layout: &mut Layout, tag: &str) -> Built {
    let l1 = layer_tar(&[
        Entry::Dir("bin"),
        Entry::Mode("bin/busybox", busybox(), 0o755),
        Entry::Hardlink("bin/ls", "bin/busybox"),
        Entry::Symlink("bin/sh", "busybox"),
        Entry::Dir("etc"),
        Entry::File("etc/hostname", b"base\n".to_vec()),
        Entry::Dir("data"),
        Entry::File("data/gone", b"x".to_vec()),
        Entry::Dir("data/opq"),
        Entry::File("data/opq/old", b"old".to_vec()),
    ]);
    let l2 = layer_tar(&[
        Entry::File("etc/hostname", b"layer2\n".to_vec()),
        Entry::File("data/.wh.gone", vec![]),
        Entry::Dir("data/opq"),
        Entry::File("data/opq/.wh..wh..opq", vec![]),
        Entry::File("data/opq/new", b"new".to_vec()),
    ]);
    let l3 = layer_tar(&[Entry::Long(LONG.into(), b"long".to_vec())]);
    layout.add_image(&[(l1, Comp::Gzip), (l2, Comp::Zstd), (l3, Comp::None)], tag)
}

async fn pull(img: &mut ImageServiceClient<Channel>, image: &str, auth: Option<cri::AuthConfig>) -> Result<String, tonic::Status> {
    img.pull_image(cri::PullImageRequest { image: image_spec(image), auth, sandbox_config: None }).await.map(|r| r.into_inner().image_ref)
}

async fn list(img: &mut ImageServiceClient<Channel>) -> Vec<cri::Image> {
    img.list_images(cri::ListImagesRequest::default()).await.unwrap().into_inner().images
}

fn du(path: &std::path::Path, inodes: bool) -> u64 {
    let mut c = Command::new("du");
    c.arg("-s");
    if inodes {
        c.arg("--inodes");
    } else {
        c.arg("-B1");
    }
    let o = c.arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_by_tag_and_digest_status_rootfs_remove() {
    let reg = Registry::start(None);
    let mut layout = Layout::new();
    let built = test_image(&mut layout, "v1");
    reg.push(layout.path(), "v1", "test/busybox", None);
    let addr = reg.addr();
    let env = Env::new(&insecure_registries(&[&addr]));
    let d = env.start();
    let (_, mut img) = clients(&d).await;

    let tag = format!("{addr}/test/busybox:v1");
    let id = pull(&mut img, &tag, None).await.unwrap();
    assert_eq!(id, built.config);
    let imgs = list(&mut img).await;
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0].repo_tags, vec![tag.clone()]);
    assert_eq!(imgs[0].repo_digests, vec![format!("{addr}/test/busybox@{}", built.manifest)]);
    assert_eq!(imgs[0].uid.as_ref().unwrap().value, 1000);

    // ImageStatus by tag (verbose), by id prefix, by digest; absent image → empty response.
    let st = img.image_status(cri::ImageStatusRequest { image: image_spec(&tag), verbose: true }).await.unwrap().into_inner();
    assert_eq!(st.image.as_ref().unwrap().id, id);
    let info: serde_json::Value = serde_json::from_str(&st.info["info"]).unwrap();
    assert_eq!(info["record"]["layers"].as_array().unwrap().len(), 3);
    assert_eq!(info["imageSpec"]["rootfs"]["diff_ids"][1], built.diff_ids[1]);
    for r in [id[7..19].to_string(), format!("{addr}/test/busybox@{}", built.manifest)] {
        let st = img.image_status(cri::ImageStatusRequest { image: image_spec(&r), verbose: false }).await.unwrap().into_inner();
        assert_eq!(st.image.unwrap().id, id, "lookup by {r}");
    }
    let st = img
        .image_status(cri::ImageStatusRequest { image: image_spec(&format!("{addr}/test/none:v1")), verbose: false })
        .await
        .unwrap()
        .into_inner();
    assert!(st.image.is_none());

    // Layers are stored unpacked with overlay whiteouts.
    let store = Store::open(&env.image_root(), UnpackOptions { max_size: 1 << 30, allow_devices: false }).unwrap();
    let l2 = store.layer_diff(&built.layers[1]).unwrap();
    let wh = std::fs::symlink_metadata(l2.join("data/gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0, "whiteout is a 0:0 char device");
    let mut buf = [0u8; 4];
    let p = std::ffi::CString::new(l2.join("data/opq").to_str().unwrap()).unwrap();
    // SAFETY: two NUL-terminated strings and a live 4-byte buffer.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), c"trusted.overlay.opaque".as_ptr(), buf.as_mut_ptr().cast(), 4) };
    assert_eq!(&buf[..n.max(0) as usize], b"y", "opaque xattr");

    // A container rootfs: overlay over the layers, with its own upper dir.
    let merged = store.create_rootfs(&id, "ctr1", None).unwrap();
    assert_eq!(std::fs::read_to_string(merged.join("etc/hostname")).unwrap(), "layer2\n");
    assert!(!merged.join("data/gone").exists(), "whiteout hides the lower file");
    assert!(!merged.join("data/opq/old").exists(), "opaque dir hides lower contents");
    assert_eq!(std::fs::read_to_string(merged.join("data/opq/new")).unwrap(), "new");
    assert_eq!(std::fs::read_to_string(merged.join(LONG)).unwrap(), "long");
    let a = std::fs::metadata(merged.join("bin/busybox")).unwrap();
    let b = std::fs::metadata(merged.join("bin/ls")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard link preserved");
    let out = Command::new(merged.join("bin/busybox")).args(["echo", "hi"]).output().unwrap();
    assert_eq!(out.stdout, b"hi\n");
    std::fs::write(merged.join("etc/hostname"), "mine\n").unwrap();
    assert_eq!(std::fs::read_to_string(l2.join("etc/hostname")).unwrap(), "layer2\n", "layers stay untouched");

    // In use: RemoveImage refuses with a clear error.
    let e = img.remove_image(cri::RemoveImageRequest { image: image_spec(&tag) }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("in use") && e.message().contains("ctr1"), "{}", e.message());
    store.remove_rootfs("ctr1").unwrap();
    assert!(!merged.exists());

    img.remove_image(cri::RemoveImageRequest { image: image_spec(&tag) }).await.unwrap();
    assert!(list(&mut img).await.is_empty());
    assert_eq!(std::fs::read_dir(env.p("images/layers")).unwrap().count(), 0, "layers collected");
    assert_eq!(std::fs::read_dir(env.p("images/blobs/sha256")).unwrap().count(), 0, "blobs collected");
    // Removing an absent image succeeds (CRI: idempotent).
    img.remove_image(cri::RemoveImageRequest { image: image_spec(&tag) }).await.unwrap();

    // Re-pull by digest.
    let by_digest = format!("{addr}/test/busybox@{}", built.manifest);
    assert_eq!(pull(&mut img, &by_digest, None).await.unwrap(), id);
    let imgs = list(&mut img).await;
    assert!(imgs[0].repo_tags.is_empty());
    assert_eq!(imgs[0].repo_digests, vec![by_digest.clone()]);

    // ImageFsInfo agrees with du on the store.
    let fs = img.image_fs_info(cri::ImageFsInfoRequest {}).await.unwrap().into_inner();
    let u = &fs.image_filesystems[0];
    assert_eq!(u.fs_id.as_ref().unwrap().mountpoint, env.image_root().display().to_string());
    assert_eq!(u.used_bytes.as_ref().unwrap().value, du(&env.image_root(), false));
    assert_eq!(u.inodes_used.as_ref().unwrap().value, du(&env.image_root(), true));
    assert!(u.used_bytes.as_ref().unwrap().value > busybox().len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_platform_index_picks_linux_amd64() {
    let reg = Registry::start(None);
    let mut layout = Layout::new();
    let (arm, arm_desc) = layout.image(&[(layer_tar(&[Entry::File("arch", b"arm64".to_vec())]), Comp::Gzip)], "arm64");
    let (amd, amd_desc) = layout.image(&[(layer_tar(&[Entry::File("arch", b"amd64".to_vec())]), Comp::Zstd)], "amd64");
    let idx = layout.add_index(vec![arm_desc, amd_desc], "multi");
    reg.push(layout.path(), "multi", "test/multi", None);
    let addr = reg.addr();
    let env = Env::new(&insecure_registries(&[&addr]));
    let d = env.start();
    let (_, mut img) = clients(&d).await;
    let id = pull(&mut img, &format!("{addr}/test/multi:multi"), None).await.unwrap();
    assert_eq!(id, amd.config);
    assert_ne!(id, arm.config);
    let i = &list(&mut img).await[0];
    assert_eq!(i.repo_digests, vec![format!("{addr}/test/multi@{idx}")], "repo digest is the index digest");
    let store = Store::open(&env.image_root(), UnpackOptions { max_size: 1 << 30, allow_devices: false }).unwrap();
    assert_eq!(std::fs::read(store.layer_diff(&amd.layers[0]).unwrap().join("arch")).unwrap(), b"amd64");
    assert!(!store.has_blob(&arm.layers[0]), "other platforms' layers are not downloaded");
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_serves_the_configured_prefix() {
    let reg = Registry::start(None);
    let mut layout = Layout::new();
    let built = test_image(&mut layout, "1");
    reg.push(layout.path(), "1", "mirror/lib/busybox", None);
    let addr = reg.addr();
    let conf = format!(
        "unqualified-search-registries = [\"example.invalid\"]\n\
         [[registry]]\nprefix = \"example.invalid/lib\"\nlocation = \"example.invalid/lib\"\n\
         [[registry.mirror]]\nlocation = \"{addr}/mirror/lib\"\ninsecure = true\n"
    );
    let env = Env::new(&conf);
    let d = env.start();
    let (_, mut img) = clients(&d).await;
    let id = pull(&mut img, "example.invalid/lib/busybox:1", None).await.unwrap();
    assert_eq!(id, built.config);
    assert!(reg.log().contains("/v2/mirror/lib/busybox/manifests/1"), "the mirror served it");
    // Stored under the requested name; short names resolve through the search registries.
    let st = img.image_status(cri::ImageStatusRequest { image: image_spec("lib/busybox:1"), verbose: false }).await.unwrap().into_inner();
    assert_eq!(st.image.unwrap().repo_tags, vec!["example.invalid/lib/busybox:1".to_string()]);
    // Not on the mirror: it falls back to the registry itself, and the error lists both.
    let e = pull(&mut img, "example.invalid/lib/absent:1", None).await.unwrap_err();
    assert!(e.message().contains("mirror") && e.message().contains("example.invalid/lib/absent"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn htpasswd_auth_from_request_and_auth_file() {
    let reg = Registry::start(Some(("berth", "s3cret")));
    let mut layout = Layout::new();
    let built = test_image(&mut layout, "v1");
    reg.push(layout.path(), "v1", "private/busybox", Some(("berth", "s3cret")));
    let addr = reg.addr();
    let env = Env::new(&insecure_registries(&[&addr]));
    let d = env.start();
    let (_, mut img) = clients(&d).await;
    let image = format!("{addr}/private/busybox:v1");

    let e = pull(&mut img, &image, None).await.unwrap_err();
    assert!(e.message().to_lowercase().contains("not authorized"), "{}", e.message());
    let wrong = cri::AuthConfig { username: "berth".into(), password: "nope".into(), ..Default::default() };
    let e = pull(&mut img, &image, Some(wrong)).await.unwrap_err();
    assert!(e.message().to_lowercase().contains("not authorized"), "{}", e.message());
    assert!(list(&mut img).await.is_empty());

    let right = cri::AuthConfig { username: "berth".into(), password: "s3cret".into(), ..Default::default() };
    assert_eq!(pull(&mut img, &image, Some(right)).await.unwrap(), built.config);
    img.remove_image(cri::RemoveImageRequest { image: image_spec(&image) }).await.unwrap();
    drop(d);

    // Credentials from a docker-style auth file named in a drop-in.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode("berth:s3cret");
    std::fs::write(env.p("auth.json"), format!("{{\"auths\":{{\"{addr}\":{{\"auth\":\"{b64}\"}}}}}}")).unwrap();
    std::fs::write(env.p("conf.d/10-auth.conf"), format!("[image]\nauth_file = \"{}\"\n", env.p("auth.json").display())).unwrap();
    let d = env.start();
    let (_, mut img) = clients(&d).await;
    assert_eq!(pull(&mut img, &image, None).await.unwrap(), built.config);
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_blob_and_wrong_digest_are_rejected() {
    let reg = Registry::start(None);
    let mut layout = Layout::new();
    let built = test_image(&mut layout, "v1");
    reg.push(layout.path(), "v1", "test/tamper", None);
    let addr = reg.addr();
    // Same length, different bytes: only digest verification can notice.
    let data = reg.blob_data(&built.layers[1]);
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();

    let env = Env::new(&insecure_registries(&[&addr]));
    let d = env.start();
    let (_, mut img) = clients(&d).await;
    let before = tree(&env.image_root());
    let e = pull(&mut img, &format!("{addr}/test/tamper:v1"), None).await.unwrap_err();
    assert!(e.message().contains("digest") && e.message().contains(&built.layers[1]), "{}", e.message());
    assert!(list(&mut img).await.is_empty());
    let store = Store::open(&env.image_root(), UnpackOptions { max_size: 1 << 30, allow_devices: false }).unwrap();
    assert!(!store.has_blob(&built.layers[1]), "the bad blob is not stored");
    let after = tree(&env.image_root());
    assert!(after.iter().all(|p| !p.contains(&built.layers[1][7..])), "{after:?}");
    assert!(after.iter().all(|p| !p.starts_with("images/")), "no image record: {after:?} (before {before:?})");

    // A manifest whose bytes do not match the digest asked for.
    let mdata = reg.blob_data(&built.manifest);
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mdata).unwrap()).unwrap();
    m["annotations"] = serde_json::json!({"x": "y"});
    std::fs::write(&mdata, serde_json::to_vec(&m).unwrap()).unwrap();
    let e = pull(&mut img, &format!("{addr}/test/tamper@{}", built.manifest), None).await.unwrap_err();
    assert!(e.message().to_lowercase().contains("digest"), "{}", e.message());
    assert!(list(&mut img).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_only_when_insecure() {
    let reg = Registry::start(None);
    let mut layout = Layout::new();
    test_image(&mut layout, "v1");
    reg.push(layout.path(), "v1", "test/busybox", None);
    let env = Env::new("unqualified-search-registries = []\n");
    let d = env.start();
    let (_, mut img) = clients(&d).await;
    let e = pull(&mut img, &format!("{}/test/busybox:v1", reg.addr()), None).await.unwrap_err();
    assert!(e.message().contains("https://"), "{}", e.message());
    assert!(!reg.log().contains("GET /v2/test/busybox/manifests"), "no plain-HTTP request was made");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_pulls_unpack_each_layer_once() {
    let reg = Registry::start(None);
    let mut layout = Layout::new();
    let built = test_image(&mut layout, "v1");
    reg.push(layout.path(), "v1", "test/busybox", None);
    let addr = reg.addr();
    let env = Env::new(&insecure_registries(&[&addr]));
    let d = env.start();
    let (_, img) = clients(&d).await;
    let image = format!("{addr}/test/busybox:v1");
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut c = img.clone();
        let image = image.clone();
        tasks.push(tokio::spawn(async move { pull(&mut c, &image, None).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), built.config);
    }
    // Downloads are independent (no pull waits on another's network transfer), the local
    // unpack is done once per layer.
    let log = reg.log();
    let daemon_log = d.log();
    for l in &built.layers {
        let n = log.matches(&format!("GET /v2/test/busybox/blobs/{l}")).count();
        assert!((1..=4).contains(&n), "layer {l} fetched {n} times");
        let u = daemon_log.lines().filter(|x| x.contains("layer unpacked") && x.contains(l.as_str())).count();
        assert_eq!(u, 1, "layer {l} unpacked {u} times");
    }
    let (_, mut img) = clients(&d).await;
    assert_eq!(list(&mut img).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_pull_leaves_no_partial_image() {
    let reg = Registry::start(None);
    let mut layout = Layout::new();
    // Bigger layers so the kill lands during the transfer/unpack.
    let big: Vec<Entry> = (0..8).map(|i| Entry::Mode(["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7"][i], busybox(), 0o755)).collect();
    let l1 = layer_tar(&big);
    let built = layout.add_image(&[(l1.clone(), Comp::Gzip), (l1, Comp::Zstd)], "v1");
    reg.push(layout.path(), "v1", "test/big", None);
    let addr = reg.addr();
    let env = Env::new(&insecure_registries(&[&addr]));
    let image = format!("{addr}/test/big:v1");
    for delay in [30u64, 120, 300] {
        let d = env.start();
        let (_, mut img) = clients(&d).await;
        let image2 = image.clone();
        let t = tokio::spawn(async move { pull(&mut img, &image2, None).await });
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        drop(d); // SIGKILL
        let _ = t.await;
        // After the crash: either no image or the complete one, never a partial one.
        let d = env.start();
        let (_, mut img) = clients(&d).await;
        let imgs = list(&mut img).await;
        let store = Store::open(&env.image_root(), UnpackOptions { max_size: 1 << 30, allow_devices: false }).unwrap();
        for i in &imgs {
            let rec = store.find_image(&i.id, &[]).unwrap().unwrap();
            for l in &rec.layers {
                assert!(store.layer(&l.digest).unwrap().is_some(), "image visible with a missing layer");
            }
        }
        // The next pull completes, and the result is intact.
        assert_eq!(pull(&mut img, &image, None).await.unwrap(), built.config);
        let l = store.layer_diff(&built.layers[1]).unwrap();
        assert_eq!(std::fs::read(l.join("b7")).unwrap(), busybox());
        img.remove_image(cri::RemoveImageRequest { image: image_spec(&image) }).await.unwrap();
    }
}
