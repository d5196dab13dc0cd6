//! A registry that misbehaves on purpose (the tests' own HTTP server on 127.0.0.1): huge
//! or endless bodies, ambiguous manifests, inexact descriptors, too many layers, stalls.
//! Every pull is refused with a clear error (or cancelled cleanly), the daemon's peak RSS
//! stays within 64 MiB of what it was, the store is left exactly as it was, and Version and
//! a normal pull succeed right after.

use std::time::{Duration, Instant};

use berth_tests::hostile_registry::{Body, HostileRegistry, Reply, TestImage, OCI_INDEX, OCI_MANIFEST};
use berth_tests::registry::sha256;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use crate::common::{clients, image_spec, insecure_registries, tree, vm_hwm, Daemon, Env};

const MIB: u64 = 1 << 20;

async fn pull(img: &mut ImageServiceClient<Channel>, image: &str) -> Result<String, tonic::Status> {
    img.pull_image(cri::PullImageRequest { image: image_spec(image), ..Default::default() }).await.map(|r| r.into_inner().image_ref)
}

fn tmp_entries(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.p("images/tmp")).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

/// A hostile case: what the registry serves for `bad/<name>:v1`, and what the error says.
struct Case {
    name: &'static str,
    expect: Vec<String>,
    /// Paths (below /v2/bad/<name>/) that must never be requested.
    never: Vec<String>,
}

/// The checks after every hostile case.
struct Checker {
    env: Env,
    daemon: Daemon,
    reg: HostileRegistry,
    hwm0: u64,
    before: Vec<String>,
}

impl Checker {
    fn pid(&self) -> u32 {
        self.daemon.proc.as_ref().unwrap().0.id()
    }

