//! Every error code of the core CA: the status, the stable code, and proof that nothing
//! was stored.
//!
//! In-process tier (the CA inside the test, on a clock the test moves), but for the timing
//! comparison, which needs the CA restarted behind a PROXY-protocol listener. Defective CSRs
//! are made by openssl, an independent implementation, and named after their defect.

use http::Method;
use latchkey::api::Problem;
use latchkey::authority::Policy;
use latchkey::client::Auth;
use serde_json::json;

use crate::support::{self, Ca, PASSWORD, openssl_csr, password};

/// The media type of every refused request's body (RFC 9457).
const PROBLEM_JSON: &str = "application/problem+json";

struct Case {
    name: &'static str,
    auth: Option<Auth>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    detail_contains: &'static str,
}

fn json_body(csr: &str, scopes: &[&str], extra: serde_json::Value) -> Vec<u8> {
    let mut body = serde_json::json!({ "csr": csr, "scopes": scopes, "name": "k" });
    if let (Some(obj), Some(more)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            obj.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&body).unwrap()
}

fn case(
    name: &'static str,
    auth: Option<Auth>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        auth,
        body,
        status,
        code,
        detail_contains: "",
    }
}

/// alice asks for `read:metrics` with `csr`.
fn with_csr(name: &'static str, csr: &str, status: u16, code: &'static str) -> Case {
    case(
        name,
        alice(),
        json_body(csr, &["read:metrics"], json!({})),
        status,
        code,
    )
}

/// alice asks for `read:metrics` with the sound CSR `good` and the fields `extra`.
fn with_fields(
    name: &'static str,
    good: &str,
    extra: serde_json::Value,
    status: u16,
    code: &'static str,
) -> Case {
    case(
        name,
        alice(),
        json_body(good, &["read:metrics"], extra),
        status,
        code,
    )
}

/// alice's password.
fn alice() -> Option<Auth> {
    Some(password("alice@acme"))
}

impl Case {
    /// The case with a `detail` the problem document must contain.
    fn detail(self, detail_contains: &'static str) -> Self {
        Self {
            detail_contains,
            ..self
        }
    }
}

/// A CSR whose RSA key has a `bits`-bit modulus (not a real key: no one could wait for
/// one to be generated, and the CA must refuse it before doing any arithmetic with it).
fn rsa_csr_of_bits(bits: usize) -> Vec<u8> {
    use yasna::models::ObjectIdentifier;
    use yasna::{DERWriter, Tag};
    let algorithm = |w: DERWriter, arcs: &[u64]| {
        w.write_sequence(|w| {
            w.next().write_oid(&ObjectIdentifier::from_slice(arcs));
            w.next().write_null();
        })
    };
    let rsa_key = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_bigint_bytes(&vec![0xc5; bits / 8], true);
            w.next().write_u32(65537);
        })
    });
    let info = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(0);
            w.next().write_sequence(|_| {});
            w.next().write_sequence(|w| {
                algorithm(w.next(), &[1, 2, 840, 113549, 1, 1, 1]);
                w.next().write_bitvec_bytes(&rsa_key, rsa_key.len() * 8);
            });
            w.next()
                .write_tagged_implicit(Tag::context(0), |w| w.write_set(|_| {}));
        })
    });
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&info);
            algorithm(w.next(), &[1, 2, 840, 113549, 1, 1, 11]);
            w.next().write_bitvec_bytes(&vec![0x5a; bits / 8], bits);
        })
    })
}

/// Sends a POST /v1/keys with a raw JSON body, so any body can be tried; returns the status,
/// the answer's `content-type` and its body.
async fn post_keys(ca: &Ca, auth: Option<&Auth>, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let (status, headers, bytes) = ca
        .raw(None)
        .send_with_headers(Method::POST, "/v1/keys", auth, Some(body))
        .await
        .unwrap();
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    (status.as_u16(), content_type, bytes.to_vec())
}

#[tokio::test]
async fn every_refused_enrollment_has_a_stable_code_and_changes_nothing_on_sqlite() {
    every_refused_enrollment_has_a_stable_code_and_changes_nothing(Ca::in_process(
        Policy::default(),
    ))
    .await;
}

