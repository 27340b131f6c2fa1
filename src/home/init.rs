//! Initialization: making the CA's files the first time, and saying which of the CA's own
//! certificates (its TLS server certificate, the administrator's) are due on each start.
//! The home never signs: the authority issues and records those certificates, and the home
//! writes them only then.

use time::{Duration, OffsetDateTime};

use super::key_file::{self, KeyFileError};
use super::{Home, HomeError, Settings};
use crate::ca::{
    Bootstrap, IssuedCertificate, Pkcs11Key, Pkcs11Location, RootAndIntermediate,
    ServiceCertificate,
};
use crate::files::{create_new, create_private_dir};
use crate::model::OwnerName;
use crate::pem;

/// The names every server certificate carries, so the CA is always reachable on loopback.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// The administrator made at initialization.
pub const ADMIN_NAME: &str = "admin";
/// A server certificate with less than this left is replaced at start-up.
const RENEW_BEFORE: Duration = Duration::days(30);

/// What `init` is told.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The SPIFFE trust domain.
    pub trust_domain: String,
    /// Extra names for the server certificate.
    pub hostnames: Vec<String>,
    /// The base URL relying parties reach the CA at; default `https://<first name>:8443`.
    pub public_url: Option<String>,
    /// The base URL CRL distribution points name; default the public URL.
    pub crl_url: Option<String>,
    /// Encrypt the root and intermediate keys under the home's passphrase.
    pub encrypt_keys: bool,
    /// Make the intermediate's key in this PKCS#11 token (with the home's PIN) instead of
    /// a file.
    pub pkcs11: Option<Pkcs11Location>,
}

/// One of the CA's own certificates as the home holds it.
#[derive(Debug)]
pub struct ServiceCertificateFile {
    /// What it is, with the names it must carry.
    pub wanted: ServiceCertificate,
    /// The serial of the certificate on disk, or `None` when a new one is due: none is there,
    /// it does not match its key, it lacks a name asked for, or it ends within 30 days.
    pub current: Option<crate::model::Serial>,
}

impl Home {
    fn ca_files(&self) -> Vec<std::path::PathBuf> {
        vec![
            self.ca_cert(),
            self.root_key(),
            self.intermediate_cert(),
            self.intermediate_key(),
            self.server_cert(),
            self.server_key(),
            self.settings_file(),
            self.issuer_keys_secret(),
            self.admin_dir().join("key.pem"),
            self.admin_dir().join("cert.pem"),
            self.admin_dir().join("chain.pem"),
        ]
    }

