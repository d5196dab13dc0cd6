#!/bin/bash
# Container lifecycle benchmark: N sequential create + start + wait + delete of a busybox
# `/bin/true` container, as a shim would drive it (separate commands; "wait" polls /proc/<pid>
# of the init from --pid-file until it is gone or a zombie), for berth, runc and crun.
#
#   bench/lifecycle.sh [N]          (default N=100; root needed)
#   BERTH=/path/to/berth RUNC=... CRUN=... bench/lifecycle.sh 50
#   SECCOMP=default bench/lifecycle.sh   (every bundle gets podman's/Docker's default seccomp
#                                         profile, converted by bench/oci-seccomp.jq)
#
# Prints per runtime the median and p95 wall time of one lifecycle and berth's ratio to the
# others. Debian's crun 1.8 refuses hybrid cgroup hosts ("cgroups in hybrid mode not
# supported"), so crun's loop runs in a private mount namespace where /sys/fs/cgroup/unified
# is unmounted (only in that namespace; the host's mounts are never changed).
set -u

here=$(cd "$(dirname "$0")" && pwd)
self="$here/$(basename "$0")"

# --loop RUNTIME ROOT BUNDLE N OUT WARMUP: the timed loop, appending one line (microseconds)
# per lifecycle to OUT after WARMUP unrecorded rounds (also re-entered inside crun's namespace).
if [ "${1:-}" = "--loop" ]; then
    rt=$2 root=$3 bundle=$4 n=$5 out=$6 warm=$7
    pidf="$root.pid"
    for ((i = -warm; i < n; i++)); do
        id="bench-$$-$RANDOM-$i"
        t0=$EPOCHREALTIME
        "$rt" --root "$root" create --bundle "$bundle" --pid-file "$pidf" "$id" </dev/null >/dev/null 2>"$root.err" ||
            { echo "$rt create failed: $(cat "$root.err")" >&2; exit 1; }
        read -r pid < "$pidf"
        "$rt" --root "$root" start "$id" </dev/null >/dev/null 2>"$root.err" ||
            { echo "$rt start failed: $(cat "$root.err")" >&2; exit 1; }
        while [ -d "/proc/$pid" ]; do
            st=$(< "/proc/$pid/stat") 2>/dev/null || break
            st=${st##*) }
            [ "${st:0:1}" = Z ] && break
        done
        "$rt" --root "$root" delete "$id" </dev/null >/dev/null 2>"$root.err" ||
            { echo "$rt delete failed: $(cat "$root.err")" >&2; exit 1; }
        t1=$EPOCHREALTIME
        if ((i >= 0)); then
            echo $(( (${t1/./} - ${t0/./}) )) >> "$out"   # microseconds
        fi
    done
    exit 0
fi

N=${1:-${N:-100}}
BERTH=${BERTH:-$here/../target/release/berth}
RUNC=${RUNC:-/usr/bin/runc}
CRUN=${CRUN:-/usr/bin/crun}
# BERTH_BASE=<an older berth binary>: measured in the same run as "base" (before/after a change).
BASE=${BERTH_BASE:-}
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }

work=$(mktemp -d /tmp/bt-bench.XXXXXX)
cleanup() {
    for rt in "$BERTH" "$RUNC" "$CRUN" ${BASE:+"$BASE"}; do
        for root in "$work"/root-*; do
            [ -d "$root" ] || continue
            for id in $("$rt" --root "$root" list -q 2>/dev/null); do
                "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1
            done
        done
    done
    rm -rf "$work"
}
trap cleanup EXIT

bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/dev" "$bundle/rootfs/sys" "$bundle/rootfs/tmp"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
ln -s busybox "$bundle/rootfs/bin/true"
ln -s busybox "$bundle/rootfs/bin/sh"
cat > "$bundle/config.json" <<'JSON'
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["/bin/true"],
    "env": ["PATH=/bin"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "bench",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
    "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
    "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
  }
}
JSON

