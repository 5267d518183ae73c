//! TLS certificate store: picks the certificate for each handshake by SNI among
//! the many custom domains the edge serves.
//!
//! This module owns reading certificate/key PEM files, checking them (parsable,
//! key matches certificate, within its validity period, covers the name it is
//! served for), the lock-free name → certificate map, and the rustls
//! [`ServerConfig`] handed to the TLS listener.
//!
//! Who calls it:
//! - start-up builds a [`CertStore`] with [`CertStore::load`] and passes
//!   [`CertStore::server_config`] to the TLS listener;
//! - the listener's rustls connections call [`CertResolver`] once per handshake,
//!   which only reads the current map from an [`ArcSwap`]: no locks, no I/O;
//! - the reload path (SIGHUP, a file watcher, the admin endpoint) calls
//!   [`CertStore::reload`], which re-reads every source aside and swaps the map
//!   only if everything checked out (a set with nothing to serve counts as a
//!   failure). Open connections keep the `CertifiedKey` they were given.
//!
//! Cryptography is the aws-lc-rs rustls provider, named explicitly (it is the
//! one the HTTP client already links); the process-wide default provider is
//! never consulted.
//!
//! What it must not do: touch the disk during a handshake, or log, print or
//! format private keys (every type holding a key has a hand-written `Debug`).
//!
//! Certificate sources ([`TlsSources`]):
//! - explicit `name`/`cert`/`key` triples ([`DomainCert`]);
//! - a directory of `<name>.crt` + `<name>.key` pairs. A wildcard certificate
//!   is stored as `_wildcard.brand.link.crt` (portable file name) or
//!   `*.brand.link.crt`; both mean `*.brand.link`. Hidden files are skipped and
//!   other extensions ignored;
//! - a default certificate for clients that send no SNI or a name nothing
//!   matches: either one of the loaded names or its own pair of files. Without
//!   one, such handshakes are refused.
//!
//! Name matching follows RFC 6125 section 6.4.3: `*` may only be the whole
//! leftmost label and stands for exactly one label, so `*.brand.link` matches
//! `a.brand.link` but neither `brand.link` nor `x.a.brand.link`. An exact name
//! beats a wildcard. Names compare case-insensitively, ignoring a trailing dot.
//! Internationalised names are written in their `xn--` (A-label) form.
//!
//! The parts: `load` reads and checks the files, builds a generation of
//! certificates from them and swaps it in (start-up and reload); `name` holds
//! the name rules (checking configured names, RFC 6125 wildcards, the lookup
//! of a handshake's SNI); `error` holds [`TlsError`], what a refused source is
//! reported as. This file holds the types callers use, the store, the
//! per-handshake resolver and the rustls configuration.

mod error;
mod load;
mod name;

pub use crate::config::{CertFiles, DomainCert, TlsSources};
pub use error::TlsError;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;

/// File name extension of certificate (chain) files in the certificate directory.
pub const CERT_EXTENSION: &str = "crt";
/// File name extension of private key files in the certificate directory.
pub const KEY_EXTENSION: &str = "key";
/// File name prefix that stands for `*.` in the certificate directory.
pub const WILDCARD_FILE_PREFIX: &str = "_wildcard.";

/// Stateful session cache size (TLS 1.2 session IDs; TLS 1.3 and TLS 1.2
/// ticket-capable clients use stateless tickets instead).
const SESSION_CACHE_SIZE: usize = 4096;

/// One loaded certificate, as reported by [`CertStore::certificates`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The name it is served for; `None` for a default given by its own files.
    pub name: Option<String>,
    /// The certificate file it was read from.
    pub cert: PathBuf,
    /// When the leaf certificate expires.
    pub not_after: SystemTime,
    /// Whether it is also served to clients without SNI or with an unknown name.
    pub is_default: bool,
}

/// The TLS certificate store: loaded certificates behind an [`ArcSwap`], the
/// sources to reload them from, and the crypto provider (aws-lc-rs).
pub struct CertStore {
    provider: Arc<CryptoProvider>,
    current: Arc<ArcSwap<CertSet>>,
    /// Held for the whole of a reload, so concurrent reloads (SIGHUP racing a
    /// file watcher) apply in order and never swap in an older read.
    sources: Mutex<TlsSources>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("CertStore");
        // try_lock: formatting must not wait for a reload in progress.
        match self.sources.try_lock() {
            Ok(sources) => out.field("sources", &*sources),
            Err(_) => out.field("sources", &"<reloading>"),
        };
        out.field("current", &**self.current.load()).finish_non_exhaustive()
    }
}

