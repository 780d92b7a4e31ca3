//! Shared broadcast subscriptions (opt-in with `fanout`).
//!
//! When several sessions subscribe to the same broadcast destination under the same broker
//! identity and vhost, the gateway holds ONE broker subscription for them, on one shared broker
//! connection per identity, and copies each MESSAGE to every member with `subscription` set to
//! the member's own id. The broker then does one delivery per message instead of one per page.
//!
//! | part | owns |
//! |---|---|
//! | [`rules`] | which SUBSCRIBE may be shared (pure) |
//! | [`hub`] | the shared subscriptions and their members; copying a MESSAGE to each |
//! | [`link`] | the shared broker connection's task |
//! | [`member`] | a session's side: its shared subscription ids and its bounded queue |
//!
//! Unlike the per-session path, where a slow page slows its own broker connection (and the
//! broker's flow control applies), a shared subscription cannot wait for its slowest member:
//! each member has a bounded queue (`fanout_queue` messages), and a member whose queue is full
//! is ended with `ERROR too slow: N messages behind`. The others never wait.

pub mod hub;
mod link;
pub mod member;
mod metrics;
pub mod rules;

pub use hub::{BrokerKey, FanoutHub};
pub use member::{Member, MemberEnd, MemberRx};
pub use rules::{is_broadcast, shareable};
