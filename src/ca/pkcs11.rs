//! The issuing key inside a PKCS#11 token (an HSM; SoftHSM2 in the tests): made by the token,
//! used through it, and never in a file or in this process's memory.
//!
//! A PKCS#11 session may be used by one thread at a time and cannot move between threads, so
//! one thread owns the session and signs what it is sent; [`Pkcs11Key`] is the handle the
//! signer holds. The key is ECDSA P-256 like every latchkey CA key: the token signs the
//! SHA-256 digest (`CKM_ECDSA`), and the raw `r || s` it returns is DER-encoded here.

use std::path::PathBuf;
use std::sync::mpsc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

/// DER of the named curve P-256 (`prime256v1`), as `CKA_EC_PARAMS`.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// Length of an uncompressed P-256 point.
const P256_POINT_LEN: usize = 65;

/// Where the issuing key lives: the module, the token and the key's label. Kept in the
/// CA's settings; the PIN is not, it is given at each start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Location {
    /// The PKCS#11 module (a shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The key's label (`CKA_LABEL`) in the token.
    pub key_label: String,
}

/// A token PIN. Never printed.
#[derive(Clone)]
pub struct Pkcs11Pin(Zeroizing<String>);

impl Pkcs11Pin {
    /// A PIN as given (the CLI reads it from `--pkcs11-pin-file` or a prompt).
    pub fn new(pin: impl Into<Zeroizing<String>>) -> Self {
        Self(pin.into())
    }
}

impl std::fmt::Debug for Pkcs11Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pkcs11Pin(..)")
    }
}

/// Why the token could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// The issuing key is in a token and no PIN was given.
    #[error(
        "the issuing key is in the PKCS#11 token {0:?}: give its PIN with --pkcs11-pin-file or LATCHKEY_PKCS11_PIN_FILE"
    )]
    NoPin(String),
    /// The module could not be loaded or initialized.
    #[error("cannot load the PKCS#11 module {module}: {why}")]
    Module {
        /// The module.
        module: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// No token has this label.
    #[error("no PKCS#11 token labelled {0:?}")]
    NoToken(String),
    /// The PIN was refused.
    #[error("the PKCS#11 token {0:?} refused the PIN")]
    WrongPin(String),
    /// The token has no key with this label.
    #[error("the PKCS#11 token {token:?} has no key labelled {label:?}")]
    NoKey {
        /// The token.
        token: String,
        /// The key's label.
        label: String,
    },
    /// A new key would share its label with one the token holds already.
    #[error(
        "the PKCS#11 token {token:?} already holds a key labelled {label:?}; choose another --pkcs11-key-label"
    )]
    KeyExists {
        /// The token.
        token: String,
        /// The key's label.
        label: String,
    },
    /// The key is not an ECDSA P-256 key, or its public half is unreadable.
    #[error("the PKCS#11 key {0:?} is not a usable ECDSA P-256 key")]
    UnusableKey(String),
    /// The token failed an operation.
    #[error("PKCS#11: {0}")]
    Token(String),
    /// The thread that holds the session has stopped.
    #[error("the PKCS#11 signing thread has stopped")]
    Stopped,
}

fn token_error(e: CkError) -> Pkcs11Error {
    Pkcs11Error::Token(e.to_string())
}

/// A request to the session's thread: the digest to sign, and where to answer.
type SignRequest = (Vec<u8>, mpsc::Sender<Result<Vec<u8>, Pkcs11Error>>);

/// The issuing key in a token, as the signer uses it.
pub struct Pkcs11Key {
    label: String,
    /// The uncompressed public point.
    public_point: Vec<u8>,
    /// To the session's thread (`Sender` is `Sync`: signers send from any thread at once).
    requests: mpsc::Sender<SignRequest>,
}

