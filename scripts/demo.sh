#!/usr/bin/env bash
# The main job on an embedded default: build berth, berth-mon and berth-cri; start berth-cri
# on its built-in defaults with its own state root, image root and socket in a temp dir (no
# network, no /etc/berth needed); import a busybox image built here from Debian's
# busybox-static; `berth-cri play` a Pod manifest whose container prints to its log; show
# that log; clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static
fi
command -v protoc >/dev/null || scripts/deps.sh >/dev/null
# The same build as `make test` (one feature set), so running both builds once.
cargo build --release --workspace --all-targets
bin=$PWD/target/release
# The default config finds the runtime (`berth`) and the monitor (`berth-mon`) on PATH.
export PATH="$bin:$PATH"
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
daemon=
cleanup() {
  # The script's own status is kept: nothing here may turn a passing demo into a failure
  # (under `set -e`, a pipeline that finds nothing would end the trap with status 1).
  local rc=$?
  set +e
  if [ -n "$daemon" ]; then kill -TERM "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; fi
  # Anything a failed run left mounted under the demo's dirs.
  grep -o " $work[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
flags=(--config "$work/berth.conf" --config-dir "$work/conf.d" --socket "$work/berth.sock"
       --state-root "$work/state" --image-root "$work/images")
mkdir -p "$work/conf.d" && : > "$work/berth.conf"

# A one-layer busybox image as a docker-archive.
img=$work/img && mkdir -p "$img/rootfs"/{bin,etc,tmp,proc,sys,dev} "$img/archive/l0"
cp /bin/busybox "$img/rootfs/bin/busybox"
for a in sh echo cat hostname id uname sleep date seq; do ln -s busybox "$img/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$img/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$img/rootfs/etc/group"
tar -C "$img/rootfs" -cf "$img/archive/l0/layer.tar" .
diff_id=sha256:$(sha256sum "$img/archive/l0/layer.tar" | cut -d' ' -f1)
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"],"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' "$diff_id" > "$img/archive/config.json"
printf '[{"Config":"config.json","RepoTags":["localhost/demo/busybox:latest"],"Layers":["l0/layer.tar"]}]' > "$img/archive/manifest.json"
tar -C "$img/archive" -cf "$work/busybox.tar" .
berth-cri "${flags[@]}" image import "$work/busybox.tar" >/dev/null

berth-cri "${flags[@]}" --log-level warn &
daemon=$!
for _ in $(seq 200); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done
[ -S "$work/berth.sock" ] || { echo "berth-cri did not start" >&2; exit 1; }

cat > "$work/hello.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  hostNetwork: true
  restartPolicy: Never
  containers:
  - name: greeter
    image: localhost/demo/busybox:latest
    command: ["sh", "-c"]
    args: ["for i in 1 2 3; do echo \"Hello from a berth pod: hostname=$(hostname) uid=$(id -u) line $i\"; done"]
YAML
echo "== berth-cri play hello.yaml --rm"
berth-cri "${flags[@]}" play --rm --log-root "$work/logs" "$work/hello.yaml"
echo "== the container's CRI log (what kubelet reads)"
cat "$work"/logs/default_hello_*/greeter/0.log
