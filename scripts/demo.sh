#!/usr/bin/env bash
# The main job on an embedded default: build berth, make a busybox bundle from Debian's
# busybox-static (no network), and run a container that prints something.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static
fi
cargo build --release -p berth-runtime
berth=$PWD/target/release/berth
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
root=$work/state
id=berth-demo-$$
cleanup() { "$berth" --root "$root" delete --force "$id" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/bundle/rootfs"/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for applet in sh echo cat hostname id uname; do ln -s busybox "$work/bundle/rootfs/bin/$applet"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/bundle/rootfs/etc/passwd"
( cd "$work/bundle" && "$berth" spec )
# Not a terminal, and a friendly command instead of the interactive default shell.
sed -i -e 's/"terminal": true/"terminal": false/' \
       -e 's/"sh"$/"sh", "-c", "echo Hello from a berth container: hostname=$(hostname), pid=$$, uid=$(id -u), kernel=$(uname -r)"/' \
       "$work/bundle/config.json"
"$berth" --root "$root" run --bundle "$work/bundle" "$id"
