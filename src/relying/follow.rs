//! Following the CA's issuing intermediates: `GET /v1/issuers` says which ones are published
//! and where each one's CRL is; the verifier accepts keys of every one the root signed that
//! is not retired, each checked against its own CRL, followed by its own long poll. A new
//! intermediate (after `latchkey ca rotate`) is added as soon as the list says so, without
//! a CRL (its keys are refused until its first one is taken: fail closed); a retired one is
//! dropped. The list itself is long-polled, so a rotation needs no restart.
//!
//! After a root rollover (`latchkey ca rotate --root`) the list also carries the
//! cross-certificates between the CA's roots. Those the root given to `follow_ca` signed are
//! taken first, on every answer, so that the new root's intermediates (signed by a key the
//! root certified) are taken too: a service trusting the old root accepts keys of the new
//! intermediate once its CRL is in, with no restart. A cross-certificate the CA stops
//! publishing takes the intermediates that chained through it along.
//!
//! A CA older than `/v1/issuers` (404) has one intermediate and one CRL at `/v1/crl`: then
//! that is followed, as before, and the CA is asked again every few minutes in case it was
//! upgraded since.

use std::collections::HashMap;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use super::AbortOnDrop;
use super::sources::FollowCa;
use crate::api::{IssuerInfo, IssuerList, IssuerStatus};
use crate::client::{Client, ClientError};
use crate::tls::{CrlSink, CrlSource, Issuers, certifies_a_root, cross_certified};

/// The first and the longest wait between two attempts while the CA is unreachable.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one long poll of the issuer list waits (the CA allows up to 60 s).
const LIST_WAIT_SECONDS: u64 = 30;
/// How often a CA without `/v1/issuers` is asked again whether it has it now.
const PROBE_EVERY: Duration = Duration::from_secs(300);

/// What the CA says about its intermediates.
pub(crate) enum Discovery {
    /// The list of `GET /v1/issuers`.
    Issuers(IssuerList),
    /// A CA older than `/v1/issuers`: one intermediate (the first of `GET /v1/ca`), its CRL
    /// at `/v1/crl`.
    Legacy,
}

impl Discovery {
    /// Asks the CA once: its list, or [`Discovery::Legacy`] when it answers 404.
    pub(crate) async fn ask(client: &Client) -> Result<Self, ClientError> {
        match client.issuers(None, 0).await {
            Ok(Some(list)) => Ok(Self::Issuers(list)),
            // A 304 to a request without `newer_than` is no answer this client knows.
            Ok(None) => Err(ClientError::Unexpected {
                status: 304,
                body: "GET /v1/issuers without newer_than answered 304".into(),
            }),
            Err(e) if e.is_not_found() => Ok(Self::Legacy),
            Err(e) => Err(e),
        }
    }
}

/// An intermediate the list publishes with a CRL: not retired. Its certificate is not yet
/// checked against the root (the verifier's [`Issuers::add`] does that).
pub(crate) struct Published {
    id: i64,
    pub(crate) certificate: CertificateDer<'static>,
    crl: String,
}

/// The intermediates of `list` that are not retired and have a CRL, oldest first; a
/// certificate that does not read is logged and skipped.
pub(crate) fn published(list: &IssuerList) -> Vec<Published> {
    list.issuers
        .iter()
        .filter(|info| info.status != IssuerStatus::Retired)
        .filter_map(|info| {
            let Some(crl) = &info.crl else {
                tracing::warn!(
                    issuer = info.id,
                    subject = info.subject,
                    "the CA publishes no CRL for this issuer: its keys are refused"
                );
                return None;
            };
            match certificate(info) {
                Some(certificate) => Some(Published {
                    id: info.id,
                    certificate,
                    crl: crl.clone(),
                }),
                None => {
                    tracing::warn!(
                        issuer = info.id,
                        subject = info.subject,
                        "the CA's certificate of this issuer does not read: skipped"
                    );
                    None
                }
            }
        })
        .collect()
}

fn certificate(info: &IssuerInfo) -> Option<CertificateDer<'static>> {
    one_certificate(&info.certificate)
}

/// The one certificate of `pem`, if it holds exactly one that reads.
fn one_certificate(pem: &str) -> Option<CertificateDer<'static>> {
    let mut certificates = crate::tls::load_certificates(pem.as_bytes(), "a certificate").ok()?;
    (certificates.len() == 1).then(|| certificates.remove(0))
}

/// The cross-certificates of `list` that one of `roots` signed (after a root rollover, the
/// one certifying the other root's key). One that certifies a root of `roots` itself (the
/// other root's, at a service trusting both or the one it certifies) adds nothing and is
/// passed over quietly; any other is logged and skipped.
pub(crate) fn crosses(
    list: &IssuerList,
    roots: &[CertificateDer<'static>],
) -> Vec<CertificateDer<'static>> {
    list.cross_certificates
        .iter()
        .filter_map(|pem| {
            let Some(cross) = one_certificate(pem) else {
                tracing::warn!("a cross-certificate of the CA does not read: skipped");
                return None;
            };
            if certifies_a_root(&cross, roots) {
                tracing::debug!(subject = %subject(&cross), "cross-certificate of a root trusted here already: nothing to take");
                return None;
            }
            match cross_certified(&cross, roots) {
                Ok(()) => Some(cross),
                Err(e) => {
                    tracing::debug!(error = %e, "cross-certificate skipped: not signed by the root trusted here");
                    None
                }
            }
        })
        .collect()
}