#[tokio::test]
async fn every_refused_enrollment_has_a_stable_code_and_changes_nothing_on_postgres() {
    let Some(pg) = support::PgSchema::create(
        "every_refused_enrollment_has_a_stable_code_and_changes_nothing_on_postgres",
    )
    .await
    else {
        return;
    };
    every_refused_enrollment_has_a_stable_code_and_changes_nothing(Ca::in_process_on(
        &pg.url,
        Policy::default(),
    ))
    .await;
}

async fn every_refused_enrollment_has_a_stable_code_and_changes_nothing(ca: Ca) {
    ca.admin()
        .add_tenant(&latchkey::api::NewTenant {
            name: "acme".parse().unwrap(),
            max_key_days: Some(30),
            dedicated_issuer: false,
        })
        .await
        .unwrap();
    ca.user("alice@acme", &["read:metrics", "write:events"])
        .await;
    let f = fixtures(&ca).await;

    let mut bodies_401 = Vec::new();
    for case in catalogue(&f) {
        let invalid_credentials = case.code == "invalid_credentials";
        let body = check(&ca, case).await;
        if invalid_credentials {
            bodies_401.push(body);
        }
    }
    // DER truncated at every offset: each answer is csr_malformed, and nothing changes.
    let before = ca.snapshot().await;
    for len in 0..f.good_der.len() {
        let truncated = latchkey::pem::encode("CERTIFICATE REQUEST", &f.good_der[..len]);
        let body = json_body(&truncated, &["read:metrics"], serde_json::json!({}));
        let (status, content_type, body) =
            post_keys(&ca, Some(&password("alice@acme")), body).await;
        assert_eq!(content_type, PROBLEM_JSON, "truncated at {len}");
        let problem: Problem = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (status, problem.code.as_str()),
            (422, "csr_malformed"),
            "truncated at {len}"
        );
    }
    assert_eq!(
        ca.snapshot().await,
        before,
        "a truncated CSR changed the store"
    );
    // An odd RSA size inside 2048..=4096 is a valid key: accepted (the rule is the range).
    ca.anonymous()
        .enroll(
            &password("alice@acme"),
            &crate::support::request(&f.rsa_odd, &["read:metrics"], "odd"),
        )
        .await
        .expect("RSA-2056 is within 2048..=4096 bits");
    // Wrong password, unknown user and unknown tenant are indistinguishable.
    assert_eq!(bodies_401.len(), 3);
    assert!(bodies_401.windows(2).all(|w| w[0] == w[1]));
    let log = std::fs::read_to_string(ca.path("serve.log")).unwrap();
    assert!(
        !log.contains("PRIVATE KEY") && !log.contains(PASSWORD),
        "secrets reached the log"
    );
}

/// The requests of the catalogue that take making: CSRs with one defect each (openssl
/// makes most, an independent implementation), the CA's own keys, a public key already
/// certified, and tokens used up or expired.
struct Fixtures {
    good: String,
    good_der: Vec<u8>,
    ca_true: String,
    san: String,
    eku: String,
    unknown: String,
    rsa1024: String,
    rsa2040: String,
    rsa_e3: String,
    rsa_e17: String,
    rsa_e65539: String,
    p521: String,
    k256: String,
    p192: String,
    brainpool: String,
    explicit: String,
    ed448: String,
    dsa: String,
    rsa_odd: String,
    sha1: String,
    flipped: String,
    private_key: String,
    reused: String,
    key_cert_sign: String,
    md5: String,
    intermediate_key: String,
    root_key: String,
    off_curve: String,
    random_der: String,
    nested: String,
    rsa_16384: String,
    used: String,
    expired: String,
}

