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

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// File name extension of certificate (chain) files in the certificate directory.
pub const CERT_EXTENSION: &str = "crt";
/// File name extension of private key files in the certificate directory.
pub const KEY_EXTENSION: &str = "key";
/// File name prefix that stands for `*.` in the certificate directory.
pub const WILDCARD_FILE_PREFIX: &str = "_wildcard.";

/// Stateful session cache size (TLS 1.2 session IDs; TLS 1.3 and TLS 1.2
/// ticket-capable clients use stateless tickets instead).
const SESSION_CACHE_SIZE: usize = 4096;

/// Certificates expiring within this window get a warning at load and reload.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// Where certificates come from (built by the config module).
#[derive(Debug, Clone, Default)]
pub struct TlsSources {
    /// Directory of `<name>.crt` / `<name>.key` pairs (`_wildcard.<suffix>` or
    /// `*.<suffix>` for wildcards). Re-scanned on every reload, so adding a
    /// pair and reloading serves a new domain.
    pub dir: Option<PathBuf>,
    /// Explicitly listed certificates.
    pub domains: Vec<DomainCert>,
    /// Name (exact or `*.` wildcard) of a loaded certificate served to clients
    /// without SNI or with an unknown name. Exclusive with `default_cert`.
    pub default_domain: Option<String>,
    /// Files of a certificate served to clients without SNI or with an unknown
    /// name; it is not checked against any name. Exclusive with `default_domain`.
    pub default_cert: Option<CertFiles>,
}

/// A certificate served for one name (exact, or `*.suffix` for a wildcard).
#[derive(Debug, Clone)]
pub struct DomainCert {
    /// The name clients send as SNI, or `*.suffix`.
    pub name: String,
    /// PEM file: the leaf certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted).
    pub key: PathBuf,
}

/// A certificate/key file pair not bound to a name (the default certificate).
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM file: the leaf certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM file: the private key.
    pub key: PathBuf,
}

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

/// Why a source was refused. Every message starts with the file (or the
/// setting) at fault; none ever contains key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The certificate directory could not be listed.
    #[error("{}: cannot list directory: {source}", .path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file is not well-formed PEM.
    #[error("{}: malformed PEM: {reason}", .path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong (never quotes the file's content).
        reason: &'static str,
    },
    /// A certificate file holds no `CERTIFICATE` block.
    #[error("{}: no PEM certificate found", .path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds no usable private key block.
    #[error(
        "{}: no PEM private key found (expected PKCS#8, PKCS#1 RSA or SEC1 EC)",
        .path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds only a passphrase-protected key.
    #[error("{}: encrypted private keys are not supported", .path.display())]
    EncryptedKey {
        /// The file.
        path: PathBuf,
    },
    /// The crypto provider refused the private key.
    #[error("{}: unusable private key: {reason}", .path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// The provider's reason.
        reason: String,
    },
    /// A certificate in a chain could not be decoded.
    #[error("{}: unparsable certificate{}: {reason}", .path.display(), chain_position(*.index))]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Position in the chain (0 is the leaf).
        index: usize,
        /// The decoder's reason.
        reason: String,
    },
    /// A certificate in a chain is past its `notAfter`.
    #[error("{}: certificate{} expired on {on}", .path.display(), chain_position(*.index))]
    Expired {
        /// The file.
        path: PathBuf,
        /// Position in the chain (0 is the leaf).
        index: usize,
        /// `notAfter`, as `YYYY-MM-DD HH:MM:SS UTC`.
        on: String,
    },
    /// A certificate in a chain is before its `notBefore`.
    #[error("{}: certificate{} is not valid before {from}", .path.display(), chain_position(*.index))]
    NotYetValid {
        /// The file.
        path: PathBuf,
        /// Position in the chain (0 is the leaf).
        index: usize,
        /// `notBefore`, as `YYYY-MM-DD HH:MM:SS UTC`.
        from: String,
    },
    /// The private key is not the one the leaf certificate was issued for.
    #[error("{}: private key does not match the certificate in {}", .key.display(), .cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// The leaf certificate's subjectAltName does not cover the name it would be served for.
    #[error("{}: certificate does not cover {name} (it names: {names})", .path.display())]
    NameNotCovered {
        /// The certificate file.
        path: PathBuf,
        /// The name it was configured for.
        name: String,
        /// The DNS names the certificate lists.
        names: String,
    },
    /// A configured or file-derived name is not a valid SNI name.
    #[error("{origin}: invalid domain name {name:?}: {reason}")]
    BadName {
        /// The file the name came from, or `domains[i]` / `default_domain`.
        origin: String,
        /// The name as given.
        name: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A `.crt` in the directory has no `.key` beside it.
    #[error("{}: no matching key file {}", .cert.display(), .key.display())]
    MissingKeyFile {
        /// The certificate file.
        cert: PathBuf,
        /// The key file that was expected.
        key: PathBuf,
    },
    /// Two sources define the same name.
    #[error("{}: {name} is already defined by {}", .second.display(), .first.display())]
    Duplicate {
        /// The name.
        name: String,
        /// Certificate file of the first definition.
        first: PathBuf,
        /// Certificate file of the second definition.
        second: PathBuf,
    },
    /// `default_domain` names nothing that is configured.
    #[error("default_domain: {name} is not among the configured certificates")]
    UnknownDefault {
        /// The name.
        name: String,
    },
    /// Nothing to serve: refused so an emptied directory cannot take every
    /// domain offline on reload.
    #[error("{}: no certificates found (expected <name>.crt and <name>.key pairs or listed domains)", dir_label(.dir.as_deref()))]
    NoCertificates {
        /// The certificate directory, if one is configured.
        dir: Option<PathBuf>,
    },
    /// Both `default_domain` and `default_cert` are set.
    #[error(
        "default_domain ({name}) and default_cert ({}) are both set; keep one",
        .cert.display()
    )]
    ConflictingDefault {
        /// The default domain.
        name: String,
        /// The default certificate file.
        cert: PathBuf,
    },
}