    async fn after(&self, what: &str, rt: &mut RuntimeServiceClient<Channel>, img: &mut ImageServiceClient<Channel>) {
        let hwm = vm_hwm(self.pid());
        assert!(hwm < self.hwm0 + 64 * MIB, "{what}: daemon peak RSS grew from {} to {} MiB", self.hwm0 / MIB, hwm / MIB);
        assert_eq!(tree(&self.env.image_root()), self.before, "{what}: store changed");
        assert!(tmp_entries(&self.env).is_empty(), "{what}: leftovers in tmp: {:?}", tmp_entries(&self.env));
        rt.version(cri::VersionRequest::default()).await.unwrap_or_else(|e| panic!("{what}: Version: {e}"));
        // A normal pull of an image not yet stored, then back to the state before.
        let good2 = format!("{}/good/two:v1", self.reg.addr());
        pull(img, &good2).await.unwrap_or_else(|e| panic!("{what}: normal pull: {e}"));
        img.remove_image(cri::RemoveImageRequest { image: image_spec(&good2) }).await.unwrap();
        assert_eq!(tree(&self.env.image_root()), self.before, "{what}: store after the normal pull");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_registry_bodies_manifests_and_descriptors() {
    let reg = HostileRegistry::start();
    let good = TestImage::new("hello", b"hi");
    reg.serve_image("good/one", "v1", &good);
    reg.serve_image("good/two", "v1", &TestImage::new("two", b"2"));
    let addr = reg.addr();
    let env = Env::new(&insecure_registries(&[&addr]));
    let daemon = env.start();
    let (mut rt, mut img) = clients(&daemon).await;
    pull(&mut img, &format!("{addr}/good/one:v1")).await.unwrap();
    let before = tree(&env.image_root());
    let mut ck = Checker { hwm0: 0, before, env, daemon, reg };
    // The baseline includes a normal pull, so only growth caused by a hostile case counts.
    ck.after("baseline", &mut rt, &mut img).await;
    ck.hwm0 = vm_hwm(ck.pid());
    let reg = &ck.reg;

    let huge = 200 * MIB;
    let m = good.manifest_json();
    let layer = &good.layers[0];
    let mut cases = Vec::new();
    let mut case = |name: &'static str, routes: Vec<(String, Reply)>, expect: &[&str], never: &[&str]| {
        for (p, r) in routes {
            reg.route(&format!("/v2/bad/{name}/{p}"), vec![r]);
        }
        cases.push(Case {
            name,
            expect: expect.iter().map(|s| s.replace("{addr}", &addr).replace("{name}", name)).collect(),
            never: never.iter().map(|s| s.to_string()).collect(),
        });
    };
    let blobs_of = |i: &TestImage| -> Vec<(String, Reply)> {
        let mut v = vec![(format!("blobs/{}", sha256(&i.config)), Reply::ok("application/octet-stream", i.config.clone()))];
        for l in &i.layers {
            v.push((format!("blobs/{}", sha256(l)), Reply::ok("application/octet-stream", l.clone())));
        }
        v
    };
    let with_manifest = |mt: &str, doc: &serde_json::Value| -> Vec<(String, Reply)> {
        let i = good.with_manifest(doc);
        let mut v = vec![("manifests/v1".to_string(), Reply::ok(mt, i.manifest.clone()))];
        v.extend(blobs_of(&i));
        v
    };

    // 1. Bounded bodies.
    let limit_msg =
        "manifest from http://{addr}/v2/bad/{name}/manifests/v1 is larger than the limit of 4194304 bytes (image.max_manifest_size)";
    case(
        "manifest-200m",
        vec![("manifests/v1".into(), Reply::new(200, OCI_MANIFEST, Body::Fill { len: huge, byte: b' ', chunked: false }))],
        &[limit_msg],
        &[],
    );
    case(
        "manifest-200m-chunked",
        vec![("manifests/v1".into(), Reply::new(200, OCI_MANIFEST, Body::Fill { len: huge, byte: b' ', chunked: true }))],
        &[limit_msg],
        &[],
    );
    case(
        "index-21m-chunked",
        vec![("manifests/v1".into(), Reply::new(200, OCI_INDEX, Body::Fill { len: 21 * MIB, byte: b' ', chunked: true }))],
        &[limit_msg],
        &[],
    );
    let big_entry = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": sha256(&good.manifest), "size": huge,
        "platform": {"architecture": "amd64", "os": "linux"}}]});
    case(
        "index-entry-200m",
        vec![("manifests/v1".into(), Reply::ok(OCI_INDEX, serde_json::to_vec(&big_entry).unwrap()))],
        &["declares 209715200 bytes, more than the limit of 4194304 bytes (image.max_manifest_size)"],
        &["manifests/sha256:"],
    );
    let mut big_config = m.clone();
    big_config["config"]["size"] = huge.into();
    case(
        "config-200m",
        with_manifest(OCI_MANIFEST, &big_config),
        &["image config", "declares 209715200 bytes, more than the limit of 4194304 bytes (image.max_config_size)"],
        &["blobs/"],
    );
    // Fresh images (their blobs are not stored yet) for the cases that must download.
    let fresh = |n: &'static str| TestImage::new(n, n.as_bytes());
    let routes_of = |i: &TestImage, mt: &str| -> Vec<(String, Reply)> {
        let mut v = vec![("manifests/v1".to_string(), Reply::ok(mt, i.manifest.clone()))];
        v.extend(blobs_of(i));
        v
    };
    let ce = fresh("cfg");
    let mut lying_config = routes_of(&ce, OCI_MANIFEST);
    lying_config[1].1 = Reply::new(200, "application/octet-stream", Body::Fill { len: huge, byte: b'{', chunked: true });
    let ce_msg = format!("the registry sent more than {} bytes but the descriptor declares {}", ce.config.len(), ce.config.len());
    case("config-endless", lying_config, &[&ce_msg], &[]);
    let err_limit =
        "error body from http://{addr}/v2/bad/{name}/manifests/v1 is larger than the limit of 1048576 bytes (image.max_error_body_size)";
    case(
        "error-64m",
        vec![("manifests/v1".into(), Reply::new(404, "text/plain", Body::Fill { len: 64 * MIB, byte: b'E', chunked: false }))],
        &["HTTP 404", err_limit],
        &[],
    );
    case(
        "error-64m-chunked",
        vec![("manifests/v1".into(), Reply::new(500, "text/plain", Body::Fill { len: 64 * MIB, byte: b'E', chunked: true }))],
        &["HTTP 500", err_limit],
        &[],
    );
    let realm = format!("http://{addr}/token/huge");
    reg.route("/token/huge", vec![Reply::new(200, "application/json", Body::Fill { len: 50 * MIB, byte: b' ', chunked: true })]);
    case(
        "token-50m",
        vec![(
            "manifests/v1".into(),
            Reply::new(401, "application/json", Body::Bytes(b"{}".to_vec()))
                .header("WWW-Authenticate", &format!("Bearer realm=\"{realm}\",service=\"hostile\"")),
        )],
        &[
            "auth token response from http://{addr}/token/huge?service=hostile",
            "is larger than the limit of 1048576 bytes (image.max_auth_token_size)",
        ],
        &[],
    );

    // 2. Ambiguous manifests.
    let mut both = m.clone();
    both["manifests"] = serde_json::json!([{"mediaType": OCI_MANIFEST, "digest": sha256(&good.manifest), "size": good.manifest.len(),
        "platform": {"architecture": "amd64", "os": "linux"}}]);
    case("layers-and-manifests", with_manifest(OCI_MANIFEST, &both), &["ambiguous manifest refused", "both `manifests`"], &["blobs/"]);
    let mut both_idx = both.clone();
    both_idx["mediaType"] = OCI_INDEX.into();
    case("layers-and-manifests-index", with_manifest(OCI_INDEX, &both_idx), &["ambiguous manifest refused"], &["blobs/"]);
    let mut cfg_idx = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": both["manifests"].clone()});
    cfg_idx["config"] = m["config"].clone();
    case("config-in-index", with_manifest(OCI_INDEX, &cfg_idx), &["ambiguous manifest refused"], &["blobs/", "manifests/sha256:"]);
    case("content-type-disagrees", with_manifest(OCI_INDEX, &m), &["ambiguous manifest refused", "declared both"], &["blobs/"]);

    // 3. Exact descriptors.
    // The blob matches its digest, but not the size its descriptor declares.
    for (name, delta, chunked) in [("blob-shorter", 100i64, false), ("blob-shorter-chunked", 100, true), ("blob-longer-chunked", -1, true)]
    {
        let f = fresh(name);
        let l = f.layers[0].clone();
        let mut doc = f.manifest_json();
        let size = (l.len() as i64 + delta) as usize;
        doc["layers"][0]["size"] = size.into();
        let f = f.with_manifest(&doc);
        let mut routes = routes_of(&f, OCI_MANIFEST);
        if chunked {
            routes[2].1 = Reply::new(200, "application/octet-stream", Body::Chunked(l.clone()));
        }
        let msg = if delta > 0 && !chunked {
            format!("the registry announces {} bytes but the descriptor declares {size}", l.len())
        } else if delta > 0 {
            format!("the registry sent {} bytes but the descriptor declares {size}", l.len())
        } else {
            format!("the registry sent more than {size} bytes but the descriptor declares {size}")
        };
        case(name, routes, &[&msg], &[]);
    }
    // A platform manifest is held to its index entry's size too.
    let lying_entry = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": sha256(&good.manifest), "size": good.manifest.len() + 5,
        "platform": {"architecture": "amd64", "os": "linux"}}]});
    let mut entry_routes = vec![
        ("manifests/v1".to_string(), Reply::ok(OCI_INDEX, serde_json::to_vec(&lying_entry).unwrap())),
        (format!("manifests/{}", sha256(&good.manifest)), Reply::ok(OCI_MANIFEST, good.manifest.clone())),
    ];
    entry_routes.extend(blobs_of(&good));
    let entry_msg = format!(
        "platform manifest {}: the registry sent {} bytes but the descriptor declares {}",
        sha256(&good.manifest),
        good.manifest.len(),
        good.manifest.len() + 5
    );
    case("index-entry-size", entry_routes, &[&entry_msg], &["blobs/"]);
    // The layer is stored (good/one): a descriptor with the same digest but another size
    // must not reuse it.
    let mut reuse = m.clone();
    reuse["layers"][0]["size"] = (layer.len() + 1).into();
    case(
        "stored-blob-other-size",
        with_manifest(OCI_MANIFEST, &reuse),
        &[&format!("the registry announces {} bytes but the descriptor declares {}", layer.len(), layer.len() + 1)],
        &[],
    );
    let many: Vec<serde_json::Value> = (0..501)
        .map(|i| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": sha256(format!("layer {i}").as_bytes()), "size": 10})
        })
        .collect();
    let mut too_many = m.clone();
    too_many["layers"] = many.into();
    case(
        "501-layers",
        with_manifest(OCI_MANIFEST, &too_many),
        &["image has 501 layers, more than the limit of 500 (image.max_layers; overlayfs stacks at most 500)"],
        &["blobs/"],
    );

    for c in cases {
        let log_before = std::fs::metadata(&ck.daemon.log).map(|m| m.len()).unwrap_or(0);
        let image = format!("{addr}/bad/{}:v1", c.name);
        let e = pull(&mut img, &image).await.expect_err(c.name);
        for x in &c.expect {
            assert!(e.message().contains(x.as_str()), "{}: error lacks {x:?}: {}", c.name, e.message());
        }
        assert!(e.message().len() < 4096, "{}: error message of {} bytes", c.name, e.message().len());
        for n in &c.never {
            let p = format!("/v2/bad/{}/{n}", c.name);
            assert!(!reg.requests().iter().any(|r| r.contains(&p)), "{}: {p} was requested", c.name);
        }
        let grown = std::fs::metadata(&ck.daemon.log).map(|m| m.len()).unwrap_or(0) - log_before;
        assert!(grown < 64 << 10, "{}: daemon log grew by {grown} bytes", c.name);
        ck.after(c.name, &mut rt, &mut img).await;
    }
    let log = ck.daemon.log();
    assert!(!log.contains(&"E".repeat(1000)), "an error body reached the log");
    eprintln!("daemon peak RSS: {} MiB after the baseline, {} MiB after every hostile case", ck.hwm0 / MIB, vm_hwm(ck.pid()) / MIB);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_registry_times_out() {
    let reg = HostileRegistry::start();
    let good = TestImage::new("hello", b"hi");
    reg.serve_image("good/two", "v1", &TestImage::new("two", b"2"));
    reg.serve_image("idle/blob", "v1", &good);
    reg.route(
        &format!("/v2/idle/blob/blobs/{}", sha256(&good.layers[0])),
        vec![Reply::new(200, "application/octet-stream", Body::Stall { len: good.layers[0].len() as u64 })],
    );
    reg.route("/v2/idle/headers/manifests/v1", vec![Reply::new(200, OCI_MANIFEST, Body::Silent)]);
    reg.route("/v2/idle/body/manifests/v1", vec![Reply::new(200, OCI_MANIFEST, Body::Stall { len: 100 })]);
    let addr = reg.addr();
    let env = Env::new(&insecure_registries(&[&addr]));
    std::fs::write(env.p("conf.d/10.conf"), "[image]\npull_progress_timeout = 1\n").unwrap();
    let daemon = env.start();
    let (mut rt, mut img) = clients(&daemon).await;
    let hwm0 = vm_hwm(daemon.proc.as_ref().unwrap().0.id());
    let before = tree(&env.image_root());
    for (name, path) in [
        ("blob", format!("/v2/idle/blob/blobs/{}", sha256(&good.layers[0]))),
        ("headers", "/v2/idle/headers/manifests/v1".to_string()),
        ("body", "/v2/idle/body/manifests/v1".to_string()),
    ] {
        let t = Instant::now();
        let e = pull(&mut img, &format!("{addr}/idle/{name}:v1")).await.expect_err(name);
        assert!(
            e.message().contains(&format!("http://{addr}{path}: no data from the registry for 1 s (image.pull_progress_timeout)")),
            "{name}: {}",
            e.message()
        );
        // The timeout is 1 s; far less than the 120 s default or a client's deadline.
        assert!(t.elapsed() < Duration::from_secs(30), "{name}: took {:?}", t.elapsed());
        assert!(reg.wait_closed(&path, Duration::from_secs(10)), "{name}: connection not closed");
        assert_eq!(tree(&env.image_root()), before, "{name}: store changed");
        assert!(tmp_entries(&env).is_empty(), "{name}: leftovers in tmp");
    }
    assert!(vm_hwm(daemon.proc.as_ref().unwrap().0.id()) < hwm0 + 64 * MIB);
    rt.version(cri::VersionRequest::default()).await.unwrap();
    pull(&mut img, &format!("{addr}/good/two:v1")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_pull_blocks_nothing_and_leaves_nothing() {
    let reg = HostileRegistry::start();
    let good = TestImage::new("hello", b"hi");
    reg.serve_image("stall/img", "v1", &good);
    reg.serve_image("good/two", "v1", &TestImage::new("two", b"2"));
    let blob = format!("/v2/stall/img/blobs/{}", sha256(&good.layers[0]));
    // The first download of the layer gets a byte a second; later ones are served normally.
    reg.route(
        &blob,
        vec![
            Reply::new(200, "application/octet-stream", Body::Trickle { data: good.layers[0].clone(), every: Duration::from_secs(1) }),
            Reply::ok("application/octet-stream", good.layers[0].clone()),
        ],
    );
    let addr = reg.addr();
    let env = Env::new(&insecure_registries(&[&addr]));
    let daemon = env.start();
    let (mut rt, img) = clients(&daemon).await;
    let hwm0 = vm_hwm(daemon.proc.as_ref().unwrap().0.id());
    let before = tree(&env.image_root());
    let image = format!("{addr}/stall/img:v1");

    // The first pull, with a client deadline (as crictl sets one).
    let mut first = img.clone();
    let im = image.clone();
    let stalled = tokio::spawn(async move {
        let mut req = tonic::Request::new(cri::PullImageRequest { image: image_spec(&im), ..Default::default() });
        req.set_timeout(Duration::from_secs(8));
        first.pull_image(req).await
    });
    assert!(reg.wait_request(&format!("GET {blob}"), Duration::from_secs(20)), "the stalled download never started");

    // While it stalls: a second pull of the same image, ImageStatus and RemoveImage answer.
    let mut img2 = img.clone();
    let t = Instant::now();
    let id = pull(&mut img2, &image).await.expect("second pull while the first stalls");
    let pull_took = t.elapsed();
    let t = Instant::now();
    let st = img2.image_status(cri::ImageStatusRequest { image: image_spec(&image), verbose: true }).await.unwrap().into_inner();
    let status_took = t.elapsed();
    assert_eq!(st.image.unwrap().id, id);
    let t = Instant::now();
    img2.remove_image(cri::RemoveImageRequest { image: image_spec(&image) }).await.unwrap();
    let remove_took = t.elapsed();
    assert!(!stalled.is_finished(), "the first pull ended early");
    for (what, took) in [("pull", pull_took), ("ImageStatus", status_took), ("RemoveImage", remove_took)] {
        eprintln!("while a pull stalls: {what} answered in {took:?}");
        assert!(took < Duration::from_secs(1), "{what} took {took:?} while a pull stalled");
    }
    let st = img2.image_status(cri::ImageStatusRequest { image: image_spec(&image), verbose: false }).await.unwrap().into_inner();
    assert!(st.image.is_none(), "removed");

    // The deadline cancels the first pull: its download stops and its connection closes.
    let e = stalled.await.unwrap().expect_err("the stalled pull cannot succeed");
    assert!(matches!(e.code(), tonic::Code::DeadlineExceeded | tonic::Code::Cancelled), "{e:?}");
    assert!(reg.wait_closed(&blob, Duration::from_secs(5)), "the stalled connection stayed open");
    // Nothing of it is left (its cleanup runs right after the cancellation).
    let deadline = Instant::now() + Duration::from_secs(10);
    while (tree(&env.image_root()) != before || !tmp_entries(&env).is_empty()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tree(&env.image_root()), before, "the cancelled pull left something");
    assert!(tmp_entries(&env).is_empty(), "leftovers in tmp: {:?}", tmp_entries(&env));
    assert!(vm_hwm(daemon.proc.as_ref().unwrap().0.id()) < hwm0 + 64 * MIB);
    rt.version(cri::VersionRequest::default()).await.unwrap();
    let mut img3 = img.clone();
    pull(&mut img3, &format!("{addr}/good/two:v1")).await.unwrap();
}
