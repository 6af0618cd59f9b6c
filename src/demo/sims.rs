//! The simulated systems: small HTTP and TCP servers on 127.0.0.1 whose answers follow
//! the fault schedule.
//!
//! size: `Simulators::start` starts the five simulators side by side, one block each.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{DEMO_COMMUNES, Faults};

/// An HTTP answer: status, content type, body.
type Answer = (u16, &'static str, String);
type Handler = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync>;

/// The running simulators and their addresses.
pub struct Simulators {
    pub faults: Faults,
    pub portal: SocketAddr,
    pub documents: SocketAddr,
    pub meeting_web: SocketAddr,
    pub meeting_signal: SocketAddr,
    pub reporting: SocketAddr,
    /// One per entry of [`DEMO_COMMUNES`], in order.
    pub gateways: Vec<SocketAddr>,
    /// Receives the demo's alerts (generic webhook) and prints them.
    pub alert_sink: SocketAddr,
    /// The reporting portal over HTTPS, with a certificate close to expiry.
    pub reporting_tls: SocketAddr,
    stop: CancellationToken,
}

async fn bind() -> std::io::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0").await
}

impl Simulators {
    /// Starts every simulator on an ephemeral loopback port.
    pub async fn start(faults: Faults, tls: Arc<rustls::ServerConfig>) -> std::io::Result<Simulators> {
        let stop = CancellationToken::new();
        let f = faults.clone();
        let portal = serve_http(
            bind().await?,
            stop.clone(),
            handler(move |path| {
                let f = f.clone();
                async move {
                    match path.as_str() {
                    "/api/health" => (200, "application/json", format!(r#"{{"status":"UP","queue":{{"pending":{}}}}}"#, f.backlog())),
                    _ => (200, "text/html; charset=utf-8", "<!doctype html><title>Cổng Dịch vụ công tỉnh Lai Châu</title><h1>Dịch vụ công trực tuyến</h1>".into()),
                }
                }
            }),
        );
        let f = faults.clone();
        let documents = serve_http(
            bind().await?,
            stop.clone(),
            handler(move |_| {
                let delay = f.documents_delay();
                async move {
                    tokio::time::sleep(delay).await;
                    (200, "text/html; charset=utf-8", "<!doctype html><title>Quản lý văn bản</title>".into())
                }
            }),
        );
        let f = faults.clone();
        let meeting_web = serve_http(
            bind().await?,
            stop.clone(),
            handler(move |_| {
                let down = f.meeting_down();
                async move {
                    if down {
                        (503, "text/plain", "MCU unavailable".into())
                    } else {
                        (200, "text/html; charset=utf-8", "<!doctype html><title>Hội nghị truyền hình</title>".into())
                    }
                }
            }),
        );
        let reporting = serve_http(
            bind().await?,
            stop.clone(),
            handler(|_| async { (200, "application/json", r#"{"status":"UP","database":"ok"}"#.into()) }),
        );
        let f = faults.clone();
        let meeting_signal = serve_tcp(bind().await?, stop.clone(), move |stream| {
            let down = f.meeting_down();
            signalling(stream, down)
        });
        let mut gateways = Vec::new();
        for (slug, _) in DEMO_COMMUNES {
            let f = faults.clone();
            gateways.push(serve_tcp(bind().await?, stop.clone(), move |mut stream| {
                let up = f.gateway_up(slug);
                async move {
                    if up {
                        let _ = stream.write_all(format!("GW READY {slug}\n").as_bytes()).await;
                    }
                }
            }));
        }
        let alert_sink = serve_alert_sink(bind().await?, stop.clone())?;
        let reporting_tls = serve_https(
            bind().await?,
            stop.clone(),
            tls,
            handler(|_| async {
                (200, "text/html; charset=utf-8", "<!doctype html><title>Cổng báo cáo</title>".into())
            }),
        )?;
        Ok(Simulators {
            reporting_tls,
            alert_sink,
            faults,
            portal: portal?,
            documents: documents?,
            meeting_web: meeting_web?,
            meeting_signal: meeting_signal?,
            reporting: reporting?,
            gateways: gateways.into_iter().collect::<Result<_, _>>()?,
            stop,
        })
    }

    /// Name and URL of each simulator, for printing.
    pub fn urls(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("procedures portal".into(), format!("http://{}/", self.portal)),
            ("procedures health API".into(), format!("http://{}/api/health", self.portal)),
            ("documents".into(), format!("http://{}/", self.documents)),
            ("e-meeting web".into(), format!("http://{}/", self.meeting_web)),
            ("e-meeting signalling (tcp)".into(), self.meeting_signal.to_string()),
            ("reporting API".into(), format!("http://{}/api/health", self.reporting)),
            ("reporting portal (https)".into(), format!("https://{}/", self.reporting_tls)),
        ];
        for ((_, name), addr) in DEMO_COMMUNES.iter().zip(&self.gateways) {
            out.push((format!("gateway {name} (tcp)"), addr.to_string()));
        }
        out
    }

    /// Stops every simulator.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    Arc::new(move |path| Box::pin(f(path)))
}

/// Answers PING with PONG, or closes at once while down.
async fn signalling(stream: TcpStream, down: bool) {
    if down {
        return;
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).await.is_ok() && line.trim() == "PING" {
        let _ = reader.get_mut().write_all(b"PONG\n").await;
    }
}

/// Prints each alert the demo's receiver gets, as the team's phone would show it.
fn serve_alert_sink(listener: TcpListener, stop: CancellationToken) -> std::io::Result<SocketAddr> {
    serve_tcp(listener, stop, |stream| async move {
        let service = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
            use http_body_util::BodyExt;
            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            if let Ok(alert) = serde_json::from_slice::<serde_json::Value>(&body) {
                let when = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
                println!("{when}  alert → {}", alert["summary"].as_str().unwrap_or("?"));
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
        });
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
    })
}

/// Accepts connections until `stop`, each handled by `on_connect` in a task of its own.
fn serve_tcp<F, Fut>(listener: TcpListener, stop: CancellationToken, on_connect: F) -> std::io::Result<SocketAddr>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted { Ok((s, _)) => s, Err(_) => continue },
            };
            tokio::spawn(on_connect(stream));
        }
    });
    Ok(addr)
}

fn to_response((status, content_type, body): Answer) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn serve_https(
    listener: TcpListener,
    stop: CancellationToken,
    tls: Arc<rustls::ServerConfig>,
    handler: Handler,
) -> std::io::Result<SocketAddr> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    serve_tcp(listener, stop, move |stream| {
        let (acceptor, handler) = (acceptor.clone(), handler.clone());
        async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                serve_answers(tls, handler).await;
            }
        }
    })
}

fn serve_http(listener: TcpListener, stop: CancellationToken, handler: Handler) -> std::io::Result<SocketAddr> {
    serve_tcp(listener, stop, move |stream| serve_answers(stream, handler.clone()))
}

/// Serves HTTP/1 on one connection, answering each request by its path.
async fn serve_answers<S>(stream: S, handler: Handler)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let answer = handler(req.uri().path().to_string());
        async move { Ok::<_, Infallible>(to_response(answer.await)) }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}