    /// Makes a new CA here: root, intermediate and settings. Refuses if a CA (or part of one)
    /// exists. `ca.pem` is written last, so an interrupted run is recognised as incomplete
    /// rather than mistaken for a CA. The CA's own certificates come after, from the authority
    /// (see [`Home::service_certificates`]).
    pub fn init(&self, options: &InitOptions, now: OffsetDateTime) -> Result<(), HomeError> {
        if self.is_initialized() {
            return Err(HomeError::AlreadyInitialized(self.dir.clone()));
        }
        let present: Vec<String> = self
            .ca_files()
            .into_iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !present.is_empty() {
            return Err(HomeError::Incomplete(self.dir.clone(), present.join(", ")));
        }
        if !crate::profile::valid_trust_domain(&options.trust_domain) {
            return Err(HomeError::Settings {
                path: self.settings_file(),
                why: format!("invalid trust domain {:?}", options.trust_domain),
            });
        }
        if options
            .public_url
            .as_deref()
            .is_some_and(|u| !u.starts_with("https://"))
        {
            return Err(HomeError::Settings {
                path: self.settings_file(),
                why: "the public URL must start with https://".into(),
            });
        }
        if options
            .crl_url
            .as_deref()
            .is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://")))
        {
            return Err(HomeError::Settings {
                path: self.settings_file(),
                why: "the CRL URL must start with http:// or https://".into(),
            });
        }
        let settings = Settings {
            trust_domain: options.trust_domain.clone(),
            public_url: options.public_url.clone().unwrap_or_else(|| {
                let host = options
                    .hostnames
                    .first()
                    .map_or("localhost", String::as_str);
                format!("https://{host}:8443")
            }),
            hostnames: options.hostnames.clone(),
            crl_url: options.crl_url.clone(),
            pkcs11: options.pkcs11.clone(),
        };

        let root_crl_url = format!("{}/v1/crl/root", settings.crl_base());
        // With a token, its key is made first: nothing is written if it cannot be.
        let (ca, intermediate_key) = match &options.pkcs11 {
            Some(location) => {
                let key = Pkcs11Key::generate(location, self.pkcs11_pin(location)?)?;
                (
                    RootAndIntermediate::generate(now, Some(&root_crl_url), &key)?,
                    None,
                )
            }
            None => {
                let ca = Bootstrap::generate_with_crl_url(now, Some(&root_crl_url))?;
                let made = RootAndIntermediate {
                    root_certificate: ca.root_certificate,
                    root_key_pem: ca.root_key_pem,
                    intermediate_certificate: ca.intermediate_certificate,
                };
                (made, Some(ca.intermediate_key_pem))
            }
        };
        let (root_key, intermediate_key) = if options.encrypt_keys {
            let passphrase = self.passphrase.as_ref().ok_or(KeyFileError::NoPassphrase)?;
            (
                key_file::encrypt(&self.root_key(), &ca.root_key_pem, passphrase)?,
                intermediate_key
                    .map(|pem| key_file::encrypt(&self.intermediate_key(), &pem, passphrase))
                    .transpose()?,
            )
        } else {
            (ca.root_key_pem.clone(), intermediate_key)
        };
        let intermediate_pem = pem::encode("CERTIFICATE", &ca.intermediate_certificate);
        create_private_dir(&self.dir)?;
        create_private_dir(&self.admin_dir())?;
        create_new(&self.root_key(), root_key.as_bytes(), true)?;
        if let Some(key) = &intermediate_key {
            create_new(&self.intermediate_key(), key.as_bytes(), true)?;
        }
        create_new(
            &self.intermediate_cert(),
            intermediate_pem.as_bytes(),
            false,
        )?;
        let settings_json =
            serde_json::to_vec_pretty(&settings).map_err(|e| HomeError::Settings {
                path: self.settings_file(),
                why: e.to_string(),
            })?;
        create_new(&self.settings_file(), &settings_json, false)?;
        // Before ca.pem: a home copied to replicas carries it from the start, so they open
        // the keys of intermediates made later (`IssuerVault`).
        self.ensure_issuer_keys_secret()?;
        create_new(
            &self.ca_cert(),
            pem::encode("CERTIFICATE", &ca.root_certificate).as_bytes(),
            false,
        )?;
        Ok(())
    }

