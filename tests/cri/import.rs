//! Air-gapped import (OCI archive, docker-archive) and the operator commands list/rm.

use berth_tests::registry::{docker_archive, layer_tar, Entry, Layout};
use k8s_cri::v1 as cri;

use crate::common::{clients, image_spec, stderr, Env};
use crate::pull::test_image;

#[tokio::test(flavor = "multi_thread")]
async fn import_oci_and_docker_archives_then_list_and_rm() {
    let env = Env::new("");
    let mut layout = Layout::new();
    let built = test_image(&mut layout, "v2");
    let oci = env.p("oci.tar");
    layout.archive(&oci);
    let o = env.cli(&["image", "import", "--name", "example.com/app", oci.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&built.config));

    let da = env.p("docker.tar");
    docker_archive(
        &da,
        &[layer_tar(&[Entry::File("hello", b"hi".to_vec())]), layer_tar(&[Entry::File(".wh.hello", vec![])])],
        "busybox:1.0",
    );
    let o = env.cli(&["image", "import", da.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));

    let out = String::from_utf8(env.cli(&["image", "list"]).stdout).unwrap();
    assert!(out.contains("example.com/app:v2") && out.contains("docker.io/library/busybox:1.0"), "{out}");

    // The daemon sees imported images (same store, same locks).
    let d = env.start();
    let (_, mut img) = clients(&d).await;
    let st = img.image_status(cri::ImageStatusRequest { image: image_spec("busybox:1.0"), verbose: false }).await.unwrap().into_inner();
    assert_eq!(st.image.unwrap().repo_tags, vec!["docker.io/library/busybox:1.0".to_string()]);
    let st =
        img.image_status(cri::ImageStatusRequest { image: image_spec("example.com/app:v2"), verbose: false }).await.unwrap().into_inner();
    assert_eq!(st.image.unwrap().id, built.config);

    let o = env.cli(&["image", "rm", "busybox:1.0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.cli(&["image", "rm", "busybox:1.0"]);
    assert!(!o.status.success() && stderr(&o).contains("not found"));
    let imgs = img.list_images(cri::ListImagesRequest::default()).await.unwrap().into_inner().images;
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0].id, built.config);

    // Not an archive.
    std::fs::write(env.p("junk.tar"), b"not a tar at all").unwrap();
    let o = env.cli(&["image", "import", env.p("junk.tar").to_str().unwrap()]);
    assert!(!o.status.success());
}
