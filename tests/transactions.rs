//! Transaction checks (`steps:`, issue #21, item 1) against a procedure portal written for
//! the test: a login page carrying a CSRF token, a login that checks it and the password
//! and sets a session cookie, a dossier search that needs the session (and can be made
//! slow), and a logout the app counts. The flow: open the login page, capture the token,
//! log in with the monitoring account (its password from a file), search a test dossier,
//! log out — always.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use vigil::model::State;

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "mật-khẩu-giám-sát-2026";
const SESSION: &str = "phien-7f3a9c";

/// The portal's knobs and counters.
#[derive(Default)]
struct Portal {
    /// Delay of the dossier search, ms.
    search_delay_ms: AtomicU64,
    logouts: AtomicU64,
    logins: AtomicU64,
    /// Tokens handed out by the login page.
    tokens: std::sync::Mutex<Vec<String>>,
}

fn respond(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Full::new(Bytes::from(body.to_string()))).expect("response")
}

async fn route(portal: Arc<Portal>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (path, query) = (req.uri().path().to_string(), req.uri().query().unwrap_or("").to_string());
    let cookie = req.headers().get("cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let signed_in = cookie.split("; ").any(|c| c == format!("session={SESSION}"));
    match path.as_str() {
        "/login" if form.is_empty() => {
            let token = format!("csrf-{}", portal.tokens.lock().expect("tokens").len() + 1000);
            portal.tokens.lock().expect("tokens").push(token.clone());
            respond(200, &[], &format!("<form><input type=\"hidden\" name=\"csrf\" value=\"{token}\"></form>"))
        }
        "/login" => {
            portal.logins.fetch_add(1, Ordering::SeqCst);
            let token_ok = form.get("csrf").is_some_and(|t| portal.tokens.lock().expect("tokens").contains(t));
            if token_ok && form.get("password").map(String::as_str) == Some(PASSWORD) {
                let cookie = format!("session={SESSION}; Path=/; HttpOnly");
                respond(302, &[("location", "/home"), ("set-cookie", &cookie)], "")
            } else {
                respond(401, &[], "sai mật khẩu hoặc mã CSRF")
            }
        }
        "/search" if signed_in => {
            tokio::time::sleep(Duration::from_millis(portal.search_delay_ms.load(Ordering::SeqCst))).await;
            let code = query.strip_prefix("q=").unwrap_or("");
            respond(
                200,
                &[("content-type", "application/json")],
                &format!("{{\"dossier\": \"{code}\", \"status\": \"dang-xu-ly\"}}"),
            )
        }
        "/search" => respond(403, &[], "not signed in"),
        "/logout" => {
            portal.logouts.fetch_add(1, Ordering::SeqCst);
            respond(200, &[("set-cookie", "session=; Path=/; Max-Age=0")], "bye")
        }
        _ => respond(404, &[], "no such page"),
    }
}

async fn start_portal() -> (std::net::SocketAddr, Arc<Portal>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let portal = Arc::new(Portal::default());
    let p = portal.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let p = p.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let p = p.clone();
                    async move { Ok::<_, Infallible>(route(p, req).await) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (addr, portal)
}

/// The flow's configuration: `password_file` holds the monitoring account's password.
fn flow(addr: std::net::SocketAddr, hooks: std::net::SocketAddr) -> String {
    format!(
        r#"receivers:
  - {{ id: team, channels: [ {{ webhook: {{ url: "http://{hooks}/hook" }} }} ] }}
routes:
  - {{ receivers: [team] }}
systems:
  - id: procedures
    checks:
      - id: citizen-flow
        timeout: 900ms
        variables: {{ user: giam-sat, password_file: password.txt, dossier: HS-0001 }}
        steps:
          - name: login page
            http: {{ url: "http://{addr}/login" }}
            conditions: ["[STATUS] == 200"]
            capture: {{ csrf: {{ regex: 'name="csrf" value="([^"]+)"' }} }}
          - name: login
            http:
              url: "http://{addr}/login"
              method: POST
              headers: {{ Content-Type: application/x-www-form-urlencoded }}
              body: "user={{{{user}}}}&password={{{{password}}}}&csrf={{{{csrf}}}}"
              follow_redirects: false
            conditions: ["[STATUS] == 302"]
          - name: search
            http: {{ url: "http://{addr}/search?q={{{{dossier}}}}" }}
            conditions: ["[STATUS] == 200", "[BODY].dossier == HS-0001"]
            warning_conditions: ["[RESPONSE_TIME] < 300ms"]
          - name: logout
            always: true
            http: {{ url: "http://{addr}/logout" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_flow_is_one_check_that_names_the_step_that_fails() {
    let (addr, portal) = start_portal().await;
    let hooks = HookSink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("password.txt"), format!("{PASSWORD}\n")).expect("password file");
    write_config(dir.path(), &flow(addr, hooks.addr));
    let app = start_daemon(dir.path()).await;
    let mut events = app.subscribe();
    let base = format!("http://{}", app.addr());
    let last = || async {
        let status: serde_json::Value =
            serde_json::from_str(&get(&format!("{base}/api/v1/status")).await).expect("status json");
        status["systems"][0]["checks"][0]["targets"][0]["last_result"].clone()
    };

    // All good: up, and every run logs out.
    wait_states(&mut events, WAIT, &[("procedures/citizen-flow", State::Up)]).await;
    assert!(portal.logouts.load(Ordering::SeqCst) >= 1);

    // The search slows beyond its warning condition: degraded, the step named.
    portal.search_delay_ms.store(400, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("procedures/citizen-flow", State::Degraded)]).await;
    let message = last().await["message"].as_str().unwrap_or_default().to_string();
    assert!(message.starts_with("step \"search\": [RESPONSE_TIME]"), "{message}");
    portal.search_delay_ms.store(0, Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("procedures/citizen-flow", State::Up)]).await;

    // The password changes on the portal side (the file still holds the old one): the flow
    // fails at "login" with its condition shown, the search never runs, logout still does.
    std::fs::write(dir.path().join("password.txt"), "mat-khau-cu\n").expect("password file");
    app.reload().await.expect("reload");
    let logouts = portal.logouts.load(Ordering::SeqCst);
    wait_states(&mut events, WAIT, &[("procedures/citizen-flow", State::Down)]).await;
    let result = last().await;
    let message = result["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("step \"login\": [STATUS] (401) == 302"), "{message}");
    assert!(!message.contains("mat-khau-cu") && !message.contains(PASSWORD), "no secret in a message: {message}");
    assert_eq!(result["reason"], "http_status");
    let deadline = std::time::Instant::now() + WAIT;
    while portal.logouts.load(Ordering::SeqCst) <= logouts {
        assert!(std::time::Instant::now() < deadline, "logout runs after a failed login");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One alert for the whole flow, naming the step.
    let got = hooks
        .wait_until(WAIT, "the flow's alerts", |h| h.iter().filter(|x| x.body["event"] == "firing").count() >= 2)
        .await;
    let firing: Vec<_> = got.iter().filter(|h| h.body["event"] == "firing").collect();
    assert_eq!(firing.len(), 2, "one for the degraded search, one for the failed login: {got:#?}");
    assert!(firing.iter().all(|h| h.body["incident"]["target"] == "procedures/citizen-flow"));
    let cause = firing[1].body["incident"]["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("step \"login\""), "{cause}");
    app.shutdown().await;
}
