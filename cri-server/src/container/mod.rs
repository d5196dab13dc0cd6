//! Containers: the record (`record.rs`), berth's default AppArmor profile (`apparmor.rs`), the OCI spec built from the CRI config (`spec/`),
//! the container monitor (`monitor.rs`) and the runtime CLI (`runtime.rs`).

pub mod apparmor;
pub mod monitor;
pub mod record;
pub mod runtime;
pub mod spec;
