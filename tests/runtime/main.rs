//! Integration tests of the `berth` OCI runtime, run through the binary as a user would.
