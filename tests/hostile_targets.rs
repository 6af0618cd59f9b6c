//! A zoo of hostile targets (issue #14): servers and plugins that drip, stall, flood, loop or
//! refuse to die, all on loopback or in this process. For each, every run ends within its
//! timeout and a second, with the reason code it deserves; after 100 runs of each (25 at
//! once) the process's memory grew by less than 20 MB and its open descriptors are back
//! where they were.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use vigil::probe::{FailureReason, Prober};

const TIMEOUT: Duration = Duration::from_millis(400);
const RUNS: usize = 100;
const AT_ONCE: usize = 25;

/// A TCP server on 127.0.0.1 handing every connection to `serve`.
async fn tcp_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let serve = std::sync::Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let serve = serve.clone();
            // Each connection is bounded in time, whatever its handler does.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), serve(stream)).await;
            });
        }
    });
    addr
}

/// Reads the request's head (a server that speaks first is refused by the client before
/// anything else is tried).
async fn read_request(s: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 64 * 1024 {
        match s.read(&mut buf).await {
            Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
}

/// After the request, writes `head`, then one byte at a time, `gap` apart, until the client
/// goes away.
async fn drip(mut s: TcpStream, head: &'static [u8], gap: Duration) {
    if !head.is_empty() {
        read_request(&mut s).await;
    }
    if s.write_all(head).await.is_err() {
        return;
    }
    while s.write_all(b"x").await.is_ok() {
        tokio::time::sleep(gap).await;
    }
}

async fn slowloris() -> SocketAddr {
    tcp_server(|s| drip(s, b"HTTP/1.1 200 OK\r\nX-Slow: ", Duration::from_millis(100))).await
}

async fn drip_body() -> SocketAddr {
    tcp_server(|s| drip(s, b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", Duration::from_millis(50))).await
}

/// A gigabyte of body, as fast as the client reads it.
async fn huge_body() -> SocketAddr {
    tcp_server(|mut s| async move {
        read_request(&mut s).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n").await;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(1 << 14) {
            if s.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await
}

/// A response with 100,000 headers.
async fn many_headers() -> SocketAddr {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..100_000 {
        head.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let head: &'static [u8] = Box::leak(head.into_boxed_slice());
    tcp_server(move |mut s| async move {
        read_request(&mut s).await;
        let _ = s.write_all(head).await;
    })
    .await
}

/// Two servers redirecting to each other for ever.
async fn redirect_pair() -> SocketAddr {
    let second = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let b = second.local_addr().expect("addr");
    let a = tcp_server(move |mut s| async move {
        read_request(&mut s).await;
        let reply = format!("HTTP/1.1 302 Found\r\nLocation: http://{b}/\r\nContent-Length: 0\r\n\r\n");
        let _ = s.write_all(reply.as_bytes()).await;
    })
    .await;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = second.accept().await {
            tokio::spawn(async move {
                read_request(&mut s).await;
                let reply = format!("HTTP/1.1 302 Found\r\nLocation: http://{a}/\r\nContent-Length: 0\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    a
}

/// `Content-Encoding: gzip` over 100 MB of zeros (100 KB on the wire): Vigil reads what
/// arrives and never inflates it.
async fn gzip_bomb() -> SocketAddr {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..100 {
        z.write_all(&zeros).expect("gzip");
    }
    let body = z.finish().expect("gzip");
    let mut reply =
        format!("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    reply.extend_from_slice(&body);
    let reply: &'static [u8] = Box::leak(reply.into_boxed_slice());
    tcp_server(move |mut s| async move {
        read_request(&mut s).await;
        let _ = s.write_all(reply).await;
    })
    .await
}

/// A TCP service that answers one byte every 10 ms, never what `expect` waits for.
async fn byte_drip() -> SocketAddr {
    tcp_server(|s| drip(s, b"", Duration::from_millis(10))).await
}

/// Accepts, reads the TLS client hello, and never answers.
async fn tls_stall() -> SocketAddr {
    tcp_server(|mut s| async move {
        let mut buf = [0u8; 4096];
        while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await
}

/// A DNS server (UDP) answering each query with garbage under its id, or a truncated
/// header; nothing listens on the same TCP port.
async fn dns_garbage() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        let mut n = 0u32;
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            n = n.wrapping_add(1);
            let mut reply = buf[..len.min(2)].to_vec();
            if n.is_multiple_of(2) {
                reply.extend_from_slice(&[0x83, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]); // TC set, nothing else
            } else {
                reply.extend((0..40u32).map(|i| (i.wrapping_mul(2654435761).wrapping_add(n) >> 13) as u8));
            }
            let _ = socket.send_to(&reply, from).await;
        }
    });
    addr
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/plugins/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_targets_end_in_time_with_the_right_reason_and_leak_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("escaped.pids");
    let text = format!(
        r#"instance: {{ name: zoo }}
defaults: {{ interval: 30s, timeout: {timeout}ms }}
systems:
  - id: zoo
    checks:
      - {{ id: slowloris, http: {{ url: "http://{slowloris}/" }} }}
      - {{ id: drip-body, http: {{ url: "http://{drip_body}/" }} }}
      - {{ id: huge-body, http: {{ url: "http://{huge_body}/" }} }}
      - {{ id: many-headers, http: {{ url: "http://{many_headers}/" }} }}
      - {{ id: endless-redirects, http: {{ url: "http://{redirects}/" }} }}
      - {{ id: gzip-bomb, http: {{ url: "http://{gzip_bomb}/" }} }}
      - {{ id: byte-drip, tcp: {{ address: "{byte_drip}", expect: "^220 " }} }}
      - {{ id: tls-stall, tls: {{ address: "{tls_stall}" }} }}
      - {{ id: dns-garbage, dns: {{ host: "{dns_garbage}", query_name: portal.laichau.test }} }}
      - {{ id: plugin-megabyte, exec: {{ command: [sh, -c, "head -c 1000000 /dev/zero | tr '\\0' x"] }} }}
      - {{ id: plugin-perfdata-bomb, exec: {{ command: ["{bomb}"], perfdata: ["*"] }} }}
      - {{ id: plugin-escapes, exec: {{ command: ["{escape}", "{pids}"] }} }}
      - {{ id: plugin-ignores-term, exec: {{ command: [sh, -c, "trap '' TERM; sleep 5"] }} }}
"#,
        timeout = TIMEOUT.as_millis(),
        slowloris = slowloris().await,
        drip_body = drip_body().await,
        huge_body = huge_body().await,
        many_headers = many_headers().await,
        redirects = redirect_pair().await,
        gzip_bomb = gzip_bomb().await,
        byte_drip = byte_drip().await,
        tls_stall = tls_stall().await,
        dns_garbage = dns_garbage().await,
        bomb = fixture("perfdata-bomb.sh"),
        escape = fixture("escape.sh"),
        pids = pids.display(),
    );
    let config = vigil::config::load_from_text(&dir.path().join("zoo.yaml"), &text, &|_| None)
        .unwrap_or_else(|e| panic!("zoo config:\n{e}"));
    let expected: &[(&str, &[Option<FailureReason>])] = &[
        ("slowloris", &[Some(FailureReason::Timeout)]),
        ("drip-body", &[Some(FailureReason::Timeout)]),
        ("huge-body", &[Some(FailureReason::BodySize)]),
        ("many-headers", &[Some(FailureReason::Network)]),
        ("endless-redirects", &[Some(FailureReason::Redirects)]),
        ("gzip-bomb", &[None]),
        ("byte-drip", &[Some(FailureReason::Timeout)]),
        ("tls-stall", &[Some(FailureReason::Timeout)]),
        ("dns-garbage", &[Some(FailureReason::Network), Some(FailureReason::Timeout)]),
        ("plugin-megabyte", &[None]),
        ("plugin-perfdata-bomb", &[None]),
        ("plugin-escapes", &[None]),
        ("plugin-ignores-term", &[Some(FailureReason::Timeout)]),
    ];
    let prober = Prober::new();
    let checks: Vec<_> = config.targets().map(|(_, c, t)| (c, t)).collect();
    assert_eq!(checks.len(), expected.len());

    let run_all = |runs: usize| {
        let prober = &prober;
        let checks = &checks;
        async move {
            for ((check, target), (id, reasons)) in checks.iter().zip(expected) {
                assert_eq!(check.id, *id);
                let outcomes: Vec<_> = futures_util::stream::iter(0..runs)
                    .map(|_| async move {
                        let started = Instant::now();
                        let outcome = prober.probe(check, target).await;
                        (outcome, started.elapsed())
                    })
                    .buffer_unordered(AT_ONCE)
                    .collect()
                    .await;
                for (outcome, took) in outcomes {
                    assert!(took <= TIMEOUT + Duration::from_secs(1), "{id}: a run took {took:?}");
                    assert!(reasons.contains(&outcome.reason), "{id}: {:?} ({})", outcome.reason, outcome.message);
                    assert!(outcome.message.chars().count() <= 300, "{id}: message of {}", outcome.message.len());
                }
            }
        }
    };
    run_all(AT_ONCE).await; // warm-up: allocator pools, runtime threads, TLS roots
    let (rss, fds) = (rss_kb(), open_fds());
    run_all(RUNS).await;
    // Closing connections take a moment: wait (at most 5 s) for the descriptors to come back.
    let settled = Instant::now() + Duration::from_secs(5);
    while open_fds() > fds + 4 && Instant::now() < settled {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (rss_after, fds_after) = (rss_kb(), open_fds());
    for pid in std::fs::read_to_string(&pids).unwrap_or_default().lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    eprintln!("RSS {rss} kB → {rss_after} kB, open descriptors {fds} → {fds_after}");
    assert!(rss_after < rss + 20 * 1024, "RSS grew from {rss} kB to {rss_after} kB over {RUNS} runs of each");
    assert!(fds_after <= fds + 4, "open descriptors grew from {fds} to {fds_after}");
}
