//! The TLS listener's connections: the handshake (certificate by SNI, see [`super::tls`]), then
//! HTTP/2 or HTTP/1.1 by ALPN with hyper-util's auto builder, [`Router::handle`] as the service.
//! The accept loops and limits are [`super::listener`]'s.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::acme::{acme_answer, acme_path};
use super::listener::{Activity, ConnLimits, ServingThreads, serve_on_threads};
use super::redirect::Router;
use crate::metrics::Metrics;
use crate::shutdown::until_true;

/// Runs the TLS accept loops on the serving threads like [`super::listener::serve_plain`] (its sockets bound by
/// [`super::listener::bind_per_thread`] as well); the handshake gets `header_read_timeout`, and a failed one is
/// counted.
#[allow(clippy::too_many_arguments)] // the same as serve_plain's, plus the acceptor
pub async fn serve_tls(
    listeners: Vec<std::net::TcpListener>,
    threads: Arc<ServingThreads>,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Arc<Router>,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let limits = Arc::new(limits);
    let max_connections = limits.max_connections;
    let counters = metrics.clone();
    let serve = move |stream, peer, shutdown| {
        let (router, limits, metrics, acceptor) = (router.clone(), limits.clone(), counters.clone(), acceptor.clone());
        async move {
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    serve_connection(tls, peer, router, &limits, shutdown, h2).await
                }
                Ok(Err(e)) => {
                    metrics.tls_handshake_errors.inc();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    metrics.tls_handshake_errors.inc();
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    };
    serve_on_threads(listeners, &threads, max_connections, metrics, shutdown, grace, serve).await
}

/// Serves HTTP/2 or HTTP/1.1 with hyper on one TLS connection. `h2` says that ALPN chose
/// HTTP/2: that connection's idle time is bounded by `idle_timeout` and HTTP/2 pings, not by
/// `header_read_timeout`.
pub async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    router: Arc<Router>,
    limits: &ConnLimits,
    mut shutdown: watch::Receiver<bool>,
    h2: bool,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(IdleIo {
        inner: io,
        activity: activity.clone(),
    });
    let peer_ip = peer.ip().to_canonical();
    let clock = activity.clone();
    let acme = limits.acme_challenge_dir.clone().map(Arc::new);
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let acme_file = acme.as_ref().and_then(|dir| acme_path(dir, req.uri().path()));
        let response = match acme_file {
            None => Some(router.handle(&req, peer_ip, true)),
            Some(_) => None,
        };
        // From the read that completed the request head to the built response: one clock read,
        // since the read already stamped its time.
        router.metrics().request_latency.observe(clock.head_done());
        let router = router.clone();
        async move {
            Ok::<_, Infallible>(match (response, acme_file) {
                (Some(r), _) => r,
                (None, Some(path)) => acme_answer(&path, &router).await.to_response(),
                (None, None) => unreachable!("one of the two is set"),
            })
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    // No HTTP/1.1 timer: `Activity::expired` enforces `header_read_timeout`.
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(limits.idle_timeout / 2))
        .keep_alive_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(io, service).into_owned();
    tokio::pin!(conn);
    // At shutdown hyper finishes the request in flight (HTTP/1.1) or sends GOAWAY (HTTP/2).
    let served = async {
        tokio::select! {
            r = conn.as_mut() => return r,
            _ = until_true(&mut shutdown) => conn.as_mut().graceful_shutdown(),
        }
        conn.await
    };
    let result = tokio::select! {
        r = served => r.map_err(|e| e.to_string()),
        why = activity.expired(limits.idle_timeout, (!h2).then_some(limits.header_read_timeout)) => Err(why.to_string()),
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

/// Wraps a transport and records activity on every successful read or write.
struct IdleIo<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for IdleIo<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) {
            self.activity.touch_read();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for IdleIo<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
