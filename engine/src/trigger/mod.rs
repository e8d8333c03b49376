//! Schedules and data triggers: `triggers:` in dvx.yaml says when `dvx serve` runs the
//! pipeline by itself (a cron schedule, or new commits on a remote's branch). Each firing has
//! a key saved in the store before its run starts and marked done after, so a server that is
//! restarted or killed never runs one firing twice and never loses one (`journal`); a firing's
//! run is an ordinary `dvx run` whose records name the trigger (`fire`). What is due when is
//! decided by pure functions (`plan`).

use std::time::Duration;

use serde::Serialize;

use crate::spec::Pos;

pub mod fire;
pub mod journal;
pub mod plan;

/// One entry of `triggers:`.
#[derive(Clone, Debug)]
pub struct Trigger {
    pub name: String,
    pub at: Pos,
    pub when: When,
    /// The stages to run (and what they need); empty: the whole pipeline.
    pub stages: Vec<String>,
    /// No two firings start closer together than this.
    pub min_interval: Option<Duration>,
    pub catch_up: CatchUp,
    /// Push the run's results to this remote after the run (`""`: the default remote).
    pub push: Option<String>,
}

#[derive(Clone, Debug)]
pub enum When {
    /// A cron schedule, seconds optional (`*/10 * * * * *`), in UTC.
    Cron {
        pattern: String,
        cron: Box<croner::Cron>,
    },
    /// New commits on a remote's branch, looked for every `poll` (refs only: cheap).
    Push {
        /// `None`: the default remote.
        remote: Option<String>,
        branch: String,
        poll: Duration,
    },
}

/// Which ticks of a schedule missed while the server was down still fire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Only the latest missed tick (the default): one run brings the results up to date.
    #[default]
    Latest,
    /// Every missed tick, oldest first.
    All,
}

/// Parse a duration as dvx.yaml writes it: `90`, `90s`, `10m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Parse a cron pattern: five fields, or six with seconds first.
pub fn parse_cron(pattern: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        for bad in ["", "m", "10x", "-1s", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn cron_with_and_without_seconds() {
        assert!(parse_cron("*/2 * * * * *").is_ok());
        assert!(parse_cron("0 2 * * *").is_ok());
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_cron("every day").is_err());
    }
}
