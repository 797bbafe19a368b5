//! How output looks: colour only on a terminal (and never with `NO_COLOR`),
//! quiet and verbose levels, and the progress bar of long builds.

use crate::cli::{ColorChoice, Global};

/// Output settings, decided once from the flags and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    pub colour: bool,
    pub quiet: bool,
    pub verbose: bool,
    /// Standard error is a terminal (a progress bar may be drawn there).
    pub stderr_terminal: bool,
}

impl Term {
    /// Plain text, normal verbosity, no terminal: what tests and pipes see.
    pub const PLAIN: Term = Term {
        colour: false,
        quiet: false,
        verbose: false,
        stderr_terminal: false,
    };

    /// `no_color` is the value of `NO_COLOR`: any non-empty value turns colour off
    /// (https://no-color.org), unless `--color always` asks for it.
    pub fn new(g: &Global, stderr_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> Term {
        let colour = match g.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stderr_terminal && no_color.is_none_or(|v| v.is_empty()),
        };
        Term {
            colour,
            quiet: g.quiet,
            verbose: g.verbose,
            stderr_terminal,
        }
    }

    /// Diagnostics text as `diag::render_human` wrote it, coloured when colour is on.
    pub fn diagnostics(&self, text: &str) -> String {
        if self.colour {
            paint_diagnostics(text)
        } else {
            text.to_string()
        }
    }

    /// `text` in bold green when colour is on (success lines).
    pub fn good(&self, text: &str) -> String {
        self.paint(GREEN, text)
    }

    /// `text` in bold yellow when colour is on (changed hosts).
    pub fn notice(&self, text: &str) -> String {
        self.paint(YELLOW, text)
    }

    fn paint(&self, style: &str, text: &str) -> String {
        if self.colour {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }
}

const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[1;33m";
const GREEN: &str = "\x1b[1;32m";
const BLUE: &str = "\x1b[1;34m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Colours rustc-style diagnostics line by line, as rustc does: the severity
/// and code in red or yellow, the message bold, the gutter blue, the carets
/// in the severity's colour.
fn paint_diagnostics(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut severity = RED;
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let header = [("error", RED), ("warning", YELLOW)]
            .into_iter()
            .find(|(word, _)| {
                body.strip_prefix(word)
                    .is_some_and(|rest| rest.starts_with('[') || rest.starts_with(':'))
            });
        if let Some((_, colour)) = header {
            severity = colour;
            let head_end = body.find(':').unwrap_or(body.len());
            let (head, rest) = body.split_at(head_end);
            out.push_str(&format!("{colour}{head}{RESET}{BOLD}{rest}{RESET}"));
        } else if let Some((gutter, rest)) = split_gutter(body) {
            out.push_str(&format!("{BLUE}{gutter}{RESET}"));
            let carets = rest.trim_start_matches(' ');
            if carets.starts_with('^') {
                let lead = &rest[..rest.len() - carets.len()];
                let n = carets.find(|c| c != '^').unwrap_or(carets.len());
                out.push_str(&format!(
                    "{lead}{severity}{}{RESET}{}",
                    &carets[..n],
                    &carets[n..]
                ));
            } else {
                out.push_str(rest);
            }
        } else if body.ends_with(" warnings") || body.ends_with(" warning") {
            out.push_str(&format!("{BOLD}{body}{RESET}"));
        } else {
            out.push_str(body);
        }
        out.push_str(newline);
    }
    out
}

/// Splits `  12 | text`, ` --> file`, `  = help` into the gutter and the rest.
fn split_gutter(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start_matches(|c: char| c == ' ' || c.is_ascii_digit());
    let at = line.len() - rest.len();
    // Gutter lines are always indented; message text never is.
    if at == 0 {
        return None;
    }
    for marker in ["|", "-->", "="] {
        if let Some(after) = rest.strip_prefix(marker)
            && (after.is_empty() || after.starts_with(' '))
        {
            let end = at + marker.len();
            return Some((&line[..end], &line[end..]));
        }
    }
    None
}

/// A progress bar on standard error for a build of many hosts on a terminal; hidden otherwise.
pub fn progress(term: &Term, hosts: usize) -> indicatif::ProgressBar {
    /// Below this a build takes well under a second: a bar would only flicker.
    const MANY_HOSTS: usize = 50;
    if term.quiet || !term.stderr_terminal || hosts < MANY_HOSTS {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(hosts as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} hosts")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix("rendering");
    bar
}

/// `s` when `n` is not 1.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
