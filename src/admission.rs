//! The accept-rate limit: a token bucket over new client connections (WebSocket upgrades and
//! SockJS session creations, all listeners together), so a reconnect storm after a broker node
//! failed reaches the surviving nodes spread over time instead of all at once. A connection
//! over the rate gets HTTP 503 with `Retry-After` (the seconds until the bucket has a token).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderValue, Response, StatusCode};

use crate::transport::ws::text_response;
use crate::transport::HttpBody;

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub struct AcceptRate {
    rate: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl AcceptRate {
    /// A full bucket; `None` when `rate` is 0 (no limit).
    pub fn new(rate: u32, burst: u32) -> Option<AcceptRate> {
        (rate > 0).then(|| AcceptRate {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            bucket: Mutex::new(Bucket {
                tokens: f64::from(burst.max(1)),
                refilled: Instant::now(),
            }),
        })
    }

    /// Takes a token for one new connection, or says how long until one is available.
    pub fn admit(&self) -> Result<(), Duration> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Result<(), Duration> {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.refilled = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
    }
}

/// The 503 for a connection over the rate: `Retry-After` in whole seconds (at least 1).
pub fn over_rate_response(wait: Duration) -> Response<HttpBody> {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut res = text_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many new connections; retry later\n",
    );
    res.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_rate_is_no_limit() {
        assert!(AcceptRate::new(0, 10).is_none());
    }

    #[test]
    fn a_burst_then_the_rate() {
        let r = AcceptRate::new(10, 3).unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            r.admit_at(t0).unwrap();
        }
        let wait = r.admit_at(t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // 10 a second: one more token after 100 ms, not two.
        let t1 = t0 + Duration::from_millis(100);
        r.admit_at(t1).unwrap();
        assert!(r.admit_at(t1).is_err());
        // Idle for long: no more than the burst is saved up.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            r.admit_at(t2).unwrap();
        }
        assert!(r.admit_at(t2).is_err());
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        let res = over_rate_response(Duration::from_millis(20));
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[http::header::RETRY_AFTER], "1");
        let res = over_rate_response(Duration::from_millis(2500));
        assert_eq!(res.headers()[http::header::RETRY_AFTER], "3");
    }
}
