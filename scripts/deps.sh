#!/usr/bin/env bash
# Installs every Debian package berth's build, demo, tests and benchmarks need (idempotent).
set -euo pipefail
pkgs=(
  # build
  build-essential pkg-config protobuf-compiler
  # demo bundles and runtime peers
  busybox-static runc crun
  # AppArmor profiles for the VM bed's enforcement test (apparmor_parser)
  apparmor
  # VM test bed (pure cgroup v2 guest)
  qemu-system-x86 cpio
  # checkpoint/restore (berth checkpoint/restore, CRI CheckpointContainer)
  criu
  # registry and image tooling for the CRI/image tests
  docker-registry skopeo umoci containerd apache2-utils zstd
  # real clients driving the runtime under test (tests/runtime/podman.rs, containerd.rs);
  # golang-github-containers-common ships podman's default seccomp.json
  podman conmon golang-github-containers-common
  # streaming tests: HTTPS certificate, a TLS client, a pty for crictl exec -it
  openssl curl util-linux
  # benchmarks
  hyperfine jq
  # podman's default seccomp profile (/usr/share/containers/seccomp.json) for the seccomp
  # tests and benchmarks
  golang-github-containers-common
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
fi
