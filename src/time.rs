//! Wall-clock timestamps. The leader stamps each proposal, so `apply` never reads a clock.

use std::sync::Mutex;
use std::time::Instant;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A wall clock this far away from where [`SteadyClock`] expects it has stepped (an operator's
/// `date -s`, a bad time server, a VM resumed), not drifted.
const STEP_MS: i64 = 1_000;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let wall = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    wall + crate::test_faults::clock_offset_ms()
}

pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The time a leader stamps on proposals, checks join tokens against and signs certificates
/// from: the wall clock, except that it never goes back, and that it follows a wall clock
/// that stepped ahead at no more than twice the pace of the monotonic clock. So a wall
/// clock set a day ahead by mistake and set back an hour later has moved the stamps (and
/// through them the cluster's time, which `apply` never lets go back) by at most that hour,
/// not by a day; a clock stepped back holds the stamps where they were until it catches up.
/// The pace counts from the last reading: whoever owns one reads it often (every second), so
/// that a step is seen when it happens.
#[derive(Debug)]
pub struct SteadyClock {
    last: Mutex<Reading>,
}

#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    ms: i64,
    /// The wall clock was found stepped, and it was logged; cleared once they agree again.
    stepped: bool,
}

impl Default for SteadyClock {
    fn default() -> Self {
        SteadyClock {
            last: Mutex::new(Reading {
                at: Instant::now(),
                ms: now_ms(),
                stepped: false,
            }),
        }
    }
}

impl SteadyClock {
    pub fn now_ms(&self) -> i64 {
        self.read(now_ms(), Instant::now())
    }

    fn read(&self, wall_ms: i64, at: Instant) -> i64 {
        let mut last = self.last.lock().expect("clock lock poisoned");
        let elapsed = at.saturating_duration_since(last.at).as_millis() as i64;
        let expected = last.ms + elapsed;
        let ms = wall_ms.clamp(last.ms, last.ms + 2 * elapsed);
        let off = wall_ms - expected;
        if off.abs() > STEP_MS && !last.stepped {
            tracing::warn!(
                step_ms = off,
                "the wall clock stepped {}: stamps (audit times, join token and certificate \
                 lifetimes) {} until it agrees again",
                if off > 0 { "ahead" } else { "back" },
                if off > 0 {
                    "follow it at no more than twice the normal pace"
                } else {
                    "stay where they are"
                },
            );
        }
        *last = Reading {
            at,
            ms,
            stepped: if ms == wall_ms {
                false
            } else {
                last.stepped || off.abs() > STEP_MS
            },
        };
        ms
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const DAY: i64 = 86_400_000;

    fn clock_at(ms: i64) -> (SteadyClock, Instant) {
        let start = Instant::now();
        let clock = SteadyClock {
            last: Mutex::new(Reading {
                at: start,
                ms,
                stepped: false,
            }),
        };
        (clock, start)
    }

    fn after(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn a_steady_wall_clock_is_followed() {
        let (clock, start) = clock_at(1_000_000);
        assert_eq!(clock.read(1_000_100, after(start, 100)), 1_000_100);
        // A little drift either way is followed too.
        assert_eq!(clock.read(1_000_205, after(start, 200)), 1_000_205);
        assert_eq!(clock.read(1_000_290, after(start, 300)), 1_000_290);
    }

    /// A day ahead for ten seconds, then set right: the stamps gained ten seconds, not a
    /// day, and hold still until the wall clock passes them.
    #[test]
    fn a_clock_a_day_ahead_moves_stamps_only_as_long_as_it_lasts() {
        let t0 = 1_000_000;
        let (clock, start) = clock_at(t0);
        assert_eq!(
            clock.read(t0 + DAY + 1_000, after(start, 1_000)),
            t0 + 2_000
        );
        let ahead = clock.read(t0 + DAY + 10_000, after(start, 10_000));
        assert_eq!(ahead, t0 + 20_000);
        assert_eq!(clock.read(t0 + 11_000, after(start, 11_000)), ahead);
        assert_eq!(clock.read(t0 + 21_000, after(start, 21_000)), t0 + 21_000);
    }

    #[test]
    fn a_clock_stepped_back_holds_the_stamps() {
        let (clock, start) = clock_at(5_000_000);
        assert_eq!(clock.read(4_000_000, after(start, 1_000)), 5_000_000);
        assert_eq!(clock.read(5_000_500, after(start, 2_000)), 5_000_500);
    }
}
