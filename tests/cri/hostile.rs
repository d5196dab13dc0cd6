//! Hostile layers: every escape attempt is refused with a clear error and the store is left
//! exactly as it was; nothing is written outside the layer.

use berth_tests::registry::{docker_archive, layer_tar, Comp, Entry, Layout, Registry, TempDir};
use k8s_cri::v1 as cri;

use crate::common::{clients, image_spec, insecure_registries, stderr, tree, Env};

struct Case {
    name: &'static str,
    entries: Vec<Entry>,
    expect: &'static str,
}

fn cases(outside: &str) -> Vec<Case> {
    let abs_link: &'static str = Box::leak(outside.to_string().into_boxed_str());
    let rel_link: &'static str = Box::leak(format!("../../../../../../../../..{outside}").into_boxed_str());
    vec![
        Case {
            name: "dotdot",
            entries: vec![Entry::Raw(format!("a/../../../../..{outside}/pwn").into_bytes(), b"x".to_vec())],
            expect: "'..'",
        },
        Case { name: "absolute", entries: vec![Entry::Raw(format!("{outside}/pwn").into_bytes(), b"x".to_vec())], expect: "absolute" },
        Case {
            name: "write through absolute symlink",
            entries: vec![Entry::Symlink("lnk", abs_link), Entry::File("lnk/pwn", b"x".to_vec())],
            expect: "leave the layer root",
        },
        Case {
            name: "write through relative symlink",
            entries: vec![Entry::Dir("d"), Entry::Symlink("d/up", rel_link), Entry::File("d/up/pwn", b"x".to_vec())],
            expect: "leave the layer root",
        },
        Case { name: "hard link to ../", entries: vec![Entry::Hardlink("hl", "../../../../../../etc/passwd")], expect: "'..'" },
        Case {
            name: "hard link through symlink",
            entries: vec![Entry::Symlink("etcl", "/etc"), Entry::Hardlink("hl", "etcl/passwd")],
            expect: "leave the layer root",
        },
        Case {
            name: "device node",
            entries: vec![Entry::Dir("dev"), Entry::CharDev("dev/sda", 8, 0)],
            expect: "device nodes are not allowed",
        },
        Case { name: "bad whiteout", entries: vec![Entry::File(".wh..", vec![])], expect: "invalid whiteout" },
    ]
}

#[test]
fn hostile_layers_are_refused_on_import() {
    let outside = TempDir::new("outside");
    let env = Env::new("");
    assert!(env.cli(&["image", "list"]).status.success());
    // A good image first, so "unchanged" covers existing content.
    let ok = env.p("ok.tar");
    docker_archive(&ok, &[layer_tar(&[Entry::File("hello", b"hi".to_vec())])], "good:1");
    let o = env.cli(&["image", "import", ok.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = tree(&env.image_root());
    for c in cases(&outside.path().display().to_string()) {
        let a = env.p("bad.tar");
        let mut entries = vec![Entry::File("innocent", b"data".to_vec())];
        entries.extend(c.entries);
        docker_archive(&a, &[layer_tar(&entries)], "bad:1");
        let o = env.cli(&["image", "import", a.to_str().unwrap()]);
        assert!(!o.status.success(), "{}: import succeeded", c.name);
        assert!(stderr(&o).contains(c.expect), "{}: {}", c.name, stderr(&o));
        assert_eq!(tree(&env.image_root()), before, "{}: store changed", c.name);
        assert_eq!(std::fs::read_dir(env.p("images/tmp")).unwrap().count(), 0, "{}: leftovers in tmp", c.name);
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "{}: wrote outside", c.name);
    }
    let o = env.cli(&["image", "list"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("docker.io/library/good:1") && !out.contains("bad:1"), "{out}");
}

#[test]
fn decompression_bomb_is_refused() {
    let env = Env::new("");
    std::fs::write(env.p("conf.d/10.conf"), "[image]\nmax_layer_size = 1048576\n").unwrap();
    assert!(env.cli(&["image", "list"]).status.success());
    let before = tree(&env.image_root());
    // 64 MiB of zeros gzip to ~64 KiB.
    let bomb = layer_tar(&[Entry::File("zeros", vec![0u8; 64 << 20])]);
    let mut layout = Layout::new();
    layout.add_image(&[(bomb, Comp::Gzip)], "bomb");
    let a = env.p("bomb.tar");
    layout.archive(&a);
    let o = env.cli(&["image", "import", "--name", "example.com/bomb", a.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("more than the limit of 1048576 bytes"), "{}", stderr(&o));
    assert_eq!(tree(&env.image_root()), before);
}

#[test]
fn device_nodes_allowed_when_configured() {
    let env = Env::new("");
    std::fs::write(env.p("conf.d/10.conf"), "[image]\nallow_device_nodes = true\n").unwrap();
    let a = env.p("dev.tar");
    docker_archive(&a, &[layer_tar(&[Entry::Dir("dev"), Entry::CharDev("dev/null", 1, 3)])], "dev:1");
    let o = env.cli(&["image", "import", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_layer_from_a_registry_is_refused() {
    let outside = TempDir::new("outside");
    let reg = Registry::start(None);
    let mut layout = Layout::new();
    let link: &'static str = Box::leak(outside.path().display().to_string().into_boxed_str());
    let evil = layer_tar(&[Entry::Symlink("x", link), Entry::File("x/pwn", b"x".to_vec())]);
    let good = layer_tar(&[Entry::File("ok", b"ok".to_vec())]);
    layout.add_image(&[(good, Comp::Gzip), (evil, Comp::Gzip)], "v1");
    reg.push(layout.path(), "v1", "test/evil", None);
    let env = Env::new(&insecure_registries(&[&reg.addr()]));
    let d = env.start();
    let (_, mut img) = clients(&d).await;
    let e = img
        .pull_image(cri::PullImageRequest { image: image_spec(&format!("{}/test/evil:v1", reg.addr())), ..Default::default() })
        .await
        .unwrap_err();
    assert!(e.message().contains("leave the layer root"), "{}", e.message());
    assert!(img.list_images(cri::ListImagesRequest::default()).await.unwrap().into_inner().images.is_empty());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(env.p("images/tmp")).unwrap().count(), 0);
}