# SECCOMP=default: the default profile (as podman would put it in config.json) in the bundle.
if [ -n "${SECCOMP:-}" ]; then
    [ "$SECCOMP" = default ] || { echo "SECCOMP: only 'default' is known" >&2; exit 1; }
    prof=${PROFILE:-/usr/share/containers/seccomp.json}
    caps='["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"]'
    jq --argjson caps "$caps" -f "$here/oci-seccomp.jq" "$prof" > "$work/seccomp.json" &&
        jq --slurpfile s "$work/seccomp.json" '.linux.seccomp = $s[0]' "$bundle/config.json" > "$work/config.json" &&
        mv "$work/config.json" "$bundle/config.json" || { echo "cannot add the seccomp profile ($prof, jq)" >&2; exit 1; }
    echo "seccomp: default profile in every bundle ($(jq '.linux.seccomp.syscalls | length' "$bundle/config.json") rules)"
fi

# stats FILE → "median p95" in ms
stats() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        m = int((NR + 1) / 2); p = int(NR * 0.95 + 0.999999); if (p < 1) p = 1;
        printf "%.2f %.2f\n", v[m] / 1000, v[p] / 1000 }'
}

# The runtimes take turns in blocks of BLOCK lifecycles, so that a change in machine load
# (other jobs) hits all of them alike.
BLOCK=${BLOCK:-10}
declare -A MED P95 FAILED
names=()
for name in berth runc crun ${BASE:+base}; do
    case $name in berth) rt=$BERTH ;; runc) rt=$RUNC ;; crun) rt=$CRUN ;; base) rt=$BASE ;; esac
    if [ ! -x "$rt" ]; then
        echo "$name: not built ($rt missing)"
        continue
    fi
    names+=("$name")
    mkdir -p "$work/root-$name"
    : > "$work/times-$name"
done

loop() { # NAME COUNT WARMUP
    local name=$1 rt root=$work/root-$1 out=$work/times-$1
    case $name in berth) rt=$BERTH ;; runc) rt=$RUNC ;; crun) rt=$CRUN ;; base) rt=$BASE ;; esac
    if [ $name = crun ] && grep -q ' /sys/fs/cgroup/unified ' /proc/self/mountinfo; then
        unshare -m --propagation private bash -c 'umount /sys/fs/cgroup/unified && exec "$@"' _ \
            "$self" --loop "$rt" "$root" "$bundle" "$2" "$out" "$3"
    else
        "$self" --loop "$rt" "$root" "$bundle" "$2" "$out" "$3"
    fi
}

done_n=0
while ((done_n < N)); do
    k=$((N - done_n < BLOCK ? N - done_n : BLOCK))
    for name in "${names[@]}"; do
        [ -n "${FAILED[$name]:-}" ] && continue
        loop "$name" "$k" $((done_n == 0 ? 5 : 0)) || FAILED[$name]=1
    done
    done_n=$((done_n + k))
done

printf '%-6s %5s %10s %10s\n' runtime n median_ms p95_ms
for name in "${names[@]}"; do
    out=$work/times-$name
    if [ -n "${FAILED[$name]:-}" ]; then
        echo "$name: failed"
        continue
    fi
    read -r med p95 < <(stats "$out")
    MED[$name]=$med P95[$name]=$p95
    printf '%-6s %5s %10s %10s\n' "$name" "$(wc -l < "$out")" "$med" "$p95"
done

if [ -n "${MED[berth]:-}" ]; then
    for other in runc crun base; do
        [ -n "${MED[$other]:-}" ] || continue
        awk -v a="${MED[berth]}" -v b="${MED[$other]}" -v pa="${P95[berth]}" -v pb="${P95[$other]}" -v o="$other" \
            'BEGIN { printf "berth/%s: median %.2fx, p95 %.2fx\n", o, a / b, pa / pb }'
    done
    if [ -n "${MED[runc]:-}" ]; then
        awk -v a="${MED[berth]}" -v b="${MED[runc]}" \
            'BEGIN { r = a / b; printf "target berth <= 0.60x runc (median): %s (%.2fx)\n", r <= 0.6 ? "met" : "NOT met", r }'
    fi
fi
