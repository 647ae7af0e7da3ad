//! When a failed message is tried again: the waits after each failed
//! attempt, about three days in all, after which the message has failed
//! for good and its endpoint is disabled.

/// Seconds to wait after the 1st, 2nd, … failed attempt.
const WAITS_SECS: [u64; 9] = [5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400];

/// The wait after `failed_attempts` failures, or `None` when the message
/// has used up its attempts.
pub fn next_wait_ms(failed_attempts: u64) -> Option<u64> {
    let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
    WAITS_SECS.get(index).map(|secs| secs * 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_for_about_three_days_then_stops() {
        assert_eq!(next_wait_ms(1), Some(5_000));
        assert_eq!(next_wait_ms(2), Some(300_000));
        let total: u64 = (1..=9).filter_map(next_wait_ms).sum();
        assert!((3 * 86_400_000..4 * 86_400_000).contains(&total), "{total}");
        assert_eq!(next_wait_ms(10), None);
        assert_eq!(next_wait_ms(0), None);
    }
}
