//! Policy end to end (issue 3): a real [`stompgate::server::Gateway`] started in-process with a
//! policy file written at test time, real WebSocket clients, and the real RabbitMQ of
//! `scripts/setup-rabbitmq.sh` (users `svc-a`/`svc-b` on vhosts `tenant-a`/`tenant-b`). Where
//! only the exact bytes a broker received can prove a point (attacks on the CONNECT rewrite),
//! an in-process fake broker records them. Loopback only; every wait is bounded.
//!
//! | module | shows |
//! |---|---|
//! | `auth` | every backend accepts the right credentials and refuses the wrong ones |
//! | `tenants` | two users land in two vhosts and see only their own messages |
//! | `attacks` | smuggling, repetition and ordering tricks are refused; what the broker saw |
//! | `acl` | SEND/SUBSCRIBE rules as written, placeholders, receipts on refusals |
//! | `reload` | a broken file keeps the old policy; a good one takes effect; login limit |
//! | `origin` | the policy's origin allowlist on the upgrade and on SockJS |
//! | `secrets` | no secret used by any test here appears in the TRACE logs |

#[path = "../common/mod.rs"]
mod common;
#[path = "../policy_common/mod.rs"]
mod policy_common;

mod acl;
mod attacks;
mod auth;
mod origin;
mod reload;
mod secrets;
mod support;
mod tenants;
