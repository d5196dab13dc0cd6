#!/usr/bin/env bash
# Benchmark: pull + unpack a ~100 MB, 4-layer image from a local docker-registry with
# berth-cri (`berth-cri image pull`, the same code path as CRI PullImage) and with Debian's
# containerd (`ctr images pull`, which also unpacks into its overlayfs snapshotter).
# Each run starts from an empty store. Prints per-run times, medians and the ratio.
#
# Usage: bench/image-pull.sh [RUNS]   (root; needs docker-registry skopeo containerd python3)
set -euo pipefail
RUNS=${1:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BERTH=${BERTH_CRI:-$HERE/target/release/berth-cri}
[ -x "$BERTH" ] || { echo "build first: cargo build --release -p berth-cri" >&2; exit 1; }
T=$(mktemp -d /tmp/berth-pull-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  umount -R "$T"/ctd-* 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

# 1. A ~100 MB image: 4 layers of ~25 MB, partly random (incompressible) and partly text,
#    so gzip ratio is realistic (~50%).
python3 - "$T/layout" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
os.makedirs(f"{out}/blobs/sha256")
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(data)
    return "sha256:" + d, len(data)
words = b"container runtime image layer overlay registry kubelet pod sandbox node ".split()
layers, diff_ids = [], []
for l in range(4):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for f in range(50):
            rnd = os.urandom(250_000)
            txt = b" ".join(words[b % len(words)] for b in os.urandom(40_000))
            data = rnd + txt[:250_000]
            ti = tarfile.TarInfo(f"layer{l}/dir{f % 5}/file{f}.bin"); ti.size = len(data); ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    gz = gzip.compress(raw, compresslevel=6)
    d, n = blob(gz)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
cd, cn = blob(cfg)
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                  "layers": layers}).encode()
md, mn = blob(man)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]},
          open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
print("compressed MB:", round(sum(x["size"] for x in layers) / 1e6, 1))
PY

# 2. The registry.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
cat > "$T/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $T/registry
http:
  addr: $ADDR
YML
/usr/bin/docker-registry serve "$T/registry.yml" >"$T/registry.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do curl -fs "http://$ADDR/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
skopeo copy --quiet --dest-tls-verify=false "oci:$T/layout:v1" "docker://$ADDR/bench/img:v1"
IMAGE=$ADDR/bench/img:v1
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$ADDR" > "$T/registries.conf"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# 3. berth-cri.
berth_times=()
for i in $(seq "$RUNS"); do
  root=$T/berth-$i
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  s=$(now)
  "$BERTH" --config /dev/null --config-dir "$T/none" --image-root "$root" \
    --registries-conf "$T/registries.conf" --registries-conf-dir "$T/none" --log-level warn \
    image pull "$IMAGE" >/dev/null
  e=$(now)
  berth_times+=("$(echo "$e - $s" | bc)")
  [ "$(ls "$root/layers" | wc -l)" -eq 4 ] || { echo "berth did not unpack 4 layers" >&2; exit 1; }
  rm -rf "$root"
done

# 4. containerd (fresh root, state and socket per run; CRI plugin disabled).
ctd_times=()
for i in $(seq "$RUNS"); do
  d=$T/ctd-$i
  mkdir -p "$d"
  printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\naddress = "%s/sock"\n' "$d" "$d" "$d" > "$d/config.toml"
  containerd --config "$d/config.toml" >"$d/log" 2>&1 & cpid=$!
  for _ in $(seq 100); do ctr --address "$d/sock" version >/dev/null 2>&1 && break; sleep 0.1; done
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  s=$(now)
  ctr --address "$d/sock" images pull --plain-http "$IMAGE" >/dev/null
  e=$(now)
  ctd_times+=("$(echo "$e - $s" | bc)")
  n=$(ctr --address "$d/sock" snapshots ls | tail -n +2 | wc -l)
  [ "$n" -ge 4 ] || { echo "containerd did not unpack ($n snapshots)" >&2; exit 1; }
  kill "$cpid"; wait "$cpid" 2>/dev/null || true
  umount -R "$d/root" 2>/dev/null || true
  rm -rf "$d"
done

bm=$(printf '%s\n' "${berth_times[@]}" | median)
cm=$(printf '%s\n' "${ctd_times[@]}" | median)
echo "berth-cri pull+unpack (s): ${berth_times[*]}  median $bm"
echo "containerd ctr pull+unpack (s): ${ctd_times[*]}  median $cm"
echo "ratio berth/containerd: $(echo "scale=2; $bm / $cm" | bc)"
