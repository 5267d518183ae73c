//! The admin listener (`[server] admin_listen`, loopback by default, never the public port):
//! `GET /metrics` (Prometheus text), `GET /healthz` (the process is up), `GET /readyz` (table
//! loaded, spool open, listening, and not shutting down: a load balancer drains the node before
//! it closes) and `GET /links/<domain>/<slashtag>` (how a link resolves, as JSON).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::links::LinkTable;
use crate::metrics::Metrics;

/// What the admin endpoints read.
pub struct AdminState {
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The current table.
    pub table: Arc<ArcSwap<LinkTable>>,
    /// True once everything is up; false again when shutdown begins.
    pub ready: AtomicBool,
}

/// Serves the admin endpoints until shutdown.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::shutdown::until_true(&mut shutdown) => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = handle(&state, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            // A failed admin connection concerns only its client.
            let _ = conn.await;
        });
    }
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    r
}

/// Answers one admin request.
pub fn handle<B>(state: &AdminState, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n");
        r.headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    match path {
        "/metrics" => text(StatusCode::OK, "text/plain; version=0.0.4", state.metrics.render()),
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => {
            if state.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "text/plain", "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n")
            }
        }
        _ => match path.strip_prefix("/links/").and_then(|rest| rest.split_once('/')) {
            Some((domain, slashtag)) => link(state, domain, slashtag),
            None => text(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: try /metrics, /healthz, /readyz or /links/<domain>/<slashtag>\n",
            ),
        },
    }
}

fn link(state: &AdminState, domain: &str, slashtag: &str) -> Response<Full<Bytes>> {
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let (domain, slashtag) = (decode(domain).to_ascii_lowercase(), decode(slashtag));
    let table = state.table.load();
    let Some(d) = table.domain_for_host(&domain) else {
        let body = serde_json::json!({"domain": domain, "slashtag": slashtag, "found": false, "reason": "no such domain and no default domain"});
        return text(StatusCode::NOT_FOUND, "application/json", body.to_string());
    };
    match d.lookup(&slashtag) {
        Some(l) => {
            let body = serde_json::json!({
                "found": true,
                "domain": &*d.name,
                "slashtag": l.slashtag(),
                "matched_case_insensitively": l.slashtag() != &*slashtag,
                "id": l.id(),
                "status": l.status.as_u16(),
                "location": l.destination(),
                "cache_control": d.cache_control(l.status).to_str().unwrap_or(""),
                "forward_query": d.forward_query,
                "creator_id": l.creator_id(),
                "workspace": {"id": &*l.workspace().id, "name": &*l.workspace().name},
                "domain_id": l.domain_id(),
            });
            text(StatusCode::OK, "application/json", body.to_string())
        }
        None => {
            let body = serde_json::json!({
                "found": false,
                "domain": &*d.name,
                "slashtag": slashtag,
                "not_found_url": d.not_found.as_ref().and_then(|v| v.to_str().ok()),
            });
            text(StatusCode::NOT_FOUND, "application/json", body.to_string())
        }
    }
}
