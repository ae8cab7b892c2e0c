//! Calendar windows, and the wall clock they are read on.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use seawall_core::calendar::{civil_from_days, days_from_civil};
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
                year * 12 + i64::from(month) - 1
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
                // A month index's remainder by 12 is 0..=11.
                let month = index.rem_euclid(12) as u32 + 1;
                Some(days_from_civil(index.div_euclid(12), month, 1) * 86_400)
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
            let days = days_from_civil(year, month, 1);
            let index = Window::Month.index(days * 86_400);
            assert_eq!(Window::Month.start(index), Some(days * 86_400));
        }
        // 2024-02-29 is in February; 2024-03-01 00:00 is March.
        let feb = Window::Month.index(days_from_civil(2024, 3, 1) * 86_400 - 1);
        let mar = Window::Month.index(days_from_civil(2024, 3, 1) * 86_400);
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
