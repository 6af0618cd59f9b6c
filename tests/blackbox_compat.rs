//! `/probe` against the real blackbox_exporter: same loopback targets, equivalent modules;
//! every metric name blackbox returns is returned by Vigil, with the same `probe_success`.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

/// blackbox_exporter started by the test on a loopback port, stopped when dropped.
struct Blackbox {
    base: String,
    child: std::process::Child,
}

impl Blackbox {
    fn start(dir: &std::path::Path, dns_server_query: &str) -> Blackbox {
        let config = dir.join("blackbox.yml");
        std::fs::write(
            &config,
            format!(
                "modules:\n  http_2xx: {{ prober: http, timeout: 5s }}\n  tcp_connect: {{ prober: tcp, timeout: 5s }}\n  icmp: {{ prober: icmp, timeout: 5s }}\n  dns: {{ prober: dns, timeout: 5s, dns: {{ query_name: {dns_server_query}, query_type: A }} }}\n  dns_nx: {{ prober: dns, timeout: 5s, dns: {{ query_name: nope.laichau.test, query_type: A, valid_rcodes: [NXDOMAIN] }} }}\n"
            ),
        )
        .expect("write blackbox config");
        let port = free_port();
        let child = tool("prometheus-blackbox-exporter", "prometheus-blackbox-exporter")
            .args([&format!("--config.file={}", config.display()), &format!("--web.listen-address=127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start blackbox_exporter");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "blackbox_exporter did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Blackbox { base: format!("http://{addr}"), child }
    }
}

impl Drop for Blackbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect()
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_endpoint_is_a_drop_in_for_blackbox_exporter() {
    let web = web_server(None).await;
    let closed = closed_port().await;
    let dns = Dnsmasq::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let blackbox = Blackbox::start(dir.path(), "portal.laichau.test");
    write_config_with(
        dir.path(),
        r#"probe_endpoint: { enabled: true, allow: ["127.0.0.0/8"] }"#,
        r#"modules:
  http_2xx: { http: {}, timeout: 5s }
  tcp_connect: { tcp: {}, timeout: 5s }
  icmp: { icmp: { count: 1 }, timeout: 5s }
  dns: { dns: { query_name: portal.laichau.test, query_type: A }, timeout: 5s }
  dns_nx: { dns: { query_name: nope.laichau.test, query_type: A }, conditions: ["[DNS_RCODE] == NXDOMAIN"], timeout: 5s }
systems: []
"#,
    );
    let app = start_daemon(dir.path()).await;
    let vigil = format!("http://{}", app.addr());

    let cases = [
        ("http_2xx", format!("http://{}/ok", web.addr), 1.0),
        ("http_2xx", format!("http://{}/status/503", web.addr), 0.0),
        ("tcp_connect", web.addr.to_string(), 1.0),
        ("tcp_connect", closed.to_string(), 0.0),
        ("icmp", "127.0.0.1".to_string(), 1.0),
        ("dns", dns.addr.clone(), 1.0),
        ("dns_nx", dns.addr.clone(), 1.0),
    ];
    for (module, target, success) in cases {
        let query = format!("/probe?module={module}&target={}", encode(&target));
        let theirs = get(&format!("{}{query}", blackbox.base)).await;
        let ours = get(&format!("{vigil}{query}")).await;
        let missing: Vec<String> = names(&theirs).difference(&names(&ours)).cloned().collect();
        assert!(missing.is_empty(), "{module} {target}: Vigil lacks {missing:?}\nblackbox:\n{theirs}\nvigil:\n{ours}");
        assert_eq!(sample(&theirs, "probe_success", &[]), Some(success), "blackbox {module} {target}");
        assert_eq!(sample(&ours, "probe_success", &[]), Some(success), "vigil {module} {target}:\n{ours}");
        if module.starts_with("dns") {
            for section in ["probe_dns_answer_rrs", "probe_dns_authority_rrs", "probe_dns_additional_rrs"] {
                assert_eq!(sample(&ours, section, &[]), sample(&theirs, section, &[]), "{section}:\n{theirs}\n{ours}");
            }
            assert_eq!(
                sample(&ours, "probe_dns_authority_rrs", &[]),
                Some(1.0),
                "{module}: the zone's NS, or its SOA when negative:\n{ours}"
            );
        }
    }

    // The scrape timeout header bounds the probe, as blackbox does.
    let started = Instant::now();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = hyper::Request::get(format!(
        "{vigil}/probe?module=http_2xx&target={}",
        encode(&format!("http://{}/slow", web.addr))
    ))
    .header("X-Prometheus-Scrape-Timeout-Seconds", "1.5")
    .body(http_body_util::Full::new(bytes::Bytes::new()))
    .expect("request");
    let resp = client.request(req).await.expect("response");
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(sample(&body, "probe_success", &[]), Some(0.0));
    assert!(sample(&body, "probe_duration_seconds", &[]).is_some_and(|d| (0.9..1.4).contains(&d)), "{body}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Refusals: unknown module, no target, a target outside the allow-list (refused
    // before any connection is attempted).
    assert_eq!(request("GET", &format!("{vigil}/probe?module=nope&target=127.0.0.1"), None).await.0, 400);
    assert_eq!(request("GET", &format!("{vigil}/probe?module=icmp"), None).await.0, 400);
    let (code, body) = request("GET", &format!("{vigil}/probe?module=icmp&target=::1"), None).await;
    assert_eq!(code, 403, "{body}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_endpoint_is_off_unless_enabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), "systems: []\n");
    let app = start_daemon(dir.path()).await;
    let (code, body) = request("GET", &format!("http://{}/probe?module=icmp&target=127.0.0.1", app.addr()), None).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("probe_endpoint.enabled"), "{body}");
    app.shutdown().await;
}

/// A server on `ip` that counts the connections it accepts and redirects each request to
/// `location` (or answers 200 when there is none).
async fn counting_server(
    ip: &str,
    location: Option<String>,
) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let location = location.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let reply = match location {
                    Some(l) => format!("HTTP/1.1 302 Found\r\nLocation: {l}\r\nContent-Length: 0\r\n\r\n"),
                    None => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string(),
                };
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, count)
}

/// Issue #13, item 6: `/probe` with a token and an allow-list: the token is required, a
/// redirect to a host outside the list is not followed (nothing connects there, so a
/// module's credentials never reach it), and a module carrying credentials is refused at
/// load when the list is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_endpoint_keeps_to_its_allow_list_and_token() {
    let (outside, outside_count) = counting_server("127.0.0.2", None).await;
    let (inside, _) = counting_server("127.0.0.1", Some(format!("http://{outside}/"))).await;
    let token = "probe-token-0123456789abcdef";
    let dir = tempfile::tempdir().expect("tempdir");
    write_config_with(
        dir.path(),
        &format!(r#"probe_endpoint: {{ enabled: true, allow: ["127.0.0.1/32"], token: "{token}" }}"#),
        "modules:\n  http_auth: { http: { headers: { Authorization: \"Bearer module-secret\" } }, timeout: 5s }\nsystems: []\n",
    );
    let app = start_daemon(dir.path()).await;
    let url = format!("http://{}/probe?module=http_auth&target={}", app.addr(), encode(&format!("http://{inside}/")));
    assert_eq!(send("GET", &url, &[], "").await.0, 401, "the token is required");
    assert_eq!(send("GET", &url, &[("authorization", "Bearer wrong-token-0123456789abc")], "").await.0, 401);
    let auth = format!("Bearer {token}");
    let (code, _, body) = send("GET", &url, &[("authorization", &auth)], "").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(sample(&body, "probe_success", &[]), Some(0.0), "the redirect out of the list fails the probe:\n{body}");
    assert_eq!(outside_count.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing connected outside the list");
    let direct =
        format!("http://{}/probe?module=http_auth&target={}", app.addr(), encode(&format!("http://{outside}/")));
    assert_eq!(send("GET", &direct, &[("authorization", &auth)], "").await.0, 403);
    assert_eq!(outside_count.load(std::sync::atomic::Ordering::SeqCst), 0);
    app.shutdown().await;

    // With an empty allow-list, a module that carries credentials does not load.
    let text = "server: { probe_endpoint: { enabled: true } }\nmodules:\n  http_auth: { http: { headers: { Authorization: \"Bearer x\" } } }\nsystems: []\n";
    let errors = match vigil::config::load_from_text(&dir.path().join("open.yaml"), text, &|_| None) {
        Ok(_) => panic!("a credential-carrying module on an open /probe was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(errors.contains("modules.http_auth.http.headers.Authorization: a module that sends credentials needs server.probe_endpoint.allow"), "{errors}");
}

/// A DNS server on 127.0.0.1 that rebinds: the first A query for any name is answered with
/// 127.0.0.1, every later one with 127.0.0.2 (TTL 0); AAAA queries get no answer.
async fn rebinding_dns() -> std::net::SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        let mut a_queries = 0u32;
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            if len < 12 {
                continue;
            }
            // The question: labels up to the zero byte, then type and class.
            let mut end = 12;
            while end < len && buf[end] != 0 {
                end += 1 + usize::from(buf[end]);
            }
            let question = &buf[12..(end + 5).min(len)];
            let qtype = u16::from_be_bytes([buf[end + 1], buf[end + 2]]);
            let mut reply = vec![buf[0], buf[1], 0x81, 0x80, 0, 1, 0, u8::from(qtype == 1), 0, 0, 0, 0];
            reply.extend_from_slice(question);
            if qtype == 1 {
                a_queries += 1;
                let last = if a_queries == 1 { 1 } else { 2 };
                reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, last]);
            }
            let _ = socket.send_to(&reply, from).await;
        }
    });
    addr
}

