//! Size and speed: bodies over the limit are refused without being read, and a client that
//! trickles bytes is cut off by a deadline, not served for hours.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::support::Ca;

const HUNDRED_MIB: usize = 100 << 20;

/// Reads an HTTP response head (up to the blank line), within 10 s.
async fn response_head(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
    })
    .await
    .expect("no answer within 10 s");
    String::from_utf8_lossy(&head).into_owned()
}

fn post_head(framing: &str) -> Vec<u8> {
    format!(
        "POST /v1/keys HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_100_mib_body_is_refused_without_being_read() {
    let ca = Ca::start();
    let before = ca.snapshot().await;

    // Declared in Content-Length: the answer comes before the body does.
    let mut stream = ca.tls_stream().await;
    stream
        .write_all(&post_head(&format!("Content-Length: {HUNDRED_MIB}")))
        .await
        .unwrap();
    let head = response_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // Chunked, with no length: the server stops reading at the limit and hangs up, so
    // the client cannot get anywhere near 100 MiB in.
    let (mut read, mut write) = tokio::io::split(ca.tls_stream().await);
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        if write
            .write_all(&post_head("Transfer-Encoding: chunked"))
            .await
            .is_err()
        {
            return sent;
        }
        let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
        while sent < HUNDRED_MIB && write.write_all(chunk.as_bytes()).await.is_ok() {
            sent += 0x10000;
        }
        sent
    });
    let head = response_head(&mut read).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    drop(read);
    let sent = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the server kept reading")
        .unwrap();
    assert!(sent < HUNDRED_MIB, "the server read all {sent} bytes");
    println!(
        "chunked: {} KiB written before the server hung up",
        sent >> 10
    );

    assert_eq!(ca.snapshot().await, before);
    ca.anonymous().ca_chain().await.expect("still healthy");
}

/// Sends `head`, then one byte a second for up to 60 s. Returns how long the server let the
/// connection live and what it answered.
async fn trickle(ca: &Ca, head: Vec<u8>) -> (Duration, String) {
    let (mut read, mut write) = tokio::io::split(ca.tls_stream().await);
    write.write_all(&head).await.unwrap();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..60 {
            if write.write_all(b"a").await.is_err() || write.flush().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        write
    });
    let mut answer = Vec::new();
    // The end comes as EOF or as an error (no close_notify); either is the cut.
    let ended = tokio::time::timeout(Duration::from_secs(70), read.read_to_end(&mut answer)).await;
    writer.abort();
    assert!(ended.is_ok(), "a trickling client was never cut off");
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

#[tokio::test]
async fn a_client_sending_one_byte_a_second_is_cut_off() {
    let ca = Ca::start();
    let before = ca.snapshot().await;
    let headers = trickle(
        &ca,
        b"POST /v1/keys HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".to_vec(),
    );
    let body = trickle(&ca, post_head("Content-Length: 1000"));
    let ((header_time, _), (body_time, body_answer)) = tokio::join!(headers, body);
    assert!(header_time < Duration::from_secs(60), "{header_time:?}");
    assert!(body_time < Duration::from_secs(60), "{body_time:?}");
    assert!(body_answer.starts_with("HTTP/1.1 408"), "{body_answer}");
    assert!(body_answer.contains("\"request_timeout\""), "{body_answer}");
    println!("slow headers cut after {header_time:?}, slow body after {body_time:?}");

    assert_eq!(ca.snapshot().await, before);
    ca.anonymous().ca_chain().await.expect("still healthy");
}
