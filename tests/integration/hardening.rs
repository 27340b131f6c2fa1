//! The second attack on the CA (`SECURITY-FINDINGS.md`), replayed against the real server:
//! what an unauthenticated client can make the CA spend (CPU, memory, sockets, password
//! checks), and how the limits hold behind a TCP load balancer.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{
    BIN, Ca, PASSWORD, basic, ca_address, connector, exchange, password, proxy_header, retry_after,
    tcp_from, tls, tls_as,
};

/// The server's CPU time so far (user + system), in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// SECURITY-FINDINGS 1: a leaf and eight fake CA certificates sharing one name, with 770
/// empty extensions each (~60 KB): every path the CA's verifier tries parses all of them.
fn path_building_bomb() -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let name = |cn: &str| {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, cn);
        dn
    };
    let mut fakes = Vec::new();
    let mut first = None;
    for _ in 0..8 {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = name("x");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.custom_extensions = (0..770u64)
            .map(|j| rcgen::CustomExtension::from_oid_content(&[1, 2, 128 + j], Vec::new()))
            .collect();
        fakes.push(params.self_signed(&key).unwrap().der().clone());
        first.get_or_insert((params, key));
    }
    let (issuer_params, issuer_key) = first.unwrap();
    let issuer = rcgen::Issuer::new(issuer_params, issuer_key);
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name = name("leaf");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let mut chain = vec![leaf.der().clone()];
    chain.extend(fakes);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (chain, key)
}

#[tokio::test]
async fn a_chain_built_to_exhaust_path_building_costs_no_more_than_a_refusal() {
    let ca = Ca::start();
    let (chain, key) = path_building_bomb();
    let bytes: usize = chain.iter().map(|c| c.len()).sum();
    assert!(bytes > 50_000, "the attack chain is {bytes} bytes");
    let before = cpu_ticks(ca.pid());

    // Two at once (they serialized on one worker before), and a plain request meanwhile.
    let bomb = || {
        let connector = connector(&ca, Some((chain.clone(), key.clone_key())));
        let address = ca_address(&ca);
        async move {
            let started = Instant::now();
            let tcp = TcpStream::connect(address).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let outcome = match connector.connect(name, tcp).await {
                // TLS 1.3: the client learns of the refusal on its first read.
                Ok(mut tls) => {
                    let _ = tls
                        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                        .await;
                    let mut buf = [0u8; 64];
                    tls.read(&mut buf).await.map(|n| n > 0).unwrap_or(false)
                }
                Err(_) => false,
            };
            (outcome, started.elapsed())
        }
    };
    let healthz = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        ca.anonymous().ca_chain().await.expect("the CA answers");
        started.elapsed()
    };
    let ((served_a, took_a), (served_b, took_b), healthz_took) =
        tokio::join!(bomb(), bomb(), healthz);
    let spent = cpu_ticks(ca.pid()) - before;
    println!(
        "bomb handshakes refused in {took_a:?} and {took_b:?}; /v1/ca meanwhile {healthz_took:?}; server CPU {spent} ticks"
    );
    assert!(!served_a && !served_b, "a bogus chain got a session");
    assert!(took_a < Duration::from_secs(3) && took_b < Duration::from_secs(3));
    assert!(healthz_took < Duration::from_secs(3), "{healthz_took:?}");
    assert!(
        spent < 100,
        "two refused handshakes cost {spent} ticks of CPU"
    );

    // The refusal leaves a trace at the default level, and a count in the metrics.
    let log = ca.log();
    assert!(
        log.contains("TLS handshake refused") && log.contains("handshake_failed"),
        "{log}"
    );
    let admin = ca.home().join("admin");
    let metrics = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca.home().join("ca.pem"))
        .arg("--cert")
        .arg(admin.join("chain.pem"))
        .arg("--key")
        .arg(admin.join("key.pem"))
        .arg(format!("{}/metrics", ca.url))
        .output()
        .expect("curl is installed");
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics
            .lines()
            .any(|l| l
                .starts_with("latchkey_connections_refused_total{reason=\"handshake_failed\"}")),
        "{metrics}"
    );
}

