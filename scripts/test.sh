#!/usr/bin/env bash
# Every test suite, against one release build: unit tests, the integration suites on this
# host (berth, then the runtime suite with Debian's runc swapped in), and the suites that
# need a pure cgroup v2 kernel inside the VM test bed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export CARGO_TERM_COLOR=never
cargo build --release --workspace --all-targets

echo "== unit and integration tests (berth)"
cargo test --release --workspace --no-fail-fast

echo "== runtime and monitor suites with runc swapped in"
# --workspace keeps the feature set of the build above, so nothing is rebuilt.
BERTH_RUNTIME=runc cargo test --release --workspace --test runtime --test monitor --no-fail-fast
# The RuntimeService tests with runc as berth-cri's handler.
BERTH_RUNTIME=runc cargo test --release --workspace --test cri --no-fail-fast -- pods crictl stats crash events load streaming rro supplemental_groups image_ids userns

echo "== monitor suite with Debian's conmon swapped in (berth-mon's tests check conmon's behaviour)"
BERTH_MONITOR=conmon cargo test --release --workspace --test monitor --no-fail-fast

echo "== critest 1.36 against berth-cri (the shared kit, offline)"
scripts/critest.sh

if [ -x tests/vm/selftest ]; then
  echo "== VM test bed self-test"
  tests/vm/selftest
fi
if [ -x tests/vm/suite ]; then
  echo "== cgroup v2 suites in the VM"
  tests/vm/suite
  echo "== cgroup v2 suites in the VM with runc swapped in"
  # The same checks against Debian's runc (differences are explained where a test allows them).
  BERTH_RUNTIME=runc tests/vm/suite
  echo "== systemd cgroup driver suites in a systemd VM (berth, then runc)"
  # One systemd guest per runtime: only the systemd_* tests (tests/vm/suite --systemd).
  tests/vm/suite --systemd
  BERTH_RUNTIME=runc tests/vm/suite --systemd
fi