fn dir_label(dir: Option<&Path>) -> String {
    dir.map_or_else(|| "tls".to_owned(), |dir| dir.display().to_string())
}

fn chain_position(index: usize) -> String {
    if index == 0 {
        String::new()
    } else {
        format!(" #{} of the chain", index + 1)
    }
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
    /// Reads and checks every source. On failure returns every problem found,
    /// each message naming its file.
    ///
    /// Does blocking file I/O: call it before the runtime serves traffic, or
    /// from `spawn_blocking`.
    pub fn load(sources: TlsSources) -> Result<CertStore, Vec<String>> {
        let provider = Arc::new(provider());
        let set = CertSet::build(&sources, &provider, SystemTime::now()).map_err(messages)?;
        set.warn_expiring(SystemTime::now());
        if set.default.is_none() {
            tracing::info!("no default TLS certificate: handshakes without SNI or with an unknown name are refused");
        }
        Ok(CertStore {
            provider,
            current: Arc::new(ArcSwap::from_pointee(set)),
            sources: Mutex::new(sources),
        })
    }

    /// Re-reads every source aside and swaps the new set in atomically.
    /// Returns the number of certificates now served. If anything is wrong,
    /// the previous set stays in service and every problem is returned (and
    /// logged), each naming its file.
    ///
    /// Does blocking file I/O: from async code, call it in `spawn_blocking`.
    pub fn reload(&self) -> Result<usize, Vec<String>> {
        let sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        self.rebuild(&sources)
    }

    /// Like [`CertStore::reload`], from new sources (after a configuration
    /// change). The new sources are kept for later reloads only on success.
    pub fn reload_from(&self, new_sources: TlsSources) -> Result<usize, Vec<String>> {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let count = self.rebuild(&new_sources)?;
        *sources = new_sources;
        Ok(count)
    }

    fn rebuild(&self, sources: &TlsSources) -> Result<usize, Vec<String>> {
        let now = SystemTime::now();
        match CertSet::build(sources, &self.provider, now) {
            Ok(set) => {
                set.warn_expiring(now);
                let count = set.count();
                self.current.store(Arc::new(set));
                tracing::info!(certificates = count, "TLS certificates reloaded");
                Ok(count)
            }
            Err(errors) => {
                let errors = messages(errors);
                for error in &errors {
                    tracing::warn!(%error, "TLS reload refused; the previous certificates stay in service");
                }
                Err(errors)
            }
        }
    }

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

/// A name to load and where its files are.
struct Wanted {
    name: String,
    cert: PathBuf,
    key: PathBuf,
}

/// A checked certificate chain with its key.
struct Loaded {
    key: Arc<CertifiedKey>,
    not_after: SystemTime,
    dns_names: Vec<String>,
}

impl CertSet {
    fn build(sources: &TlsSources, provider: &CryptoProvider, now: SystemTime) -> Result<CertSet, Vec<TlsError>> {
        let mut errors = Vec::new();
        let mut wanted = Vec::new();
        if let Some(dir) = &sources.dir {
            scan_dir(dir, &mut wanted, &mut errors);
        }
        for (i, domain) in sources.domains.iter().enumerate() {
            match normalize_name(&domain.name) {
                Ok(name) => wanted.push(Wanted {
                    name,
                    cert: domain.cert.clone(),
                    key: domain.key.clone(),
                }),
                Err(reason) => errors.push(TlsError::BadName {
                    origin: format!("domains[{i}]"),
                    name: domain.name.clone(),
                    reason,
                }),
            }
        }

        let mut set = CertSet {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: None,
            info: Vec::new(),
        };
        let mut declared: HashMap<String, PathBuf> = HashMap::new();
        for want in wanted {
            if let Some(first) = declared.get(&want.name) {
                errors.push(TlsError::Duplicate {
                    name: want.name,
                    first: first.clone(),
                    second: want.cert,
                });
                continue;
            }
            declared.insert(want.name.clone(), want.cert.clone());
            let loaded = match load_pair(&want.cert, &want.key, provider, now) {
                Ok(loaded) => loaded,
                Err(mut problems) => {
                    errors.append(&mut problems);
                    continue;
                }
            };
            if !loaded.dns_names.iter().any(|pattern| covers(pattern, &want.name)) {
                errors.push(TlsError::NameNotCovered {
                    path: want.cert,
                    name: want.name,
                    names: if loaded.dns_names.is_empty() {
                        "no DNS names".to_owned()
                    } else {
                        loaded.dns_names.join(", ")
                    },
                });
                continue;
            }
            match want.name.strip_prefix("*.") {
                Some(suffix) => set.wildcard.insert(suffix.to_owned(), loaded.key),
                None => set.exact.insert(want.name.clone(), loaded.key),
            };
            set.info.push(CertInfo {
                name: Some(want.name),
                cert: want.cert,
                not_after: loaded.not_after,
                is_default: false,
            });
        }

        match (&sources.default_domain, &sources.default_cert) {
            (Some(name), Some(files)) => errors.push(TlsError::ConflictingDefault {
                name: name.clone(),
                cert: files.cert.clone(),
            }),
            (Some(raw), None) => match normalize_name(raw) {
                Err(reason) => errors.push(TlsError::BadName {
                    origin: "default_domain".to_owned(),
                    name: raw.clone(),
                    reason,
                }),
                Ok(name) => {
                    let key = match name.strip_prefix("*.") {
                        Some(suffix) => set.wildcard.get(suffix),
                        None => set.exact.get(&name),
                    };
                    if let Some(key) = key {
                        set.default = Some(key.clone());
                        if let Some(info) = set.info.iter_mut().find(|info| info.name.as_ref() == Some(&name)) {
                            info.is_default = true;
                        }
                    } else if !declared.contains_key(&name) {
                        // A declared name whose files failed is already reported.
                        errors.push(TlsError::UnknownDefault { name });
                    }
                }
            },
            (None, Some(files)) => match load_pair(&files.cert, &files.key, provider, now) {
                Ok(loaded) => {
                    set.default = Some(loaded.key);
                    set.info.push(CertInfo {
                        name: None,
                        cert: files.cert.clone(),
                        not_after: loaded.not_after,
                        is_default: true,
                    });
                }
                Err(mut problems) => errors.append(&mut problems),
            },
            (None, None) => {}
        }

        if declared.is_empty() && sources.default_cert.is_none() {
            errors.push(TlsError::NoCertificates {
                dir: sources.dir.clone(),
            });
        }
        if errors.is_empty() {
            set.info
                .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.cert.cmp(&b.cert)));
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// Number of distinct certificates served.
    fn count(&self) -> usize {
        self.info.len()
    }

    fn resolve(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        sni.and_then(|name| self.find(name)).or(self.default.as_ref())
    }

    /// Exact name first, then a wildcard covering exactly the leftmost label.
    fn find(&self, sni: &str) -> Option<&Arc<CertifiedKey>> {
        let sni = sni.strip_suffix('.').unwrap_or(sni);
        // SNI is almost always lower case already: allocate only when needed.
        let name: Cow<'_, str> = if sni.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(sni.to_ascii_lowercase())
        } else {
            Cow::Borrowed(sni)
        };
        if let Some(key) = self.exact.get(name.as_ref()) {
            return Some(key);
        }
        let (first, rest) = name.split_once('.')?;
        if first.is_empty() || first == "*" {
            return None;
        }
        self.wildcard.get(rest)
    }

    fn warn_expiring(&self, now: SystemTime) {
        for info in &self.info {
            if let Ok(left) = info.not_after.duration_since(now)
                && left < EXPIRY_WARNING
            {
                tracing::warn!(
                    cert = %info.cert.display(),
                    name = info.name.as_deref().unwrap_or("(default)"),
                    days_left = left.as_secs() / 86_400,
                    "TLS certificate expires soon"
                );
            }
        }
    }
}

