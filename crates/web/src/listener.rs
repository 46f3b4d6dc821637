//! Serving slamon's HTTP APIs (REST, and gRPC through tonic's router) on one listener,
//! in a way that a slow or hostile client cannot hold open: HTTP/1 and HTTP/2 (h2c by
//! its preface, or ALPN under TLS), optional TLS (rustls) whose certificate is read again
//! when its files change, and [`Limits`]: a connection that sends nothing, or headers too
//! slowly, is closed after `header_read_timeout`; a request that takes longer than
//! `request_timeout` is answered `503`; at most `max_in_flight` requests run at once
//! (more get `503` with `Retry-After` at once, never a queue). Connections are served by
//! hyper-util's connection builder, as axum's own `serve` does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a client may take, and how many requests run at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the connection (or the end of the previous request) to the end of the
    /// request's headers, the TLS handshake included.
    pub header_read_timeout: Duration,
    /// From the headers to the end of the answer (the body read included).
    pub request_timeout: Duration,
    /// Requests served at once on this listener.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 256,
        }
    }
}

/// How one API is served: TLS or not, and its limits.
#[derive(Debug, Clone, Default)]
pub struct Serving {
    /// TLS of the listener; `None`: plain HTTP.
    pub tls: Option<Tls>,
    /// What no client can exceed.
    pub limits: Limits,
}

/// A TLS certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

/// How often the certificate files are checked for changes, at most.
const TLS_RECHECK: Duration = Duration::from_secs(5);

/// The server certificate, read again from its files when they change (a renewed
/// certificate is served to new connections without a restart; a broken renewal keeps
/// the last good one and says so).
#[derive(Debug)]
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    state: Mutex<CertState>,
}

#[derive(Debug)]
struct CertState {
    stamp: Option<(SystemTime, SystemTime)>,
    checked: Instant,
    current: Arc<rustls::sign::CertifiedKey>,
}

fn modified(path: &Path) -> std::io::Result<SystemTime> {
    std::fs::metadata(path)?.modified()
}

fn load(
    cert: &Path,
    key: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<rustls::sign::CertifiedKey, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| TlsError(format!("cannot read a PEM certificate from {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!("{} holds no certificate", cert.display())));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError(format!("cannot read a PEM private key from {}: {e}", key.display())))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError(format!("the key in {} cannot sign: {e}", key.display())))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        TlsError(format!("the key in {} does not match the certificate in {}: {e}", key.display(), cert.display()))
    })?;
    Ok(certified)
}

impl ReloadingCert {
    fn current(&self) -> Arc<rustls::sign::CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() >= TLS_RECHECK {
            state.checked = Instant::now();
            if let (Ok(c), Ok(k)) = (modified(&self.cert), modified(&self.key)) {
                if state.stamp != Some((c, k)) {
                    match load(&self.cert, &self.key, &self.provider) {
                        Ok(fresh) => {
                            tracing::info!(cert = %self.cert.display(), "TLS certificate read again");
                            state.current = Arc::new(fresh);
                            state.stamp = Some((c, k));
                        }
                        Err(e) => tracing::warn!(error = %e, "keeping the previous TLS certificate"),
                    }
                }
            }
        }
        state.current.clone()
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current())
    }
}

/// TLS of a listener: its certificate chain and key (PEM files), read again when they
/// change; HTTP/2 and HTTP/1.1 by ALPN.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// The certificate chain in `cert` and its private key in `key`, both PEM.
    ///
    /// # Errors
    /// [`TlsError`] when a file cannot be read, holds no certificate or key, or the key
    /// does not match the certificate.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let current = Arc::new(load(cert, key, &provider)?);
        let stamp = modified(cert).ok().zip(modified(key).ok());
        let resolver = ReloadingCert {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider: provider.clone(),
            state: Mutex::new(CertState { stamp, checked: Instant::now(), current }),
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self { config: Arc::new(config) })
    }
}

/// The JSON 503 of a request over a limit.
fn over_limit(message: String, retry_after: bool) -> Response {
    let mut response =
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"error": message}))).into_response();
    if retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[derive(Clone)]
struct Gate {
    permits: Arc<tokio::sync::Semaphore>,
    timeout: Duration,
}

