//! Source text and positions: the bridge between JSON pointers and the
//! line:column a user sees.

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
///
/// A 30,000-host spec has a quarter of a million nodes, so the table is
/// compact: every pointer's text in one string, and one sorted entry of
/// numbers per node (a map of owned pointers weighed five times as much).
/// [`SpanTable::insert`] appends; [`SpanTable::seal`] sorts once, and a
/// table is looked up only sealed.
#[derive(Debug, Clone, Default)]
pub struct SpanTable {
    text: String,
    entries: Vec<Entry>,
    sealed: bool,
}

/// One node: where its pointer is in `SpanTable::text`, its value's span
/// and its key's, if it has one.
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u32,
    len: u32,
    value: [u32; 3],
    key: [u32; 3],
    has_key: bool,
}

fn pack(s: Span) -> [u32; 3] {
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    [n(s.line), n(s.col), n(s.len)]
}

fn unpack(s: [u32; 3]) -> Span {
    Span {
        line: s[0] as usize,
        col: s[1] as usize,
        len: s[2] as usize,
    }
}

impl SpanTable {
    /// Records `span` for `pointer`; a later insert of the same pointer
    /// replaces it once sealed. A spec is far smaller than the 4 GiB the
    /// offsets can name (`load::spec` bounds it).
    pub fn insert(&mut self, pointer: String, span: NodeSpan) {
        let start = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        let len = u32::try_from(pointer.len()).unwrap_or(u32::MAX);
        self.text.push_str(&pointer);
        self.entries.push(Entry {
            start,
            len,
            value: pack(span.value),
            key: span.key.map_or([0; 3], pack),
            has_key: span.key.is_some(),
        });
        self.sealed = false;
    }

    /// Sorts the entries by pointer, the last insert of a pointer winning,
    /// and gives back what growing left over.
    pub fn seal(&mut self) {
        let text = &self.text;
        let at = |e: &Entry| &text[e.start as usize..(e.start + e.len) as usize];
        // Stable: among equal pointers, the last inserted stays last.
        self.entries.sort_by(|a, b| at(a).cmp(at(b)));
        let mut kept: Vec<Entry> = Vec::with_capacity(self.entries.len());
        for e in self.entries.drain(..) {
            match kept.last_mut() {
                Some(last) if at(last) == at(&e) => *last = e,
                _ => kept.push(e),
            }
        }
        kept.shrink_to_fit();
        self.entries = kept;
        self.text.shrink_to_fit();
        self.sealed = true;
    }

    fn get(&self, pointer: &str) -> Option<&Entry> {
        let at = |e: &Entry| &self.text[e.start as usize..(e.start + e.len) as usize];
        if self.sealed {
            self.entries
                .binary_search_by(|e| at(e).cmp(pointer))
                .ok()
                .map(|i| &self.entries[i])
        } else {
            // Only while the document is being read: the last insert wins.
            self.entries.iter().rev().find(|e| at(e) == pointer)
        }
    }

    /// The value's span at `pointer`, or that of its closest ancestor that exists in the document.
    pub fn value(&self, pointer: &str) -> Option<Span> {
        let mut p = pointer;
        loop {
            if let Some(n) = self.get(p) {
                return Some(unpack(n.value));
            }
            p = parent_pointer(p)?;
        }
    }

    /// The key's span at `pointer` (falling back to the value's).
    pub fn key(&self, pointer: &str) -> Option<Span> {
        match self.get(pointer) {
            Some(e) if e.has_key => Some(unpack(e.key)),
            _ => self.value(pointer),
        }
    }

    pub fn contains(&self, pointer: &str) -> bool {
        self.get(pointer).is_some()
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
    use super::{NodeSpan, SourceFile, Span, SpanTable};

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

    #[test]
    fn a_sealed_table_finds_each_pointer_its_last_span_and_the_closest_ancestor() {
        let span = |line| Span {
            line,
            col: 1,
            len: 1,
        };
        let mut t = SpanTable::default();
        // Document order is not pointer order: `/a/10` sorts before `/a/9`.
        for (i, p) in ["", "/a", "/a/9", "/a/10", "/a/9"].iter().enumerate() {
            t.insert(
                p.to_string(),
                NodeSpan {
                    value: span(i + 1),
                    key: (i == 1).then(|| span(100)),
                },
            );
        }
        let before: Vec<_> = ["/a/9", "/a/10", "/a/10/x", "/b"]
            .iter()
            .map(|p| t.value(p))
            .collect();
        t.seal();
        let after: Vec<_> = ["/a/9", "/a/10", "/a/10/x", "/b"]
            .iter()
            .map(|p| t.value(p))
            .collect();
        assert_eq!(before, after);
        assert_eq!(
            after,
            [Some(span(5)), Some(span(4)), Some(span(4)), Some(span(1))]
        );
        assert_eq!(t.key("/a"), Some(span(100)));
        assert_eq!(t.key("/a/10"), Some(span(4)));
        assert!(t.contains("") && t.contains("/a/10") && !t.contains("/a/1"));
    }
}
