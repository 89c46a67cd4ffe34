//! Limits that protect the server and its users: requests per user per minute (a token bucket
//! each), failed logins per account and per address (locked out for a while after too many),
//! and the security headers every response carries.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// Requests per minute for each user, with bursts up to a minute's worth; 0 turns it off.
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, buckets: Mutex::default() }
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Takes one request from `who`'s bucket; `Err(seconds)` until the next one is allowed.
    pub fn take(&self, who: &str) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Full buckets carry no information: forget them rather than grow without end.
            buckets.retain(|_, (tokens, at)| *tokens + at.elapsed().as_secs_f64() * per_second < capacity);
        }
        let (tokens, at) = buckets.entry(who.to_string()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / per_second).ceil() as u64)
        }
    }
}

/// Failed logins allowed per account, and per address, within [`LOGIN_WINDOW`].
pub const LOGIN_ATTEMPTS: u32 = 5;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Counts failed logins by account name and by client address; past [`LOGIN_ATTEMPTS`] within
/// [`LOGIN_WINDOW`] that name or address is refused until the window has passed, whether or
/// not the password would be right.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    fn keys(user: &str, peer: Option<IpAddr>) -> Vec<String> {
        let mut keys = vec![format!("user:{}", user.to_lowercase())];
        if let Some(ip) = peer {
            keys.push(format!("ip:{ip}"));
        }
        keys
    }

    /// `Err(seconds)` while the account or the address is locked out.
    pub fn check(&self, user: &str, peer: Option<IpAddr>) -> Result<(), u64> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let wait = Self::keys(user, peer)
            .iter()
            .filter_map(|k| failures.get(k))
            .filter(|(n, since)| *n >= LOGIN_ATTEMPTS && since.elapsed() < LOGIN_WINDOW)
            .map(|(_, since)| (LOGIN_WINDOW - since.elapsed()).as_secs() + 1)
            .max();
        wait.map_or(Ok(()), Err)
    }

    pub fn failed(&self, user: &str, peer: Option<IpAddr>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|_, (_, since)| since.elapsed() < LOGIN_WINDOW);
        for key in Self::keys(user, peer) {
            let entry = failures.entry(key).or_insert((0, Instant::now()));
            entry.0 += 1;
        }
    }

    /// A successful login clears the account's count (not the address's).
    pub fn succeeded(&self, user: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&format!("user:{}", user.to_lowercase()));
    }
}

/// The client's address, when the server was started with connection info.
pub fn peer(request: &Request) -> Option<IpAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// Headers on every response: no MIME sniffing, no framing, no referrer; with TLS, HSTS.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_minutes_worth_then_refuses_each_user_alone() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            assert!(limiter.take("ann").is_ok());
        }
        let wait = limiter.take("ann").unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(limiter.take("bob").is_ok(), "another user has their own bucket");
        assert!(RateLimiter::new(0).take("ann").is_ok());
    }

    #[test]
    fn logins_lock_after_repeated_failures_by_name_and_by_address() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        for _ in 0..LOGIN_ATTEMPTS - 1 {
            throttle.failed("Ann", Some(ip));
        }
        assert!(throttle.check("ann", None).is_ok());
        throttle.failed("ann", Some(ip));
        assert!(throttle.check("ann", None).is_err(), "the name is locked");
        assert!(throttle.check("bob", Some(ip)).is_err(), "so is the address, for every name");
        assert!(throttle.check("bob", Some("10.0.0.8".parse().unwrap())).is_ok());
        throttle.succeeded("ann");
        assert!(throttle.check("ann", None).is_ok());
    }
}
