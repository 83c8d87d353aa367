//! Wall-clock time for quotas: when a provider's day or month ends, in its own clock (UTC
//! midnight, Pacific midnight, the calendar month).
//!
//! [`Clock`] reads the wall clock once and then advances with `tokio::time::Instant`, so tests
//! that pause and advance tokio's time move the quota clock too, and can start it at any date
//! (a minute before midnight, the night the clocks change).

use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Milliseconds since the Unix epoch, advancing with tokio's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_start: i64,
    start: Instant,
}

impl Clock {
    /// The real time now.
    pub fn system() -> Clock {
        Clock::at(wall_now_ms())
    }

    /// A clock that reads `wall_ms` now (tests).
    pub fn at(wall_ms: i64) -> Clock {
        Clock {
            wall_at_start: wall_ms,
            start: Instant::now(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.wall_at_start + self.start.elapsed().as_millis() as i64
    }
}

/// The system's wall clock, in ms since the Unix epoch.
pub fn wall_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number: (year, month 1–12, day 1–31).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The next 00:00 UTC strictly after `now_ms`.
pub fn next_utc_midnight(now_ms: i64) -> i64 {
    (now_ms.div_euclid(DAY_MS) + 1) * DAY_MS
}

/// The start of the next calendar month (UTC) after `now_ms`.
pub fn next_month_start(now_ms: i64) -> i64 {
    let (y, m, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m, 1) * DAY_MS
}

/// The start of the calendar month (UTC) that holds `now_ms`.
pub fn month_start(now_ms: i64) -> i64 {
    let (y, m, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
    days_from_civil(y, m, 1) * DAY_MS
}

/// UTC offset of US Pacific time at `utc_ms`, in hours: −7 while daylight saving time is in
/// force (from 02:00 local on the second Sunday of March to 02:00 local on the first Sunday
/// of November, the US rule since 2007), −8 otherwise.
pub fn pacific_offset_hours(utc_ms: i64) -> i64 {
    let (y, _, _) = civil_from_days(utc_ms.div_euclid(DAY_MS));
    // 02:00 PST = 10:00 UTC; 02:00 PDT = 09:00 UTC.
    let dst_start = nth_sunday(y, 3, 2) * DAY_MS + 10 * HOUR_MS;
    let dst_end = nth_sunday(y, 11, 1) * DAY_MS + 9 * HOUR_MS;
    if (dst_start..dst_end).contains(&utc_ms) { -7 } else { -8 }
}

/// Day number of the `n`th Sunday of a month.
fn nth_sunday(y: i64, m: u32, n: i64) -> i64 {
    let first = days_from_civil(y, m, 1);
    // 1970-01-01 was a Thursday: weekday 0 = Sunday.
    let weekday = (first + 4).rem_euclid(7);
    first + (7 - weekday) % 7 + 7 * (n - 1)
}

/// The next midnight in America/Los_Angeles strictly after `now_ms` (Gemini's daily reset).
pub fn next_pacific_midnight(now_ms: i64) -> i64 {
    let local = now_ms + pacific_offset_hours(now_ms) * HOUR_MS;
    let next_local_midnight = (local.div_euclid(DAY_MS) + 1) * DAY_MS;
    // The offset that applies at that midnight (DST never changes at midnight).
    let guess = next_local_midnight + 8 * HOUR_MS;
    next_local_midnight - pacific_offset_hours(guess) * HOUR_MS
}

/// The last midnight in America/Los_Angeles at or before `now_ms` (the start of Gemini's day;
/// the day the clocks change is 23 or 25 hours long).
pub fn pacific_midnight_at_or_before(now_ms: i64) -> i64 {
    let local = now_ms + pacific_offset_hours(now_ms) * HOUR_MS;
    let local_midnight = local.div_euclid(DAY_MS) * DAY_MS;
    local_midnight - pacific_offset_hours(local_midnight + 8 * HOUR_MS) * HOUR_MS
}

/// `2026-11-28 08:00 UTC`.
pub fn format_utc(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let in_day = ms.rem_euclid(DAY_MS) / 60_000;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", in_day / 60, in_day % 60)
}

/// `3h12m`, `45s`, `2d4h`: how long until something, for people.
pub fn format_wait(ms: i64) -> String {
    let s = (ms.max(0) + 999) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i64, m: u32, d: u32, h: i64, min: i64) -> i64 {
        days_from_civil(y, m, d) * DAY_MS + h * HOUR_MS + min * 60_000
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in [-1000, 0, 11_016, 11_017, 20_000, 20_785, 30_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn day_and_month_boundaries() {
        let t = utc(2026, 11, 28, 23, 59) + 30_000;
        assert_eq!(next_utc_midnight(t), utc(2026, 11, 29, 0, 0));
        assert_eq!(next_utc_midnight(utc(2026, 11, 29, 0, 0)), utc(2026, 11, 30, 0, 0));
        assert_eq!(next_month_start(utc(2026, 12, 31, 23, 0)), utc(2027, 1, 1, 0, 0));
        assert_eq!(month_start(utc(2026, 12, 31, 23, 0)), utc(2026, 12, 1, 0, 0));
        assert_eq!(format_utc(utc(2026, 3, 8, 7, 5)), "2026-03-08 07:05 UTC");
        assert_eq!(format_wait(3 * HOUR_MS + 12 * 60_000), "3h12m");
        assert_eq!(format_wait(1500), "2s");
    }

    #[test]
    fn pacific_midnight_follows_daylight_saving() {
        // Winter: midnight PST is 08:00 UTC.
        assert_eq!(next_pacific_midnight(utc(2026, 1, 15, 12, 0)), utc(2026, 1, 16, 8, 0));
        assert_eq!(next_pacific_midnight(utc(2026, 1, 15, 7, 59)), utc(2026, 1, 15, 8, 0));
        // Summer: midnight PDT is 07:00 UTC.
        assert_eq!(next_pacific_midnight(utc(2026, 7, 1, 12, 0)), utc(2026, 7, 2, 7, 0));
        // 2026: DST from Sunday 8 March to Sunday 1 November.
        assert_eq!(pacific_offset_hours(utc(2026, 3, 8, 9, 59)), -8);
        assert_eq!(pacific_offset_hours(utc(2026, 3, 8, 10, 0)), -7);
        assert_eq!(pacific_offset_hours(utc(2026, 11, 1, 8, 59)), -7);
        assert_eq!(pacific_offset_hours(utc(2026, 11, 1, 9, 0)), -8);
        // The night the clocks go forward: Saturday's day ends at 08:00 UTC (PST), Sunday's at
        // 07:00 UTC on Monday (PDT).
        assert_eq!(next_pacific_midnight(utc(2026, 3, 7, 20, 0)), utc(2026, 3, 8, 8, 0));
        assert_eq!(next_pacific_midnight(utc(2026, 3, 8, 20, 0)), utc(2026, 3, 9, 7, 0));
        // And back: Sunday 1 November 2026 ends at 08:00 UTC on Monday.
        assert_eq!(next_pacific_midnight(utc(2026, 11, 1, 12, 0)), utc(2026, 11, 2, 8, 0));
        // Where each day starts, including the 25-hour and 23-hour days.
        assert_eq!(
            pacific_midnight_at_or_before(utc(2026, 11, 1, 7, 30)),
            utc(2026, 11, 1, 7, 0)
        );
        assert_eq!(
            pacific_midnight_at_or_before(utc(2026, 11, 2, 7, 30)),
            utc(2026, 11, 1, 7, 0)
        );
        assert_eq!(
            pacific_midnight_at_or_before(utc(2026, 11, 2, 8, 0)),
            utc(2026, 11, 2, 8, 0)
        );
        assert_eq!(
            pacific_midnight_at_or_before(utc(2026, 3, 8, 7, 30)),
            utc(2026, 3, 7, 8, 0)
        );
        assert_eq!(
            pacific_midnight_at_or_before(utc(2026, 3, 8, 8, 0)),
            utc(2026, 3, 8, 8, 0)
        );
        assert_eq!(
            pacific_midnight_at_or_before(utc(2026, 3, 9, 6, 59)),
            utc(2026, 3, 8, 8, 0)
        );
        assert_eq!(
            pacific_midnight_at_or_before(utc(2026, 3, 9, 7, 0)),
            utc(2026, 3, 9, 7, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_moves_with_paused_time() {
        let c = Clock::at(1000);
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        assert_eq!(c.now_ms(), 6000);
    }
}