    /// The CA's own certificates and whether each is due: the server certificate (for the
    /// loopback names, those given at initialization and `extra_hostnames`, which are kept
    /// in the settings from now on) and the administrator's.
    pub fn service_certificates(
        &self,
        extra_hostnames: &[String],
        now: OffsetDateTime,
    ) -> Result<[ServiceCertificateFile; 2], HomeError> {
        let mut settings = self.settings()?;
        let mut names = settings.hostnames.clone();
        for name in extra_hostnames {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        if names != settings.hostnames {
            settings.hostnames = names.clone();
            let json = serde_json::to_vec_pretty(&settings).map_err(|e| HomeError::Settings {
                path: self.settings_file(),
                why: e.to_string(),
            })?;
            self.replace(&self.settings_file(), &json, false)?;
        }
        let wanted = server_names(&names);
        let server = self.current(&self.server_cert(), &self.server_key(), &wanted, now)?;
        let admin_dir = self.admin_dir();
        let admin = self.current(
            &admin_dir.join("cert.pem"),
            &admin_dir.join("key.pem"),
            &[],
            now,
        )?;
        let name: OwnerName = ADMIN_NAME.parse().map_err(|_| HomeError::Settings {
            path: self.settings_file(),
            why: "invalid administrator name".into(),
        })?;
        Ok([
            ServiceCertificateFile {
                wanted: ServiceCertificate::Server { names: wanted },
                current: server,
            },
            ServiceCertificateFile {
                wanted: ServiceCertificate::Admin { name },
                current: admin,
            },
        ])
    }

    /// Writes a service certificate the authority issued (and recorded) with its key and its
    /// `chain` (it, then the intermediate that signed it): the server's as `server.pem` (the
    /// chain) and `server-key.pem`, an
    /// administrator's as `admin/{cert,chain,key}.pem`. Key first: a crash between the writes
    /// leaves a certificate that does not match its key, which the next start replaces.
    pub fn write_service_certificate(
        &self,
        which: &ServiceCertificate,
        issued: &IssuedCertificate,
        chain: &str,
        key_pem: &str,
    ) -> Result<(), HomeError> {
        match which {
            ServiceCertificate::Server { .. } => {
                self.replace(&self.server_key(), key_pem.as_bytes(), true)?;
                self.replace(&self.server_cert(), chain.as_bytes(), false)?;
            }
            ServiceCertificate::Admin { .. } => {
                let admin_dir = self.admin_dir();
                self.replace(&admin_dir.join("key.pem"), key_pem.as_bytes(), true)?;
                self.replace(&admin_dir.join("cert.pem"), issued.pem().as_bytes(), false)?;
                self.replace(&admin_dir.join("chain.pem"), chain.as_bytes(), false)?;
            }
        }
        Ok(())
    }

    /// The serial of the certificate at `cert_path`, or `None` when a new one is due: the
    /// file is absent, the certificate expires within 30 days, does not match the key at
    /// `key_path`, or lacks one of `names` (DNS names or IP addresses).
    fn current(
        &self,
        cert_path: &std::path::Path,
        key_path: &std::path::Path,
        names: &[String],
        now: OffsetDateTime,
    ) -> Result<Option<crate::model::Serial>, HomeError> {
        let material = |why: String| HomeError::Material {
            path: cert_path.to_owned(),
            why,
        };
        if !cert_path.exists() {
            return Ok(None);
        }
        let chain = crate::tls::load_certificates(&self.read(cert_path)?, "certificate")
            .map_err(|e| material(e.to_string()))?;
        let (_, current) =
            x509_parser::parse_x509_certificate(&chain[0]).map_err(|e| material(e.to_string()))?;
        let serial = crate::model::Serial::from_slice(current.raw_serial())
            .map_err(|e| material(e.to_string()))?;
        let key_matches = self
            .read(key_path)
            .ok()
            .and_then(|k| String::from_utf8(k).ok())
            .and_then(|k| rcgen::KeyPair::from_pem(&k).ok())
            .is_some_and(|k| {
                rcgen::PublicKeyData::subject_public_key_info(&k) == current.public_key().raw
            });
        let present = certificate_names(&current);
        let expires = current.validity().not_after.to_datetime();
        let due = !key_matches
            || expires - now <= RENEW_BEFORE
            || !names.iter().all(|n| present.contains(n));
        Ok((!due).then_some(serial))
    }
}

/// The DNS names and IP addresses of a certificate's SAN, as strings.
fn certificate_names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => <[u8; 4]>::try_from(*ip)
                    .ok()
                    .map(|b| std::net::Ipv4Addr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*ip)
                    .ok()
                    .map(|b| std::net::Ipv6Addr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The loopback names plus the extra ones, without repeats.
fn server_names(extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = LOOPBACK_NAMES.iter().map(|s| s.to_string()).collect();
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}