impl CertStore {
    /// A rustls server configuration serving this store's certificates:
    /// TLS 1.2 and 1.3 only, no client authentication, ALPN `h2` (when
    /// `http2`) and `http/1.1`, session resumption through both a stateful
    /// cache and stateless tickets. Build it once per listener: it follows
    /// reloads by itself.
    ///
    /// Clients that offer ALPN without any of these protocols are refused with
    /// `no_application_protocol` (RFC 7301 section 3.2); clients that offer no
    /// ALPN at all get a connection without a negotiated protocol (HTTP/1.1).
    pub fn server_config(&self, http2: bool) -> Arc<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            // Cannot fail: the aws-lc-rs default provider has suites for both versions.
            .expect("crypto provider supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(self.resolver());
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        match rustls::crypto::aws_lc_rs::Ticketer::new() {
            Ok(ticketer) => config.ticketer = ticketer,
            Err(error) => tracing::warn!(
                %error,
                "TLS session tickets disabled; resumption falls back to the session cache"
            ),
        }
        Arc::new(config)
    }

    /// The per-handshake certificate resolver, for callers building their own
    /// [`ServerConfig`]. It follows reloads.
    pub fn resolver(&self) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            current: self.current.clone(),
        })
    }

    /// Loaded names (exact and `*.` wildcards), sorted, for the start-up log.
    pub fn names(&self) -> Vec<String> {
        let set = self.current.load();
        let mut names: Vec<String> = set.info.iter().filter_map(|info| info.name.clone()).collect();
        names.sort();
        names
    }

    /// Every loaded certificate with its expiry, sorted by name (for metrics
    /// and the admin endpoint).
    pub fn certificates(&self) -> Vec<CertInfo> {
        self.current.load().info.clone()
    }
}

/// Resolves the certificate for each handshake from the store's current map.
/// Lock-free: one atomic load per handshake, no I/O.
pub struct CertResolver {
    current: Arc<ArcSwap<CertSet>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver")
            .field("current", &**self.current.load())
            .finish()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.current.load();
        let sni = client_hello.server_name();
        let found = set.resolve(sni).cloned();
        if found.is_none() {
            tracing::debug!(
                sni = sni.unwrap_or(""),
                "no TLS certificate for this name and no default"
            );
        }
        found
    }
}

/// One immutable generation of loaded certificates.
struct CertSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    info: Vec<CertInfo>,
}

impl fmt::Debug for CertSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.info.iter().filter_map(|info| info.name.as_deref()).collect();
        let default = self
            .info
            .iter()
            .find(|info| info.is_default)
            .map(|info| info.name.clone().unwrap_or_else(|| info.cert.display().to_string()));
        f.debug_struct("CertSet")
            .field("names", &names)
            .field("default", &default)
            .finish()
    }
}

impl CertSet {
    /// Number of distinct certificates served.
    fn count(&self) -> usize {
        self.info.len()
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

#[cfg(test)]
mod tests {

    use super::*;

    use std::io;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::path::Path;
    use std::time::Duration;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{
        ClientConfig, DigitallySignedStruct, HandshakeKind, ProtocolVersion, SignatureScheme, SupportedProtocolVersion,
    };
    use tempfile::TempDir;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::timeout;
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    const WAIT: Duration = Duration::from_secs(10);

    pub(super) struct TestCert {
        pub(super) cert_pem: String,
        pub(super) key_pem: String,
        pub(super) key_der: Vec<u8>,
        pub(super) der: Vec<u8>,
    }

    pub(super) type Ymd = (i32, u8, u8);

    pub(super) fn generate(names: &[&str], validity: Option<(Ymd, Ymd)>) -> TestCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        if let Some((from, to)) = validity {
            params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
            params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            der: cert.der().to_vec(),
        }
    }

    pub(super) fn cert_for(names: &[&str]) -> TestCert {
        generate(names, None)
    }

    /// Writes `<stem>.crt` and `<stem>.key` into `dir`.
    pub(super) fn write_pair(dir: &Path, stem: &str, cert: &TestCert) {
        std::fs::write(dir.join(format!("{stem}.crt")), &cert.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), &cert.key_pem).unwrap();
    }

    /// `certs/` holds a.test, *.wild.test (as `_wildcard.`) and default.test;
    /// b.test is listed explicitly from `other/`; default.test is the default.
    pub(super) struct Fixture {
        pub(super) root: TempDir,
        pub(super) a: TestCert,
        pub(super) b: TestCert,
        pub(super) wild: TestCert,
        pub(super) fallback: TestCert,
    }

