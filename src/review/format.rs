//! A diff report as human text, as a pull-request comment (Markdown: a
//! summary table, the actions, then collapsible per-host diffs) or as JSON.

use std::fmt::Write;

use super::classify::Action;
use super::diff::{Detail, FileChange, HostReport, Report, Status};

/// One file's diff in plain lines, or `None` when only its name is shown.
fn body(f: &FileChange) -> Option<String> {
    let mut out = String::new();
    if let Some((o, n)) = &f.mode {
        let _ = writeln!(out, "mode {o} -> {n}");
    }
    match &f.detail {
        Detail::Text { diff } => out.push_str(diff),
        Detail::Packages { added, removed } => {
            for p in removed {
                let _ = writeln!(out, "-{p}");
            }
            for p in added {
                let _ = writeln!(out, "+{p}");
            }
        }
        Detail::Archive { entries } => {
            for e in entries {
                if let Some(o) = &e.old {
                    let _ = writeln!(out, "-{o}");
                }
                if let Some(n) = &e.new {
                    let _ = writeln!(out, "+{n}");
                }
                if let Some(see) = &e.see {
                    if e.status == "changed" {
                        let _ = writeln!(out, "  (content: see {see})");
                    }
                } else if let Some(d) = &e.diff {
                    out.push_str(d);
                }
            }
        }
        Detail::Binary {
            old_sha256,
            new_sha256,
        } => {
            let _ = writeln!(
                out,
                "binary: sha256 {} -> {}",
                old_sha256.as_deref().unwrap_or("(none)"),
                new_sha256.as_deref().unwrap_or("(none)")
            );
        }
        Detail::OverlayOnly | Detail::Derived | Detail::Listed => {}
    }
    (!out.is_empty()).then_some(out)
}

fn note(f: &FileChange) -> &'static str {
    match f.detail {
        Detail::Derived => " (follows from the artifacts above)",
        Detail::OverlayOnly => " (only its embedded overlay: see overlay.tar.gz)",
        _ => "",
    }
}

fn counts(report: &Report) -> String {
    let n = |s: Status| report.hosts.iter().filter(|h| h.status == s).count();
    let plural = |k: usize, w: &str| format!("{k} {w}{}", if k == 1 { "" } else { "s" });
    let clusters: std::collections::BTreeSet<&str> = report
        .hosts
        .iter()
        .map(|h| h.cluster.as_str())
        .chain(report.clusters.iter().map(|c| c.cluster.as_str()))
        .collect();
    format!(
        "{} changed, {} added, {} removed, in {}",
        plural(n(Status::Changed), "host"),
        n(Status::Added),
        n(Status::Removed),
        plural(clusters.len(), "cluster")
    )
}

fn indent(text: &str, pad: &str) -> String {
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

fn text_action(out: &mut String, a: &Action, pad: &str) {
    let _ = writeln!(out, "{pad}[{}] {}", a.kind.label(), a.summary);
    let _ = writeln!(out, "{pad}    why: {}", a.why);
    if let Some(c) = &a.command {
        out.push_str(&indent(c, &format!("{pad}    | ")));
    }
}

/// A host added or removed as a whole is one line; its files are in the JSON report.
fn whole_host(h: &HostReport) -> String {
    format!(
        "{} {} file{} under hosts/{}/",
        h.status.word(),
        h.files.len(),
        if h.files.len() == 1 { "" } else { "s" },
        h.host
    )
}

fn host_title(h: &HostReport) -> String {
    format!(
        "host {} (cluster {}, site {}): {}",
        h.host,
        h.cluster,
        h.site,
        h.status.word()
    )
}

/// Human text; `bodies` false gives the summary only (for `build --check`).
pub fn text(report: &Report, bodies: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "pgimg diff {} -> {}", report.old, report.new);
    if report.is_empty() {
        out.push_str("no differences\n");
        return out;
    }
    let _ = writeln!(out, "{}", counts(report));
    for c in &report.clusters {
        let _ = writeln!(out, "\ncluster {}", c.cluster);
        for s in &c.sites {
            let scope = s
                .scope
                .as_deref()
                .map(|x| format!(" (scope {x})"))
                .unwrap_or_default();
            let _ = writeln!(out, "  site {}{scope}", s.site);
            for a in &s.actions {
                text_action(&mut out, a, "    ");
            }
            if let Some(d) = &s.dcs
                && let Some(r) = &d.replace
            {
                let _ = writeln!(
                    out,
                    "    or replace the whole DCS configuration:\n    | {r}"
                );
            }
        }
        for f in &c.files {
            file_text(&mut out, f, bodies);
        }
    }
    for h in &report.hosts {
        let _ = writeln!(out, "\n{}", host_title(h));
        for a in &h.actions {
            text_action(&mut out, a, "  ");
        }
        if h.status == Status::Changed {
            for f in &h.files {
                file_text(&mut out, f, bodies);
            }
        } else {
            let _ = writeln!(out, "  {}", whole_host(h));
        }
    }
    if !report.other.is_empty() {
        out.push_str("\nfleet\n");
        for f in &report.other {
            file_text(&mut out, f, bodies);
        }
    }
    out
}

fn file_text(out: &mut String, f: &FileChange, bodies: bool) {
    let _ = writeln!(out, "  {} {}{}", f.status.word(), f.path, note(f));
    if bodies && let Some(b) = body(f) {
        out.push_str(&indent(&b, "    "));
    }
}

/// A fence longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

fn code(out: &mut String, lang: &str, text: &str, pad: &str) {
    let f = fence(text);
    let _ = writeln!(out, "{pad}{f}{lang}");
    out.push_str(&indent(text, pad));
    let _ = writeln!(out, "{pad}{f}");
}

