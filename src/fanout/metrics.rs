//! The fan-out metric families, registered on the gateway's own registry.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tracing::debug;

/// Counters and gauges of shared subscriptions.
pub(super) struct FanoutMetrics {
    /// Members of shared subscriptions, all subscriptions together.
    pub members: IntGauge,
    /// Shared broker subscriptions held.
    pub subscriptions: IntGauge,
    /// Shared broker connections open.
    pub connections: IntGauge,
    /// Broker MESSAGEs received on shared subscriptions.
    pub messages: IntCounter,
    /// Copies queued to members (`copies / messages` = copies per message).
    pub copies: IntCounter,
    /// Members ended or copies dropped, by reason.
    pub ends: IntCounterVec,
}

impl FanoutMetrics {
    /// Creates the families and registers them on `registry` (a second hub on the same
    /// registry keeps its own, unexported, families).
    pub fn new(registry: &Registry) -> FanoutMetrics {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let m = FanoutMetrics {
            members: gauge(
                "stompgate_fanout_members",
                "Members of shared broadcast subscriptions (divide by stompgate_fanout_subscriptions for members per subscription)",
            ),
            subscriptions: gauge(
                "stompgate_fanout_subscriptions",
                "Shared broadcast subscriptions held at the broker",
            ),
            connections: gauge(
                "stompgate_fanout_broker_connections",
                "Shared broker connections open (one per broker identity and vhost)",
            ),
            messages: counter(
                "stompgate_fanout_messages_total",
                "Broker MESSAGE frames received on shared subscriptions",
            ),
            copies: counter(
                "stompgate_fanout_copies_total",
                "MESSAGE copies queued to members (divide by stompgate_fanout_messages_total for copies per message)",
            ),
            ends: IntCounterVec::new(
                Opts::new(
                    "stompgate_fanout_member_ends_total",
                    "Members ended by the fan-out, by reason (too_slow, broker_gone)",
                ),
                &["reason"],
            )
            .expect("valid metric"),
        };
        let families: [Box<dyn prometheus::core::Collector>; 6] = [
            Box::new(m.members.clone()),
            Box::new(m.subscriptions.clone()),
            Box::new(m.connections.clone()),
            Box::new(m.messages.clone()),
            Box::new(m.copies.clone()),
            Box::new(m.ends.clone()),
        ];
        for family in families {
            if let Err(e) = registry.register(family) {
                debug!(cause = %e, "fan-out metrics already registered");
            }
        }
        m
    }
}
