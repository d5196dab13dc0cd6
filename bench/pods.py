#!/usr/bin/env python3
"""Pod start and per-pod memory: berth-cri against Debian's containerd (CRI plugin, runc), same run.

    bench/pods.py [N]            (default N=30 samples per daemon; root needed)
    N=30 K=10 BLOCK=5 WARMUP=3 BERTH_BIN=/tmp/podbench-bin OUT=/tmp/pods.json bench/pods.py

Both daemons are driven the same way, through CRI v1 gRPC from this script (stubs generated at
run time from k8s-cri's `runtime.v1` proto, in a venv with grpcio + grpcio-tools that the
script makes on first use under /var/cache/berth-bench/venv, or $VENV).

Start time, per sample: RunPodSandbox (CNI: a bridge this script makes, host-local IPAM, the
daemon's own loopback) -> CreateContainer (busybox `sleep 3600`) -> StartContainer -> poll
ContainerStatus until RUNNING. Teardown (stop, remove) is outside the timed part. The daemons
take turns in blocks of BLOCK samples after WARMUP unrecorded pods each; median and p95.

Memory: K pods running at once per daemon: the daemon's RSS and PSS (/proc/PID/smaps_rollup)
growth over the idle daemon, plus every process the pods brought (berth: one berth-mon per
container, berth-pause only for a shared pid namespace -- none here; containerd: one
containerd-shim-runc-v2 per pod and its pause process), divided by K. The containers' own
`sleep` processes are the same for both and not counted.

Images: the critest kit's busybox and pause (../shared/critest/images/build.sh, or $IMAGES_BUILD),
built into this run's own docker-registry on a free 127.0.0.1 port (never the kit's :5000).
Binaries: berth, berth-mon, berth-cri, berth-pause from $BERTH_BIN (default target/release).
Everything started is stopped by pid at the end, also on error, SIGINT or SIGTERM: pods through
the API, daemons, leftover monitors/shims/containers, the registry; mounts under the temp dir
are unmounted, the bridge and any iptables rules or CNI chains added are removed.
"""
import glob, json, math, os, re, select, shlex, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, uuid

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(here)
VENV = os.environ.get("VENV", "/var/cache/berth-bench/venv")

if os.getuid() != 0:
    sys.exit("needs root")

# --- grpcio: re-run this script inside a venv that has it -------------------------------------
try:
    import grpc
    from grpc_tools import protoc
except ImportError:
    py = os.path.join(VENV, "bin/python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        sys.exit(f"grpcio/grpcio-tools missing in {VENV}")
    if not os.path.exists(py):
        print(f"making {VENV} (grpcio, grpcio-tools from PyPI)", file=sys.stderr)
        base = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        subprocess.run([base, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "grpcio", "grpcio-tools"], check=True)
    os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])

N = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("N", "30"))
K = int(os.environ.get("K", "10"))
BLOCK = int(os.environ.get("BLOCK", "5"))
WARMUP = int(os.environ.get("WARMUP", "3"))
BIN = os.path.abspath(os.environ.get("BERTH_BIN", os.path.join(repo, "target/release")))
KIT_BUILD = os.environ.get("IMAGES_BUILD", os.path.join(repo, "../shared/critest/images/build.sh"))
CONTAINERD = os.environ.get("CONTAINERD", "/usr/bin/containerd")
RUNC = os.environ.get("RUNC", shutil.which("runc") or "/usr/sbin/runc")
CNI_BIN = os.environ.get("CNI_BIN", "/usr/lib/cni")
OUT = os.environ.get("OUT")
# crictl is not shipped (built from cri-tools, docs/TESTBED.md): CRICTL or PATH; without it the
# streaming part is skipped with a line.
CRICTL = os.environ.get("CRICTL") or shutil.which("crictl")
EXECS = int(os.environ.get("EXECS", "20"))          # exec round trips per daemon (0: no streaming part)
PF_MB = int(os.environ.get("PF_MB", "64"))          # MiB pushed through port-forward per run
for b in ["berth", "berth-mon", "berth-cri", "berth-pause"]:
    if not os.access(os.path.join(BIN, b), os.X_OK):
        sys.exit(f"{BIN}/{b}: not built (set BERTH_BIN)")