/// One intermediate being followed: its CRL's long poll runs until this is dropped.
struct Followed {
    certificate: CertificateDer<'static>,
    _crl: AbortOnDrop,
}

/// Follows the CA's intermediates into `issuers` for as long as it runs (until aborted; it
/// aborts the CRL followers it started when it is). `known` is what the builder already
/// learnt from the CA, if anything; `legacy` is the intermediate whose CRL `/v1/crl` is on a
/// CA without `/v1/issuers` (the first of the chain).
pub(crate) async fn follow(
    client: Client,
    issuers: Issuers,
    legacy: CertificateDer<'static>,
    known: Option<Discovery>,
) {
    let mut next = known;
    loop {
        let discovery = match next.take() {
            Some(discovery) => discovery,
            None => ask_until_answered(&client).await,
        };
        match discovery {
            Discovery::Issuers(list) => follow_list(&client, &issuers, list).await,
            Discovery::Legacy => {
                next = Some(Discovery::Issuers(
                    follow_legacy(&client, &issuers, &legacy).await,
                ));
            }
        }
    }
}

/// Asks the CA which kind it is until it answers, with backoff.
async fn ask_until_answered(client: &Client) -> Discovery {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match Discovery::ask(client).await {
            Ok(discovery) => return discovery,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot fetch the CA's issuers");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Follows `/v1/crl` for `legacy`, asking every [`PROBE_EVERY`] whether the CA has
/// `/v1/issuers` now; returns its list when it does (the CRL already held stays in force).
async fn follow_legacy(
    client: &Client,
    issuers: &Issuers,
    legacy: &CertificateDer<'static>,
) -> IssuerList {
    tracing::info!("the CA has no GET /v1/issuers: following its one CRL at /v1/crl");
    let _crl = match issuers.add(legacy) {
        Ok(revocations) => Some(AbortOnDrop(tokio::spawn(
            Box::new(FollowCa::new(client.clone(), "/v1/crl"))
                .run(CrlSink::new(revocations, legacy.clone())),
        ))),
        // The builder checked the chain; this would only fail on a chain it refused.
        Err(e) => {
            tracing::error!(error = %e, "the chain's intermediate is not the root's");
            None
        }
    };
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        match client.issuers(None, 0).await {
            Ok(Some(list)) => {
                tracing::info!("the CA has GET /v1/issuers now: following every issuer");
                return list;
            }
            Ok(None) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::debug!(error = %e, "cannot ask the CA for its issuers"),
        }
    }
}

/// Follows the list from `list` on: every change of it (a long poll) is applied at once.
async fn follow_list(client: &Client, issuers: &Issuers, list: IssuerList) -> ! {
    let mut followed = HashMap::new();
    let mut revision = list.revision;
    apply(client, issuers, &mut followed, &list);
    let mut backoff = FIRST_BACKOFF;
    loop {
        match client.issuers(Some(revision), LIST_WAIT_SECONDS).await {
            Ok(Some(list)) => {
                backoff = FIRST_BACKOFF;
                revision = list.revision;
                apply(client, issuers, &mut followed, &list);
            }
            Ok(None) => backoff = FIRST_BACKOFF,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot follow the CA's issuers; keeping the ones held");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Makes the verifier's cross-certificates those of `list` the root signed, and its
/// intermediates those `list` publishes that the root signed (directly or through one of
/// those cross-certificates): drops the others (their keys are refused from then on) and
/// adds the new ones, each with its CRL follower. An intermediate already held keeps its
/// CRL.
fn apply(
    client: &Client,
    issuers: &Issuers,
    followed: &mut HashMap<i64, Followed>,
    list: &IssuerList,
) {
    for dropped in issuers.set_crosses(&crosses(list, issuers.roots())) {
        tracing::info!(subject = %dropped, "issuer no longer chains to the root trusted here (its cross-certificate is gone): its keys are refused from now on");
    }
    let published = published(list);
    let held = issuers.load();
    followed.retain(|id, f| {
        held.by_certificate(&f.certificate).is_some()
            && published
                .iter()
                .any(|p| p.id == *id && p.certificate == f.certificate)
    });
    drop(held);
    let held: Vec<CertificateDer<'static>> = issuers
        .load()
        .iter()
        .map(|(cert, _)| cert.clone())
        .collect();
    for certificate in held {
        if !published.iter().any(|p| p.certificate == certificate) && issuers.remove(&certificate) {
            tracing::info!(subject = %subject(&certificate), "issuer no longer published: its keys are refused from now on");
        }
    }
    for p in published {
        if followed.contains_key(&p.id) {
            continue;
        }
        match issuers.add(&p.certificate) {
            Ok(revocations) => {
                tracing::info!(issuer = p.id, subject = %subject(&p.certificate), crl = p.crl, "following issuer");
                let sink = CrlSink::new(revocations, p.certificate.clone());
                let crl = Box::new(FollowCa::new(client.clone(), &p.crl)).run(sink);
                followed.insert(
                    p.id,
                    Followed {
                        certificate: p.certificate,
                        _crl: AbortOnDrop(tokio::spawn(crl)),
                    },
                );
            }
            Err(e) => {
                tracing::warn!(issuer = p.id, error = %e, "issuer skipped: its keys are refused")
            }
        }
    }
}

/// A certificate's subject, for the log.
fn subject(certificate: &CertificateDer<'_>) -> String {
    x509_parser::parse_x509_certificate(certificate)
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_default()
}