    impl Fixture {
        pub(super) fn new() -> Fixture {
            let root = tempfile::tempdir().unwrap();
            let certs = root.path().join("certs");
            let other = root.path().join("other");
            std::fs::create_dir(&certs).unwrap();
            std::fs::create_dir(&other).unwrap();
            let fixture = Fixture {
                root,
                a: cert_for(&["a.test"]),
                b: cert_for(&["b.test"]),
                wild: cert_for(&["*.wild.test"]),
                fallback: cert_for(&["default.test"]),
            };
            write_pair(&certs, "a.test", &fixture.a);
            write_pair(&certs, "_wildcard.wild.test", &fixture.wild);
            write_pair(&certs, "default.test", &fixture.fallback);
            write_pair(&other, "b", &fixture.b);
            fixture
        }

        pub(super) fn certs(&self) -> PathBuf {
            self.root.path().join("certs")
        }

        pub(super) fn sources(&self) -> TlsSources {
            let other = self.root.path().join("other");
            TlsSources {
                dir: Some(self.certs()),
                domains: vec![DomainCert {
                    name: "B.Test".to_owned(),
                    cert: other.join("b.crt"),
                    key: other.join("b.key"),
                }],
                default_domain: Some("default.test".to_owned()),
                default_cert: None,
            }
        }

        pub(super) fn store(&self) -> CertStore {
            CertStore::load(self.sources()).unwrap()
        }
    }

