//! Containers: the OCI runtime spec built from a CRI `CreateContainerRequest` ([`spec`]).

pub mod spec;
