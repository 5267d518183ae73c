//! [`TlsError`]: why a certificate source was refused, one variant for each
//! kind of problem.
//!
//! `load` builds these; callers see their messages, each starting with the
//! file or setting at fault. No message may ever hold key material: no
//! variant carries a file's content, and PEM errors are described in fixed
//! words.

use std::io;
use std::path::{Path, PathBuf};

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
