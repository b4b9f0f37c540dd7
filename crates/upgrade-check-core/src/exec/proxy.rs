//! A recording reverse proxy on loopback: each request is forwarded to the
//! service as it came, its answer returned as it went, and both kept, in
//! the order the requests arrived, for `record` to turn into a scenario.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::input::traffic::Recorded;

/// Headers that belong to one connection, never forwarded either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
];

/// The largest request or answer body kept; a bigger one is refused.
const MAX_BODY_BYTES: usize = 16 << 20;

/// What passed through, in the order requests arrived, and when the last
/// request came.
#[derive(Default)]
pub(crate) struct Tape {
    exchanges: Mutex<Vec<(u64, Recorded)>>,
    arrived: std::sync::atomic::AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl Tape {
    /// The exchanges, in the order their requests arrived.
    pub(crate) fn take(&self) -> Vec<Recorded> {
        let mut exchanges =
            std::mem::take(&mut *self.exchanges.lock().unwrap_or_else(|e| e.into_inner()));
        exchanges.sort_by_key(|(order, _)| *order);
        exchanges
            .into_iter()
            .map(|(_, exchange)| exchange)
            .collect()
    }

    /// How long since the last request came (or since `since`, before any).
    pub(crate) fn idle_for(&self, since: Instant) -> Duration {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(since)
            .elapsed()
    }
}

/// A loopback address, or why another is refused: the proxy forwards to a
/// service holding test secrets and must be reachable from this machine only.
pub(crate) fn check_loopback(address: SocketAddr) -> Result<SocketAddr, String> {
    if address.ip().is_loopback() {
        Ok(address)
    } else {
        Err(format!(
            "the recording proxy listens on loopback only (127.0.0.1 or ::1), not {}",
            address.ip()
        ))
    }
}

/// Accepts connections on `listener` and forwards each request to
/// `upstream` (`http://127.0.0.1:PORT`), until the task is dropped.
pub(crate) async fn serve(listener: tokio::net::TcpListener, upstream: String, tape: Arc<Tape>) {
    let client = crate::exec::replay::client();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (upstream, tape, client) = (upstream.clone(), tape.clone(), client.clone());
        tokio::spawn(async move {
            let forward = service_fn(move |request| {
                forward(request, upstream.clone(), client.clone(), tape.clone())
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), forward)
                .await;
        });
    }
}

async fn forward(
    request: Request<Incoming>,
    upstream: String,
    client: reqwest::Client,
    tape: Arc<Tape>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let order = tape
        .arrived
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    *tape.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    let headers = pairs(request.headers());
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            return Ok(answer(
                400,
                format!("the request's body could not be read: {err}"),
            ));
        }
    };
    if body.len() > MAX_BODY_BYTES {
        return Ok(answer(
            413,
            "the request's body is larger than the recorder keeps".to_owned(),
        ));
    }
    let mut outgoing = client.request(method.clone(), format!("{upstream}{path}"));
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    if !body.is_empty() {
        outgoing = outgoing.body(body.clone());
    }
    let response = match outgoing.send().await {
        Ok(response) => response,
        Err(err) => return Ok(answer(502, format!("the service did not answer: {err}"))),
    };
    let status = response.status();
    let response_headers = pairs(response.headers());
    let answer_body = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(err) => {
            return Ok(answer(
                502,
                format!("the service's answer broke off: {err}"),
            ));
        }
    };
    let mut back = Response::builder().status(status);
    for (name, value) in &response_headers {
        if !HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str()) {
            back = back.header(name, value);
        }
    }
    tape.exchanges
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((
            order,
            Recorded {
                method: method.to_string(),
                path,
                headers,
                body: (!body.is_empty()).then(|| body.to_vec()),
                status: status.as_u16(),
                response_body: answer_body.to_vec(),
            },
        ));
    Ok(back.body(Full::new(answer_body)).unwrap_or_else(|_| {
        answer(
            502,
            "the service's answer could not be passed on".to_owned(),
        )
    }))
}

/// An answer of the proxy's own, for a request it could not forward.
fn answer(status: u16, message: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    response
}

fn pairs(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}
