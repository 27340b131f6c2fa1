//! The signer: turns an order the authority approved into a signed certificate.
//!
//! It knows nothing of HTTP, users, tenants' policies or SQL. Everything it signs was decided
//! elsewhere; what it guarantees is the certificate profile of DESIGN.md, built from scratch
//! for every certificate (nothing is ever copied from a CSR but the public key).

mod bootstrap;
mod crl;
mod crl_der;
mod draft_key;
mod issuing_key;
mod pkcs11;
mod signer;

pub use bootstrap::{
    BACKDATE, Bootstrap, BootstrapError, INTERMEDIATE_LIFETIME, IntermediateOrder, NewRoot,
    RootAndIntermediate, SERVICE_CERTIFICATE_LIFETIME, ServiceCertificate,
};
pub use crl::{CrlEntry, CrlOrder, RootSigner, crl_lists_exactly};
pub use crl_der::{CrlEntries, CrlHeader, CrlKind};
pub use issuing_key::IssuingKey;
pub use pkcs11::{Pkcs11Error, Pkcs11Key, Pkcs11Location, Pkcs11Pin};
pub use signer::{IssuedCertificate, IssuerFacts, KeyOrder, PublicKey, Signer, SignerError};
