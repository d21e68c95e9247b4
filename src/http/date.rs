//! The `Date` header value, formatted once per second.

use std::time::{SystemTime, UNIX_EPOCH};

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
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday (index 4 with Sunday = 0).
        let weekday = DAYS
            .get(((days + 4) % 7) as usize)
            .copied()
            .unwrap_or("Sun");
        let month = MONTHS
            .get(month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("Jan");
        self.text.clear();
        // Writing to a String cannot fail.
        let _ = write!(
            self.text,
            "{weekday}, {day:02} {month} {year:04} {:02}:{:02}:{:02} GMT",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        );
    }
}

fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// (year, month 1..=12, day 1..=31) for a count of days since 1970-01-01, using the
/// proleptic Gregorian calendar (era arithmetic after Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
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
