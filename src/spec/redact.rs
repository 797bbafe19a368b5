//! The spec text as diagnostics may show it: every plain value written
//! where a secret reference belongs is replaced by `*`.
//!
//! A diagnostic shows its whole source line, and the line can hold a secret
//! that another diagnostic, a key, a tag or a syntax error points at; so the
//! text is masked once, before any diagnostic is rendered, rather than per
//! diagnostic. It is read with yaml-rust2's scanner, which tokenizes up to a
//! syntax error, so even a spec that does not parse is masked up to there,
//! and from there on every line that looks like it names a secret is masked
//! after its `:`.

use yaml_rust2::scanner::{Scanner, TokenType};

use crate::source::SourceFile;

/// True when a value at this path of mapping keys (`None` for a sequence
/// item) may be a secret: it is in a secret slot (a child of `secrets`, or a
/// repository's `key`/`key_secret`) and is not the `env`/`file` of a reference.
fn is_secret_path(path: &[Option<&str>]) -> bool {
    for i in 0..path.len() {
        let slot = matches!(path[i], Some("key" | "key_secret"))
            || (i > 0 && path[i - 1] == Some("secrets"));
        if slot {
            let rest = &path[i + 1..];
            return !(rest.len() == 1 && matches!(rest[0], Some("env" | "file")));
        }
    }
    false
}

/// True for a line that, by its words alone, may carry a secret value.
fn looks_secret(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    ["pass", "key", "secret", "token", "cert"]
        .iter()
        .any(|w| lower.contains(w))
}

/// Replaces every non-blank character of `chars[from..to]` by `*`.
fn mask(chars: &mut [char], from: usize, to: usize) {
    for c in chars.iter_mut().take(to).skip(from) {
        if !c.is_whitespace() {
            *c = '*';
        }
    }
}