/// Makes the [`Fixtures`] against `ca`, whose tenant `acme` has the user alice.
async fn fixtures(ca: &Ca) -> Fixtures {
    let dir = ca.dir.path();
    let good = support::csr();

    let ca_true = openssl_csr(
        dir,
        "ca-true",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &["-addext", "basicConstraints=critical,CA:TRUE"],
    );
    let san = openssl_csr(
        dir,
        "san",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &[
            "-addext",
            "subjectAltName=URI:spiffe://latchkey.internal/tenant/other/key/x",
        ],
    );
    let eku = openssl_csr(
        dir,
        "eku",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &["-addext", "extendedKeyUsage=serverAuth"],
    );
    let unknown = openssl_csr(
        dir,
        "unknown-ext",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &["-addext", "1.2.3.4=critical,ASN1:UTF8String:hi"],
    );
    let rsa1024 = openssl_csr(dir, "rsa1024", &["rsa:1024"], &[]);
    let rsa2040 = openssl_csr(dir, "rsa2040", &["rsa:2040"], &[]);
    // RSA public exponents other than 65537: a relying party in Go refuses them.
    let rsa_exponent = |e: u32| {
        openssl_csr(
            dir,
            &format!("rsa-e{e}"),
            &["rsa:2048", "-pkeyopt", &format!("rsa_keygen_pubexp:{e}")],
            &[],
        )
    };
    let (rsa_e3, rsa_e17, rsa_e65539) = (rsa_exponent(3), rsa_exponent(17), rsa_exponent(65539));
    let p521 = openssl_csr(
        dir,
        "p521",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
        &[],
    );
    let k256 = openssl_csr(
        dir,
        "k256",
        &["ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
        &[],
    );
    let p192 = openssl_csr(
        dir,
        "p192",
        &["ec", "-pkeyopt", "ec_paramgen_curve:prime192v1"],
        &[],
    );
    let brainpool = openssl_csr(
        dir,
        "brainpool",
        &["ec", "-pkeyopt", "ec_paramgen_curve:brainpoolP256r1"],
        &[],
    );
    let explicit = openssl_csr(
        dir,
        "explicit",
        &[
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-pkeyopt",
            "ec_param_enc:explicit",
        ],
        &[],
    );
    let ed448 = openssl_csr(dir, "ed448", &["ed448"], &[]);
    support::openssl(
        dir,
        &[
            "genpkey",
            "-genparam",
            "-algorithm",
            "DSA",
            "-pkeyopt",
            "dsa_paramgen_bits:2048",
            "-out",
            "dsa.param",
        ],
    );
    let dsa = openssl_csr(dir, "dsa", &["dsa:dsa.param"], &[]);
    let rsa_odd = openssl_csr(dir, "rsa-odd", &["rsa:2056"], &[]);
    let sha1 = openssl_csr(dir, "sha1", &["rsa:2048"], &["-sha1"]);
    // Flip a bit in the signature: the structure still parses, the signature fails.
    let flipped = {
        let plain = openssl_csr(
            dir,
            "flip",
            &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            &[],
        );
        let (_, pem) = x509_parser::pem::parse_x509_pem(plain.as_bytes()).unwrap();
        let mut der = pem.contents;
        let last = der.len() - 1;
        der[last] ^= 0x01;
        latchkey::pem::encode("CERTIFICATE REQUEST", &der)
    };
    let private_key = std::fs::read_to_string(dir.join("flip.key")).unwrap();
    // A public key already certified for another key.
    let reused = {
        let pair = latchkey::client::new_key_pair(latchkey::client::KeyType::P256).unwrap();
        ca.anonymous()
            .enroll(
                &password("alice@acme"),
                &crate::support::request(&pair.csr_pem, &["read:metrics"], "first"),
            )
            .await
            .unwrap();
        pair.csr_pem
    };

    let key_cert_sign = openssl_csr(
        dir,
        "kcs",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &["-addext", "keyUsage=critical,keyCertSign"],
    );
    let md5 = openssl_csr(dir, "md5", &["rsa:2048"], &["-md5"]);
    // The CA's own keys, in CSRs they signed themselves.
    let own_key = |file: &str| {
        let key = ca.home().join(file);
        let out = support::openssl(
            dir,
            &[
                "req",
                "-new",
                "-subj",
                "/CN=ca",
                "-key",
                key.to_str().unwrap(),
            ],
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let (intermediate_key, root_key) = (own_key("intermediate-key.pem"), own_key("root-key.pem"));
    let good_der = x509_parser::pem::parse_x509_pem(good.as_bytes())
        .unwrap()
        .1
        .contents;
    // A point not on the curve: the last byte of Y changed (the CSR's signature cannot
    // verify either; the point must be refused whatever is checked first).
    let off_curve = {
        use x509_parser::prelude::FromDer;
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&good_der)
                .unwrap();
        let point = csr
            .certification_request_info
            .subject_pki
            .subject_public_key
            .data
            .to_vec();
        let at = good_der
            .windows(point.len())
            .position(|w| w == point.as_slice())
            .unwrap();
        let mut der = good_der.clone();
        der[at + point.len() - 1] ^= 0x01;
        latchkey::pem::encode("CERTIFICATE REQUEST", &der)
    };
    let random_der: Vec<u8> = (0u32..400).map(|i| (i * 7919 % 251) as u8).collect();
    let random_der = latchkey::pem::encode("CERTIFICATE REQUEST", &random_der);
    let nested = {
        let mut der = Vec::new();
        for _ in 0..2000 {
            der = yasna::construct_der(|w| w.write_sequence(|w| w.next().write_der(&der)));
        }
        latchkey::pem::encode("CERTIFICATE REQUEST", &der)
    };
    let rsa_16384 = latchkey::pem::encode("CERTIFICATE REQUEST", &rsa_csr_of_bits(16384));
    // Tokens: one used already, one expired.
    let admin = ca.admin();
    let token = |ttl: Option<i64>| {
        let admin = admin.clone();
        async move {
            admin
                .create_token(&latchkey::api::NewToken {
                    owner: "bot@acme".parse().unwrap(),
                    scopes: crate::support::scope_set(&["read:metrics"]),
                    ttl_seconds: ttl,
                })
                .await
                .unwrap()
                .token
                .unwrap()
                .into_inner()
        }
    };
    let used = token(None).await;
    ca.anonymous()
        .enroll(
            &Auth::Token(used.clone()),
            &crate::support::request(&support::csr(), &["read:metrics"], "used"),
        )
        .await
        .unwrap();
    let expired = token(Some(1)).await;
    ca.wait_or_advance(time::Duration::milliseconds(2100)).await;
    Fixtures {
        good,
        good_der,
        ca_true,
        san,
        eku,
        unknown,
        rsa1024,
        rsa2040,
        rsa_e3,
        rsa_e17,
        rsa_e65539,
        p521,
        k256,
        p192,
        brainpool,
        explicit,
        ed448,
        dsa,
        rsa_odd,
        sha1,
        flipped,
        private_key,
        reused,
        key_cert_sign,
        md5,
        intermediate_key,
        root_key,
        off_curve,
        random_der,
        nested,
        rsa_16384,
        used,
        expired,
    }
}

/// Every refused enrollment, one row each: what is sent, and the status and code it gets.
#[rustfmt::skip] // One case per line: the table reads as a table.
fn catalogue(f: &Fixtures) -> Vec<Case> {
    let Fixtures {
        good,
        ca_true,
        san,
        eku,
        unknown,
        rsa1024,
        rsa2040,
        rsa_e3,
        rsa_e17,
        rsa_e65539,
        p521,
        k256,
        p192,
        brainpool,
        explicit,
        ed448,
        dsa,
        sha1,
        flipped,
        private_key,
        reused,
        key_cert_sign,
        md5,
        intermediate_key,
        root_key,
        off_curve,
        random_der,
        nested,
        rsa_16384,
        used,
        expired,
        ..
    } = f;
    let broken_base64 = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB!!not*base64\n-----END CERTIFICATE REQUEST-----\n";
    let p = |scopes: &[&str]| json_body(good, scopes, json!({}));
    let wrong = |user: &str, pw: &str| {
        Some(Auth::Password {
            user: user.into(),
            password: pw.into(),
        })
    };
    let bearer = |t: &str| Some(Auth::Token(t.to_owned()));
    vec![
        with_csr("CSR asks for keyCertSign", key_cert_sign, 422, "csr_extension_forbidden").detail("keyUsage"),
        with_csr("MD5 signature", md5, 422, "weak_signature"),
        with_csr("the intermediate's own key", intermediate_key, 409, "public_key_in_use"),
        with_csr("the root's own key", root_key, 409, "public_key_in_use"),
        with_csr("a point not on the curve", off_curve, 422, "csr_signature_invalid"),
        with_csr("broken base64", broken_base64, 422, "csr_malformed"),
        with_csr("random bytes as DER", random_der, 422, "csr_malformed"),
        with_csr("DER nested 2000 deep", nested, 422, "csr_malformed"),
        with_csr("RSA-16384", rsa_16384, 422, "unsupported_key").detail("16384"),
        case("a token replayed", bearer(used), p(&["read:metrics"]), 401, "invalid_token"),
        case("an expired token", bearer(expired), p(&["read:metrics"]), 401, "invalid_token"),
        with_fields("ttl of u64::MAX", good, json!({"ttl_seconds": u64::MAX}), 400, "invalid_json"),
        case("scopes as a string", alice(), json_body(good, &[], json!({"scopes": "read:metrics"})), 400, "invalid_json"),
        with_fields("ttl as a string", good, json!({"ttl_seconds": "3600"}), 400, "invalid_json"),
        with_fields("csr as a number", good, json!({"csr": 42}), 400, "invalid_json"),
        with_fields("misspelled field", good, json!({"ttl_second": 3600}), 400, "invalid_json"),
        with_csr("CSR asks for CA:TRUE", ca_true, 422, "csr_extension_forbidden").detail("basicConstraints"),
        with_csr("CSR asks for another tenant's SAN", san, 422, "csr_extension_forbidden").detail("subjectAltName"),
        with_csr("CSR asks for serverAuth", eku, 422, "csr_extension_forbidden").detail("extendedKeyUsage"),
        case("scope not granted", alice(), p(&["read:metrics", "admin:everything"]), 403, "scope_not_granted").detail("admin:everything"),
        case("wildcard scope", alice(), p(&["read:*"]), 422, "invalid_scope"),
        case("malformed scope", alice(), p(&["Read Metrics!"]), 422, "invalid_scope"),
        case("unknown scope (valid, granted to nobody)", alice(), p(&["write:nothing"]), 403, "scope_not_granted").detail("write:nothing"),
        case("duplicated scope", alice(), p(&["read:metrics", "read:metrics"]), 422, "invalid_scope"),
        case("no scope", alice(), p(&[]), 422, "invalid_scope"),
        with_fields("ttl above the tenant maximum", good, json!({"ttl_seconds": 31 * 86400}), 422, "ttl_out_of_range"),
        with_fields("negative ttl", good, json!({"ttl_seconds": -5}), 422, "ttl_out_of_range"),
        with_fields("zero ttl", good, json!({"ttl_seconds": 0}), 422, "ttl_out_of_range"),
        with_fields("expires_at in the past", good, json!({"expires_at": "2020-01-01T00:00:00Z"}), 422, "ttl_out_of_range"),
        with_fields("ttl and expires_at", good, json!({"ttl_seconds": 60, "expires_at": "2030-01-01T00:00:00Z"}), 400, "invalid_request"),
        // Finding 9: a key holder's free text reaches the admin's terminal through
        // `latchkey keys`; nothing there may clear, retitle or reorder what the admin sees.
        with_fields("description with terminal escape sequences", good, json!({"description": "ok\u{1b}[2J\u{1b}[H\u{1b}]0;pwned\u{7}\u{1b}[31mFAKE: key revoked\u{1b}[0m"}), 422, "invalid_characters").detail("U+001B"),
        with_fields("name with a right-to-left override", good, json!({"name": "laptop\u{202e}fdp.exe"}), 422, "invalid_characters").detail("U+202E"),
        with_fields("name with a tab", good, json!({"name": "a\tb"}), 422, "invalid_characters"),
        with_fields("name ending in a line separator (not trimmed away)", good, json!({"name": "laptop\u{2028}"}), 422, "invalid_characters"),
        with_fields("description with a bidi isolate", good, json!({"description": "a\u{2066}b\u{2069}"}), 422, "invalid_characters"),
        with_fields("description with a zero-width space", good, json!({"description": "a\u{200b}b"}), 422, "invalid_characters"),
        with_fields("description with a byte order mark", good, json!({"description": "\u{feff}text"}), 422, "invalid_characters"),
        with_fields("description with a C1 control (CSI)", good, json!({"description": "a\u{9b}2Jb"}), 422, "invalid_characters"),
        with_fields("description with a newline", good, json!({"description": "line one\nkey revoked"}), 422, "invalid_characters"),
        with_csr("CSR asks for an unknown critical extension", unknown, 422, "csr_extension_forbidden").detail("1.2.3.4"),
        with_csr("RSA-2040", rsa2040, 422, "weak_key").detail("2040 bits"),
        with_csr("RSA public exponent 3", rsa_e3, 422, "weak_key").detail("exponent 3 "),
        with_csr("RSA public exponent 17", rsa_e17, 422, "weak_key"),
        with_csr("RSA public exponent 65539", rsa_e65539, 422, "weak_key").detail("exponent 65539 "),
        with_csr("RSA-1024", rsa1024, 422, "weak_key"),
        with_csr("P-521", p521, 422, "unsupported_key"),
        with_csr("Ed448", ed448, 422, "unsupported_key"),
        with_csr("DSA-2048", dsa, 422, "unsupported_key"),
        with_csr("P-192", p192, 422, "unsupported_key"),
        with_csr("brainpoolP256r1", brainpool, 422, "unsupported_key"),
        with_csr("explicit curve parameters", explicit, 422, "unsupported_key"),
        with_csr("secp256k1", k256, 422, "unsupported_key"),
        with_csr("SHA-1 signature", sha1, 422, "weak_signature"),
        with_csr("bit-flipped signature", flipped, 422, "csr_signature_invalid"),
        with_csr("a private key instead of a CSR", private_key, 422, "csr_malformed"),
        with_csr("two CSRs", &format!("{good}{good}"), 422, "csr_malformed"),
        with_csr("not PEM", "hello", 422, "csr_malformed"),
        with_csr("public key already in use", reused, 409, "public_key_in_use"),
        case("wrong password", wrong("alice@acme", "nope-nope-nope"), p(&["read:metrics"]), 401, "invalid_credentials"),
        case("unknown user", wrong("mallory@acme", PASSWORD), p(&["read:metrics"]), 401, "invalid_credentials"),
        case("unknown tenant", wrong("alice@nowhere", PASSWORD), p(&["read:metrics"]), 401, "invalid_credentials"),
        case("no credential", None, p(&["read:metrics"]), 401, "unauthenticated"),
        case("unknown token", Some(Auth::Token("lkt_nope".into())), p(&["read:metrics"]), 401, "invalid_token"),
        case("invalid JSON", alice(), b"{\"csr\": ".to_vec(), 400, "invalid_json"),
        with_fields("unknown field", good, json!({"is_ca": true}), 400, "invalid_json"),
        case("empty body", alice(), Vec::new(), 400, "invalid_json"),
        case("a 1 MiB body", alice(), vec![b' '; 1024 * 1024], 413, "body_too_large"),
    ]
}

/// Sends one case and checks its answer: a problem document with the case's status, code
/// and detail, no private key in it, nothing stored, and a server still healthy. Returns the
/// answer's body.
async fn check(ca: &Ca, case: Case) -> Vec<u8> {
    let before = ca.snapshot().await;
    let (status, content_type, body) = post_keys(ca, case.auth.as_ref(), case.body).await;
    assert_eq!(content_type, PROBLEM_JSON, "{}", case.name);
    let problem: Problem = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "{}: not a problem document: {}",
            case.name,
            String::from_utf8_lossy(&body)
        )
    });
    assert_eq!(
        (status, problem.code.as_str()),
        (case.status, case.code),
        "{}: {}",
        case.name,
        problem.detail
    );
    assert_eq!(problem.status, status);
    assert!(
        problem.detail.contains(case.detail_contains),
        "{}: {}",
        case.name,
        problem.detail
    );
    assert!(!problem.detail.contains("PRIVATE KEY"), "{}", case.name);
    assert_eq!(
        ca.snapshot().await,
        before,
        "{}: the store changed",
        case.name
    );
    ca.anonymous()
        .ca_chain()
        .await
        .unwrap_or_else(|e| panic!("{}: the server is not healthy: {e}", case.name));
    body
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_refused() {
    let ca = Ca::in_process(Policy::default());
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca.home().join("ca.pem"))
        .args(["-u", "a@b:c", "-H", "content-type: text/plain", "-d", "{}"])
        .args([
            "-w",
            "\n%{content_type}\n%{http_code}",
            &format!("{}/v1/keys", ca.url),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with(&format!("\n{PROBLEM_JSON}\n415")), "{text}");
    assert!(text.contains("unsupported_media_type"), "{text}");
}