fn messages(errors: Vec<TlsError>) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Collects `<name>.crt` files with their `<name>.key`.
fn scan_dir(dir: &Path, wanted: &mut Vec<Wanted>, errors: &mut Vec<TlsError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            errors.push(TlsError::ReadDir {
                path: dir.to_owned(),
                source,
            });
            return;
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => files.push(entry.path()),
            Err(source) => errors.push(TlsError::ReadDir {
                path: dir.to_owned(),
                source,
            }),
        }
    }
    // Sorted, so duplicate reports and start-up logs are stable.
    files.sort();
    for path in files {
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            tracing::warn!(file = %path.display(), "ignoring a non UTF-8 file name in the certificate directory");
            continue;
        };
        // Editors' and Kubernetes' (`..data`) hidden entries.
        if file_name.starts_with('.') {
            continue;
        }
        let Some((stem, extension)) = file_name.rsplit_once('.') else {
            continue;
        };
        if extension == KEY_EXTENSION {
            if !dir.join(format!("{stem}.{CERT_EXTENSION}")).exists() {
                tracing::warn!(file = %path.display(), "key file without a certificate; ignored");
            }
            continue;
        }
        if extension != CERT_EXTENSION {
            continue;
        }
        let raw_name = match stem.strip_prefix(WILDCARD_FILE_PREFIX) {
            Some(suffix) => format!("*.{suffix}"),
            None => stem.to_owned(),
        };
        let name = match normalize_name(&raw_name) {
            Ok(name) => name,
            Err(reason) => {
                errors.push(TlsError::BadName {
                    origin: path.display().to_string(),
                    name: raw_name,
                    reason,
                });
                continue;
            }
        };
        let key = dir.join(format!("{stem}.{KEY_EXTENSION}"));
        if !key.exists() {
            errors.push(TlsError::MissingKeyFile { cert: path, key });
            continue;
        }
        wanted.push(Wanted { name, cert: path, key });
    }
}

