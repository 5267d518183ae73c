//! ACME HTTP-01 challenges: `/.well-known/acme-challenge/<token>` answered from `[server]
//! acme_challenge_dir`, on both listeners, so an operator's ACME client can renew certificates
//! over plain HTTP. Read asynchronously, off the hit path; never a click.

use std::path::{Path, PathBuf};

use http::StatusCode;

use super::redirect::{Answer, Router, plain};

/// The file for an ACME HTTP-01 challenge path, if it is one. Tokens are base64url
/// (RFC 8555 §8.3), which also keeps the path inside the folder.
pub fn acme_path(dir: &Path, path: &str) -> Option<PathBuf> {
    let token = path.strip_prefix("/.well-known/acme-challenge/")?;
    let valid = !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    Some(if valid {
        dir.join(token)
    } else {
        dir.join(".invalid-token")
    })
}

/// The answer to an ACME challenge: the token file's content, or 404.
pub async fn acme_answer(path: &Path, router: &Router) -> Answer<'static> {
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            router.metrics().acme_challenges.inc();
            Answer {
                content_type: Some("text/plain"),
                body: bytes.into(),
                ..plain(StatusCode::OK, "")
            }
        }
        Err(_) => Answer {
            content_type: Some("text/plain"),
            ..plain(StatusCode::NOT_FOUND, "no such challenge\n")
        },
    }
}
