//! SupplementalGroupsPolicy (KEP-3619): Merge adds the image's /etc/group memberships to the
//! requested groups, Strict does not; ContainerStatus.user reports what the process got, and
//! Status announces the feature.

use crate::node::Node;
use k8s_cri::v1 as cri;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn merge_and_strict_give_the_process_the_groups_status_reports() {
    let mut n = Node::start("sgroups").await;
    let st = n.rt.status(cri::StatusRequest { verbose: false }).await.unwrap().into_inner();
    assert_eq!(st.features.map(|f| f.supplemental_groups_policy), Some(true));
    let pcfg = n.pod_config("sg", true);
    let pod = n.run_pod(&pcfg).await;
    // The test image's `app` (1000:1000) is a member of `extra` (2000) in its /etc/group.
    let mut got = vec![];
    for (name, policy) in [("merge", cri::SupplementalGroupsPolicy::Merge), ("strict", cri::SupplementalGroupsPolicy::Strict)] {
        let mut c = Node::container_config(name, &["sh", "-c", "echo groups=$(id -G)"]);
        let sc = c.linux.as_mut().unwrap().security_context.as_mut().unwrap();
        sc.run_as_username = "app".into();
        sc.supplemental_groups = vec![3000];
        sc.supplemental_groups_policy = policy as i32;
        let id = n.run(&pod, &pcfg, c).await;
        let s = n.wait_exited(&id, Duration::from_secs(30)).await;
        assert_eq!(s.exit_code, 0, "{s:?}");
        let out = n.stdout_of(&pcfg, name);
        let line = out.lines().find_map(|l| l.strip_prefix("groups=")).unwrap_or_else(|| panic!("{out}"));
        let mut seen: Vec<i64> = line.split_whitespace().map(|g| g.parse().unwrap()).collect();
        seen.sort();
        let u = s.user.and_then(|u| u.linux).expect("ContainerStatus.user");
        assert_eq!((u.uid, u.gid), (1000, 1000));
        let mut reported = u.supplemental_groups.clone();
        reported.sort();
        assert_eq!(reported, seen, "{name}: ContainerStatus.user is what the process got");
        got.push(seen);
    }
    assert_eq!(got[0], vec![1000, 2000, 3000], "Merge keeps the image's memberships");
    assert_eq!(got[1], vec![1000, 3000], "Strict does not");
    // An unknown policy value is refused.
    let mut c = Node::container_config("bad", &["true"]);
    c.linux.as_mut().unwrap().security_context.as_mut().unwrap().supplemental_groups_policy = 7;
    let e = n
        .rt
        .create_container(cri::CreateContainerRequest { pod_sandbox_id: pod.clone(), config: Some(c), sandbox_config: Some(pcfg.clone()) })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    n.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod }).await.unwrap();
}