/// Lower-cases and checks a host name or `*.suffix` wildcard.
fn normalize_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if name.is_empty() {
        return Err("empty");
    }
    if !name.is_ascii() {
        return Err("not ASCII; write internationalised names in their xn-- form");
    }
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    // RFC 6066 section 3: SNI never carries an IP address.
    if name.parse::<IpAddr>().is_ok() {
        return Err("an IP address cannot be sent as SNI");
    }
    let (labels, wildcard) = match name.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (name.as_str(), false),
    };
    // RFC 6125 section 7.2 advises against wildcards directly under a public suffix.
    if wildcard && !labels.contains('.') {
        return Err("a wildcard needs at least two labels after `*.`");
    }
    for label in labels.split('.') {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.len() > 63 {
            return Err("label longer than 63 characters");
        }
        if label.contains('*') {
            // RFC 6125 section 6.4.3: only a whole leftmost `*` is supported.
            return Err("`*` is only allowed as the whole leftmost label");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("labels may only hold letters, digits, `-` and `_`");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label may not start or end with `-`");
        }
    }
    Ok(name)
}

/// Whether a certificate's DNS name `pattern` covers the configured `name`
/// (which may itself be a wildcard, covered only by the same wildcard).
/// RFC 6125 section 6.4.3: `*` is the whole leftmost label, matching one label.
fn covers(pattern: &str, name: &str) -> bool {
    if pattern == name {
        return true;
    }
    match (pattern.strip_prefix("*."), name.split_once('.')) {
        (Some(suffix), Some((first, rest))) => first != "*" && !first.is_empty() && rest == suffix,
        _ => false,
    }
}

/// Reads, parses and checks one certificate chain and its key; reports every
/// problem with both files.
fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<Loaded, Vec<TlsError>> {
    let chain = read_chain(cert_path, now);
    let key = read_key(key_path, provider);
    let ((chain, not_after, dns_names), key) = match (chain, key) {
        (Ok(chain), Ok(key)) => (chain, key),
        (chain, key) => {
            let mut errors = chain.err().unwrap_or_default();
            errors.extend(key.err());
            return Err(errors);
        }
    };
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        // Unknown: the key cannot tell its public half; the handshake still
        // fails loudly if it is wrong.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(vec![TlsError::KeyMismatch {
                key: key_path.to_owned(),
                cert: cert_path.to_owned(),
            }]);
        }
        Err(other) => {
            return Err(vec![TlsError::BadCertificate {
                path: cert_path.to_owned(),
                index: 0,
                reason: other.to_string(),
            }]);
        }
    }
    Ok(Loaded {
        key: Arc::new(certified),
        not_after,
        dns_names,
    })
}

type Chain = (Vec<CertificateDer<'static>>, SystemTime, Vec<String>);

/// Parses the chain, checks every certificate's validity period at `now`, and
/// returns the leaf's expiry and DNS names.
fn read_chain(path: &Path, now: SystemTime) -> Result<Chain, Vec<TlsError>> {
    let bytes = std::fs::read(path).map_err(|source| {
        vec![TlsError::Read {
            path: path.to_owned(),
            source,
        }]
    })?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            vec![TlsError::Pem {
                path: path.to_owned(),
                reason: pem_reason(&error),
            }]
        })?;
    if chain.is_empty() {
        return Err(vec![TlsError::NoCertificate { path: path.to_owned() }]);
    }
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut errors = Vec::new();
    let mut leaf = None;
    for (index, der) in chain.iter().enumerate() {
        let cert = match x509_cert::Certificate::from_der(der.as_ref()) {
            Ok(cert) => cert,
            Err(error) => {
                errors.push(TlsError::BadCertificate {
                    path: path.to_owned(),
                    index,
                    reason: error.to_string(),
                });
                continue;
            }
        };
        let validity = cert.tbs_certificate().validity();
        // RFC 5280 section 4.1.2.5: both bounds are inclusive.
        if now < validity.not_before.to_unix_duration() {
            errors.push(TlsError::NotYetValid {
                path: path.to_owned(),
                index,
                from: format_time(&validity.not_before),
            });
        } else if now > validity.not_after.to_unix_duration() {
            errors.push(TlsError::Expired {
                path: path.to_owned(),
                index,
                on: format_time(&validity.not_after),
            });
        }
        if index == 0 {
            let not_after = UNIX_EPOCH + validity.not_after.to_unix_duration();
            match dns_names(&cert) {
                Ok(names) => leaf = Some((not_after, names)),
                Err(error) => errors.push(TlsError::BadCertificate {
                    path: path.to_owned(),
                    index,
                    reason: format!("subjectAltName: {error}"),
                }),
            }
        }
    }
    match leaf {
        Some((not_after, names)) if errors.is_empty() => Ok((chain, not_after, names)),
        _ => Err(errors),
    }
}

