//! Containers: the record (`record.rs`), berth's default AppArmor profile (`apparmor.rs`), the OCI spec built from the CRI config (`spec/`),
//! the container monitor (`monitor.rs`), the runtime CLI (`runtime.rs`), what that runtime can do (`features.rs`) and the
//! checkpoint archive (`checkpoint.rs`).

pub mod apparmor;
pub mod checkpoint;
pub mod features;
#[allow(unsafe_code)] // socketpair/pipe2/poll/recv/connect and the monitor's pre_exec
pub mod monitor;
pub mod record;
pub mod runtime;
pub mod spec;