#[tokio::test]
async fn a_refused_request_does_not_consume_the_token() {
    let ca = Ca::in_process(Policy::default());
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let token = ca.token("build-bot@acme", &["write:events"]).await;
    let auth = Auth::Token(token.clone());
    let client = ca.anonymous();
    let refused = client
        .enroll(
            &auth,
            &support::request(&support::csr(), &["read:metrics"], "bot"),
        )
        .await
        .unwrap_err();
    assert_eq!(support::problem_code(refused), "scope_not_granted");
    let bad_csr = client
        .enroll(
            &auth,
            &support::request("garbage", &["write:events"], "bot"),
        )
        .await
        .unwrap_err();
    assert_eq!(support::problem_code(bad_csr), "csr_malformed");
    assert_eq!(
        ca.admin().tokens(None).await.unwrap()[0].status,
        latchkey::api::TokenStatus::Unused
    );
    client
        .enroll(
            &auth,
            &support::request(&support::csr(), &["write:events"], "bot"),
        )
        .await
        .expect("the token still works after refused requests");
}

#[tokio::test]
async fn a_token_raced_from_many_requests_enrolls_exactly_once() {
    let ca = Ca::in_process(Policy::default());
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let token = ca.token("build-bot@acme", &["write:events"]).await;
    let client = ca.anonymous();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = client.clone();
        let auth = Auth::Token(token.clone());
        tasks.push(tokio::spawn(async move {
            client
                .enroll(
                    &auth,
                    &support::request(&support::csr(), &[], &format!("race{i}")),
                )
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(support::problem_code(e), "invalid_token"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(ca.counts().await["keys"], 1);
}

#[tokio::test]
async fn the_cli_prints_one_line_and_exits_non_zero() {
    let ca = Ca::in_process(Policy::default());
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let out = ca.cli_with_env(
        &[
            "enroll",
            "--user",
            "alice@acme",
            "--scopes",
            "write:events",
            "--name",
            "x",
            "--out",
            "x/",
        ],
        &[("LATCHKEY_PASSWORD", PASSWORD)],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("scope_not_granted"), "{stderr}");
    assert!(!ca.path("x/key.pem").exists());
}

#[tokio::test]
async fn wrong_passwords_slow_that_user_down_without_locking_anyone_out() {
    let ca = Ca::in_process(Policy::default());
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.user("bob@acme", &["read:metrics"]).await;
    let client = ca.anonymous();
    let wrong = Auth::Password {
        user: "alice@acme".into(),
        password: "not-her-password".into(),
    };
    let enroll = |auth: Auth| {
        let client = client.clone();
        async move {
            client
                .enroll(
                    &auth,
                    &support::request(&support::csr(), &["read:metrics"], "k"),
                )
                .await
        }
    };
    for _ in 0..5 {
        assert_eq!(
            support::problem_code(enroll(wrong.clone()).await.unwrap_err()),
            "invalid_credentials"
        );
    }
    let before = ca.counts().await;
    // Now even the right password waits, without an argon2 check, for a second...
    let body =
        serde_json::to_vec(&support::request(&support::csr(), &["read:metrics"], "k")).unwrap();
    let (status, content_type, body) = post_keys(&ca, Some(&password("alice@acme")), body).await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    assert_eq!(content_type, PROBLEM_JSON);
    assert!(String::from_utf8_lossy(&body).contains("too_many_attempts"));
    // ...while nobody else is held back...
    enroll(password("bob@acme"))
        .await
        .expect("another user from the same source");
    assert_eq!(ca.counts().await["keys"], before["keys"] + 1);
    // ...and once the delay has passed, the right password gets in: a delay, not a lock.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    enroll(password("alice@acme"))
        .await
        .expect("the user after the delay");
    assert_eq!(ca.counts().await["keys"], before["keys"] + 2);
}

/// An answer's timing must not tell a wrong password from an unknown user from an unknown
/// tenant: every path runs one argon2id verification. The three are interleaved, and their
/// medians compared with a margin far above the store lookups they differ by (tens of µs)
/// and far below the cost of argon2id (tens of ms), so noise cannot decide the outcome.
#[tokio::test]
async fn wrong_password_unknown_user_and_unknown_tenant_take_the_same_time() {
    // Each sample comes from its own client address (through a simulated load balancer) and
    // names its own user, so that neither the per-user delay nor the per-source refusal
    // answers in its place.
    const ROUNDS: usize = 15;
    let mut ca = Ca::start();
    ca.tenant_with_user("acme", "alice0@acme", &["read:metrics"])
        .await;
    for round in 1..ROUNDS {
        ca.user(&format!("alice{round}@acme"), &["read:metrics"])
            .await;
    }
    ca.restart_with(&["--proxy-protocol"]);
    let mut times = vec![Vec::new(); 3];
    for round in 0..ROUNDS {
        let cases = [
            (format!("alice{round}@acme"), "not-her-password"),
            (format!("mallory{round}@acme"), PASSWORD),
            (format!("alice{round}@nowhere"), PASSWORD),
        ];
        for (i, (user, password)) in cases.iter().enumerate() {
            let from: std::net::SocketAddr = format!("198.51.100.{}:4000", 3 * round + i + 1)
                .parse()
                .unwrap();
            let stream = support::tls_as(&ca, from).await.unwrap();
            let started = std::time::Instant::now();
            let (status, answer) = support::exchange(stream, &support::basic(user, password)).await;
            times[i].push(started.elapsed());
            assert_eq!(status, 401, "{answer}");
            assert!(answer.contains("invalid_credentials"), "{answer}");
        }
    }
    let medians: Vec<_> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    let (fastest, slowest) = (medians.iter().min().unwrap(), medians.iter().max().unwrap());
    assert!(
        slowest.as_secs_f64() < fastest.as_secs_f64() * 1.5,
        "medians (wrong password, unknown user, unknown tenant): {medians:?}"
    );
    println!("medians (wrong password, unknown user, unknown tenant): {medians:?}");
}

/// Rekeying goes through the same CSR checks as enrolling: an RSA key with a public
/// exponent other than 65537 is refused with `weak_key`, and the refusal changes nothing.
#[tokio::test]
async fn a_rekey_with_an_rsa_exponent_other_than_65537_is_refused() {
    let ca = Ca::in_process(Policy {
        renew_interval: time::Duration::ZERO,
        ..Policy::default()
    });
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let a = ca.enroll_into("alice@acme", &["read:metrics"], "a").await;
    let holder = ca.with_identity(&ca.path("a"));
    let before = ca.snapshot().await;
    for e in [3, 65539] {
        let csr = openssl_csr(
            ca.dir.path(),
            &format!("rekey-e{e}"),
            &["rsa:2048", "-pkeyopt", &format!("rsa_keygen_pubexp:{e}")],
            &[],
        );
        let err = holder.renew(&a.key.id, Some(csr)).await.unwrap_err();
        assert_eq!(support::problem_code(err), "weak_key", "exponent {e}");
    }
    assert_eq!(
        ca.snapshot().await,
        before,
        "a refused rekey changed the store"
    );
    // The usual exponent is accepted.
    let good = openssl_csr(ca.dir.path(), "rekey-e65537", &["rsa:2048"], &[]);
    holder.renew(&a.key.id, Some(good)).await.unwrap();
}
