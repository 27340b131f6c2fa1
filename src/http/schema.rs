//! The OpenAPI schemas of what the wire types borrow from [`crate::model`] (names, scopes,
//! revocation reasons, spans) and of the problem [`Code`]. They are written here, beside the
//! document, so that the model the relying library links stays free of utoipa; the wire
//! types themselves derive theirs in `api.rs` (under the `server` feature).

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::api::Code;
use crate::model::{
    OwnerName, RevocationReason, ScopeSet, Span, TenantName, UserRef, WebhookEvent, WebhookEvents,
};

/// The characters a tenant or owner name may hold (`model::name`).
const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,62}$";

fn text(description: &str, pattern: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .examples([example])
        .into()
}

/// One string of a closed set: `values`, each as it is written on the wire.
fn one_of(description: &str, values: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

/// Every revocation reason (the model keeps no list; the test below keeps this one whole).
const REASONS: [RevocationReason; 5] = [
    RevocationReason::Unspecified,
    RevocationReason::KeyCompromise,
    RevocationReason::AffiliationChanged,
    RevocationReason::Superseded,
    RevocationReason::CessationOfOperation,
];

/// Implements `ToSchema` with the type's own name, and `PartialSchema` by `$schema`.
macro_rules! schema {
    ($($type:ty => $schema:expr;)*) => {$(
        impl PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }
        impl ToSchema for $type {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($type))
            }
        }
    )*};
}

schema! {
    TenantName => text("A tenant's name: 1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit.", NAME_PATTERN, "acme");
    OwnerName => text("The owner of keys in a tenant, a user or a machine: written as a tenant's name is.", NAME_PATTERN, "alice");
    UserRef => text(
        "`owner@tenant`.",
        "^[a-z0-9][a-z0-9._-]{0,62}@[a-z0-9][a-z0-9._-]{0,62}$",
        "alice@acme",
    );
    Span => text(
        "A length of time: a whole number and `d`, `h`, `m` or `s`; a bare number is seconds.",
        "^[0-9]+[dhms]?$",
        "14d",
    );
    ScopeSet => ArrayBuilder::new()
        .description(Some("Scopes, each 1 to 64 of a-z, 0-9, ':', '.', '_', '-' starting with a letter or digit (no wildcards); no scope twice."))
        .items(text("A scope.", "^[a-z0-9][a-z0-9:._-]{0,63}$", "read:metrics"))
        .unique_items(true)
        .into();
    RevocationReason => one_of(
        "Why a key is revoked (the RFC 5280 reasons for end-entity keys).",
        REASONS.map(RevocationReason::as_str),
    );
    WebhookEvents => ArrayBuilder::new()
        .description(Some("What a webhook hears of: at least one event, none twice."))
        .items(one_of("An event.", WebhookEvent::ALL.map(WebhookEvent::as_str)))
        .unique_items(true)
        .min_items(Some(1))
        .into();
    Code => one_of(
        "The stable code of a problem; each operation lists the ones it may answer.",
        Code::ALL.iter().map(|code| code.as_str()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reason added to the model stops this from compiling until it is matched here (the
    /// reminder to list it in [`REASONS`]); each listed reason is listed once and reads back.
    #[test]
    fn every_revocation_reason_is_in_its_schema() {
        let position = |reason: &RevocationReason| match reason {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::AffiliationChanged => 2,
            RevocationReason::Superseded => 3,
            RevocationReason::CessationOfOperation => 4,
        };
        let mut positions: Vec<usize> = REASONS.iter().map(position).collect();
        positions.sort_unstable();
        positions.dedup();
        assert_eq!(positions, [0, 1, 2, 3, 4]);
        for reason in REASONS {
            assert_eq!(reason.as_str().parse::<RevocationReason>(), Ok(reason));
        }
    }
}