impl std::fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Key")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Key {
    /// Makes a new P-256 key pair inside the token: sensitive, never extractable, kept in the
    /// token. Refuses if the token holds a key with this label already.
    pub fn generate(location: &Pkcs11Location, pin: &Pkcs11Pin) -> Result<Self, Pkcs11Error> {
        Self::start(location, pin, true)
    }

    /// The existing key with the location's label.
    pub fn open(location: &Pkcs11Location, pin: &Pkcs11Pin) -> Result<Self, Pkcs11Error> {
        Self::start(location, pin, false)
    }

    fn start(
        location: &Pkcs11Location,
        pin: &Pkcs11Pin,
        generate: bool,
    ) -> Result<Self, Pkcs11Error> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (requests_tx, requests_rx) = mpsc::channel::<SignRequest>();
        let label = location.key_label.clone();
        let location = location.clone();
        let pin = pin.clone();
        std::thread::Builder::new()
            .name("pkcs11-signer".into())
            .spawn(move || {
                let (session, key) = match session_with_key(&location, &pin, generate) {
                    Ok((session, key, point)) => {
                        let _ = ready_tx.send(Ok(point));
                        (session, key)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Until every handle is dropped: then the session closes and logs out.
                for (digest, answer) in requests_rx {
                    let signed = session
                        .sign(&Mechanism::Ecdsa, key, &digest)
                        .map_err(token_error);
                    let _ = answer.send(signed);
                }
            })
            .map_err(|e| Pkcs11Error::Token(e.to_string()))?;
        let public_point = ready_rx.recv().map_err(|_| Pkcs11Error::Stopped)??;
        let key = Self {
            label,
            public_point,
            requests: requests_tx,
        };
        key.check()?;
        Ok(key)
    }

    /// Signs a test message and verifies it with the public key read from the token, so a
    /// key that cannot sign what the CA needs is refused at start, not at the first request.
    fn check(&self) -> Result<(), Pkcs11Error> {
        let message = b"latchkey PKCS#11 start-up check";
        let signature = self
            .sign_message(message)
            .map_err(|_| Pkcs11Error::UnusableKey(self.label.clone()))?;
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &self.public_point,
        )
        .verify(message, &signature)
        .map_err(|_| Pkcs11Error::UnusableKey(self.label.clone()))
    }

    /// An ECDSA P-256 SHA-256 signature of `message`, DER-encoded as X.509 wants it.
    fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, message);
        let (answer_tx, answer_rx) = mpsc::channel();
        self.requests
            .send((digest.as_ref().to_vec(), answer_tx))
            .map_err(|_| Pkcs11Error::Stopped)?;
        let raw = answer_rx.recv().map_err(|_| Pkcs11Error::Stopped)??;
        ecdsa_der(&raw).ok_or_else(|| Pkcs11Error::UnusableKey(self.label.clone()))
    }
}

