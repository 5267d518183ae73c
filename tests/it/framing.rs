//! Request framing on the plain listener, as a property: whatever a request's body holds and
//! however it is framed, it is never read as a request. A `Content-Length` body is skipped and
//! each request on the connection gets exactly one answer; a chunked body is not read at all:
//! its request is answered once and the connection closes.

use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{self, TestNode};

const LINKS: &str = "id,domain,slashtag,destination,status
l1,brand.link,smuggled,https://shop.example.com/smuggled,301
l2,brand.link,temp,https://shop.example.com/temp,302
";

/// A request hidden in a body: answered, it would be a 301.
const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: brand.link\r\n\r\n";

/// One node and the runtime it runs on, shared by every case.
fn node() -> &'static (tokio::runtime::Runtime, TestNode) {
    static NODE: OnceLock<(tokio::runtime::Runtime, TestNode)> = OnceLock::new();
    NODE.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let node = runtime.block_on(common::start(LINKS, ""));
        (runtime, node)
    })
}

/// The body, framed as chunks of the given sizes (the rest in one last chunk).
fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    for &size in sizes.iter().chain(std::iter::once(&usize::MAX)) {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
        rest = tail;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_body_is_never_read_as_a_request(
        before in proptest::collection::vec(any::<u8>(), 0..64),
        copies in 1usize..4,
        after in proptest::collection::vec(any::<u8>(), 0..64),
        use_chunks in any::<bool>(),
        sizes in proptest::collection::vec(1usize..40, 0..8),
        splits in proptest::collection::vec(1usize..64, 0..4),
    ) {
        let mut body = before;
        for _ in 0..copies {
            body.extend_from_slice(SMUGGLED);
        }
        body.extend_from_slice(&after);
        let mut bytes = Vec::new();
        if use_chunks {
            bytes.extend_from_slice(b"GET /temp HTTP/1.1\r\nHost: brand.link\r\nTransfer-Encoding: chunked\r\n\r\n");
            bytes.extend_from_slice(&chunked(&body, &sizes));
        } else {
            let head = format!("GET /temp HTTP/1.1\r\nHost: brand.link\r\nContent-Length: {}\r\n\r\n", body.len());
            bytes.extend_from_slice(head.as_bytes());
            bytes.extend_from_slice(&body);
        }
        bytes.extend_from_slice(b"GET /temp HTTP/1.1\r\nHost: brand.link\r\nConnection: close\r\n\r\n");
        let (runtime, node) = node();
        let answer = runtime.block_on(async {
            let mut s = tokio::net::TcpStream::connect(node.node.addr).await.unwrap();
            // Sent in pieces, so that heads and bodies straddle reads.
            let mut rest = &bytes[..];
            for &n in &splits {
                let (piece, tail) = rest.split_at(n.min(rest.len()));
                s.write_all(piece).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
                rest = tail;
            }
            s.write_all(rest).await.unwrap();
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).into_owned()
        });
        prop_assert!(!answer.contains("HTTP/1.1 301"), "a body was answered as a request: {}", answer);
        if use_chunks {
            // A chunked body is not read: one answer, and the connection closes after it.
            prop_assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{}", answer);
            prop_assert!(answer.contains("connection: close"), "{}", answer);
        } else {
            prop_assert_eq!(answer.matches("HTTP/1.1 ").count(), 2, "{}", answer);
            prop_assert_eq!(answer.matches("HTTP/1.1 302").count(), 2, "{}", answer);
        }
    }
}
