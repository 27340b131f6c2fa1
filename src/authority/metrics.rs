//! The CA's Prometheus metrics: what it issued and revoked, and the health of its CRL.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters and gauges, registered once.
#[derive(Debug)]
pub(super) struct Metrics {
    registry: Registry,
    pub(super) enrolled: Counter,
    pub(super) renewed: Counter,
    pub(super) revoked: Counter,
    pub(super) crl_number: Gauge,
    pub(super) crl_entries: Gauge,
    pub(super) crl_next_update: Gauge,
    pub(super) crl_failing: Gauge,
    pub(super) crl_failures: Counter,
    pub(super) crl_number_conflicts: Counter,
    pub(super) connections_refused: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl Metrics {
    pub(super) fn new() -> Self {
        let mut registry = Registry::with_prefix("latchkey");
        let m = Self {
            enrolled: Counter::default(),
            renewed: Counter::default(),
            revoked: Counter::default(),
            crl_number: Gauge::default(),
            crl_entries: Gauge::default(),
            crl_next_update: Gauge::default(),
            crl_failing: Gauge::default(),
            crl_failures: Counter::default(),
            crl_number_conflicts: Counter::default(),
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
            "crl_number",
            "Number of the published CRL",
            m.crl_number.clone(),
        );
        registry.register(
            "crl_entries",
            "Certificates listed in the published CRL",
            m.crl_entries.clone(),
        );
        registry.register(
            "crl_next_update_timestamp_seconds",
            "nextUpdate of the published CRL, unix seconds",
            m.crl_next_update.clone(),
        );
        registry.register(
            "crl_failing",
            "1 while the CA cannot publish a new CRL",
            m.crl_failing.clone(),
        );
        registry.register(
            "crl_build_failures",
            "CRL builds that failed",
            m.crl_failures.clone(),
        );
        registry.register(
            "crl_number_conflicts",
            "CRLs built here whose number another replica had stored first (the builder lease \
             should keep this at 0)",
            m.crl_number_conflicts.clone(),
        );
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
