//! UTC calendar dates from Unix time, for the log's timestamps and HTTP's `Date` header
//! (no time-zone database: both are UTC).

/// A second of Unix time as a UTC calendar date and clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UtcTime {
    /// The year (proleptic Gregorian; negative before year 0).
    pub(crate) year: i64,
    /// 1..=12.
    pub(crate) month: u32,
    /// 1..=31.
    pub(crate) day: u32,
    /// 0..=23.
    pub(crate) hour: u32,
    /// 0..=59.
    pub(crate) minute: u32,
    /// 0..=59.
    pub(crate) second: u32,
    /// 0 = Sunday … 6 = Saturday.
    pub(crate) weekday: u32,
}

impl UtcTime {
    /// The UTC date and time of `secs` seconds since 1970-01-01 00:00:00 UTC.
    pub(crate) fn from_unix(secs: i64) -> UtcTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        UtcTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            // 1970-01-01 was a Thursday (4 with Sunday = 0).
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }
}

/// (year, month 1..=12, day 1..=31) of a count of days since 1970-01-01 in the
/// proleptic Gregorian calendar, by Howard Hinnant's era arithmetic (`civil_from_days`):
/// 400-year eras of 146,097 days, years counted from March so the leap day ends a year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd_hms(t: UtcTime) -> (i64, u32, u32, u32, u32, u32) {
        (t.year, t.month, t.day, t.hour, t.minute, t.second)
    }

    #[test]
    fn known_dates() {
        assert_eq!(ymd_hms(UtcTime::from_unix(0)), (1970, 1, 1, 0, 0, 0));
        assert_eq!(UtcTime::from_unix(0).weekday, 4, "a Thursday");
        // A leap day, the last second of a year, and a date in the next century.
        assert_eq!(
            ymd_hms(UtcTime::from_unix(951_782_400)),
            (2000, 2, 29, 0, 0, 0)
        );
        assert_eq!(
            ymd_hms(UtcTime::from_unix(1_704_067_199)),
            (2023, 12, 31, 23, 59, 59)
        );
        assert_eq!(
            ymd_hms(UtcTime::from_unix(4_107_542_400)),
            (2100, 3, 1, 0, 0, 0)
        );
        // Before 1970: the last second of 1969, a Wednesday.
        let t = UtcTime::from_unix(-1);
        assert_eq!((ymd_hms(t), t.weekday), ((1969, 12, 31, 23, 59, 59), 3));
    }

    #[test]
    fn every_day_follows_the_one_before() {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let length = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        // 1600-01-01 .. 2400-12-31: each day is the next of the one before.
        let mut prev = civil_from_days(-135_141);
        assert_eq!(prev, (1599, 12, 31));
        for days in -135_140..=157_419 {
            let (y, m, d) = civil_from_days(days);
            let want = if prev.2 < length(prev.0, prev.1) {
                (prev.0, prev.1, prev.2 + 1)
            } else if prev.1 < 12 {
                (prev.0, prev.1 + 1, 1)
            } else {
                (prev.0 + 1, 1, 1)
            };
            assert_eq!((y, m, d), want, "day {days}");
            prev = (y, m, d);
        }
        assert_eq!(prev, (2400, 12, 31));
    }
}
