//! Waiting with a deadline. Every poll loop of the providers goes through [`poll_until`], so
//! that each wait has a deadline its caller chose and, when it runs out, an error that names
//! the resource and what it was still waiting for. As kube-rs has it, the helper never adds a
//! timeout behind the caller's back: the caller passes it.

use std::future::Future;
use std::time::Duration;

use crate::api::ProviderError;

/// What one look found.
#[derive(Debug)]
pub enum Poll<T> {
    /// Done, with what the wait was for.
    Ready(T),
    /// Not yet: what it still waits for (`the container is not running`).
    Pending(String),
}

/// Looks with `check` every `interval` until it says ready, or fails with
/// [`ProviderError::Timeout`] once `timeout` has passed since the first look. An error from
/// `check` ends the wait at once.
pub async fn poll_until<T, F, Fut>(
    resource: &str,
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, ProviderError>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await? {
            Poll::Ready(found) => return Ok(found),
            Poll::Pending(what) if tokio::time::Instant::now() >= deadline => {
                return Err(ProviderError::Timeout {
                    resource: resource.to_string(),
                    seconds: timeout.as_secs(),
                    what,
                });
            }
            Poll::Pending(_) => tokio::time::sleep(interval).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_with_what_it_waited_for_at_its_deadline() {
        let mut looks = 0;
        let out: Result<(), _> = poll_until(
            "node.a",
            Duration::from_secs(10),
            Duration::from_secs(1),
            || {
                looks += 1;
                async { Ok(Poll::Pending("the container is not running".into())) }
            },
        )
        .await;
        let err = out.unwrap_err().to_string();
        assert_eq!(
            err,
            "`node.a` was not ready after 10 s: the container is not running"
        );
        // Paused time: one look a second, from 0 s to 10 s.
        assert_eq!(looks, 11);
    }

    #[tokio::test(start_paused = true)]
    async fn ready_ends_the_wait_and_an_error_ends_it_at_once() {
        let mut looks = 0;
        let found = poll_until("x", Duration::from_secs(10), Duration::from_secs(1), || {
            looks += 1;
            let n = looks;
            async move {
                Ok(if n == 3 {
                    Poll::Ready(n)
                } else {
                    Poll::Pending("not yet".into())
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(found, 3);
        let failed: Result<(), _> = poll_until(
            "x",
            Duration::from_secs(10),
            Duration::from_secs(1),
            || async {
                Err(ProviderError::Unreachable {
                    provider: crate::registry::default_kind(),
                    resource: "x".into(),
                    message: "gone".into(),
                })
            },
        )
        .await;
        assert!(matches!(failed, Err(ProviderError::Unreachable { .. })));
    }
}
