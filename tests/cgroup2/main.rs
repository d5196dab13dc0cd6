//! Tests that need a pure cgroup v2 host: they run inside the VM test bed (tests/vm) and skip elsewhere.
