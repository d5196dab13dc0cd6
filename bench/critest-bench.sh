#!/usr/bin/env bash
# critest 1.36's own benchmarks (`critest -benchmark`: pod, container, image-pull and
# image-listing lifecycles, one operation at a time) against berth-cri and Debian's containerd
# 1.6 (CRI plugin, runc) in one run, each set up by scripts/critest.sh exactly as for the
# validation suite (same bridge and CNI config, same local registry with the kit's images).
#
#   bench/critest-bench.sh            N=30 pods and containers, IMAGES=10 pulls, ROUNDS=2
#   N=50 IMAGES=20 ROUNDS=3 bench/critest-bench.sh
#
# The daemons take turns (berth-cri, containerd, berth-cri, ...), ROUNDS each; per operation
# the median of all samples of a daemon and berth-cri's ratio to containerd's are printed.
# Needs root, critest (CRITEST or PATH; see docs/TESTBED.md) and the shared image builder.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-30} IMAGES=${IMAGES:-10} ROUNDS=${ROUNDS:-2}
out=$(mktemp -d /tmp/bt-critest-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
image=public.ecr.aws/docker/library/busybox:1.35.0-glibc
cat > "$out/params.yaml" <<YAML
containersNumber: $N
containersNumberParallel: 1
containerBenchmarkTimeoutSeconds: 60
podsNumber: $N
podsNumberParallel: 1
podBenchmarkTimeoutSeconds: 60
imagesNumber: $IMAGES
imagesNumberParallel: 1
imageBenchmarkTimeoutSeconds: 120
imagePullingBenchmarkImage: "$image"
podContainerStartBenchmarkTimeoutSeconds: 60
imageListingBenchmarkImages:
  - "$image"
YAML
for r in $(seq "$ROUNDS"); do
  for d in berth-cri containerd; do
    mkdir -p "$out/$d/$r"
    echo "== round $r: $d" >&2
    CI=true CRITEST_DAEMON=$d CRITEST_ARGS="-benchmark -benchmarking-params-file $out/params.yaml -benchmarking-output-dir $out/$d/$r" \
      scripts/critest.sh > "$out/$d/$r.log" 2>&1 || { cat "$out/$d/$r.log"; exit 1; }
  done
done
echo "berth-cri: $(git rev-parse --short HEAD) (target/release); containerd: $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}')"
echo "samples per daemon: $((N * ROUNDS)) pods and containers, $((IMAGES * ROUNDS)) image pulls; $(date -u +%FT%TZ)"
python3 - "$out" "$ROUNDS" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def samples(daemon, f):
    ops, per = None, {}
    for r in range(1, rounds + 1):
        p = os.path.join(out, daemon, str(r), f)
        d = json.load(open(p))
        ops = d["operationsNames"]
        for dp in d["datapoints"]:
            for name, ns in zip(ops, dp["operationsDurationsNs"]):
                per.setdefault(name, []).append(ns / 1e6)
    return ops or [], per
print(f"{'benchmark':<18} {'operation':<18} {'berth-cri ms':>13} {'containerd ms':>14} {'ratio':>7}")
for f in sorted(os.listdir(os.path.join(out, "berth-cri", "1"))):
    ops, b = samples("berth-cri", f)
    _, c = samples("containerd", f)
    for op in ops:
        if op in b and op in c:
            mb, mc = statistics.median(b[op]), statistics.median(c[op])
            ratio = f"{mb / mc:.2f}x" if mc > 0 else "-"
            print(f"{f.replace('_benchmark_data.json', ''):<18} {op:<18} {mb:>13.2f} {mc:>14.2f} {ratio:>7}")
PY