/// `curl --cert cert.pem`: the leaf alone, for a key and for the administrator.
#[tokio::test]
async fn a_client_sending_only_its_leaf_is_accepted_on_every_mtls_route() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let curl = |cert: &Path, key: &Path, path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(ca.home().join("ca.pem"))
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg(format!("{}{path}", ca.url))
            .output()
            .expect("curl is installed");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let alice = ca.path("alice");
    assert_eq!(
        curl(&alice.join("cert.pem"), &alice.join("key.pem"), "/v1/keys"),
        "200"
    );
    let admin = ca.home().join("admin");
    assert_eq!(
        curl(
            &admin.join("cert.pem"),
            &admin.join("key.pem"),
            "/v1/admin/tenants"
        ),
        "200"
    );
}

/// Requests of ~270 KB each that end in a 401: what they carried must not stay behind.
async fn flood_of_huge_credentials(ca: &Ca, count: usize) {
    let pad = "u".repeat(200_000);
    let mut tasks = tokio::task::JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(20));
    for i in 0..count {
        let request = match i % 4 {
            // A huge user name, a huge tenant, a huge token, a huge other header.
            0 => basic(&format!("{i}{pad}@acme"), "x"),
            1 => basic(&format!("alice@{pad}{i}"), "x"),
            2 => format!(
                "GET /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer lkt_{i}{pad}\r\nConnection: close\r\n\r\n"
            ),
            _ => format!(
                "GET /v1/keys HTTP/1.1\r\nHost: x\r\nX-Padding-{i}: {pad}\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n",
                base64::engine::general_purpose::STANDARD.encode(format!("nobody{i}@acme:x"))
            ),
        };
        let permit = limit.clone().acquire_owned().await.unwrap();
        let stream = ca.tls_stream().await;
        tasks.spawn(async move {
            let (status, _) = exchange(stream, &request).await;
            drop(permit);
            status
        });
    }
    while let Some(status) = tasks.join_next().await {
        let status = status.unwrap();
        assert!([401, 429, 503].contains(&status), "{status}");
    }
}

#[tokio::test]
async fn huge_user_names_tenants_tokens_and_headers_leave_memory_where_it_was() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    println!("RSS at start {} KiB", rss_kib(ca.pid()));
    // Warm-up: the allocator's arenas and the runtime's buffers reach their working size.
    flood_of_huge_credentials(&ca, 40).await;
    let before = rss_kib(ca.pid());
    flood_of_huge_credentials(&ca, 400).await;
    let after = rss_kib(ca.pid());
    println!("RSS {before} KiB -> {after} KiB after 400 requests of ~270 KB");
    assert!(
        after < before + 8 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

/// Every password check allocates argon2id's 19 MiB work area on one of the blocking pool's
/// threads. The CA must give each area back to the system once it is freed, whichever
/// thread ran the check (`keep_large_allocations_out_of_arenas` in `src/main.rs`): its
/// memory may not grow with the number of threads that ever checked a password.
#[tokio::test]
async fn password_checks_give_their_memory_back() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let before = rss_kib(ca.pid());
    // Two at a time: the CA admits four checks per source at once.
    let limit = Arc::new(tokio::sync::Semaphore::new(2));
    let mut checks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let stream = ca.tls_stream().await;
        checks.spawn(async move {
            let (status, _) = exchange(stream, &basic("alice@acme", PASSWORD)).await;
            drop(permit);
            status
        });
    }
    while let Some(status) = checks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let after = rss_kib(ca.pid());
    println!("RSS {before} KiB -> {after} KiB after 32 password checks");
    assert!(
        after < before + 12 * 1024,
        "RSS grew from {before} KiB to {after} KiB: an argon2id area stayed resident"
    );
}

/// Behind a TCP load balancer every client shares its address; with `--proxy-protocol` the
/// throttle sees each client's own, and guessing at a user delays it, never locks it out.
#[tokio::test]
async fn behind_a_balancer_guessing_cannot_lock_a_user_out() {
    let mut ca = Ca::start();
    ca.tenant_with_user("globex", "carol@globex", &["read:metrics"])
        .await;
    ca.restart_with(&["--proxy-protocol"]);
    let attacker: SocketAddr = "203.0.113.7:40000".parse().unwrap();
    let carol: SocketAddr = "198.51.100.9:40001".parse().unwrap();

    let mut statuses = Vec::new();
    for i in 0..25 {
        let stream = tls_as(&ca, attacker).await.unwrap();
        let (status, _) = exchange(stream, &basic("carol@globex", &format!("wrong{i}"))).await;
        statuses.push(status);
    }
    println!("attacker: {statuses:?}");
    assert!(statuses.contains(&401) && statuses.contains(&429));

    // The real user, from elsewhere, waits at most the capped delay, then gets in.
    let mut waited = Duration::ZERO;
    loop {
        let stream = tls_as(&ca, carol).await.unwrap();
        let (status, answer) = exchange(stream, &basic("carol@globex", PASSWORD)).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "{answer}");
        let wait = retry_after(&answer);
        assert!(wait <= 30, "carol is told to wait {wait} s");
        waited += Duration::from_secs(wait);
        assert!(waited <= Duration::from_secs(31), "carol is locked out");
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    println!("carol got in after waiting {waited:?}");
}

