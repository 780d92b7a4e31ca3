//! Policy: authentication, identity → broker mapping, CONNECT rewrite, destination ACLs.
//! Pure functions over frames and request metadata: no sockets, no tokio.
//!
//! The relay's use of it, per session:
//!
//! 1. `limiter.try_take(peer_ip, &claimed_user(..), now)?` ([`LoginLimiter`], kept by the
//!    server behind a mutex): the attempt is paid for before any credential is checked;
//! 2. `let policy = handle.current();` ([`PolicyHandle`]), then
//!    `policy.authenticate(&connect, &meta)` **off the async runtime**, under a small
//!    concurrency bound (argon2 is slow and memory-hungry on purpose); on `Ok`:
//!    `limiter.give_back(..)`; on `Err(e)`: `ERROR` with `message: e` and metric label
//!    `e.reason()`, close;
//! 3. `let up = policy.upstream_for(&identity, &connect)?; rewrite_connect(&mut connect, &up);`
//! 4. for every later client frame: `policy.check_frame(&identity, &frame)` (with the policy
//!    current at that time; the session keeps its `identity`). The relay, which refuses a
//!    repeated `destination` itself, looks the header up once (`Frame::first_header`) and
//!    calls `policy.check_destination(&identity, command, destination)`, the same check.
//!
//! File formats and semantics: `docs/policy.md`.

mod acl;
mod backend;
mod cli;
mod credentials;
mod error;
mod handle;
mod identity;
mod jwt;
mod limiter;
mod mapping;
#[allow(clippy::module_inception)]
mod policy;
mod rewrite;
mod schema;
mod sources;
mod template;
mod users;

pub use acl::glob_match;
pub use backend::{login_denied, Revoked};
pub use cli::{hash_password_cli, hash_password_io, HashPasswordArgs};
pub use credentials::claimed_user;
pub use error::{AuthError, Denied, DeniedKind, PolicyError};
pub use handle::PolicyHandle;
pub use identity::{AuthSource, Identity};
pub use limiter::{address_key, LimiterSettings, LoginLimiter, MAX_USER_KEY_BYTES};
pub use policy::Policy;
pub use rewrite::{rewrite_connect, UpstreamIdentity};
pub use sources::RequestCredentials;
pub use template::{parse as parse_template, Piece, Var};
pub use users::{hash_password, hash_password_with, test_params, MAX_PASSWORD_BYTES};