async fn gate(axum::extract::State(gate): axum::extract::State<Gate>, request: Request, next: Next) -> Response {
    // liveness is answered even under load
    if request.uri().path() == "/livez" {
        return next.run(request).await;
    }
    let Ok(_permit) = gate.permits.clone().try_acquire_owned() else {
        return over_limit("Too many requests in flight; retry shortly".into(), true);
    };
    match tokio::time::timeout(gate.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => over_limit(format!("The request took longer than {:?}", gate.timeout), false),
    }
}

/// Serves `router` on `listener` (TLS when `tls` is given) within `limits` until
/// `cancel`, then lets open requests finish for at most `grace`.
///
/// # Errors
/// The listener's address cannot be read.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Tls>,
    limits: Limits,
    cancel: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(service = name, %addr, tls = tls.is_some(), "listening");
    let gate_state = Gate {
        permits: Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight.max(1))),
        timeout: limits.request_timeout,
    };
    let router = router.layer(axum::middleware::from_fn_with_state(gate_state, gate));
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // out of file descriptors, or a connection reset before accept: wait a little
                    tracing::warn!(service = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        let stopping = cancel.clone();
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
            builder.http2().timer(TokioTimer::new());
            match acceptor {
                None => {
                    // a connection that never sends a byte is closed (hyper's header timeout
                    // starts only once the protocol is known)
                    // (and one still silent when the service stops is closed then: it holds no
                    // request to finish)
                    let mut first = [0u8; 1];
                    let peeked = tokio::select! {
                        _ = stopping.cancelled() => return,
                        peeked = tokio::time::timeout(limits.header_read_timeout, stream.peek(&mut first)) => peeked,
                    };
                    match peeked {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                    let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    let _ = watcher.watch(connection).await;
                }
                Some(acceptor) => {
                    let handshake = tokio::select! {
                        _ = stopping.cancelled() => return,
                        done = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)) => done,
                    };
                    let Ok(Ok(tls)) = handshake else { return };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let builder = if h2 { builder.http2_only() } else { builder.http1_only() };
                    let connection = builder.serve_connection(TokioIo::new(tls), service).into_owned();
                    let _ = watcher.watch(connection).await;
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(service = name, "shutdown grace elapsed, dropping open connections");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A router whose `/slow` takes `pause`, served with `limits` (and `tls`).
    async fn start(limits: Limits, tls: Option<Tls>, pause: Duration) -> (std::net::SocketAddr, CancellationToken) {
        let router = axum::Router::new()
            .route("/livez", axum::routing::get(|| async { "ok" }))
            .route("/fast", axum::routing::get(|| async { "fast" }))
            .route(
                "/slow",
                axum::routing::get(move || async move {
                    tokio::time::sleep(pause).await;
                    "slow"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        tokio::spawn(serve("test", listener, router, tls, limits, cancel.clone(), Duration::from_secs(1)));
        (addr, cancel)
    }

    fn limits(header: u64, request: u64, in_flight: usize) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(header),
            request_timeout: Duration::from_secs(request),
            max_in_flight: in_flight,
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_client_sending_headers_a_byte_a_second_is_disconnected_within_the_timeout() {
        let (addr, cancel) = start(limits(2, 30, 8), None, Duration::ZERO).await;
        let closed = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            let started = Instant::now();
            for byte in b"GET /fast HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
                if stream.write_all(&[*byte]).is_err() {
                    return started.elapsed();
                }
                std::thread::sleep(Duration::from_millis(500));
                // a closed connection shows as end of stream (or a reset) on read
                stream.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
                let mut buf = [0u8; 512];
                match stream.read(&mut buf) {
                    Ok(0) => return started.elapsed(),
                    Ok(_) => return started.elapsed(), // an error answer, then the close
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return started.elapsed(),
                }
            }
            Duration::MAX
        })
        .await
        .unwrap();
        assert!(closed < Duration::from_secs(5), "the slow client was served for {closed:?}");
        cancel.cancel();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_connection_that_sent_nothing_does_not_hold_up_the_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let router = axum::Router::new().route("/fast", axum::routing::get(|| async { "fast" }));
        let grace = Duration::from_secs(10);
        let served = tokio::spawn(serve("test", listener, router, None, limits(10, 30, 8), cancel.clone(), grace));
        let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
        // not the 10 s of the header timeout or of the grace: it has no request to finish
        let stopped = tokio::time::timeout(Duration::from_secs(2), served).await;
        assert!(stopped.is_ok(), "a silent connection held the shutdown");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_thousand_idle_connections_do_not_stop_the_service() {
        let (addr, cancel) = start(limits(3, 30, 8), None, Duration::ZERO).await;
        let mut idle = Vec::new();
        for _ in 0..1000 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let body = reqwest::get(format!("http://{addr}/fast")).await.unwrap().text().await.unwrap();
        assert_eq!(body, "fast");
        // and the idle ones are closed once the header timeout passes
        tokio::time::sleep(Duration::from_secs(4)).await;
        let mut closed = 0;
        for s in &mut idle {
            let mut buf = [0u8; 1];
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(20), s.peek(&mut buf)).await {
                closed += 1;
            }
        }
        assert_eq!(closed, idle.len(), "idle connections left open");
        cancel.cancel();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn requests_over_the_in_flight_limit_or_the_request_timeout_get_503() {
        let (addr, cancel) = start(limits(5, 1, 1), None, Duration::from_millis(2500)).await;
        let slow = tokio::spawn(reqwest::get(format!("http://{addr}/slow")));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let busy = reqwest::get(format!("http://{addr}/fast")).await.unwrap();
        assert_eq!(busy.status(), 503);
        assert_eq!(busy.headers()["retry-after"], "1");
        assert!(busy.text().await.unwrap().contains("Too many requests in flight"));
        // liveness answers even then
        assert_eq!(reqwest::get(format!("http://{addr}/livez")).await.unwrap().status(), 200);
        let timed_out = slow.await.unwrap().unwrap();
        assert_eq!(timed_out.status(), 503);
        assert!(timed_out.text().await.unwrap().contains("longer than"));
        assert_eq!(reqwest::get(format!("http://{addr}/fast")).await.unwrap().status(), 200);
        cancel.cancel();
    }

    /// A CA and a certificate for 127.0.0.1 signed by it: the CA's PEM, the
    /// certificate's and the key's.
    fn certificate(name: &str) -> (String, String, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
        (ca.pem(), cert.pem(), key.serialize_pem())
    }

    fn trusting(ca: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
            .build()
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tls_is_served_and_a_renewed_certificate_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (ca1, cert1, key1) = certificate("first CA");
        std::fs::write(&cert_file, cert1).unwrap();
        std::fs::write(&key_file, key1).unwrap();
        let tls = Tls::from_files(&cert_file, &key_file).unwrap();
        let (addr, cancel) = start(Limits::default(), Some(tls), Duration::ZERO).await;
        let url = format!("https://{addr}/fast");
        assert_eq!(trusting(&ca1).get(&url).send().await.unwrap().text().await.unwrap(), "fast");
        // HTTP/2 by ALPN too
        let h2 = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca1.as_bytes()).unwrap()])
            .http2_prior_knowledge()
            .build()
            .unwrap();
        assert_eq!(h2.get(&url).send().await.unwrap().version(), reqwest::Version::HTTP_2);
        assert!(reqwest::get(format!("http://{addr}/fast")).await.is_err(), "plain HTTP on a TLS listener");

        // a renewed certificate (another CA): new connections get it, without a restart
        let (ca2, cert2, key2) = certificate("second CA");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&key_file, key2).unwrap();
        std::fs::write(&cert_file, cert2).unwrap();
        let deadline = Instant::now() + TLS_RECHECK * 3;
        loop {
            if let Ok(r) = trusting(&ca2).get(&url).send().await {
                assert_eq!(r.text().await.unwrap(), "fast");
                break;
            }
            assert!(Instant::now() < deadline, "the renewed certificate was never served");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // a broken renewal keeps the last good certificate
        std::fs::write(&cert_file, "not a certificate").unwrap();
        tokio::time::sleep(TLS_RECHECK + Duration::from_millis(500)).await;
        assert_eq!(trusting(&ca2).get(&url).send().await.unwrap().status(), 200);
        cancel.cancel();
    }

    #[test]
    fn a_key_that_does_not_match_or_a_missing_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, cert, _) = certificate("a");
        let (_, _, other_key) = certificate("b");
        let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, other_key).unwrap();
        let e = Tls::from_files(&cert_file, &key_file).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        assert!(Tls::from_files(&dir.path().join("missing"), &key_file).is_err());
    }
}