for p in [CONTAINERD, RUNC, "/usr/bin/containerd-shim-runc-v2", KIT_BUILD, os.path.join(CNI_BIN, "bridge")]:
    if not os.path.exists(p):
        sys.exit(f"{p}: missing")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- the CRI v1 stubs -------------------------------------------------------------------------
def find_proto():
    cands = [os.environ["CRI_PROTO"]] if os.environ.get("CRI_PROTO") else []
    cands += sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/k8s-cri-0.1[1-9]*/proto/v1.proto")), reverse=True)
    for c in cands:
        if re.search(r"^package runtime\.v1;", open(c).read(), re.M):
            return c
    sys.exit("no CRI v1 proto (package runtime.v1): set CRI_PROTO, or `cargo fetch` (k8s-cri 0.11)")


work = tempfile.mkdtemp(prefix="bt-podbench.")
os.chmod(work, 0o755)
gen = os.path.join(work, "gen")
os.makedirs(gen)
proto = find_proto()
shutil.copy(proto, os.path.join(gen, "api.proto"))
if protoc.main(["protoc", f"-I{gen}", f"--python_out={gen}", f"--grpc_python_out={gen}", os.path.join(gen, "api.proto")]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, gen)
import api_pb2 as pb  # noqa: E402
import api_pb2_grpc as pbg  # noqa: E402

# --- state that cleanup needs -----------------------------------------------------------------
tag = f"{os.getpid() % 100000}"
bridge = f"btpod{tag}"[:15]
procs = {}          # name -> Popen of what we started
clients = {}        # daemon name -> Client
netns_seen = set()  # containerd's netns paths (they live under our state dir; checked anyway)
registry_pid = None
net = None
cleaning = False


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, stdin=subprocess.DEVNULL, capture_output=True, text=True, **kw)


def iptables_rules():
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    rules, chains, table = set(), set(), None
    for line in out.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            chains.add((table, line[1:].split()[0]))
        elif line.startswith("-A "):
            rules.add((table, line))
    return rules, chains


ipt_before = iptables_rules()
# containerd-shim-runc-v2 puts its sockets under /run/containerd/s whatever containerd's state is
run_ctd_existed = os.path.exists("/run/containerd")


def free_subnet():
    used = sh("ip", "-4", "-o", "addr").stdout + sh("ip", "-4", "route").stdout
    for n in range(int(tag) % 200 + 20, 250):
        if f"10.251.{n}." not in used:
            return f"10.251.{n}"
    sys.exit("no free 10.251.x.0/24")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def memory(pid):
    m = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            m[parts[0].rstrip(":")] = int(parts[1])
    return m["Rss"], m["Pss"]


def ps():
    """pid -> (ppid, comm, exe, cmdline, root)"""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            cmd = open(f"/proc/{d}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace").strip()
            try:
                exe = os.readlink(f"/proc/{d}/exe")
            except OSError:
                exe = ""
            try:
                root = os.readlink(f"/proc/{d}/root")
            except OSError:
                root = ""
            out[int(d)] = (ppid, comm, exe, cmd, root)
        except (OSError, ValueError):
            pass
    return out


def descendants(table, roots):
    kids = {}
    for pid, (ppid, *_rest) in table.items():
        kids.setdefault(ppid, []).append(pid)
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return seen


def ours(table):
    """Every process this run started or caused (not the daemons): cmdline or root under our
    temp dir, and their descendants."""
    mine = {pid for pid, (_pp, _c, _e, cmd, root) in table.items() if work in cmd or root.startswith(work)}
    mine |= descendants(table, mine | {p.pid for p in procs.values()})
    return mine - {os.getpid(), registry_pid} - {p.pid for p in procs.values()}