impl rcgen::PublicKeyData for Pkcs11Key {
    fn der_bytes(&self) -> &[u8] {
        &self.public_point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for Pkcs11Key {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.sign_message(message).map_err(|e| {
            tracing::error!(error = %e, "the PKCS#11 token did not sign");
            rcgen::Error::RemoteKeyError
        })
    }
}

/// A logged-in session on the location's token, with the private key's handle and the
/// public point: a new key pair when `generate`, else the existing one.
fn session_with_key(
    location: &Pkcs11Location,
    pin: &Pkcs11Pin,
    generate: bool,
) -> Result<(Session, ObjectHandle, Vec<u8>), Pkcs11Error> {
    let module_error = |why: String| Pkcs11Error::Module {
        module: location.module.clone(),
        why,
    };
    let pkcs11 = Pkcs11::new(&location.module).map_err(|e| module_error(e.to_string()))?;
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(module_error(e.to_string())),
    }
    let slot = pkcs11
        .get_slots_with_token()
        .map_err(token_error)?
        .into_iter()
        .find(|slot| {
            pkcs11
                .get_token_info(*slot)
                .is_ok_and(|info| info.label().trim_end() == location.token)
        })
        .ok_or_else(|| Pkcs11Error::NoToken(location.token.clone()))?;
    let session = pkcs11.open_rw_session(slot).map_err(token_error)?;
    match session.login(UserType::User, Some(&AuthPin::new(pin.0.as_str().into()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinInvalid, _)) => {
            return Err(Pkcs11Error::WrongPin(location.token.clone()));
        }
        Err(e) => return Err(token_error(e)),
    }
    let label = location.key_label.as_bytes().to_vec();
    let find = |class: ObjectClass| {
        session
            .find_objects(&[Attribute::Class(class), Attribute::Label(label.clone())])
            .map_err(token_error)
    };
    let (private, public) = if generate {
        if !find(ObjectClass::PRIVATE_KEY)?.is_empty() || !find(ObjectClass::PUBLIC_KEY)?.is_empty()
        {
            return Err(Pkcs11Error::KeyExists {
                token: location.token.clone(),
                label: location.key_label.clone(),
            });
        }
        let id = label.clone();
        let (public, private) = session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::Private(false),
                    Attribute::Verify(true),
                    Attribute::EcParams(P256_PARAMS.to_vec()),
                    Attribute::Label(label.clone()),
                    Attribute::Id(id.clone()),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Sign(true),
                    Attribute::KeyType(KeyType::EC),
                    Attribute::Label(label.clone()),
                    Attribute::Id(id),
                ],
            )
            .map_err(token_error)?;
        (private, public)
    } else {
        let no_key = || Pkcs11Error::NoKey {
            token: location.token.clone(),
            label: location.key_label.clone(),
        };
        let private = *find(ObjectClass::PRIVATE_KEY)?.first().ok_or_else(no_key)?;
        let public = *find(ObjectClass::PUBLIC_KEY)?.first().ok_or_else(no_key)?;
        (private, public)
    };
    let unusable = || Pkcs11Error::UnusableKey(location.key_label.clone());
    let attributes = session
        .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(token_error)?;
    let mut point = None;
    for attribute in attributes {
        match attribute {
            Attribute::EcParams(params) if params != P256_PARAMS => return Err(unusable()),
            Attribute::EcPoint(encoded) => point = uncompressed_point(&encoded),
            _ => {}
        }
    }
    Ok((session, private, point.ok_or_else(unusable)?))
}

/// The uncompressed point in `CKA_EC_POINT`: tokens give it as a DER OCTET STRING (as the
/// standard says) or, some of them, bare.
fn uncompressed_point(encoded: &[u8]) -> Option<Vec<u8>> {
    let point = match encoded {
        [0x04, 0x41, rest @ ..] if rest.len() == P256_POINT_LEN => rest,
        bare => bare,
    };
    (point.len() == P256_POINT_LEN && point[0] == 0x04).then(|| point.to_vec())
}

/// The DER `ECDSA-Sig-Value` of a raw P-256 `r || s`.
fn ecdsa_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != 64 {
        return None;
    }
    let integer = |bytes: &[u8]| {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut value = if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
            vec![0]
        } else {
            Vec::new()
        };
        value.extend(trimmed);
        let mut der = vec![0x02, u8::try_from(value.len()).ok()?];
        der.extend(value);
        Some(der)
    };
    let (r, s) = (integer(&raw[..32])?, integer(&raw[32..])?);
    let mut der = vec![0x30, u8::try_from(r.len() + s.len()).ok()?];
    der.extend(r);
    der.extend(s);
    Some(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_signatures_become_der_integers_with_their_sign_bit_kept_clear() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80; // r needs a leading zero
        raw[31] = 1;
        raw[63] = 7; // s is small: leading zeros go
        let der = ecdsa_der(&raw).unwrap();
        assert_eq!(&der[..4], &[0x30, 38, 0x02, 33]);
        assert_eq!(der[4], 0);
        assert_eq!(&der[der.len() - 3..], &[0x02, 1, 7]);
        assert!(ecdsa_der(&raw[..63]).is_none());
    }

    #[test]
    fn ec_points_are_read_wrapped_or_bare() {
        let mut point = vec![0x04];
        point.extend([9u8; 64]);
        let mut wrapped = vec![0x04, 65];
        wrapped.extend(&point);
        assert_eq!(uncompressed_point(&wrapped).unwrap(), point);
        assert_eq!(uncompressed_point(&point).unwrap(), point);
        assert!(uncompressed_point(&point[..40]).is_none());
    }
}
