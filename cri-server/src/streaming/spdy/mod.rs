//! SPDY/3.1, as much as Kubernetes' streaming uses: frames, header compression, and the
//! server side of a session.

pub mod conn;
pub mod frame;
pub mod headers;
