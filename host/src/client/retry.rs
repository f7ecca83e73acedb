//! Bounded retries of transient failures: 5xx and 429 answers, connection
//! errors (refused, reset, cut bodies) and S3's `BadDigest`.

use std::future::Future;
use std::time::Duration;

/// Attempts of one request (the first one included).
pub const ATTEMPTS: u32 = 6;
/// The first wait; it doubles after each failure, up to [`MAX_WAIT`] (no
/// waiting in unit tests).
const FIRST_WAIT: Duration = if cfg!(test) {
    Duration::ZERO
} else {
    Duration::from_millis(250)
};
const MAX_WAIT: Duration = Duration::from_secs(8);

/// How one attempt ended.
pub enum Attempt<T> {
    Done(T),
    /// Worth another try; the text says why (shown when attempts run out).
    Transient(String),
    /// Another try would fail the same way.
    Fatal(anyhow::Error),
}

/// An answer whose success carries JSON: done with its value; an error
/// answer is worth another try when its status is transient.
pub async fn json_answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Attempt<T> {
    let status = response.status();
    if status.is_success() {
        return match response.json::<T>().await {
            Ok(value) => Attempt::Done(value),
            Err(e) => Attempt::Transient(format!("reading the answer: {e}")),
        };
    }
    let text = super::error_text(response).await;
    if super::is_transient(status) {
        Attempt::Transient(text)
    } else {
        Attempt::Fatal(anyhow::anyhow!(text))
    }
}

/// Runs `attempt` until it is done, fails for good, or [`ATTEMPTS`] ran;
/// `what` names the request in the final error.
pub async fn with_retries<T, F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let mut backoff = Backoff::new();
    loop {
        match attempt(backoff.attempt).await {
            Attempt::Done(value) => return Ok(value),
            Attempt::Fatal(error) => return Err(error.context(what.to_string())),
            Attempt::Transient(why) => backoff.after_failure(what, why).await?,
        }
    }
}

/// Counts attempts and waits between them, for loops that cannot be put
/// in a closure.
pub struct Backoff {
    /// The attempt about to run (from 1).
    pub attempt: u32,
    wait: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub fn new() -> Self {
        Backoff {
            attempt: 1,
            wait: FIRST_WAIT,
        }
    }

    /// After a transient failure: waits before the next attempt, or fails
    /// when the attempts ran out.
    pub async fn after_failure(&mut self, what: &str, why: String) -> anyhow::Result<()> {
        if self.attempt >= ATTEMPTS {
            anyhow::bail!("{what}: gave up after {ATTEMPTS} attempts; last: {why}");
        }
        tokio::time::sleep(self.wait).await;
        self.wait = (self.wait * 2).min(MAX_WAIT);
        self.attempt += 1;
        Ok(())
    }
}

/// A request that could not be sent or whose answer was cut: transient,
/// except for errors that another try cannot fix (a bad URL, a body that
/// could not be built).
pub fn from_send_error<T>(error: reqwest::Error) -> Attempt<T> {
    if error.is_builder() {
        Attempt::Fatal(error.into())
    } else {
        Attempt::Transient(format!("{error:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transient_failures_are_tried_again_up_to_the_bound() {
        let mut calls = 0;
        let result: anyhow::Result<()> = with_retries("PUT x", |_| {
            calls += 1;
            async { Attempt::Transient("503".into()) }
        })
        .await;
        assert_eq!(calls, ATTEMPTS);
        let error = result.unwrap_err().to_string();
        assert!(
            error.contains("gave up") && error.contains("503"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn success_after_failures_and_fatal_errors_stop_at_once() {
        let value = with_retries("GET", |n| async move {
            if n < 3 {
                Attempt::Transient("reset".into())
            } else {
                Attempt::Done(n)
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
        let mut calls = 0;
        let result: anyhow::Result<()> = with_retries("POST", |_| {
            calls += 1;
            async { Attempt::Fatal(anyhow::anyhow!("403 Forbidden")) }
        })
        .await;
        assert_eq!(calls, 1);
        assert!(format!("{:#}", result.unwrap_err()).contains("403 Forbidden"));
    }
}
