//! A real webhook receiver for tests: an HTTP server on 127.0.0.1 whose answer can be switched
//! between 200, any status (with `Retry-After`), hanging, and being down (not listening).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Mode {
    Ok,
    Status(u16, Option<&'static str>),
    /// 413 for bodies with more than one event, 200 otherwise.
    TooLargeAbove1,
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.json()["data"].as_array().cloned().unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    requests: Vec<Received>,
    /// Requests whose body was read, answered or not (a hanging one is never answered).
    arrived: usize,
}

/// The receiver; `stop` takes it down, `start` brings it back on the same port.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub async fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            mode: Some(mode),
            requests: Vec::new(),
            arrived: 0,
        }));
        let task = Some(tokio::spawn(serve(listener, state.clone())));
        Receiver { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = Some(mode);
    }

    /// Stops listening (connections are refused) until [`Receiver::resume`].
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    pub async fn resume(&mut self) {
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.task = Some(tokio::spawn(serve(listener, self.state.clone())));
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Events of all requests answered 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<serde_json::Value> {
        self.requests()
            .iter()
            .filter(|r| (200..300).contains(&r.answered))
            .flat_map(|r| r.events())
            .collect()
    }

    /// Requests whose body was read, including any still hanging.
    pub fn arrived(&self) -> usize {
        self.state.lock().unwrap().arrived
    }

    /// Waits until some request was answered with `status`.
    pub async fn wait_for_answer(&self, status: u16, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.requests().iter().any(|r| r.answered == status) {
            assert!(Instant::now() < deadline, "no request was answered {status}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until at least `n` events were accepted.
    pub async fn wait_for_events(&self, n: usize, limit: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let d = self.delivered();
            if d.len() >= n {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "receiver has {} events, expected {n}",
                d.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>) {
    // Connections live in this set, so aborting the server also cuts its keep-alive connections.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let mode = {
                        let mut state = state.lock().unwrap();
                        state.arrived += 1;
                        state.mode.clone().unwrap_or(Mode::Ok)
                    };
                    let events = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["data"].as_array().map(|a| a.len()))
                        .unwrap_or(0);
                    let (status, retry_after) = match mode {
                        Mode::Ok => (200, None),
                        Mode::Status(s, ra) => (s, ra),
                        Mode::TooLargeAbove1 => (if events > 1 { 413 } else { 200 }, None),
                        Mode::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            (200, None)
                        }
                    };
                    state.lock().unwrap().requests.push(Received {
                        at: Instant::now(),
                        method: parts.method.to_string(),
                        headers: parts.headers,
                        body,
                        answered: status,
                    });
                    let mut r = http::Response::new(Full::new(Bytes::from_static(b"{}")));
                    *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
                    if let Some(ra) = retry_after {
                        r.headers_mut()
                            .insert("retry-after", http::HeaderValue::from_static(ra));
                    }
                    if (300..400).contains(&status) {
                        r.headers_mut().insert(
                            "location",
                            http::HeaderValue::from_static("http://127.0.0.1:1/elsewhere"),
                        );
                    }
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