# --- a CRI client -----------------------------------------------------------------------------
class Client:
    def __init__(self, name, sock):
        self.name = name
        # grpcio's default authority for a unix: target gets RST_STREAM from berth-cri; grpc-go sends localhost
        self.ch = grpc.insecure_channel("unix://" + sock, options=[("grpc.default_authority", "localhost")])
        self.rt = pbg.RuntimeServiceStub(self.ch)
        self.img = pbg.ImageServiceStub(self.ch)

    def wait_ready(self, limit=60):
        end = time.time() + limit
        err = None
        while time.time() < end:
            try:
                st = self.rt.Status(pb.StatusRequest(), timeout=2)
                conds = {c.type: c.status for c in st.status.conditions}
                if conds.get("RuntimeReady") and conds.get("NetworkReady"):
                    return self.rt.Version(pb.VersionRequest(), timeout=2)
                err = st
            except grpc.RpcError as e:
                err = e
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: not ready after {limit}s: {err}")


def pod_config(name):
    logdir = os.path.join(work, "logs", name)
    os.makedirs(logdir, exist_ok=True)
    ns = pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)  # kubelet's default pod
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace="podbench", uid=str(uuid.uuid4()), attempt=0),
        hostname=name[:63], log_directory=logdir,
        linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns)))


def container_config():
    ns = pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="sleep", attempt=0), image=pb.ImageSpec(image=BUSYBOX),
        command=["sleep", "3600"], log_path="sleep.log",
        linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(namespace_options=ns)))


T = 120  # seconds, any single RPC


def start_pod(c, name):
    """RunPodSandbox -> container RUNNING; returns (seconds, pod id, container id)."""
    cfg = pod_config(name)
    ccfg = container_config()
    t0 = time.perf_counter()
    pod = c.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=T).pod_sandbox_id
    cid = c.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod, config=ccfg, sandbox_config=cfg), timeout=T).container_id
    c.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=T)
    while c.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=T).status.state != pb.CONTAINER_RUNNING:
        time.sleep(0.001)
    t1 = time.perf_counter()
    if c.name == "containerd":
        info = c.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True), timeout=T).info
        try:
            for n in json.loads(info["info"])["runtimeSpec"]["linux"]["namespaces"]:
                if n.get("type") == "network" and n.get("path"):
                    netns_seen.add(n["path"])
        except (KeyError, ValueError):
            pass
    return t1 - t0, pod, cid


def stop_pod(c, pod, cid=None):
    t0 = time.perf_counter()
    if cid:
        c.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0), timeout=T)
        c.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=T)
    c.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=T)
    c.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=T)
    return time.perf_counter() - t0


# --- cleanup ----------------------------------------------------------------------------------
def cleanup():
    global cleaning
    if cleaning:
        return
    cleaning = True
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
    for name, c in clients.items():  # every pod through the API
        try:
            for p in c.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=10).items:
                try:
                    stop_pod(c, p.id)
                except grpc.RpcError as e:
                    log(f"cleanup: {name} pod {p.id}: {e.code()} {e.details()}")
        except grpc.RpcError as e:
            log(f"cleanup: {name}: ListPodSandbox: {e.code()}")
        c.ch.close()
    for name, p in procs.items():  # the daemons, by pid
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                log(f"cleanup: {name} ignored SIGTERM; SIGKILL")
                p.kill()
                p.wait()
    left = ours(ps())  # monitors, shims, containers, anything with our paths
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        log(f"cleanup: killed {len(left)} leftover processes: {sorted(left)}")
    if registry_pid:
        try:
            if work in open(f"/proc/{registry_pid}/cmdline").read():
                os.kill(registry_pid, signal.SIGTERM)
        except OSError:
            pass
    time.sleep(0.3)
    mounts = [line.split()[4] for line in open("/proc/self/mountinfo") if line.split()[4].startswith(work + "/")]
    for m in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    for n in netns_seen:
        if os.path.exists(n) and not n.startswith(work + "/"):
            subprocess.run(["umount", "-l", n], capture_output=True)
            try:
                os.unlink(n)
            except OSError:
                pass
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    # iptables: rules that name our bridge or subnet, and CNI-* chains only they jump to, are
    # removed (no plugin here adds any: no ipMasq, no portmap); anything else new is reported.
    rules, chains = iptables_rules()
    newrules = rules - ipt_before[0]
    mark = [bridge] + ([f"{net}."] if net else [])
    mine = {r for r in newrules if any(m in r[1] for m in mark)}
    jumps = {(t, w) for t, r in mine for w in r.split() if w.startswith("CNI-")}
    for table, rule in mine:
        subprocess.run(["iptables", "-w", "-t", table, "-D", *shlex.split(rule)[1:]], capture_output=True)
    for table, chain in (chains - ipt_before[1]) & jumps:
        subprocess.run(["iptables", "-w", "-t", table, "-F", chain], capture_output=True)
        subprocess.run(["iptables", "-w", "-t", table, "-X", chain], capture_output=True)
    if newrules - mine:
        log(f"cleanup: iptables rules added meanwhile, not ours, left alone: {sorted(newrules - mine)}")
    if not run_ctd_existed:  # made by our shims: removed if nothing else uses it
        for d in ["/run/containerd/s", "/run/containerd"]:
            try:
                os.rmdir(d)
            except OSError:
                pass
    shutil.rmtree(work, ignore_errors=True)
    if os.path.exists(work):
        log(f"cleanup: could not remove all of {work}")


