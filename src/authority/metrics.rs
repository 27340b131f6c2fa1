//! The authority's Prometheus metrics: what it issued and revoked, and the connections the
//! listener turned away. (The CRL's health is the publisher's, registered in the same
//! registry.)

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Counters, registered once, and the registry `/metrics` serves.
#[derive(Debug)]
pub(super) struct Metrics {
    registry: Registry,
    pub(super) enrolled: Counter,
    pub(super) renewed: Counter,
    pub(super) revoked: Counter,
    pub(super) connections_refused: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl Metrics {
    /// Registers the authority's metrics in `registry`, which may hold others' already.
    pub(super) fn new(mut registry: Registry) -> Self {
        let m = Self {
            enrolled: Counter::default(),
            renewed: Counter::default(),
            revoked: Counter::default(),
            connections_refused: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "keys_issued",
            "Keys issued (first certificates)",
            m.enrolled.clone(),
        );
        registry.register(
            "certificates_renewed",
            "Certificates issued by renewal",
            m.renewed.clone(),
        );
        registry.register("keys_revoked", "Keys revoked", m.revoked.clone());
        registry.register(
            "connections_refused",
            "Connections turned away before a request, by reason (handshake_failed, \
             handshake_timeout, closed_during_handshake, connection_limit, source_limit, \
             proxy_header)",
            m.connections_refused.clone(),
        );
        Self { registry, ..m }
    }

    /// The OpenMetrics text exposition.
    pub(super) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