/// The leaf's subjectAltName DNS names, lower-cased. The subject CN is not
/// consulted: clients ignore it when a SAN is present (RFC 6125 section 6.4.4)
/// and browsers ignore it altogether.
fn dns_names(cert: &x509_cert::Certificate) -> Result<Vec<String>, x509_cert::der::Error> {
    let Some((_, san)) = cert.tbs_certificate().get_extension::<SubjectAltName>()? else {
        return Ok(Vec::new());
    };
    Ok(san
        .0
        .iter()
        .filter_map(|name| match name {
            GeneralName::DnsName(dns) => {
                let dns = dns.as_str();
                Some(dns.strip_suffix('.').unwrap_or(dns).to_ascii_lowercase())
            }
            _ => None,
        })
        .collect())
}

fn format_time(time: &x509_cert::time::Time) -> String {
    let t = time.to_date_time();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minutes(),
        t.seconds()
    )
}

/// Reads the private key and loads it into the provider. Error messages never
/// quote the file: a decoder's message could echo key bytes.
fn read_key(path: &Path, provider: &CryptoProvider) -> Result<Arc<dyn rustls::sign::SigningKey>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let key = match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            let encrypted = bytes
                .windows(b"ENCRYPTED PRIVATE KEY".len())
                .any(|w| w == b"ENCRYPTED PRIVATE KEY");
            return Err(if encrypted {
                TlsError::EncryptedKey { path: path.to_owned() }
            } else {
                TlsError::NoKey { path: path.to_owned() }
            });
        }
        Err(error) => {
            return Err(TlsError::Pem {
                path: path.to_owned(),
                reason: pem_reason(&error),
            });
        }
    };
    provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| TlsError::BadKey {
            path: path.to_owned(),
            reason: error.to_string(),
        })
}

