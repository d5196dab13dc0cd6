#!/bin/bash
# Seccomp filter overhead: a syscall-heavy loop (M getppid, default 10 M, a static C program
# built here with gcc) in a container with podman's/Docker's default profile
# (/usr/share/containers/seccomp.json, converted as podman does by bench/oci-seccomp.jq) and
# without a profile, for berth (its own BPF compiler) and runc (libseccomp), in one run.
#
#   bench/seccomp.sh [ROUNDS]        (default 5 rounds of each combination; root needed)
#   M=20000000 BERTH=... RUNC=... bench/seccomp.sh
#
# The program times its own loop in CPU time (CLOCK_PROCESS_CPUTIME_ID: user + system, which
# includes running the filter), so container start-up and time spent descheduled on a busy
# machine are not counted.
# The four combinations take turns each round (load changes hit all alike); the script
# prints the median ns per getppid of each and the ratios: profile/none per runtime
# (the filter's cost) and berth/runc with the profile.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${1:-5}
M=${M:-10000000}
BERTH=${BERTH:-$here/../target/release/berth}
RUNC=${RUNC:-/usr/bin/runc}
PROFILE=${PROFILE:-/usr/share/containers/seccomp.json}
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
for t in gcc jq "$BERTH" "$RUNC" "$PROFILE"; do
    command -v "$t" >/dev/null || [ -e "$t" ] || { echo "missing $t (scripts/deps.sh; cargo build --release -p berth-runtime)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/bt-bench-seccomp.XXXXXX)
trap 'rm -rf "$work"' EXIT

cat > "$work/loop.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
    return 0;
}
C
gcc -static -O2 -o "$work/loop" "$work/loop.c"

caps='["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"]'
profile=$(jq -c --argjson caps "$caps" -f "$here/oci-seccomp.jq" "$PROFILE")
for kind in none default; do
    b=$work/bundle-$kind
    mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev"
    cp "$work/loop" "$b/rootfs/bin/loop"
    seccomp=null
    [ $kind = default ] && seccomp=$profile
    jq -n --argjson caps "$caps" --argjson seccomp "$seccomp" --arg m "$M" '{
        ociVersion: "1.0.2",
        process: {terminal: false, user: {uid: 0, gid: 0}, args: ["/bin/loop", $m], env: ["PATH=/bin"], cwd: "/",
                  capabilities: {bounding: $caps, effective: $caps, permitted: $caps}, noNewPrivileges: true},
        root: {path: "rootfs", readonly: true},
        mounts: [{destination: "/proc", type: "proc", source: "proc"}],
        linux: ({namespaces: [{type: "pid"}, {type: "mount"}, {type: "ipc"}, {type: "uts"}]}
                + (if $seccomp == null then {} else {seccomp: $seccomp} end))
    }' > "$b/config.json"
done

declare -A RT=([berth]=$BERTH [runc]=$RUNC)
for name in berth runc; do mkdir -p "$work/root-$name"; done
for ((r = 0; r < ROUNDS; r++)); do
    for name in berth runc; do
        for kind in none default; do
            out=$(cd "$work/bundle-$kind" && "${RT[$name]}" --root "$work/root-$name" run "bench-$$-$r" </dev/null 2>"$work/err") ||
                { echo "$name/$kind failed: $(cat "$work/err")" >&2; exit 1; }
            echo "$out" >> "$work/t-$name-$kind"
        done
    done
done

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '%-6s %-8s %8s  (CPU ns per getppid, median of %d rounds of %d)\n' runtime profile ns/call "$ROUNDS" "$M"
declare -A MED
for name in berth runc; do
    for kind in none default; do
        MED[$name-$kind]=$(median "$work/t-$name-$kind")
        printf '%-6s %-8s %8s\n' "$name" "$kind" "${MED[$name-$kind]}"
    done
done
awk -v bn="${MED[berth-none]}" -v bd="${MED[berth-default]}" -v rn="${MED[runc-none]}" -v rd="${MED[runc-default]}" 'BEGIN {
    printf "filter cost (default/none): berth %.2fx, runc %.2fx\n", bd / bn, rd / rn
    printf "with the default profile berth/runc: %.2fx; extra ns per syscall: berth %.1f, runc %.1f\n", bd / rd, bd - bn, rd - rn
}'
