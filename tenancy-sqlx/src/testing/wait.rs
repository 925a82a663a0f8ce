//! Time in tests: waiting for what another task or process does, and cancelling a future at a
//! chosen await, to test that it is safe to drop there.

use std::time::{Duration, Instant};

/// Polls `fut` until it has been pending `k` times, then drops it: a cancellation at its k-th
/// await. `Some(output)` if it finished first.
///
/// Run it for `k = 1, 2, ...` until it returns `Some` to drop a future at each of its awaits in
/// turn, and check after each that nothing was left half-done.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tenancy_sqlx::testing::cancel_at;
/// let two_awaits = async {
///     tokio::task::yield_now().await;
///     tokio::task::yield_now().await;
///     7
/// };
/// assert_eq!(cancel_at(1, two_awaits).await, None);
/// # }
/// ```
pub async fn cancel_at<F: Future>(k: usize, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut pending = 0;
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        std::task::Poll::Ready(out) => std::task::Poll::Ready(Some(out)),
        std::task::Poll::Pending => {
            pending += 1;
            if pending >= k {
                std::task::Poll::Ready(None)
            } else {
                std::task::Poll::Pending
            }
        }
    })
    .await
}

/// Polls `check` every 10 ms until it holds; panics naming `what` once `deadline` has passed.
pub async fn eventually(what: &str, deadline: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < deadline,
            "not within {deadline:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
