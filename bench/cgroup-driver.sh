#!/bin/bash
# Cost of the systemd cgroup driver on the create path: N sequential `run` of a busybox
# `/bin/true` container (create + start + wait + delete in one command) per runtime and
# cgroup driver. Needs a pure cgroup v2 host with systemd as PID 1, i.e. the VM bed:
#
#   tests/vm/run --systemd -- bench/cgroup-driver.sh [N]     (default N=20)
#   BERTH=/path/to/berth RUNC=/usr/bin/runc ...
#
# Prints the median and p95 of one `run` per (runtime, driver). Under TCG every figure is
# many times a real machine's; compare the rows with each other, not with bench/lifecycle.sh.
set -eu
n=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
berth=${BERTH:-$here/../target/release/berth}
runc=${RUNC:-/usr/bin/runc}
[ "$(cat /proc/1/comm)" = systemd ] || { echo "cgroup-driver.sh: needs systemd as PID 1 (tests/vm/run --systemd)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
b=$work/bundle
mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys"
cp /bin/busybox "$b/rootfs/bin/busybox"
ln -s busybox "$b/rootfs/bin/true"
(cd "$b" && "$berth" spec)
# No terminal, /bin/true, the default namespaces; the driver decides the cgroup.
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"sh"/"\/bin\/true"/' "$b/config.json"
cp "$b/config.json" "$b/config.cgroupfs.json"

loop() { # runtime driver
  local rt=$1 drv=$2 flag=() i t0 t1
  [ "$drv" = systemd ] && flag=(--systemd-cgroup)
  local root=$work/root-$(basename "$rt")
  mkdir -p "$root"
  if [ "$drv" = systemd ]; then
    sed 's|"linux": {|"linux": {"cgroupsPath": "bench.slice:bench:CID",|' "$b/config.cgroupfs.json" > "$b/config.tmpl"
  else
    sed 's|"linux": {|"linux": {"cgroupsPath": "/bench/CID",|' "$b/config.cgroupfs.json" > "$b/config.tmpl"
  fi
  for ((i = -3; i < n; i++)); do
    local id="b$$-$i-$drv"
    sed "s/CID/$id/" "$b/config.tmpl" > "$b/config.json"
    t0=$EPOCHREALTIME
    "$rt" "${flag[@]}" --root "$root" run --bundle "$b" "$id" </dev/null >/dev/null 2>"$work/err" ||
      { echo "$rt $drv run failed: $(cat "$work/err")" >&2; exit 1; }
    t1=$EPOCHREALTIME
    [ $i -ge 0 ] && echo $(( (${t1/./} - ${t0/./}) / 1000 ))
  done | sort -n > "$work/t"
  awk -v rt="$(basename "$rt")" -v d="$drv" '{a[NR]=$1} END {printf "%-6s %-9s median %5d ms  p95 %5d ms  (n=%d)\n", rt, d, a[int((NR+1)/2)], a[int(NR*0.95+0.999)], NR}' "$work/t"
}
for rt in "$berth" "$runc"; do
  loop "$rt" cgroupfs
  loop "$rt" systemd
done
systemctl stop bench.slice 2>/dev/null || true
rmdir /sys/fs/cgroup/bench 2>/dev/null || true