    /// Accepts any server certificate (the tests check which one was served),
    /// but still verifies handshake signatures.
    #[derive(Debug)]
    struct AcceptAny(Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    fn client_config(versions: &[&'static SupportedProtocolVersion], alpn: &[&str]) -> Arc<ClientConfig> {
        let provider = Arc::new(provider());
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }

    pub(super) fn default_client() -> Arc<ClientConfig> {
        client_config(rustls::ALL_VERSIONS, &["http/1.1"])
    }

    /// Serves `config` on 127.0.0.1, echoing whatever each client sends.
    pub(super) async fn serve(config: Arc<ServerConfig>) -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = tls.read(&mut buf).await {
                        if tls.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Connects with `sni` (`None`: no SNI, as rustls sends none for an IP address).
    pub(super) async fn connect(
        addr: SocketAddr,
        sni: Option<&str>,
        config: Arc<ClientConfig>,
    ) -> io::Result<TlsStream<TcpStream>> {
        let server_name = match sni {
            Some(name) => ServerName::try_from(name.to_owned()).unwrap(),
            None => ServerName::IpAddress(IpAddr::from(Ipv4Addr::LOCALHOST).into()),
        };
        timeout(WAIT, async {
            let tcp = TcpStream::connect(addr).await?;
            TlsConnector::from(config).connect(server_name, tcp).await
        })
        .await
        .expect("handshake timed out")
    }

    pub(super) fn leaf(stream: &TlsStream<TcpStream>) -> Vec<u8> {
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    /// The leaf certificate served for `sni`.
    pub(super) async fn served(addr: SocketAddr, sni: Option<&str>) -> Vec<u8> {
        let stream = connect(addr, sni, default_client()).await.unwrap();
        leaf(&stream)
    }

    pub(super) async fn echo(stream: &mut TlsStream<TcpStream>, message: &[u8]) {
        timeout(WAIT, async {
            stream.write_all(message).await.unwrap();
            let mut back = vec![0u8; message.len()];
            stream.read_exact(&mut back).await.unwrap();
            assert_eq!(back, message);
        })
        .await
        .expect("echo timed out");
    }

    pub(super) fn has(errors: &[String], parts: &[&str]) -> bool {
        errors.iter().any(|e| parts.iter().all(|p| e.contains(p)))
    }

    #[tokio::test]
    async fn alpn_prefers_h2_and_can_turn_it_off() {
        let f = Fixture::new();
        let store = f.store();
        let h2_on = serve(store.server_config(true)).await;
        let h2_off = serve(store.server_config(false)).await;
        let alpn = |stream: &TlsStream<TcpStream>| stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);

        let both = client_config(rustls::ALL_VERSIONS, &["h2", "http/1.1"]);
        let h1_only = client_config(rustls::ALL_VERSIONS, &["http/1.1"]);
        let none = client_config(rustls::ALL_VERSIONS, &[]);

        let s = connect(h2_on, Some("a.test"), both.clone()).await.unwrap();
        assert_eq!(alpn(&s), Some(b"h2".to_vec()));
        let s = connect(h2_on, Some("a.test"), h1_only.clone()).await.unwrap();
        assert_eq!(alpn(&s), Some(b"http/1.1".to_vec()));
        let s = connect(h2_off, Some("a.test"), both).await.unwrap();
        assert_eq!(alpn(&s), Some(b"http/1.1".to_vec()));
        let s = connect(h2_on, Some("a.test"), none).await.unwrap();
        assert_eq!(alpn(&s), None);
    }

    /// A TLS 1.1 ClientHello (no supported_versions extension) for `sni`.
    fn tls11_client_hello(sni: &str) -> Vec<u8> {
        let mut body = vec![0x03, 0x02]; // client_version: TLS 1.1
        body.extend([7u8; 32]); // random
        body.push(0); // no session id
        let suites: [u16; 3] = [0xc013, 0xc014, 0x002f]; // CBC-SHA suites of TLS 1.1
        body.extend(((suites.len() * 2) as u16).to_be_bytes());
        for suite in suites {
            body.extend(suite.to_be_bytes());
        }
        body.extend([1, 0]); // compression: null
        let name = sni.as_bytes();
        let mut server_name = ((name.len() + 3) as u16).to_be_bytes().to_vec();
        server_name.push(0); // host_name
        server_name.extend((name.len() as u16).to_be_bytes());
        server_name.extend(name);
        let mut extensions = 0u16.to_be_bytes().to_vec(); // server_name
        extensions.extend((server_name.len() as u16).to_be_bytes());
        extensions.extend(server_name);
        // rustls refuses a hello without signature_algorithms before it looks
        // at the version, so carry one to reach the version check.
        let schemes: [u16; 2] = [0x0403, 0x0401]; // ecdsa_secp256r1_sha256, rsa_pkcs1_sha256
        extensions.extend(0x000du16.to_be_bytes());
        extensions.extend(((schemes.len() * 2 + 2) as u16).to_be_bytes());
        extensions.extend(((schemes.len() * 2) as u16).to_be_bytes());
        for scheme in schemes {
            extensions.extend(scheme.to_be_bytes());
        }
        body.extend((extensions.len() as u16).to_be_bytes());
        body.extend(extensions);

        let mut handshake = vec![1]; // client_hello
        handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
        handshake.extend(body);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend((handshake.len() as u16).to_be_bytes());
        record.extend(handshake);
        record
    }

    #[tokio::test]
    async fn only_tls12_and_tls13_are_accepted() {
        let f = Fixture::new();
        let store = f.store();
        let addr = serve(store.server_config(true)).await;

        for (version, expected) in [
            (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
            (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
        ] {
            let client = client_config(&[version], &["http/1.1"]);
            let stream = connect(addr, Some("a.test"), client).await.unwrap();
            assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        }

        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&tls11_client_hello("a.test")).await.unwrap();
        let mut reply = Vec::new();
        timeout(WAIT, tcp.read_to_end(&mut reply)).await.unwrap().unwrap();
        // A fatal (2) protocol_version (70) alert record (21), then close.
        assert!(reply.len() >= 7, "{reply:?}");
        assert_eq!((reply[0], reply[5], reply[6]), (21, 2, 70), "{reply:?}");
    }

    #[tokio::test]
    async fn sessions_resume_on_tls12_and_tls13() {
        let f = Fixture::new();
        let store = f.store();
        let addr = serve(store.server_config(true)).await;

        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let client = client_config(&[version], &["http/1.1"]);
            let mut first = connect(addr, Some("a.test"), client.clone()).await.unwrap();
            assert_eq!(first.get_ref().1.handshake_kind(), Some(HandshakeKind::Full));
            // Reading lets the client take in TLS 1.3 tickets sent after the handshake.
            echo(&mut first, b"hello").await;
            let second = connect(addr, Some("a.test"), client).await.unwrap();
            assert_eq!(
                second.get_ref().1.handshake_kind(),
                Some(HandshakeKind::Resumed),
                "{version:?}"
            );
        }
    }

    #[tokio::test]
    async fn debug_output_holds_no_key_material() {
        let f = Fixture::new();
        let store = f.store();
        let config = store.server_config(true);
        let errors = {
            let key = f.certs().join("a.test.key");
            std::fs::write(&key, f.a.key_pem.replace('A', "*")).unwrap();
            store.reload().unwrap_err()
        };
        let output = format!(
            "{store:?}\n{:?}\n{config:?}\n{:?}\n{:?}\n{errors:?}",
            store.resolver(),
            store.current.load(),
            f.sources()
        );

        assert!(output.contains("a.test"), "{output}");
        assert!(!output.contains("PRIVATE KEY"), "{output}");
        for cert in [&f.a, &f.b, &f.wild, &f.fallback] {
            let base64_line = cert.key_pem.lines().nth(1).unwrap();
            assert!(!output.contains(&base64_line[10..40]), "{output}");
            // Inside the private scalar of a PKCS#8 P-256 key.
            let secret = &cert.key_der[40..48];
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            assert!(!output.to_ascii_lowercase().contains(&hex), "{output}");
            let decimal = format!("{secret:?}");
            assert!(!output.contains(&decimal[1..decimal.len() - 1]), "{output}");
        }
    }
}