#[tokio::test]
async fn an_ipv6_client_counts_as_its_64_and_only_the_guessing_network_is_refused() {
    let mut ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    ca.restart_with(&["--proxy-protocol"]);
    // Twenty wrong guesses for twenty users, each from a fresh address of one /64.
    // The source limit is 20 wrong passwords in a row.
    for i in 1..=20 {
        let from = SocketAddr::new(format!("2001:db8:1::{i:x}").parse().unwrap(), 1000);
        let (status, answer) = exchange(
            tls_as(&ca, from).await.unwrap(),
            &basic(&format!("nobody{i}@acme"), "x"),
        )
        .await;
        assert_eq!(status, 401, "{answer}");
    }
    let same_net: SocketAddr = "[2001:db8:1::ffff]:1000".parse().unwrap();
    let (status, answer) = exchange(
        tls_as(&ca, same_net).await.unwrap(),
        &basic("alice@acme", PASSWORD),
    )
    .await;
    assert_eq!(status, 429, "{answer}");
    assert!(answer.contains("too_many_attempts"), "{answer}");
    let other_net: SocketAddr = "[2001:db8:2::1]:1000".parse().unwrap();
    let (status, answer) = exchange(
        tls_as(&ca, other_net).await.unwrap(),
        &basic("alice@acme", PASSWORD),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_proxy_header_is_read_only_when_the_operator_says_so() {
    // Without --proxy-protocol, a client cannot claim an address: the header is not TLS.
    let direct = Ca::start();
    let mut tcp = TcpStream::connect(ca_address(&direct)).await.unwrap();
    let claimed: SocketAddr = "192.0.2.1:1".parse().unwrap();
    tcp.write_all(&proxy_header(claimed, ca_address(&direct)))
        .await
        .unwrap();
    assert!(tls(&direct, tcp).await.is_err());

    // With it, a connection without the header (a client that bypassed the balancer) is
    // refused, and one with it is served.
    let behind = Ca::start_with(&["--proxy-protocol"]);
    let tcp = TcpStream::connect(ca_address(&behind)).await.unwrap();
    assert!(tls(&behind, tcp).await.is_err());
    let (status, _) = exchange(
        tls_as(&behind, claimed).await.unwrap(),
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(behind.log().contains("PROXY header refused"));
}

/// SECURITY-FINDINGS 8: a flood of logins with random user names from one address must not
/// make everyone else's logins answer `busy`.
#[tokio::test]
async fn one_source_flooding_password_checks_cannot_starve_other_logins() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let flooder: IpAddr = "127.0.0.2".parse().unwrap();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..1100 {
        let Ok(tcp) = tcp_from(&ca, flooder).await else {
            continue;
        };
        let connector = connector(&ca, None);
        flood.spawn(async move {
            let name = ServerName::try_from("localhost").unwrap();
            let Ok(stream) = connector.connect(name, tcp).await else {
                return 0;
            };
            exchange(stream, &basic(&format!("r{i}x@acme"), "wrong-password"))
                .await
                .0
        });
    }
    // Meanwhile, three real users' logins from another address.
    let mut logins = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let answer = ca
            .anonymous()
            .list_keys(Some(&password("alice@acme")), &Default::default())
            .await;
        logins.push((answer.is_ok(), started.elapsed()));
    }
    let mut counts = std::collections::BTreeMap::new();
    while let Some(status) = flood.join_next().await {
        *counts.entry(status.unwrap()).or_insert(0) += 1;
    }
    println!("flood answers {counts:?}; logins meanwhile {logins:?}");
    for (ok, took) in logins {
        assert!(ok, "a real login failed during the flood");
        assert!(took < Duration::from_secs(5), "a real login took {took:?}");
    }
}

/// SECURITY-FINDINGS 6: long polls from one source take a bounded share of the sockets.
#[tokio::test]
async fn long_polls_per_source_are_capped_and_others_are_still_served() {
    let ca = Ca::start_with(&["--max-long-polls-per-source", "8"]);
    let (number, _) = ca
        .anonymous()
        .crl(None, 0)
        .await
        .expect("crl")
        .expect("a CRL");
    let request = format!(
        "GET /v1/crl?newer_than={number}&wait=60 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let poller: IpAddr = "127.0.0.2".parse().unwrap();
    let mut polls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let stream = tls(&ca, tcp_from(&ca, poller).await.unwrap())
            .await
            .unwrap();
        let request = request.clone();
        polls.spawn(async move {
            let started = Instant::now();
            let (status, _) = exchange(stream, &request).await;
            (status, started.elapsed())
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Another source still long-polls and is still served.
    let (status, _) = exchange(
        ca.tls_stream().await,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    // The CRL changes: the held polls answer with it.
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    ca.admin()
        .revoke_key(None, &key.key.id, None)
        .await
        .expect("revoke");
    let mut busy = 0;
    let mut answered = 0;
    while let Some(outcome) = polls.join_next().await {
        let (status, took) = outcome.unwrap();
        match status {
            503 => {
                busy += 1;
                assert!(took < Duration::from_secs(2), "busy after {took:?}");
            }
            200 => answered += 1,
            other => panic!("long poll answered {other}"),
        }
    }
    assert_eq!((answered, busy), (8, 12));
}

/// A start-up under a low file-descriptor limit: the soft limit is raised to the hard one,
/// the start-up block says how many connections the CA holds, and a client holding more
/// than its share gets its extra connections closed, not the CA an accept-error storm.
#[tokio::test]
async fn connections_are_capped_below_the_descriptor_limit_and_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 128 && ulimit -Hn 256 && exec {BIN} serve --listen 127.0.0.1:0 --max-connections-per-source 100"
        ))
        .current_dir(dir.path())
        .env("LATCHKEY_HOME", dir.path().join("certs"))
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut url = None;
    let mut capacity = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("latchkey: listening on ") {
            url = Some(u.trim().to_owned());
        }
        if line.contains("connections:") {
            capacity = Some(line.clone());
        }
        if line.contains(" enroll ") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let capacity = capacity.expect("the start-up block says how many connections");
    println!("{capacity}");
    assert!(capacity.contains("file-descriptor limit 256"), "{capacity}");
    assert!(capacity.contains("100 per client network"), "{capacity}");
    let url = url.unwrap();
    let address: SocketAddr = url.trim_start_matches("https://").parse().unwrap();

    // 150 connections from one address: 100 held, the rest closed at once.
    let hog: IpAddr = "127.0.0.2".parse().unwrap();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..150 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(hog, 0)).unwrap();
        let tcp = socket.connect(address).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let roots = latchkey::tls::load_certificates(
            &std::fs::read(dir.path().join("certs/ca.pem")).unwrap(),
            "ca",
        )
        .unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(
            latchkey::tls::client_config(&roots, None).unwrap(),
        ));
        match tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!("a connection over the limit hung instead of being closed"),
        }
    }
    assert_eq!((held.len(), refused), (100, 50));
    // Another client is served meanwhile.
    let out = Command::new("curl")
        .args(["-sS", "-m", "5", "--cacert"])
        .arg(dir.path().join("certs/ca.pem"))
        .arg(format!("{url}/healthz"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(!log.contains("accept failed"), "{log}");
    assert!(log.contains("per-source connection limit reached"), "{log}");
}

/// A keep-alive connection that sends nothing more is closed after the header deadline.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let ca = Ca::start();
    let mut stream = ca.tls_stream().await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let mut total = 0;
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    assert!(total > 0, "no answer");
    assert!(closed.is_ok(), "an idle connection was held 30 s");
    println!("idle connection closed after {:?}", started.elapsed());
}

/// SECURITY-FINDINGS 11: a start that cannot bind leaves no CA behind, and a new CA's CRL
/// distribution point names the port it actually listens on.
#[tokio::test]
async fn serve_binds_before_it_initializes_anything() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env("LATCHKEY_HOME", dir.path().join("certs"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot listen"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dir.path().join("certs/ca.pem").exists(),
        "a failed start initialized a CA"
    );

    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let key = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    let (_, cert) = x509_parser::pem::parse_x509_pem(key.certificate.as_bytes()).unwrap();
    let cert = cert.parse_x509().unwrap();
    let cdp = format!("{:?}", cert.extensions());
    let expected = format!("{}/v1/crl", ca.url.replace("127.0.0.1", "localhost"));
    assert!(cdp.contains(&expected), "{expected} not in {cdp}");
}
