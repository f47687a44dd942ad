//! Deadlines and the accelerator's time scale.
//!
//! Every wait in labcheck has a [`Deadline`]. Lab files state timeouts as they
//! would be under KVM; [`TimeScale`] stretches them for slower accelerators so
//! the same lab passes on a KVM runner and a TCG laptop.

use std::time::{Duration, Instant};

/// A point in time by which a wait must end, with the budget it started from
/// (so a failure can say how long it waited).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    started: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self {
            started: Instant::now(),
            budget,
        }
    }

    /// The instant at which the deadline expires.
    pub fn instant(&self) -> Instant {
        self.started + self.budget
    }

    /// Time left, zero once expired.
    pub fn remaining(&self) -> Duration {
        self.budget.saturating_sub(self.started.elapsed())
    }

    pub fn is_expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// The whole budget this deadline was given.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// How long since the deadline was set.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Converts to a tokio instant for `tokio::time::timeout_at`.
    pub fn tokio_instant(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.instant())
    }
}

/// How much slower than KVM the chosen accelerator runs guests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale(f64);

impl TimeScale {
    /// KVM: lab timeouts apply as written.
    pub const KVM: TimeScale = TimeScale(1.0);
    /// TCG: software emulation, measured at about three to four times slower
    /// to boot; five gives headroom on a loaded two-core machine.
    pub const TCG: TimeScale = TimeScale(5.0);

    /// A timeout as written in a lab file, stretched for this accelerator.
    pub fn scale(self, written: Duration) -> Duration {
        written.mul_f64(self.0)
    }
}

/// Renders a duration the way a lab file writes it (`1.5s`, `250ms`, `2m`).
/// A duration in milliseconds (as reports keep them), formatted as
/// [`format_duration`] does.
pub fn format_millis(ms: u64) -> String {
    format_duration(Duration::from_millis(ms))
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Parses the durations lab files use: `500ms`, `30s`, `1.5s`, `2m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let value: f64 = number.trim().parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("500ms", Some(Duration::from_millis(500)))]
    #[case("30s", Some(Duration::from_secs(30)))]
    #[case("1.5s", Some(Duration::from_millis(1500)))]
    #[case("2m", Some(Duration::from_secs(120)))]
    #[case("30", None)]
    #[case("-1s", None)]
    #[case("3h", None)]
    #[case("s", None)]
    fn parses_lab_durations(#[case] text: &str, #[case] expected: Option<Duration>) {
        assert_eq!(parse_duration(text), expected);
    }

    #[rstest]
    #[case(Duration::from_millis(250), "250ms")]
    #[case(Duration::from_millis(1500), "1.5s")]
    #[case(Duration::from_secs(120), "2m")]
    fn formats_durations(#[case] d: Duration, #[case] expected: &str) {
        assert_eq!(format_duration(d), expected);
    }

    #[test]
    fn tcg_stretches_timeouts() {
        assert_eq!(
            TimeScale::TCG.scale(Duration::from_secs(2)),
            Duration::from_secs(10)
        );
        assert_eq!(
            TimeScale::KVM.scale(Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn deadline_reports_remaining_and_expiry() {
        let d = Deadline::after(Duration::ZERO);
        assert!(d.is_expired());
        let d = Deadline::after(Duration::from_secs(60));
        assert!(!d.is_expired());
        assert!(d.remaining() <= Duration::from_secs(60));
    }
}
