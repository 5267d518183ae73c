//! Loading and reloading: scans the certificate directory, reads and checks
//! every certificate chain and key (PEM, validity period, key match, name
//! coverage), builds a new generation of certificates and swaps it in.
//!
//! Called at start-up ([`CertStore::load`]) and by the reload path
//! ([`CertStore::reload`], [`CertStore::reload_from`]). All of it is blocking
//! file I/O, never run during a handshake; it must not quote a key file's
//! content in any error or log line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::name::{covers, normalize_name};
use super::{
    CERT_EXTENSION, CertInfo, CertSet, CertStore, KEY_EXTENSION, TlsError, TlsSources, WILDCARD_FILE_PREFIX, provider,
};

/// Certificates expiring within this window get a warning at load and reload.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

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

    use crate::edge::tls::tests::{
        Fixture, cert_for, connect, default_client, echo, generate, has, leaf, serve, served, write_pair,
    };
    use crate::edge::tls::{CertFiles, DomainCert};

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
}
