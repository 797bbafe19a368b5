//! A five-field cron schedule as a systemd `OnCalendar=` expression.
//!
//! Scheduled jobs are systemd timers (so they get the unit's
//! `EnvironmentFile=`, the journal and `systemctl list-timers`), while the
//! spec keeps the familiar cron syntax. Each field is expanded to the set of
//! values it matches and written back as `*`, `start/step` or a list, which
//! systemd.time(7) accepts in every position (weekdays as names, ranges as
//! `a..b`). One difference cron users must know: when both the day of month
//! and the day of week are restricted, cron runs on either, systemd only on
//! days matching both; `check` reports that combination (PG0241).

use std::collections::BTreeSet;

const NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// (name, first value, last value) of the five cron fields.
const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

/// The values one field matches; `None` for an unrestricted `*`.
fn expand(text: &str, name: &str, lo: u32, hi: u32) -> Result<Option<BTreeSet<u32>>, String> {
    if text == "*" {
        return Ok(None);
    }
    let number = |s: &str| -> Result<u32, String> {
        let v: u32 = s
            .parse()
            .map_err(|_| format!("{name} `{text}`: `{s}` is not a number"))?;
        if v < lo || v > hi {
            return Err(format!("{name} `{text}`: {v} is outside {lo}..{hi}"));
        }
        Ok(v)
    };
    let mut set = BTreeSet::new();
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("{name} `{text}`: step `{s}` is not a positive number")
                })?;
                (r, step)
            }
            None => (item, 1),
        };
        let (first, last) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(r)?, hi),
                None => (number(r)?, number(r)?),
            },
        };
        if first > last {
            return Err(format!(
                "{name} `{text}`: range {first}-{last} runs backwards"
            ));
        }
        set.extend((first..=last).step_by(step as usize));
    }
    Ok(Some(set))
}

/// `*`, `start/step` when the values step evenly to the end of the field, else a list.
fn numeric(set: &Option<BTreeSet<u32>>, hi: u32, width: usize) -> String {
    let Some(set) = set else {
        return "*".to_string();
    };
    let v: Vec<u32> = set.iter().copied().collect();
    if v.len() > 2 {
        let step = v[1] - v[0];
        if v.windows(2).all(|w| w[1] - w[0] == step) && v[v.len() - 1] + step > hi {
            return format!("{:0width$}/{step}", v[0]);
        }
    }
    v.iter()
        .map(|x| format!("{x:0width$}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The `OnCalendar=` expression of a cron schedule, or what is wrong with it.
pub(crate) fn on_calendar(cron: &str) -> Result<String, String> {
    let parts: Vec<&str> = cron.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(format!("`{cron}` has {} fields, not 5", parts.len()));
    }
    let mut sets = Vec::with_capacity(5);
    for (text, (name, lo, hi)) in parts.iter().zip(FIELDS) {
        sets.push(expand(text, name, lo, hi)?);
    }
    if sets[2].is_some() && sets[4].is_some() {
        return Err(format!(
            "`{cron}` restricts both the day of month and the day of week: cron runs on either, a systemd timer only on both"
        ));
    }
    let weekdays = sets[4].as_ref().map(|days| {
        let names: BTreeSet<usize> = days.iter().map(|d| (*d % 7) as usize).collect();
        let list: Vec<&str> = names.iter().map(|d| NAMES[*d]).collect();
        format!("{} ", list.join(","))
    });
    Ok(format!(
        "{}*-{}-{} {}:{}:00",
        weekdays.unwrap_or_default(),
        numeric(&sets[3], 12, 2),
        numeric(&sets[2], 31, 2),
        numeric(&sets[1], 23, 2),
        numeric(&sets[0], 59, 2),
    ))
}

#[cfg(test)]
mod tests {
    use super::on_calendar;

    #[test]
    fn defaults_and_edge_cases() {
        assert_eq!(on_calendar("0 1 * * 0").unwrap(), "Sun *-*-* 01:00:00");
        assert_eq!(
            on_calendar("0 1 * * 1-6").unwrap(),
            "Mon,Tue,Wed,Thu,Fri,Sat *-*-* 01:00:00"
        );
        assert_eq!(on_calendar("0 */4 * * *").unwrap(), "*-*-* 00/4:00:00");
        assert_eq!(on_calendar("*/15 * * * *").unwrap(), "*-*-* *:00/15:00");
        assert_eq!(on_calendar("30 2 1,15 * *").unwrap(), "*-*-01,15 02:30:00");
        assert_eq!(on_calendar("0 3 * * 7").unwrap(), "Sun *-*-* 03:00:00");
        assert!(on_calendar("61 1 * * *").is_err());
        assert!(on_calendar("0 1 1 * 1").is_err());
        assert!(on_calendar("0 5-1 * * *").is_err());
    }
}