fn md_action(out: &mut String, a: &Action) {
    let _ = writeln!(out, "- **{}** {}: {}", a.kind.label(), a.summary, a.why);
    if let Some(c) = &a.command {
        code(out, "sh", c, "  ");
    }
}

/// GitHub refuses comments over 65,536 characters; past this the
/// per-file diffs are left out (the summary and actions always fit).
const MARKDOWN_BUDGET: usize = 60_000;
/// Lines of one file's diff shown in a comment.
const MARKDOWN_FILE_LINES: usize = 300;

fn md_files(out: &mut String, files: &[FileChange], budget_hit: &mut bool) {
    for f in files {
        let _ = writeln!(out, "\n**{}** `{}`{}", f.status.word(), f.path, note(f));
        let Some(b) = body(f) else { continue };
        let lines: Vec<&str> = b.lines().collect();
        let mut shown: String = lines
            .iter()
            .take(MARKDOWN_FILE_LINES)
            .map(|l| format!("{l}\n"))
            .collect();
        if lines.len() > MARKDOWN_FILE_LINES {
            let _ = writeln!(
                shown,
                "… {} more lines: run `pgimg diff` locally",
                lines.len() - MARKDOWN_FILE_LINES
            );
        }
        if out.len() + shown.len() > MARKDOWN_BUDGET {
            *budget_hit = true;
            out.push_str(
                "\n(diff left out: the comment would be too long; run `pgimg diff` locally)\n",
            );
            continue;
        }
        out.push('\n');
        code(out, "diff", &shown, "");
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### pgimg diff\n\n`{}` → `{}`\n",
        report.old, report.new
    );
    if report.is_empty() {
        out.push_str("No differences.\n");
        return out;
    }
    let _ = writeln!(out, "{}\n", counts(report));
    let site_rows: Vec<String> = report
        .clusters
        .iter()
        .flat_map(|c| c.sites.iter().map(move |s| (c, s)))
        .map(|(c, s)| {
            let actions: Vec<String> = s
                .actions
                .iter()
                .map(|a| format!("**{}** {}", a.kind.label(), a.summary))
                .collect();
            format!(
                "| site {} | {} / {} | | | {} |\n",
                md_cell(&s.site),
                md_cell(&c.cluster),
                md_cell(&s.site),
                md_cell(&actions.join("; "))
            )
        })
        .collect();
    if !report.hosts.is_empty() || !site_rows.is_empty() {
        out.push_str(
            "| host | cluster / site | status | files | actions |\n|---|---|---|---:|---|\n",
        );
        for row in &site_rows {
            out.push_str(row);
        }
        for h in &report.hosts {
            let actions: Vec<String> = h
                .actions
                .iter()
                .map(|a| format!("**{}** {}", a.kind.label(), a.summary))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} / {} | {} | {} | {} |",
                md_cell(&h.host),
                md_cell(&h.cluster),
                md_cell(&h.site),
                h.status.word(),
                h.files.len(),
                md_cell(&actions.join("; "))
            );
        }
    }
    let mut budget_hit = false;
    for c in &report.clusters {
        let _ = writeln!(out, "\n#### Cluster `{}`", c.cluster);
        for s in &c.sites {
            let scope = s
                .scope
                .as_deref()
                .map(|x| format!(" (scope `{x}`)"))
                .unwrap_or_default();
            let _ = writeln!(out, "\n**Site `{}`**{scope}\n", s.site);
            for a in &s.actions {
                md_action(&mut out, a);
            }
            if let Some(d) = &s.dcs {
                if !d.parameters.is_empty() {
                    out.push_str("\n| parameter | old | new | context | applies on |\n|---|---|---|---|---|\n");
                    for p in &d.parameters {
                        let _ = writeln!(
                            out,
                            "| `{}` | {} | {} | {} | {} |",
                            p.name,
                            md_cell(p.old.as_deref().unwrap_or("(unset)")),
                            md_cell(p.new.as_deref().unwrap_or("(unset)")),
                            p.context.as_deref().unwrap_or("?"),
                            p.applies_on
                        );
                    }
                }
                if let Some(r) = &d.replace {
                    out.push_str("\nOr replace the whole DCS configuration:\n\n");
                    code(&mut out, "sh", r, "");
                }
            }
        }
        if !c.files.is_empty() {
            let _ = writeln!(
                out,
                "\n<details><summary>cluster files: {} changed</summary>",
                c.files.len()
            );
            md_files(&mut out, &c.files, &mut budget_hit);
            out.push_str("\n</details>\n");
        }
    }
    if !report.hosts.is_empty() {
        out.push_str("\n#### Hosts\n");
    }
    for h in &report.hosts {
        let _ = writeln!(
            out,
            "\n<details><summary><b>{}</b> ({} / {}): {}, {} file{}</summary>\n",
            h.host,
            h.cluster,
            h.site,
            h.status.word(),
            h.files.len(),
            if h.files.len() == 1 { "" } else { "s" }
        );
        for a in &h.actions {
            md_action(&mut out, a);
        }
        if h.status == Status::Changed {
            md_files(&mut out, &h.files, &mut budget_hit);
        } else {
            let _ = writeln!(out, "\n{}", whole_host(h));
        }
        out.push_str("\n</details>\n");
    }
    if !report.other.is_empty() {
        out.push_str("\n#### Fleet\n");
        md_files(&mut out, &report.other, &mut budget_hit);
    }
    if budget_hit {
        out.push_str("\nSome diffs were left out to fit a pull-request comment.\n");
    }
    out
}

pub fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}
