//! Policy: authentication, CONNECT rewrite, destination ACLs. Pure functions, no sockets.

mod rewrite;

pub use rewrite::{rewrite_connect, UpstreamIdentity};
