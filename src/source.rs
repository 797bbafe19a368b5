//! Source text and positions: the bridge between JSON pointers and the
//! line:column a user sees.

use std::collections::BTreeMap;

/// A file as it was read, with the name shown in diagnostics.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name as the user gave it (never made absolute, so messages do not depend on the machine).
    pub name: String,
    pub text: String,
    /// Where each line starts in `text`, made on the first `line` call: a
    /// large spec's warnings each look a line up, and a scan from the top
    /// per lookup made printing them quadratic.
    line_starts: std::sync::OnceLock<Vec<usize>>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        SourceFile {
            name: name.into(),
            text: text.into(),
            line_starts: std::sync::OnceLock::new(),
        }
    }

    /// The text of a 1-based line, without its line ending.
    pub fn line(&self, line: usize) -> Option<&str> {
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        let start = *starts.get(line.checked_sub(1)?)?;
        let end = starts.get(line).map_or(self.text.len(), |next| next - 1);
        let l = self.text.get(start..end)?;
        Some(l.strip_suffix('\r').unwrap_or(l))
    }
}

/// A region of one line: 1-based line and column (in characters) and a width in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub line: usize,
    pub col: usize,
    pub len: usize,
}

/// Where a node of the document sits: its value and, for a mapping entry, its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpan {
    pub value: Span,
    pub key: Option<Span>,
}

/// JSON pointer → position, for every node of the document.
#[derive(Debug, Clone, Default)]
pub struct SpanTable {
    nodes: BTreeMap<String, NodeSpan>,
}

impl SpanTable {
    pub fn insert(&mut self, pointer: String, span: NodeSpan) {
        self.nodes.insert(pointer, span);
    }

    /// The value's span at `pointer`, or that of its closest ancestor that exists in the document.
    pub fn value(&self, pointer: &str) -> Option<Span> {
        let mut p = pointer;
        loop {
            if let Some(n) = self.nodes.get(p) {
                return Some(n.value);
            }
            p = parent_pointer(p)?;
        }
    }

    /// The key's span at `pointer` (falling back to the value's).
    pub fn key(&self, pointer: &str) -> Option<Span> {
        match self.nodes.get(pointer) {
            Some(NodeSpan { key: Some(k), .. }) => Some(*k),
            _ => self.value(pointer),
        }
    }

    pub fn contains(&self, pointer: &str) -> bool {
        self.nodes.contains_key(pointer)
    }
}

fn parent_pointer(p: &str) -> Option<&str> {
    if p.is_empty() {
        return None;
    }
    p.rfind('/').map(|i| &p[..i])
}

/// Escapes one reference token of a JSON pointer (RFC 6901).
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Joins a pointer and a token.
pub fn child(pointer: &str, token: impl std::fmt::Display) -> String {
    format!("{pointer}/{}", escape_token(&token.to_string()))
}

impl SpanTable {
    /// Where a diagnostic about the node at `pointer` points: the node's value,
    /// except for a block collection, whose value starts on the lines below its
    /// key: that one is shown at its key (`hosts:`, not the first host). A node
    /// the document does not have (a built-in default) is shown at its closest
    /// ancestor that it has.
    pub fn edit_span(&self, pointer: &str) -> Option<Span> {
        let mut p = pointer;
        while !self.contains(p) {
            p = &p[..p.rfind('/')?];
        }
        let value = self.value(p)?;
        match self.key(p) {
            Some(k) if k.line < value.line => Some(k),
            _ => Some(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SourceFile;

    #[test]
    fn line_is_the_text_between_line_breaks() {
        let s = SourceFile::new("t", "a: 1\r\nb: 2\n\nlast");
        let lines: Vec<Option<&str>> = (0..=5).map(|n| s.line(n)).collect();
        assert_eq!(
            lines,
            [
                None,
                Some("a: 1"),
                Some("b: 2"),
                Some(""),
                Some("last"),
                None
            ]
        );
        let trailing = SourceFile::new("t", "x\n");
        assert_eq!((trailing.line(2), trailing.line(3)), (Some(""), None));
    }
}