for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: sys.exit(1))


def stats(v):
    s = sorted(v)
    return statistics.median(s), s[max(0, math.ceil(len(s) * 0.95) - 1)]


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


try:
    # --- images: the kit's build, into our own registry ---------------------------------------
    port = free_port()
    REG = f"127.0.0.1:{port}"
    imgwork = os.path.join(work, "images")
    os.makedirs("/var/cache/berth-bench/debs", exist_ok=True)
    os.makedirs(imgwork)
    os.symlink("/var/cache/berth-bench/debs", os.path.join(imgwork, "debs"))  # .deb cache kept
    log(f"images: {KIT_BUILD} --registry {REG} (own registry, own storage)")
    r = subprocess.run([KIT_BUILD, "--registry", REG, "--workdir", imgwork], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        registry_pid = int(open(os.path.join(imgwork, "registry.pid")).read())
    except (OSError, ValueError):
        pass
    if r.returncode != 0:
        sys.exit(f"image build failed:\n{r.stdout[-3000:]}")
    BUSYBOX = f"{REG}/library/busybox:latest"
    PAUSE = f"{REG}/pause:3.6"

    # --- CNI: one bridge network for both daemons ---------------------------------------------
    net = free_subnet()
    cni = os.path.join(work, "cni")
    os.makedirs(cni)
    os.makedirs(os.path.join(work, "ipam"))
    sh("ip", "link", "add", bridge, "type", "bridge")
    sh("ip", "addr", "add", f"{net}.1/24", "dev", bridge)
    sh("ip", "link", "set", bridge, "up")
    # isGateway false: the bridge carries the gateway address itself (isGateway would turn on
    # the host's ip_forward). Loopback is each daemon's own (both run the loopback plugin).
    json.dump({"cniVersion": "1.0.0", "name": f"bt-podbench-{tag}", "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": False, "ipMasq": False, "hairpinMode": True,
         "ipam": {"type": "host-local", "dataDir": os.path.join(work, "ipam"),
                  "ranges": [[{"subnet": f"{net}.0/24", "gateway": f"{net}.1"}]]}}]},
              open(os.path.join(cni, "10-podbench.conflist"), "w"))

    # --- berth-cri, as scripts/critest.sh starts it -------------------------------------------
    b = os.path.join(work, "berth")
    for d in ["state", "images", "conf.d"]:
        os.makedirs(os.path.join(b, d))
    open(os.path.join(b, "registries.conf"), "w").write(f'[[registry]]\nlocation = "{REG}"\ninsecure = true\n')
    open(os.path.join(b, "berth.conf"), "w").write(
        f'[runtime]\nmonitor_path = "{BIN}/berth-mon"\n[runtime.handlers.berth]\npath = "{BIN}/berth"\n'
        f'[image]\npause_image = "{PAUSE}"\n'
        f'[network]\ncni_conf_dir = "{cni}"\ncni_plugin_dirs = ["{CNI_BIN}"]\n')
    bsock = os.path.join(b, "berth.sock")
    procs["berth-cri"] = subprocess.Popen(
        [f"{BIN}/berth-cri", "--config", f"{b}/berth.conf", "--config-dir", f"{b}/conf.d", "--socket", bsock,
         "--state-root", f"{b}/state", "--image-root", f"{b}/images", "--registries-conf", f"{b}/registries.conf",
         "--registries-conf-dir", f"{b}/conf.d", "--log-level", "warn"],
        stdin=subprocess.DEVNULL, stdout=open(f"{b}/daemon.log", "w"), stderr=subprocess.STDOUT, cwd=b)

    # --- containerd: fresh root/state/socket, CRI with runc, cgroupfs ---------------------------
    c = os.path.join(work, "ctd")
    os.makedirs(os.path.join(c, "certs.d", REG))
    open(os.path.join(c, "certs.d", REG, "hosts.toml"), "w").write(
        f'server = "http://{REG}"\n[host."http://{REG}"]\n  capabilities = ["pull", "resolve"]\n')
    csock = os.path.join(c, "containerd.sock")
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    open(os.path.join(c, "config.toml"), "w").write(f"""version = 2
root = "{c}/root"
state = "{c}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{csock}"
[ttrpc]
  address = "{csock}.ttrpc"
[{cri}]
  sandbox_image = "{PAUSE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # no CAP_SYS_RESOURCE here: containerd's -998 for the pause process cannot be set
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  tolerate_missing_hugetlb_controller = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{RUNC}"
  Root = "{c}/runc"
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{cni}"
  max_conf_num = 1
[{cri}.registry]
  config_path = "{c}/certs.d"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c}/opt"
""")
    procs["containerd"] = subprocess.Popen(
        [CONTAINERD, "--config", f"{c}/config.toml", "--log-level", "warn"],
        stdin=subprocess.DEVNULL, stdout=open(f"{c}/daemon.log", "w"), stderr=subprocess.STDOUT, cwd=c)

    clients["berth-cri"] = Client("berth-cri", bsock)
    clients["containerd"] = Client("containerd", csock)
    versions = {}
    for name, cl in clients.items():
        for _ in range(600):
            if os.path.exists(bsock if name == "berth-cri" else csock):
                break
            if procs[name].poll() is not None:
                sys.exit(f"{name} exited: " + open(f"{b if name == 'berth-cri' else c}/daemon.log").read()[-2000:])
            time.sleep(0.05)
        v = cl.wait_ready()
        versions[name] = f"{v.runtime_name} {v.runtime_version}"
        for image in [BUSYBOX, PAUSE]:  # pulls are not part of the start time
            cl.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)), timeout=300)
    daemons = list(clients)
    dpid = {n: procs[n].pid for n in daemons}

    print(f"pod start benchmark: N={N} per daemon, blocks of {BLOCK}, {WARMUP} warm-ups each, K={K} for memory")
    print(f"  berth-cri: {BIN}/berth-cri ({versions['berth-cri']}), handler {BIN}/berth, monitor {BIN}/berth-mon")
    print(f"  containerd: {CONTAINERD} ({versions['containerd']}), io.containerd.runc.v2, {RUNC} "
          f"({sh(RUNC, '--version').stdout.split(chr(10))[0]}), cgroupfs")
    print(f"  images {BUSYBOX}, {PAUSE}; CNI bridge {bridge} {net}.0/24 (host-local), loopback")
    print(f"  kernel {os.uname().release}, {os.cpu_count()} cpus, load average at start {loadavg()}", flush=True)

    # --- start times --------------------------------------------------------------------------
    times = {n: [] for n in daemons}
    teardown = {n: [] for n in daemons}
    seq = 0
    for n in daemons:
        for _ in range(WARMUP):
            seq += 1
            _t, pod, cid = start_pod(clients[n], f"warm-{n}-{seq}")
            stop_pod(clients[n], pod, cid)
    i = 0
    while i < N:
        for n in daemons:
            for j in range(min(BLOCK, N - i)):
                seq += 1
                t, pod, cid = start_pod(clients[n], f"pb-{n}-{i + j}")
                times[n].append(t)
                teardown[n].append(stop_pod(clients[n], pod, cid))
        i += BLOCK
    load_after = loadavg()

    # --- memory with K pods -------------------------------------------------------------------
    mem = {}
    for n in daemons:
        cl = clients[n]
        time.sleep(2)
        idle = memory(dpid[n])
        pods = [start_pod(cl, f"mem-{n}-{k}")[1:] for k in range(K)]
        time.sleep(2)
        busy = memory(dpid[n])
        table = ps()
        mine = ours(table)
        kinds = {}
        for pid in mine:
            _pp, comm, exe, cmd, _root = table[pid]
            if cmd == "sleep 3600":
                kind = "container (not counted)"
            elif exe == os.path.join(BIN, "berth-mon"):
                kind = "berth-mon"
            elif exe == os.path.join(BIN, "berth-pause"):
                kind = "berth-pause"
            elif exe.endswith("containerd-shim-runc-v2"):
                kind = "containerd-shim-runc-v2"
            elif comm == "pause":
                kind = "pause"
            else:
                kind = f"other: {cmd[:60]}"
            try:
                rss, pss = memory(pid)
            except OSError:
                continue
            e = kinds.setdefault(kind, [0, 0, 0])
            e[0] += 1
            e[1] += rss
            e[2] += pss
        for pod, cid in pods:
            stop_pod(cl, pod, cid)
        mem[n] = {"idle": idle, "busy": busy, "kinds": kinds}

    # --- streaming: exec round trip and port-forward throughput (crictl, the same for both) ----
    stream = {}
    if EXECS > 0 and not CRICTL:
        print("skipped: streaming part: crictl not found (set CRICTL)")
    if EXECS > 0 and CRICTL:
        for n in daemons:
            cl = clients[n]
            sock = bsock if n == "berth-cri" else csock
            cfg = pod_config(f"stream-{n}")
            pod = cl.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=T).pod_sandbox_id
            ccfg = container_config()
            # A sink on the pod's port 8080 that answers once it has read PF_MB MiB.
            ccfg.command[:] = ["sh", "-c", f"while :; do nc -l -p 8080 -e sh -c 'head -c {PF_MB << 20} > /dev/null; echo done'; done"]
            cid = cl.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod, config=ccfg, sandbox_config=cfg), timeout=T).container_id
            cl.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=T)
            crictl = [CRICTL, "--runtime-endpoint", "unix://" + sock, "--timeout", "60s"]
            lat = []
            for k in range(EXECS + 2):
                t0 = time.perf_counter()
                r = subprocess.run(crictl + ["exec", cid, "true"], stdin=subprocess.DEVNULL, capture_output=True)
                if r.returncode != 0:
                    raise RuntimeError(f"{n}: crictl exec: {r.stderr.decode()[-500:]}")
                if k >= 2:  # two warm-ups
                    lat.append(time.perf_counter() - t0)
            lport = free_port()
            fwd = subprocess.Popen(crictl + ["port-forward", pod, f"{lport}:8080"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            procs[f"port-forward-{n}"] = fwd
            # crictl prints "Forwarding from ..." once it listens.
            seen = b""
            end = time.time() + 30
            while b"Forwarding from" not in seen:
                if time.time() > end or not select.select([fwd.stdout], [], [], 1)[0]:
                    if time.time() > end or fwd.poll() is not None:
                        raise RuntimeError(f"{n}: crictl port-forward did not start listening: {seen[-500:]!r}")
                    continue
                line = fwd.stdout.readline()
                if not line:
                    fwd.wait(5)
                    raise RuntimeError(f"{n}: crictl port-forward ended: {seen[-500:]!r}")
                seen += line
            rates = []
            chunk = b"x" * (1 << 20)
            for _ in range(3):
                with socket.create_connection(("127.0.0.1", lport), timeout=60) as conn:
                    t0 = time.perf_counter()
                    for _m in range(PF_MB):
                        conn.sendall(chunk)
                    reply = conn.recv(16)
                    dt = time.perf_counter() - t0
                if b"done" not in reply:
                    raise RuntimeError(f"{n}: port-forward sink answered {reply!r}")
                rates.append(PF_MB / dt)
            fwd.terminate()
            fwd.wait(10)
            stop_pod(cl, pod, cid)
            stream[n] = {"exec": lat, "pf_mib_s": rates}

    # --- report -------------------------------------------------------------------------------
    print(f"\nstart: RunPodSandbox -> container RUNNING (ms); load average after {load_after}")
    print(f"  {'daemon':11} {'n':>3} {'median':>8} {'p95':>8} {'min':>8} {'max':>8}   teardown median")
    st = {}
    for n in daemons:
        med, p95 = stats(times[n])
        st[n] = (med, p95)
        print(f"  {n:11} {len(times[n]):3} {med * 1e3:8.1f} {p95 * 1e3:8.1f} {min(times[n]) * 1e3:8.1f} "
              f"{max(times[n]) * 1e3:8.1f}   {statistics.median(teardown[n]) * 1e3:.1f}")
    rb, rc = st["berth-cri"], st["containerd"]
    print(f"  berth-cri / containerd: median {rb[0] / rc[0]:.2f}x, p95 {rb[1] / rc[1]:.2f}x")
    print(f"\nmemory with K={K} pods running (KiB; per pod = total / K)")
    per = {}
    for n in daemons:
        m = mem[n]
        drss, dpss = m["busy"][0] - m["idle"][0], m["busy"][1] - m["idle"][1]
        print(f"  {n}: daemon idle RSS {m['idle'][0]} PSS {m['idle'][1]}; with {K} pods RSS {m['busy'][0]} PSS {m['busy'][1]}"
              f" -> growth per pod RSS {drss / K:.0f} PSS {dpss / K:.0f}")
        prss, ppss = drss, dpss
        for kind, (cnt, rss, pss) in sorted(m["kinds"].items()):
            print(f"    {kind:26} x{cnt:<3} RSS {rss:7} PSS {pss:7}   per pod RSS {rss / K:6.0f} PSS {pss / K:6.0f}")
            if kind != "container (not counted)":
                prss += rss
                ppss += pss
        per[n] = (prss / K, ppss / K)
        print(f"    per pod, daemon growth + processes: RSS {prss / K:.0f} KiB, PSS {ppss / K:.0f} KiB")
    pb_, pc = per["berth-cri"], per["containerd"]
    print(f"  berth-cri / containerd per pod: RSS {pb_[0] / pc[0]:.2f}x, PSS {pb_[1] / pc[1]:.2f}x")
    if stream:
        print(f"\nstreaming (crictl for both; exec includes crictl's own start): {EXECS} execs of `true`, "
              f"3 x {PF_MB} MiB through port-forward")
        for n in daemons:
            med, p95 = stats(stream[n]["exec"])
            print(f"  {n:11} exec round trip median {med * 1e3:7.1f} ms p95 {p95 * 1e3:7.1f} ms;"
                  f" port-forward {statistics.median(stream[n]['pf_mib_s']):7.1f} MiB/s (median of 3)")
        eb, ec = stats(stream["berth-cri"]["exec"])[0], stats(stream["containerd"]["exec"])[0]
        fb, fc = statistics.median(stream["berth-cri"]["pf_mib_s"]), statistics.median(stream["containerd"]["pf_mib_s"])
        print(f"  berth-cri / containerd: exec median {eb / ec:.2f}x (time), port-forward {fb / fc:.2f}x (throughput)")
    if OUT:
        json.dump({"stream": stream, "times": times, "teardown": teardown, "memory": mem, "versions": versions, "K": K,
                   "load": [load_after]}, open(OUT, "w"), indent=1)
except grpc.RpcError as e:
    log(f"RPC failed: {e.code()} {e.details()}")
    for n, d in [("berth-cri", "berth"), ("containerd", "ctd")]:
        try:
            log(f"--- {n} log tail:\n" + open(os.path.join(work, d, "daemon.log")).read()[-3000:])
        except OSError:
            pass
    sys.exit(1)
finally:
    cleanup()
