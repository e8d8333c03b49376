//! What is due: pure functions of a trigger's schedule, what already fired, and the time.

use chrono::{DateTime, Utc};

use super::CatchUp;

/// The most missed ticks `CatchUp::All` fires after a long downtime.
pub const MAX_CATCH_UP: usize = 1000;

/// The ticks of `cron` to fire at `now`: those after `since` (the last tick fired, or when
/// the trigger was first seen) and not after `now`. With `Latest`, only the last of them.
pub fn due_ticks(
    cron: &croner::Cron,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    catch_up: CatchUp,
) -> Vec<DateTime<Utc>> {
    if catch_up == CatchUp::Latest {
        // Straight to the last tick: a seconds schedule missed for a week is millions of ticks.
        return cron
            .find_previous_occurrence(&now, true)
            .ok()
            .filter(|t| *t > since)
            .into_iter()
            .collect();
    }
    cron.iter_after(since)
        .take_while(|t| *t <= now)
        .take(MAX_CATCH_UP)
        .collect()
}

/// The key of a firing: the trigger and what it fired for (a tick, or a commit).
pub fn tick_key(trigger: &str, tick: DateTime<Utc>) -> String {
    format!("{trigger}@{}", tick.format("%Y-%m-%dT%H:%M:%SZ"))
}

pub fn commit_key(trigger: &str, commit: &dvx_store::Id) -> String {
    format!("{trigger}@{}", commit.to_hex())
}

/// Whether a firing may start at `now`, given when the last one started and the trigger's
/// minimum interval; otherwise when it may.
pub fn allowed_at(
    last_start: Option<DateTime<Utc>>,
    min_interval: Option<std::time::Duration>,
    now: DateTime<Utc>,
) -> Result<(), DateTime<Utc>> {
    let (Some(last), Some(gap)) = (last_start, min_interval) else {
        return Ok(());
    };
    let gap = chrono::Duration::from_std(gap).unwrap_or(chrono::Duration::MAX);
    match last.checked_add_signed(gap) {
        Some(next) if next > now => Err(next),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn only_the_latest_missed_tick_by_default() {
        let c = super::super::parse_cron("0 * * * *").unwrap();
        let since = t("2026-01-01T00:00:00Z");
        let now = t("2026-01-01T05:30:00Z");
        assert_eq!(
            due_ticks(&c, since, now, CatchUp::Latest),
            [t("2026-01-01T05:00:00Z")]
        );
        let all = due_ticks(&c, since, now, CatchUp::All);
        assert_eq!(all.len(), 5);
        assert_eq!(all[0], t("2026-01-01T01:00:00Z"));
        // Nothing new since the last tick fired.
        assert!(due_ticks(&c, t("2026-01-01T05:00:00Z"), now, CatchUp::All).is_empty());
    }

    #[test]
    fn seconds_tick_and_catch_up_is_bounded() {
        let c = super::super::parse_cron("*/2 * * * * *").unwrap();
        let since = t("2026-01-01T00:00:00Z");
        assert_eq!(
            due_ticks(&c, since, t("2026-01-01T00:00:05Z"), CatchUp::All),
            [t("2026-01-01T00:00:02Z"), t("2026-01-01T00:00:04Z")]
        );
        let years = due_ticks(&c, since, t("2027-01-01T00:00:00Z"), CatchUp::All);
        assert_eq!(years.len(), MAX_CATCH_UP);
    }

    #[test]
    fn keys_name_the_trigger_and_the_tick() {
        assert_eq!(
            tick_key("nightly", t("2026-01-01T02:00:00Z")),
            "nightly@2026-01-01T02:00:00Z"
        );
    }

    #[test]
    fn the_minimum_interval_defers() {
        let gap = Some(std::time::Duration::from_secs(60));
        let last = Some(t("2026-01-01T00:00:00Z"));
        assert_eq!(
            allowed_at(last, gap, t("2026-01-01T00:00:30Z")),
            Err(t("2026-01-01T00:01:00Z"))
        );
        assert_eq!(allowed_at(last, gap, t("2026-01-01T00:01:00Z")), Ok(()));
        assert_eq!(allowed_at(None, gap, t("2026-01-01T00:00:30Z")), Ok(()));
    }
}