/// The source with every possible secret value masked (same lines, same columns).
pub fn redacted(source: &SourceFile) -> SourceFile {
    let mut scanner = Scanner::new(source.text.chars());
    // Streamed with one token of lookahead: a fleet's spec has hundreds of
    // thousands of tokens, which collected would outweigh the whole model.
    let mut tokens = scanner.by_ref().peekable();
    // (key of the collection, whether it is a sequence) for each open collection.
    let mut stack: Vec<(Option<String>, bool)> = Vec::new();
    let mut key: Option<String> = None;
    let mut reading_key = false;
    let mut value_start: Option<usize> = None;
    let mut last_value_at: Option<usize> = None;
    // The values to mask, by character index: a spec rarely has any, and
    // then its text is shown as it is, without a copy of it as characters.
    let mut masks: Vec<(usize, usize)> = Vec::new();
    let path_with = |stack: &[(Option<String>, bool)], key: &Option<String>| -> bool {
        // Asked of every scalar: the path is looked at in place, not built.
        if stack.len() < 8 {
            let mut path: [Option<&str>; 9] = [None; 9];
            for (slot, (k, _)) in path.iter_mut().zip(stack) {
                *slot = k.as_deref();
            }
            path[stack.len()] = key.as_deref();
            return is_secret_path(&path[..=stack.len()]);
        }
        let mut path: Vec<Option<&str>> = stack.iter().map(|(k, _)| k.as_deref()).collect();
        path.push(key.as_deref());
        is_secret_path(&path)
    };
    while let Some(tok) = tokens.next() {
        let at = tok.0.index();
        let next = tokens.peek().map_or(usize::MAX, |t| t.0.index());
        match &tok.1 {
            TokenType::Key => {
                reading_key = true;
                key = None;
                value_start = None;
            }
            TokenType::Value => {
                reading_key = false;
                last_value_at = Some(at);
            }
            TokenType::BlockEntry | TokenType::FlowEntry => {
                if stack.last().is_some_and(|(_, seq)| *seq) {
                    key = None;
                }
                value_start = None;
            }
            TokenType::BlockSequenceStart
            | TokenType::FlowSequenceStart
            | TokenType::BlockMappingStart
            | TokenType::FlowMappingStart => {
                let seq = matches!(
                    tok.1,
                    TokenType::BlockSequenceStart | TokenType::FlowSequenceStart
                );
                // A sequence keeps its key, so that its items are judged by it.
                let k = if seq { key.clone() } else { key.take() };
                stack.push((k, seq));
                reading_key = false;
                value_start = None;
            }
            TokenType::BlockEnd | TokenType::FlowSequenceEnd | TokenType::FlowMappingEnd => {
                stack.pop();
                key = None;
                value_start = None;
            }
            TokenType::Anchor(_) | TokenType::Tag(..) if !reading_key => {
                value_start.get_or_insert(at);
            }
            TokenType::Alias(_) | TokenType::Scalar(..) if !reading_key => {
                if path_with(&stack, &key) {
                    masks.push((value_start.unwrap_or(at), next));
                }
                value_start = None;
            }
            TokenType::Scalar(_, text) => {
                key = Some(text.clone());
                reading_key = false;
            }
            _ => {}
        }
    }
    drop(tokens);
    let error = scanner.get_error();
    if masks.is_empty() && error.is_none() {
        return SourceFile::new(source.name.clone(), source.text.clone());
    }
    let mut chars: Vec<char> = source.text.chars().collect();
    for (from, to) in masks {
        mask(&mut chars, from, to);
    }
    if let Some(e) = error {
        // Past a syntax error nothing is known: mask the rest of the line in
        // a secret context, and every later line that names a secret.
        let from = value_start
            .or(last_value_at)
            .unwrap_or(e.marker().index())
            .min(chars.len());
        let in_secret =
            path_with(&stack, &key) || stack.iter().any(|(k, _)| k.as_deref() == Some("secrets"));
        let line_start = chars[..from]
            .iter()
            .rposition(|c| *c == '\n')
            .map_or(0, |p| p + 1);
        let mut start = line_start;
        while start < chars.len() {
            let end = chars[start..]
                .iter()
                .position(|c| *c == '\n')
                .map_or(chars.len(), |p| start + p);
            let line: String = chars[start..end].iter().collect();
            if in_secret || looks_secret(&line) {
                let colon = line.find(':').map(|b| line[..b].chars().count() + 1);
                let value_at = start + colon.unwrap_or(0);
                let rest: String = chars[value_at..end].iter().collect();
                if !rest.trim_start().starts_with('{') || in_secret {
                    mask(&mut chars, value_at, end);
                }
            }
            start = end + 1;
        }
    }
    SourceFile::new(source.name.clone(), chars.into_iter().collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        redacted(&SourceFile::new("spec.yml", text.to_string())).text
    }

    #[test]
    fn a_spec_without_plain_secrets_is_shown_as_it_is() {
        let text =
            "secrets:\n  superuser_password: { env: PG_SUPER }\nclusters: [ { name: main } ]\n";
        assert_eq!(shown(text), text);
    }

    #[test]
    fn a_plain_secret_is_masked_at_any_depth() {
        for depth in [0, 3, 7, 8, 12] {
            let mut text = String::new();
            for d in 0..depth {
                text.push_str(&format!("{}k{d}:\n", "  ".repeat(d)));
            }
            let indent = "  ".repeat(depth);
            text.push_str(&format!(
                "{indent}secrets:\n{indent}  superuser_password: hunter2\n{indent}  other: {{ env: X }}\n"
            ));
            let masked = shown(&text);
            assert!(!masked.contains("hunter2"), "depth {depth}:\n{masked}");
            assert!(
                masked.contains("superuser_password: *******"),
                "depth {depth}:\n{masked}"
            );
            assert_eq!(masked.lines().count(), text.lines().count());
            assert!(masked.contains("env: X"), "depth {depth}:\n{masked}");
        }
    }
}
