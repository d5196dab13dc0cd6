#!/usr/bin/env bash
# Every test suite, against one release build: unit tests, the integration suites on this
# host (berth, then the runtime suite with Debian's runc swapped in), and the suites that
# need a pure cgroup v2 kernel inside the VM test bed.
# A failing suite does not stop the run: every suite runs, each one's result is printed in
# a summary at the end, and the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh || exit 1
export CARGO_TERM_COLOR=never

results=()
failed=0
# suite NAME CMD...: run one suite, record its result and time.
suite() {
  local name=$1 t0=$SECONDS rc
  shift
  echo "== $name"
  "$@"
  rc=$?
  if [ "$rc" -eq 0 ]; then
    results+=("PASS  $name ($((SECONDS - t0)) s)")
  else
    results+=("FAIL  $name (exit $rc, $((SECONDS - t0)) s)")
    failed=1
  fi
}

# Formatting first: it fails in seconds, before the build.
suite "rustfmt (cargo fmt --check)" cargo fmt --all -- --check
# The build is every suite's input: without it nothing else can run.
suite "build (release, all targets)" cargo build --release --workspace --all-targets
if [ "$failed" -ne 0 ] && ! [ -x target/release/berth-cri ]; then
  printf '%s\n' "${results[@]}"
  exit 1
fi

# Lints: clippy with every warning an error (a lint the project disagrees with is allowed once,
# at its crate root, with the reason). Its own target dir: clippy's check build would otherwise
# evict nothing but share no work with the release build either.
suite "clippy (-D warnings)" env CARGO_TARGET_DIR=target/clippy cargo clippy --workspace --all-targets -- -D warnings

suite "unit and integration tests (berth)" cargo test --release --workspace --no-fail-fast

# --workspace keeps the feature set of the build above, so nothing is rebuilt.
suite "runtime and monitor suites with runc swapped in" \
  env BERTH_RUNTIME=runc cargo test --release --workspace --test runtime --test monitor --no-fail-fast
# The RuntimeService tests with runc as berth-cri's handler.
suite "CRI RuntimeService tests with runc as the handler" \
  env BERTH_RUNTIME=runc cargo test --release --workspace --test cri --no-fail-fast -- \
  pods crictl stats crash events load streaming rro supplemental_groups image_ids userns escape

suite "monitor suite with Debian's conmon swapped in" \
  env BERTH_MONITOR=conmon cargo test --release --workspace --test monitor --no-fail-fast

# critest is not shipped (built from cri-tools, see docs/TESTBED.md): it skips with one line
# unless CRITEST or PATH has it.
suite "critest 1.36 against berth-cri (offline)" scripts/critest.sh

if [ -x tests/vm/selftest ]; then
  suite "VM test bed self-test" tests/vm/selftest
fi
if [ -x tests/vm/suite ]; then
  suite "cgroup v2 suites in the VM" tests/vm/suite
  # The same checks against Debian's runc (differences are explained where a test allows them).
  suite "cgroup v2 suites in the VM with runc swapped in" env BERTH_RUNTIME=runc tests/vm/suite
  # One systemd guest per runtime: only the systemd_* tests (tests/vm/suite --systemd).
  suite "systemd cgroup driver suites in a systemd VM (berth)" tests/vm/suite --systemd
  suite "systemd cgroup driver suites in a systemd VM (runc)" env BERTH_RUNTIME=runc tests/vm/suite --systemd
fi

echo "== summary"
printf '%s\n' "${results[@]}"
exit "$failed"