/// A fixed description of a PEM error: the library's own message can quote
/// the offending line or base64 text.
fn pem_reason(error: &pem::Error) -> &'static str {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section's body is not valid base64",
        pem::Error::NoItemsFound => "no section of the expected type",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "unreadable PEM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{Ipv4Addr, SocketAddr};

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{ServerName, UnixTime};
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

    struct TestCert {
        cert_pem: String,
        key_pem: String,
        key_der: Vec<u8>,
        der: Vec<u8>,
    }

    type Ymd = (i32, u8, u8);

    fn generate(names: &[&str], validity: Option<(Ymd, Ymd)>) -> TestCert {
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

    fn cert_for(names: &[&str]) -> TestCert {
        generate(names, None)
    }

    /// Writes `<stem>.crt` and `<stem>.key` into `dir`.
    fn write_pair(dir: &Path, stem: &str, cert: &TestCert) {
        std::fs::write(dir.join(format!("{stem}.crt")), &cert.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), &cert.key_pem).unwrap();
    }

    /// `certs/` holds a.test, *.wild.test (as `_wildcard.`) and default.test;
    /// b.test is listed explicitly from `other/`; default.test is the default.
    struct Fixture {
        root: TempDir,
        a: TestCert,
        b: TestCert,
        wild: TestCert,
        fallback: TestCert,
    }

    impl Fixture {
        fn new() -> Fixture {
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

        fn certs(&self) -> PathBuf {
            self.root.path().join("certs")
        }

        fn sources(&self) -> TlsSources {
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

        fn store(&self) -> CertStore {
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

    fn default_client() -> Arc<ClientConfig> {
        client_config(rustls::ALL_VERSIONS, &["http/1.1"])
    }

    /// Serves `config` on 127.0.0.1, echoing whatever each client sends.
    async fn serve(config: Arc<ServerConfig>) -> SocketAddr {
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
    async fn connect(
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

    fn leaf(stream: &TlsStream<TcpStream>) -> Vec<u8> {
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    /// The leaf certificate served for `sni`.
    async fn served(addr: SocketAddr, sni: Option<&str>) -> Vec<u8> {
        let stream = connect(addr, sni, default_client()).await.unwrap();
        leaf(&stream)
    }

    async fn echo(stream: &mut TlsStream<TcpStream>, message: &[u8]) {
        timeout(WAIT, async {
            stream.write_all(message).await.unwrap();
            let mut back = vec![0u8; message.len()];
            stream.read_exact(&mut back).await.unwrap();
            assert_eq!(back, message);
        })
        .await
        .expect("echo timed out");
    }

    fn has(errors: &[String], parts: &[&str]) -> bool {
        errors.iter().any(|e| parts.iter().all(|p| e.contains(p)))
    }

    #[tokio::test]
    async fn handshake_picks_certificate_by_sni() {
        let f = Fixture::new();
        let store = f.store();
        let addr = serve(store.server_config(true)).await;

        assert_eq!(served(addr, Some("a.test")).await, f.a.der);
        assert_eq!(served(addr, Some("b.test")).await, f.b.der);
        assert_eq!(served(addr, Some("A.Test")).await, f.a.der);
        assert_eq!(served(addr, Some("x.wild.test")).await, f.wild.der);
        assert_eq!(served(addr, Some("Y.WILD.test")).await, f.wild.der);
        // One label only, and not the bare suffix.
        assert_eq!(served(addr, Some("x.y.wild.test")).await, f.fallback.der);
        assert_eq!(served(addr, Some("wild.test")).await, f.fallback.der);
        assert_eq!(served(addr, Some("unknown.test")).await, f.fallback.der);
        assert_eq!(served(addr, None).await, f.fallback.der);

        assert_eq!(store.names(), ["*.wild.test", "a.test", "b.test", "default.test"]);
    }

    #[test]
    fn exact_name_beats_wildcard_and_matching_rules() {
        let root = tempfile::tempdir().unwrap();
        let exact = cert_for(&["a.wild.test"]);
        let wild = cert_for(&["*.wild.test"]);
        // The `*.` spelling of a wildcard file name.
        write_pair(root.path(), "*.wild.test", &wild);
        write_pair(root.path(), "a.wild.test", &exact);
        let store = CertStore::load(TlsSources {
            dir: Some(root.path().to_owned()),
            ..TlsSources::default()
        })
        .unwrap();
        let set = store.current.load();
        let served = |sni: &str| set.find(sni).map(|key| key.cert[0].to_vec());

        assert_eq!(served("a.wild.test"), Some(exact.der.clone()));
        assert_eq!(served("A.WILD.TEST."), Some(exact.der.clone()));
        assert_eq!(served("b.wild.test"), Some(wild.der.clone()));
        assert_eq!(served("B.Wild.Test."), Some(wild.der.clone()));
        assert_eq!(served("wild.test"), None);
        assert_eq!(served("x.b.wild.test"), None);
        assert_eq!(served(".wild.test"), None);
        assert_eq!(served("*.wild.test"), None);
        assert_eq!(served("other.test"), None);
        // No default configured: unknown names and no SNI resolve to nothing.
        assert!(set.resolve(None).is_none());
        assert!(set.resolve(Some("other.test")).is_none());
    }

    #[test]
    fn names_are_normalized_and_checked() {
        assert_eq!(normalize_name("A.Test.").unwrap(), "a.test");
        assert_eq!(normalize_name("*.Brand.Link").unwrap(), "*.brand.link");
        assert_eq!(
            normalize_name("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            "*.link",
            "a.*.link",
            "f*.brand.link",
            "a..test",
            "-a.test",
            "a b.test",
            "bücher.example",
            "127.0.0.1",
            "::1",
        ] {
            assert!(normalize_name(bad).is_err(), "{bad:?} accepted");
        }

        assert!(covers("a.test", "a.test"));
        assert!(covers("*.brand.link", "a.brand.link"));
        assert!(covers("*.brand.link", "*.brand.link"));
        assert!(!covers("*.brand.link", "brand.link"));
        assert!(!covers("*.brand.link", "x.a.brand.link"));
        assert!(!covers("a.brand.link", "*.brand.link"));
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

    #[tokio::test]
    async fn reload_serves_replaced_certificate_and_keeps_open_connections() {
        let f = Fixture::new();
        let store = f.store();
        let addr = serve(store.server_config(true)).await;

        let mut before = connect(addr, Some("a.test"), default_client()).await.unwrap();
        assert_eq!(leaf(&before), f.a.der);
        echo(&mut before, b"first").await;

        let renewed = cert_for(&["a.test"]);
        write_pair(&f.certs(), "a.test", &renewed);
        let added = cert_for(&["c.test"]);
        write_pair(&f.certs(), "c.test", &added);
        assert_eq!(store.reload(), Ok(5));

        assert_eq!(served(addr, Some("a.test")).await, renewed.der);
        assert_eq!(served(addr, Some("c.test")).await, added.der);
        assert_eq!(served(addr, Some("b.test")).await, f.b.der);
        // The connection opened before the reload still works.
        echo(&mut before, b"after reload").await;
        assert_eq!(leaf(&before), f.a.der);
    }

    #[tokio::test]
    async fn reload_from_new_sources() {
        let f = Fixture::new();
        let store = f.store();
        let addr = serve(store.server_config(true)).await;

        let mut sources = f.sources();
        sources.domains.clear();
        sources.default_domain = Some("a.test".to_owned());
        assert_eq!(store.reload_from(sources), Ok(3));
        assert_eq!(served(addr, Some("b.test")).await, f.a.der);
        // Later plain reloads keep using the new sources.
        assert_eq!(store.reload(), Ok(3));
        assert_eq!(served(addr, None).await, f.a.der);

        let mut broken = f.sources();
        broken.default_domain = Some("missing.test".to_owned());
        let errors = store.reload_from(broken).unwrap_err();
        assert!(has(&errors, &["missing.test", "not among"]), "{errors:?}");
        assert_eq!(store.reload(), Ok(3));
    }

    #[tokio::test]
    async fn bad_files_are_refused_and_old_certificate_stays() {
        let f = Fixture::new();
        let store = f.store();
        let addr = serve(store.server_config(true)).await;
        let certs = f.certs();
        let crt = certs.join("a.test.crt");
        let key = certs.join("a.test.key");
        let crt_name = crt.display().to_string();
        let key_name = key.display().to_string();

        // What is broken, how to break it, what the error must say.
        type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, Vec<String>);
        let cases: Vec<Case<'_>> = vec![
            (
                "broken key",
                Box::new(|| {
                    let body = "-----BEGIN PRIVATE KEY-----\nnot*base64!\n-----END PRIVATE KEY-----\n";
                    std::fs::write(&key, body).unwrap();
                }),
                vec![key_name.clone(), "not valid base64".to_owned()],
            ),
            (
                "no key in key file",
                Box::new(|| std::fs::write(&key, "hello\n").unwrap()),
                vec![key_name.clone(), "no PEM private key".to_owned()],
            ),
            (
                "mismatched key",
                Box::new(|| {
                    std::fs::write(&crt, &f.a.cert_pem).unwrap();
                    std::fs::write(&key, &f.b.key_pem).unwrap();
                }),
                vec![key_name.clone(), "does not match".to_owned(), crt_name.clone()],
            ),
            (
                "expired certificate",
                Box::new(|| {
                    write_pair(
                        &certs,
                        "a.test",
                        &generate(&["a.test"], Some(((2020, 1, 1), (2021, 1, 1)))),
                    );
                }),
                vec![
                    crt_name.clone(),
                    "certificate expired on 2021-01-01 00:00:00 UTC".to_owned(),
                ],
            ),
            (
                "certificate not yet valid",
                Box::new(|| {
                    write_pair(
                        &certs,
                        "a.test",
                        &generate(&["a.test"], Some(((2090, 1, 1), (2100, 1, 1)))),
                    );
                }),
                vec![crt_name.clone(), "not valid before 2090-01-01 00:00:00 UTC".to_owned()],
            ),
            (
                "missing key file",
                Box::new(|| std::fs::remove_file(&key).unwrap()),
                vec![crt_name.clone(), "no matching key file".to_owned()],
            ),
            (
                "garbage certificate",
                Box::new(|| {
                    std::fs::write(&crt, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
                    std::fs::write(&key, &f.a.key_pem).unwrap();
                }),
                vec![crt_name.clone(), "unparsable certificate".to_owned()],
            ),
            (
                "certificate for another name",
                Box::new(|| write_pair(&certs, "a.test", &cert_for(&["elsewhere.test"]))),
                vec![
                    crt_name.clone(),
                    "does not cover a.test".to_owned(),
                    "elsewhere.test".to_owned(),
                ],
            ),
        ];

        for (what, break_it, expected) in cases {
            write_pair(&certs, "a.test", &f.a);
            break_it();
            let parts: Vec<&str> = expected.iter().map(String::as_str).collect();

            let errors = store.reload().unwrap_err();
            assert!(has(&errors, &parts), "{what}: reload said {errors:?}");
            assert_eq!(served(addr, Some("a.test")).await, f.a.der, "{what}");
            assert_eq!(served(addr, Some("b.test")).await, f.b.der, "{what}");

            let errors = CertStore::load(f.sources()).unwrap_err();
            assert!(has(&errors, &parts), "{what}: load said {errors:?}");
        }
    }

    #[test]
    fn load_reports_every_problem() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        write_pair(dir, "ok.test", &cert_for(&["ok.test"]));
        write_pair(
            dir,
            "expired.test",
            &generate(&["expired.test"], Some(((2020, 1, 1), (2021, 1, 1)))),
        );
        write_pair(dir, "mismatch.test", &cert_for(&["mismatch.test"]));
        std::fs::write(dir.join("mismatch.test.key"), cert_for(&["x.test"]).key_pem).unwrap();
        std::fs::write(dir.join("nokey.test.crt"), cert_for(&["nokey.test"]).cert_pem).unwrap();
        // Both wildcard spellings for the same name.
        write_pair(dir, "*.wild.test", &cert_for(&["*.wild.test"]));
        write_pair(dir, "_wildcard.wild.test", &cert_for(&["*.wild.test"]));
        std::fs::write(dir.join("README.txt"), "ignored").unwrap();
        std::fs::write(dir.join(".hidden.crt"), "ignored").unwrap();

        let errors = CertStore::load(TlsSources {
            dir: Some(dir.to_owned()),
            domains: vec![DomainCert {
                name: "missing.test".to_owned(),
                cert: dir.join("nowhere.crt"),
                key: dir.join("nowhere.key"),
            }],
            default_domain: Some("ok.test".to_owned()),
            default_cert: None,
        })
        .unwrap_err();

        assert!(has(&errors, &["expired.test.crt", "expired on"]), "{errors:?}");
        assert!(has(&errors, &["mismatch.test.key", "does not match"]), "{errors:?}");
        assert!(has(&errors, &["nokey.test.crt", "no matching key file"]), "{errors:?}");
        assert!(
            has(
                &errors,
                &[
                    "_wildcard.wild.test.crt",
                    "*.wild.test is already defined by",
                    "*.wild.test.crt"
                ]
            ),
            "{errors:?}"
        );
        assert!(has(&errors, &["nowhere.crt", "cannot read"]), "{errors:?}");
        assert!(has(&errors, &["nowhere.key", "cannot read"]), "{errors:?}");
        assert_eq!(errors.len(), 6, "{errors:?}");
    }

    #[tokio::test]
    async fn an_emptied_directory_is_refused() {
        let f = Fixture::new();
        let mut sources = f.sources();
        sources.domains.clear();
        let store = CertStore::load(sources).unwrap();
        let addr = serve(store.server_config(true)).await;
        for entry in std::fs::read_dir(f.certs()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let errors = store.reload().unwrap_err();
        let dir = f.certs().display().to_string();
        assert!(has(&errors, &[&dir, "no certificates found"]), "{errors:?}");
        assert_eq!(served(addr, Some("a.test")).await, f.a.der);

        let errors = CertStore::load(TlsSources::default()).unwrap_err();
        assert!(has(&errors, &["tls: no certificates found"]), "{errors:?}");
    }

    #[test]
    fn default_certificate_settings() {
        let f = Fixture::new();

        let mut sources = f.sources();
        sources.default_domain = Some("nothing.test".to_owned());
        let errors = CertStore::load(sources).unwrap_err();
        assert_eq!(
            errors,
            ["default_domain: nothing.test is not among the configured certificates"]
        );

        let files = CertFiles {
            cert: f.certs().join("default.test.crt"),
            key: f.certs().join("default.test.key"),
        };
        let mut sources = f.sources();
        sources.default_cert = Some(files.clone());
        let errors = CertStore::load(sources).unwrap_err();
        assert!(
            has(&errors, &["default_domain (default.test)", "both set"]),
            "{errors:?}"
        );

        // A wildcard may be the default.
        let mut sources = f.sources();
        sources.default_domain = Some("*.wild.test".to_owned());
        let store = CertStore::load(sources).unwrap();
        let defaults: Vec<_> = store.certificates().into_iter().filter(|c| c.is_default).collect();
        assert_eq!(defaults.len(), 1);
        assert_eq!(defaults[0].name.as_deref(), Some("*.wild.test"));
    }

    #[tokio::test]
    async fn default_from_own_files_and_no_default() {
        let f = Fixture::new();
        let spare = cert_for(&["spare.example"]);
        write_pair(f.root.path(), "spare", &spare);

        let mut sources = f.sources();
        sources.default_domain = None;
        sources.default_cert = Some(CertFiles {
            cert: f.root.path().join("spare.crt"),
            key: f.root.path().join("spare.key"),
        });
        let store = CertStore::load(sources).unwrap();
        assert!(!store.names().iter().any(|n| n.contains("spare")));
        let info = store.certificates();
        assert!(info.iter().any(|c| c.name.is_none() && c.is_default));
        assert_eq!(store.reload(), Ok(5));
        let addr = serve(store.server_config(true)).await;
        assert_eq!(served(addr, None).await, spare.der);
        assert_eq!(served(addr, Some("unknown.test")).await, spare.der);
        assert_eq!(served(addr, Some("a.test")).await, f.a.der);

        let mut sources = f.sources();
        sources.default_domain = None;
        let store = CertStore::load(sources).unwrap();
        let addr = serve(store.server_config(true)).await;
        assert!(connect(addr, None, default_client()).await.is_err());
        assert!(connect(addr, Some("unknown.test"), default_client()).await.is_err());
        assert_eq!(served(addr, Some("a.test")).await, f.a.der);
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
