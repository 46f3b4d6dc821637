//! Instants and spans as distinct types: an instant is [`UnixMillis`] (milliseconds since
//! the Unix epoch, UTC), a span is a [`std::time::Duration`]. Subtracting two instants
//! gives a span; adding or subtracting a span to an instant gives an instant; an instant
//! cannot be passed where a span is expected.

use std::ops::{Add, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An instant: milliseconds since 1970-01-01T00:00:00Z (Prometheus's sample timestamps
/// have the same resolution). Serialized as the bare integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// The current time of the system clock.
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp_millis())
    }

    /// The milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// The span from `earlier` to `self`; zero when `earlier` is later.
    pub fn since(self, earlier: UnixMillis) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

fn span_millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

impl Add<Duration> for UnixMillis {
    type Output = UnixMillis;
    /// Saturates at the largest instant.
    fn add(self, span: Duration) -> UnixMillis {
        UnixMillis(self.0.saturating_add(span_millis(span)))
    }
}

impl Sub<Duration> for UnixMillis {
    type Output = UnixMillis;
    /// Saturates at the smallest instant.
    fn sub(self, span: Duration) -> UnixMillis {
        UnixMillis(self.0.saturating_sub(span_millis(span)))
    }
}

impl std::fmt::Display for UnixMillis {
    /// RFC 3339 with milliseconds, UTC.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::rfc3339_ms(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_spans_combine() {
        let t = UnixMillis(120_000);
        assert_eq!(t - Duration::from_secs(60), UnixMillis(60_000));
        assert_eq!(t + Duration::from_millis(1), UnixMillis(120_001));
        assert_eq!(t.since(UnixMillis(60_000)), Duration::from_secs(60));
        assert_eq!(UnixMillis(0).since(t), Duration::ZERO, "a later instant is no negative span");
        assert_eq!(UnixMillis(i64::MIN + 1) - Duration::from_secs(1), UnixMillis(i64::MIN));
        assert_eq!(serde_json::to_string(&t).unwrap(), "120000");
        assert_eq!(t.to_string(), "1970-01-01T00:02:00.000Z");
    }
}
