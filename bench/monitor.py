#!/usr/bin/env python3
"""Container monitor benchmark: berth-mon against Debian's conmon, same runtime, same run.

    bench/monitor.py [N]        (default N=30; root needed)
    BERTH=... BERTH_MON=... CONMON=... bench/monitor.py 50

For each monitor, N times: start the monitor as podman does (socketpairs in _OCI_SYNCPIPE /
_OCI_STARTPIPE, a k8s-file log, exit and persist dirs), time until it reports the container's
pid (the runtime's create, through the monitor), start the container and time until it runs,
then measure the idle monitor's memory from /proc/PID/smaps_rollup: RSS, and USS
(Private_Clean + Private_Dirty: what this one monitor costs the node). A baseline times the
runtime's own create + start without a monitor. Prints medians and berth-mon's ratios to conmon.
"""
import json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
N = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("N", "30"))
BERTH = os.environ.get("BERTH", os.path.join(here, "../target/release/berth"))
MONITORS = [("berth-mon", os.environ.get("BERTH_MON", os.path.join(here, "../target/release/berth-mon"))),
            ("conmon", os.environ.get("CONMON", "/usr/bin/conmon"))]
if os.getuid() != 0:
    sys.exit("needs root")

# SIGTERM/SIGINT (a timeout, Ctrl-C) end the run through the `finally` below, which deletes
# every container it made.
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: sys.exit(1))

work = tempfile.mkdtemp(prefix="bt-monbench.")
root = os.path.join(work, "root")
bundle = os.path.join(work, "bundle")
os.makedirs(os.path.join(bundle, "rootfs", "bin"))
for d in ["proc", "dev", "sys", "tmp"]:
    os.makedirs(os.path.join(bundle, "rootfs", d))
shutil.copy("/bin/busybox", os.path.join(bundle, "rootfs/bin/busybox"))
os.symlink("busybox", os.path.join(bundle, "rootfs/bin/sleep"))
caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
config = {
    "ociVersion": "1.0.2",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["sleep", "1000"], "env": ["PATH=/bin"], "cwd": "/",
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}, "noNewPrivileges": True},
    "root": {"path": "rootfs", "readonly": True},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=65536k"]}],
    "linux": {"namespaces": [{"type": t} for t in ["pid", "network", "ipc", "uts", "mount"]]},
}
json.dump(config, open(os.path.join(bundle, "config.json"), "w"))


def rt(*args):
    return subprocess.run([BERTH, "--root", root, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)


def memory(pid):
    m = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            m[parts[0].rstrip(":")] = int(parts[1])
    return m["Rss"], m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)


def wait_gone(pid, limit=10.0):
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    import select
    select.select([fd], [], [], limit)
    os.close(fd)


def one(name, mon, i):
    cid = f"mb-{os.getpid()}-{name}-{i}"
    d = os.path.join(work, cid)
    for s in ["exits", "persist", "sockets"]:
        os.makedirs(os.path.join(d, s))
    sync_p, sync_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    start_p, start_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    args = [mon, "--api-version", "1", "-c", cid, "-u", cid, "-r", BERTH, "-b", bundle, "-p", f"{d}/pidfile",
            "-P", f"{d}/mon.pid", "-l", f"k8s-file:{d}/ctr.log", "--exit-dir", f"{d}/exits", "--persist-dir",
            f"{d}/persist", "--socket-dir-path", f"{d}/sockets", "--full-attach", "--log-level", "error",
            "--runtime-arg", "--root", "--runtime-arg", root]
    env = dict(os.environ, _OCI_SYNCPIPE=str(sync_c.fileno()), _OCI_STARTPIPE=str(start_c.fileno()))
    start_p.send(b"0")
    t0 = time.perf_counter()
    subprocess.run(args, env=env, pass_fds=(sync_c.fileno(), start_c.fileno()), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d)
    sync_c.close(); start_c.close()
    msg = json.loads(sync_p.recv(4096))
    t1 = time.perf_counter()
    if msg.get("data", -1) <= 0:
        sys.exit(f"{name}: create failed: {msg}")
    r = rt("start", cid)
    t2 = time.perf_counter()
    if r.returncode != 0:
        sys.exit(f"start failed: {r.stderr}")
    mpid = int(open(f"{d}/mon.pid").read())
    time.sleep(0.2)  # idle: nothing to relay
    rss, uss = memory(mpid)
    rt("delete", "--force", cid)
    wait_gone(mpid)
    shutil.rmtree(d, ignore_errors=True)
    return t1 - t0, t2 - t0, rss, uss


def baseline(i):
    cid = f"mb-{os.getpid()}-bare-{i}"
    t0 = time.perf_counter()
    # The container inherits the runtime's stdio: not pipes we would wait on.
    r = subprocess.run([BERTH, "--root", root, "create", "--bundle", bundle, cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if r.returncode != 0:
        sys.exit("create failed")
    rt("start", cid)
    t1 = time.perf_counter()
    rt("delete", "--force", cid)
    return t1 - t0


try:
    results = {}
    for name, mon in MONITORS:
        one(name, mon, -1)  # warm-up
    base = statistics.median(baseline(i) for i in range(N))
    for i in range(N):  # interleaved, so both see the same machine
        for name, mon in MONITORS:
            results.setdefault(name, []).append(one(name, mon, i))
    med = {n: [statistics.median(v[k] for v in r) for k in range(4)] for n, r in results.items()}
    print(f"monitor benchmark: N={N}, runtime {BERTH}")
    print(f"  runtime alone, create+start: {base * 1000:.1f} ms")
    for n, (c, s, rss, uss) in med.items():
        print(f"  {n:10} create via monitor {c * 1000:6.1f} ms   create-to-running {s * 1000:6.1f} ms   idle RSS {rss} KiB   USS {uss} KiB")
    b, c = med["berth-mon"], med["conmon"]
    print(f"  berth-mon / conmon: create {b[0] / c[0]:.2f}x  create-to-running {b[1] / c[1]:.2f}x  RSS {b[2] / c[2]:.2f}x  USS {b[3] / c[3]:.2f}x")
finally:
    for line in rt("list", "-q").stdout.split():
        rt("delete", "--force", line)
    shutil.rmtree(work, ignore_errors=True)
