//! Rules about single values that their pattern cannot fully check.

use std::net::IpAddr;

use super::Ctx;
use crate::diag::{Code, Diagnostic};

/// The prefix length of a host's network fits its address family (at most 32
/// for IPv4): the kickstart turns it into a netmask and dracut's `ip=`.
pub(super) fn network_prefix(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // One diagnostic per setting, at the first host it does not fit.
    let mut reported = std::collections::BTreeSet::new();
    for (_, _, h) in ctx.fleet.hosts() {
        let Some(prefix) = h.config.network.prefix else {
            continue;
        };
        let Ok(ip) = h.address.parse::<IpAddr>() else {
            continue;
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let pointer = h.origin("network/prefix");
        if prefix > max && reported.insert(pointer.clone()) {
            out.push(
                Diagnostic::error(
                    Code::PrefixFamily,
                    &pointer,
                    format!(
                        "prefix length {prefix} does not fit the {} address `{}` of host `{}`",
                        if ip.is_ipv4() { "IPv4" } else { "IPv6" },
                        h.address,
                        h.name
                    ),
                )
                .expected(format!("a prefix length from 1 to {max}")),
            );
        }
    }
    out
}

/// The fields of a cron schedule and their ranges, as crontab(5) gives them
/// (cronie: minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of
/// week 0-7 with 0 and 7 both Sunday). cronie drops a line with a value out
/// of range, so a bad schedule would mean no backups and no error.
const CRON_FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

/// What is wrong with one field of a cron schedule, if anything.
fn cron_field_problem(field: &str, min: u32, max: u32) -> Option<String> {
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(s) if (1..=max.max(1)).contains(&s) => {}
                _ => return Some(format!("step `{step}` is not from 1 to {max}")),
            }
            if range != "*" && !range.contains('-') {
                return Some(format!("`{item}`: a step follows `*` or a range `a-b`"));
            }
        }
        if range == "*" {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) else {
            return Some(format!("`{item}` is not a number, a range `a-b` or `*`"));
        };
        if a < min || b > max {
            return Some(format!("`{range}` is outside {min}-{max}"));
        }
        if a > b {
            return Some(format!("the range `{range}` runs backwards"));
        }
    }
    None
}

/// The first field of a cron schedule out of its range, if any.
pub(super) fn cron_problem(schedule: &str) -> Option<String> {
    let fields: Vec<&str> = schedule.split(' ').collect();
    CRON_FIELDS
        .iter()
        .zip(&fields)
        .find_map(|((name, min, max), f)| {
            cron_field_problem(f, *min, *max).map(|p| format!("{name}: {p}"))
        })
}

/// Every field of every backup schedule is within its range.
pub(super) fn cron_schedules(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // A fleet's hosts share a few schedules: each is judged once.
    let mut judged: std::collections::HashMap<&str, Option<String>> = Default::default();
    for (_, _, h) in ctx.fleet.hosts() {
        let b = &h.config.pgbackrest;
        for (kind, schedule) in [("full", &b.full), ("diff", &b.diff), ("incr", &b.incr)] {
            let problem = judged
                .entry(schedule)
                .or_insert_with(|| cron_problem(schedule));
            if let Some(problem) = problem {
                out.push(
                    Diagnostic::error(
                        Code::CronRange,
                        &h.origin(&format!("pgbackrest/schedule/{kind}")),
                        format!("backup schedule `{schedule}`: {problem}"),
                    )
                    .expected(
                        "minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of week 0-7",
                    )
                    .help(
                        "cron drops a line with a value out of range: the backup would never run",
                    ),
                );
            }
        }
    }
    out
}
