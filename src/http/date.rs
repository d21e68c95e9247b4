//! The `Date` header value, formatted once per second.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::calendar::UtcTime;

/// A cached IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`). The worker calls
/// [`HttpDate::update`] once per event-loop turn; formatting happens only when the second
/// changes, so the per-response cost is a copy of 29 bytes.
#[derive(Debug, Clone)]
pub struct HttpDate {
    unix_secs: u64,
    text: String,
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl HttpDate {
    /// The date for `now`.
    pub fn new(now: SystemTime) -> Self {
        let mut date = HttpDate {
            unix_secs: 0,
            text: String::with_capacity(29),
        };
        date.format(unix_secs(now));
        date
    }

    /// Moves the cached date to `now`; returns true when the text changed.
    pub fn update(&mut self, now: SystemTime) -> bool {
        let secs = unix_secs(now);
        if secs == self.unix_secs && !self.text.is_empty() {
            return false;
        }
        self.format(secs);
        true
    }

    /// The formatted date.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn format(&mut self, secs: u64) {
        use std::fmt::Write;
        self.unix_secs = secs;
        let t = UtcTime::from_unix(i64::try_from(secs).unwrap_or(i64::MAX));
        let weekday = DAYS.get(t.weekday as usize).copied().unwrap_or("Sun");
        let month = MONTHS
            .get(t.month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("Jan");
        self.text.clear();
        // Writing to a String cannot fail.
        let _ = write!(
            self.text,
            "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
            t.day, t.year, t.hour, t.minute, t.second
        );
    }
}

fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc_example_and_leap_day() {
        let d = HttpDate::new(UNIX_EPOCH + Duration::from_secs(784_111_777));
        assert_eq!(d.as_str(), "Sun, 06 Nov 1994 08:49:37 GMT");
        // 2024-02-29 12:00:00 UTC
        let d = HttpDate::new(UNIX_EPOCH + Duration::from_secs(1_709_208_000));
        assert_eq!(d.as_str(), "Thu, 29 Feb 2024 12:00:00 GMT");
        let d = HttpDate::new(UNIX_EPOCH);
        assert_eq!(d.as_str(), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn update_reformats_only_on_a_new_second() {
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut d = HttpDate::new(t);
        assert!(!d.update(t + Duration::from_millis(999)));
        assert!(d.update(t + Duration::from_secs(1)));
        assert_eq!(d.as_str(), "Sun, 09 Sep 2001 01:46:41 GMT");
    }
}
