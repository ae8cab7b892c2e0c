//! Calendar windows, and the wall clock they are read on.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// The period a budget or an alert counts over. Calendar windows start on the hour, at
/// midnight and on the first of the month in the layer's UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Window {
    /// From one full hour to the next.
    Hour,
    /// From midnight to midnight.
    Day,
    /// From the first of a month to the first of the next.
    Month,
    /// Never resets.
    Lifetime,
}

impl Window {
    /// A short name for errors, headers, logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
            Self::Lifetime => "lifetime",
        }
    }

    /// The window's name from its [`as_str`](Self::as_str) form.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "hour" => Self::Hour,
            "day" => Self::Day,
            "month" => Self::Month,
            "lifetime" => Self::Lifetime,
            _ => return None,
        })
    }

    /// Which window of this kind `local` (seconds since the epoch, in local time) falls in:
    /// hours, days or months since the epoch.
    pub(crate) fn index(self, local: i64) -> u64 {
        let index = match self {
            Self::Hour => local.div_euclid(3_600),
            Self::Day => local.div_euclid(86_400),
            Self::Month => {
                let (year, month, _) = civil_from_days(local.div_euclid(86_400));
                year * 12 + (month - 1)
            }
            Self::Lifetime => 0,
        };
        u64::try_from(index).unwrap_or(0)
    }

    /// When window `index` starts, in local seconds since the epoch (`None` for a lifetime).
    pub(crate) fn start(self, index: u64) -> Option<i64> {
        let index = i64::try_from(index).ok()?;
        match self {
            Self::Hour => Some(index * 3_600),
            Self::Day => Some(index * 86_400),
            Self::Month => {
                Some(days_from_civil(index.div_euclid(12), index.rem_euclid(12) + 1) * 86_400)
            }
            Self::Lifetime => None,
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Days since 1970-01-01 of the first day of `month` (1..=12) of `year` (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month 1..=12, day 1..=31) of `days` days since 1970-01-01: what a
/// day window's index stands for, for reports.
///
/// ```
/// assert_eq!(seawall::budget::civil_date(20_428), (2025, 12, 6));
/// ```
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    civil_from_days(days)
}

/// (year, month 1..=12, day 1..=31) of `days` since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The wall clock budgets are counted on: the time of day read once, then advanced on
/// tokio's clock, so that calendar windows roll over on the paused clock of a test exactly
/// as they do in production. Carries the UTC offset windows start in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    /// Seconds since the epoch (UTC) at `base`, with the offset applied.
    local_base: Duration,
    base: Instant,
    offset: i64,
}

impl WallClock {
    pub(crate) fn new(at: SystemTime, offset_secs: i32) -> Self {
        Self {
            local_base: at.duration_since(UNIX_EPOCH).unwrap_or_default(),
            base: Instant::now(),
            offset: i64::from(offset_secs),
        }
    }

    /// Local seconds since the epoch, now.
    pub(crate) fn local_now(&self) -> i64 {
        let utc = self.local_base + self.base.elapsed();
        i64::try_from(utc.as_secs()).unwrap_or(i64::MAX) + self.offset
    }

    /// The instant `local` seconds stand for.
    pub(crate) fn system_time(&self, local: i64) -> SystemTime {
        let utc = u64::try_from(local - self.offset).unwrap_or(0);
        UNIX_EPOCH + Duration::from_secs(utc)
    }

    /// Now, as a `SystemTime`.
    pub(crate) fn system_now(&self) -> SystemTime {
        UNIX_EPOCH + self.local_base + self.base.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_round_trip_across_leap_years_and_centuries() {
        for (year, month) in [
            (1970, 1),
            (2024, 2),
            (2024, 3),
            (2000, 2),
            (2100, 3),
            (2026, 12),
        ] {
            let days = days_from_civil(year, month);
            assert_eq!(civil_from_days(days), (year, month, 1));
            let index = Window::Month.index(days * 86_400);
            assert_eq!(Window::Month.start(index), Some(days * 86_400));
        }
        // 2024-02-29 is in February; 2024-03-01 00:00 is March.
        let feb = Window::Month.index(days_from_civil(2024, 3) * 86_400 - 1);
        let mar = Window::Month.index(days_from_civil(2024, 3) * 86_400);
        assert_eq!(mar, feb + 1);
    }

    #[test]
    fn hours_and_days_start_on_the_boundary() {
        assert_eq!(Window::Hour.index(3_599), 0);
        assert_eq!(Window::Hour.index(3_600), 1);
        assert_eq!(Window::Day.start(Window::Day.index(90_000)), Some(86_400));
        assert_eq!(Window::Lifetime.start(0), None);
    }
}
