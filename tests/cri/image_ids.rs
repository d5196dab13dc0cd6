//! The image id fields: Container.image_id, ContainerStatus.image_id and image_ref agree
//! with ImageStatus, whether the container names the image by tag or by id.

use crate::node::{Node, IMAGE};
use k8s_cri::v1 as cri;

#[tokio::test(flavor = "multi_thread")]
async fn container_image_ids_match_image_status() {
    let mut n = Node::start("imgids").await;
    let img = n
        .img
        .image_status(cri::ImageStatusRequest { image: Some(cri::ImageSpec { image: IMAGE.into(), ..Default::default() }), verbose: false })
        .await
        .unwrap()
        .into_inner()
        .image
        .expect("image present");
    assert!(img.id.starts_with("sha256:") && img.id.len() == 71, "{}", img.id);
    let pcfg = n.pod_config("ids", true);
    let pod = n.run_pod(&pcfg).await;
    let by_tag = n.create(&pod, &pcfg, Node::container_config("bytag", &["true"])).await;
    let mut c = Node::container_config("byid", &["true"]);
    c.image = Some(cri::ImageSpec { image: img.id.clone(), ..Default::default() });
    let by_id = n.create(&pod, &pcfg, c).await;
    let list = n.rt.list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers;
    for (id, asked) in [(&by_tag, IMAGE), (&by_id, img.id.as_str())] {
        let s = n.status(id).await;
        assert_eq!(s.image_id, img.id, "ContainerStatus.image_id");
        assert_eq!(s.image.as_ref().unwrap().image, asked, "the image as the container asked for it");
        let expect_ref = img.repo_digests.first().cloned().unwrap_or_else(|| img.id.clone());
        assert_eq!(s.image_ref, expect_ref, "image_ref: the digest reference, else the id");
        let l = list.iter().find(|c| &c.id == id).unwrap();
        assert_eq!(l.image_id, img.id, "Container.image_id");
        assert_eq!(l.image_ref, s.image_ref);
    }
    n.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod }).await.unwrap();
}