/// Issue #13, item 6: a DNS answer that changes between the check and the connection cannot
/// lead `/probe` to a refused address: the name is resolved once (by a test resolver on
/// loopback), every address checked, and the probe connects to exactly those; the next
/// request sees the rebound answer and is refused — nothing ever connects to 127.0.0.2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_endpoint_cannot_be_rebound() {
    let (allowed, _) = counting_server("127.0.0.1", None).await;
    let rebound = tokio::net::TcpListener::bind(("127.0.0.2", allowed.port())).await.expect("bind 127.0.0.2");
    let rebound_hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hits = rebound_hits.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = rebound.accept().await {
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let dns = rebinding_dns().await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config_with(
        dir.path(),
        &format!(r#"probe_endpoint: {{ enabled: true, allow: ["127.0.0.1/32"], resolver: "{dns}" }}"#),
        "modules:\n  http_2xx: { http: {}, timeout: 5s }\nsystems: []\n",
    );
    let app = start_daemon(dir.path()).await;
    let target = encode(&format!("http://portal.rebind.test:{}/", allowed.port()));
    let url = format!("http://{}/probe?module=http_2xx&target={target}", app.addr());
    let (code, body) = request("GET", &url, None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(sample(&body, "probe_success", &[]), Some(1.0), "connected to the checked address:\n{body}");
    let (code, body) = request("GET", &url, None).await;
    assert_eq!(code, 403, "the rebound answer is refused: {body}");
    assert_eq!(rebound_hits.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing connected to 127.0.0.2");
    app.shutdown().await;
}

/// blackbox_exporter has no WebSocket prober: `/probe` offers Vigil's `websocket` kind as a
/// module (e-meeting signalling scraped like any blackbox target), and takes blackbox's
/// ICMP settings under their own names (`source_ip_address`, `dont_fragment`, `ttl`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_endpoint_offers_websocket_and_blackbox_icmp_settings() {
    let echo = WsServer::start("echo", None);
    let refuse = WsServer::start("refuse", None);
    let dir = tempfile::tempdir().expect("tempdir");
    write_config_with(
        dir.path(),
        r#"probe_endpoint: { enabled: true, allow: ["127.0.0.0/8"] }"#,
        "modules:\n  ws_echo: { websocket: { send: hi }, conditions: [\"[STATUS] == 101\", \"[BODY] == echo: hi\"], timeout: 3s }\n  \
         icmp_df: { icmp: { count: 1, dont_fragment: true, payload_size: 1200, ttl: 32, source_ip_address: 127.0.0.1 }, timeout: 3s }\nsystems: []\n",
    );
    let app = start_daemon(dir.path()).await;
    let probe = |module: &str, target: String| {
        format!("http://{}/probe?module={module}&target={}", app.addr(), encode(&target))
    };
    let (code, body) = request("GET", &probe("ws_echo", format!("ws://127.0.0.1:{}/", echo.port)), None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(sample(&body, "probe_success", &[]), Some(1.0), "the echo answers:\n{body}");
    let (_, body) = request("GET", &probe("ws_echo", format!("ws://127.0.0.1:{}/", refuse.port)), None).await;
    assert_eq!(sample(&body, "probe_success", &[]), Some(0.0), "an upgrade refused fails:\n{body}");
    let (_, body) = request("GET", &probe("icmp_df", "127.0.0.1".into()), None).await;
    assert_eq!(sample(&body, "probe_success", &[]), Some(1.0), "{body}");
    assert!(sample(&body, "probe_icmp_reply_hop_limit", &[]).is_some(), "{body}");
    app.shutdown().await;
}
