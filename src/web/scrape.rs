//! `GET /metrics`, streamed: the exposition leaves in chunks of about
//! [`crate::metrics::CHUNK_BYTES`], each encoded (and gzipped, when the client accepts it)
//! only once the client has taken the previous one. A scrape at 50,000 targets holds one
//! chunk and a compressor's window, not 85 MB; a slow reader costs what it reads, and a
//! scrape cut short is cut off (the connection is aborted, never ended as if complete).

use std::io::Write;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, VARY};
use hyper::{Response, StatusCode};

use super::{BoxError, Reply, WebState};
use crate::metrics::Exposition;

/// The exposition's content type (text format 0.0.4).
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One scrape in progress: the text still to write, and its compressor.
struct Scrape {
    exposition: Exposition,
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl Scrape {
    /// The next bytes to send; `None` once the whole text (and the gzip trailer) is sent.
    fn next(&mut self) -> Option<Result<Bytes, BoxError>> {
        loop {
            let Some(chunk) = self.exposition.next_chunk() else {
                return self.gzip.take().map(|z| z.finish().map(Bytes::from).map_err(BoxError::from));
            };
            let Some(z) = &mut self.gzip else { return Some(Ok(Bytes::from(chunk))) };
            if let Err(e) = z.write_all(chunk.as_bytes()) {
                return Some(Err(e.into()));
            }
            // The compressor keeps some input in its window: send what it has written.
            let zipped = std::mem::take(z.get_mut());
            if !zipped.is_empty() {
                return Some(Ok(Bytes::from(zipped)));
            }
        }
    }
}

/// The `/metrics` answer: a body streamed from the exposition, gzipped if `gzip`.
pub(super) fn metrics(state: &WebState, gzip: bool) -> Reply {
    let scrape = Scrape {
        exposition: state.metrics.exposition(),
        gzip: gzip.then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())),
    };
    let frames = futures_util::stream::unfold(scrape, |mut scrape| async move {
        // A chunk is encoded on the runtime (well under a millisecond): give way to the
        // probes between chunks.
        tokio::task::consume_budget().await;
        let next = scrape.next()?;
        Some((next.map(Frame::data), scrape))
    });
    let mut r = Response::new(StreamBody::new(frames).boxed_unsync());
    *r.status_mut() = StatusCode::OK;
    let headers = r.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// Whether a request's `Accept-Encoding` takes gzip.
pub(super) fn accepts_gzip(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(hyper::header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")))
}
