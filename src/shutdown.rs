//! The shutdown flag every long-running task watches: a `tokio::sync::watch` of `bool` that turns
//! true once, when the node stops (or a sink is told to drain).
//!
//! A leaf, so that delivery, reloads and the admin listener can wait on it without depending on
//! the listeners that also use it.

use tokio::sync::watch;

/// Resolves once the flag turns true (or its sender is gone). The guard `wait_for` returns is
/// dropped here, so callers' futures stay `Send`.
pub async fn until_true(rx: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which is as final as `true`.
    let _ = rx.wait_for(|v| *v).await;
}
