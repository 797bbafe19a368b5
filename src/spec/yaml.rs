//! The span-keeping YAML reader.
//!
//! serde_yaml gives no per-node positions, so the spec is read from
//! yaml-rust2's event stream into a `serde_json::Value` (what the JSON schema
//! validates and what serde deserializes) plus a table from JSON pointer to
//! line:column. Scalars are resolved with the YAML 1.2 core schema, which is
//! what users mean; plain words that YAML 1.1 readers (PyYAML, hence Patroni
//! and cloud-init) would turn into booleans stay strings and are reported, so
//! nobody is surprised when the same word reaches a YAML 1.1 reader.

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diag::{Code, Diagnostic};
use crate::source::{NodeSpan, SourceFile, Span, SpanTable, child};

/// A parsed document: its JSON view, where each node came from, and the
/// plain scalars that a YAML 1.1 reader would read as booleans.
pub struct Document {
    pub value: Value,
    pub spans: SpanTable,
    pub yaml11_booleans: Vec<(String, String)>,
}

/// Words that YAML 1.1 reads as booleans but YAML 1.2 reads as strings.
const YAML11_BOOLEANS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

enum Frame {
    Seq {
        pointer: String,
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        pointer: String,
        map: Map<String, Value>,
        pending_key: Option<(String, Span)>,
        anchor: usize,
        /// Set for a block mapping until its first key: yaml-rust2 marks a block
        /// mapping at the `:` of its first key, so the span is fixed there.
        block_key: Option<Option<Span>>,
    },
}

struct Builder<'a> {
    source: &'a SourceFile,
    /// Byte offset of the start of each line, for turning a marker into a byte offset.
    line_starts: Vec<usize>,
    stack: Vec<Frame>,
    root: Option<Value>,
    documents: usize,
    /// Anchored values with their size in nodes, by anchor id: a map, so that
    /// each alias costs one look-up however many anchors the document has.
    anchors: std::collections::HashMap<usize, (Value, usize)>,
    /// Nodes copied into anchors so far, bounded by [`MAX_ANCHOR_NODES`]:
    /// nested anchors copy their subtrees once per level.
    anchor_nodes: usize,
    /// Nodes produced by aliases so far, bounded by [`MAX_ALIAS_NODES`].
    alias_nodes: usize,
    /// Depth of the collection being skipped below [`MAX_DEPTH`], 0 when none.
    skipped: usize,
    spans: SpanTable,
    yaml11: Vec<(String, String)>,
    errors: Vec<Diagnostic>,
}

impl Builder<'_> {
    fn span_at(&self, mark: Marker, len: usize) -> Span {
        Span {
            line: mark.line(),
            col: mark.col() + 1,
            len: len.max(1),
        }
    }

    /// The text from a marker to the end of its line. Markers count lines and
    /// characters (their `index` is not a byte offset once a line has non-ASCII
    /// text), so the byte offset is derived from the line and column.
    fn rest_of_line(&self, mark: Marker) -> &str {
        let text = self.source.text.as_str();
        let start = mark
            .line()
            .checked_sub(1)
            .and_then(|l| self.line_starts.get(l))
            .copied()
            .unwrap_or(text.len());
        let line = text[start..].split('\n').next().unwrap_or_default();
        match line.char_indices().nth(mark.col()) {
            Some((i, _)) => &line[i..],
            None => "",
        }
    }

    /// Places a block mapping's span at its first key, once that key is read.
    fn fix_block_mapping_span(&mut self, key: Span) {
        if let Some(Frame::Map {
            pointer, block_key, ..
        }) = self.stack.last_mut()
            && let Some(parent_key) = block_key.take()
        {
            let value = Span { len: 1, ..key };
            self.spans.insert(
                pointer.clone(),
                NodeSpan {
                    value,
                    key: parent_key,
                },
            );
        }
    }

    fn error(&mut self, pointer: &str, span: Span, code: Code, message: String, expected: &str) {
        // One more than reported, so that the caller knows some were left out.
        if self.errors.len() > MAX_DIAGNOSTICS {
            return;
        }
        self.errors.push(
            Diagnostic::error(code, pointer, message)
                .expected(expected)
                .with_span(self.source.name.clone(), span),
        );
    }

    /// The pointer of the node about to be placed, and its key span if in a mapping.
    fn next_pointer(&self) -> (String, Option<Span>) {
        match self.stack.last() {
            None => (String::new(), None),
            Some(Frame::Seq { pointer, items, .. }) => (child(pointer, items.len()), None),
            Some(Frame::Map {
                pointer,
                pending_key,
                ..
            }) => match pending_key {
                Some((k, span)) => (child(pointer, k), Some(*span)),
                None => (pointer.clone(), None),
            },
        }
    }

    fn in_key_position(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        )
    }

    fn place(&mut self, value: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, pending_key, ..
            }) => {
                if let Some((k, _)) = pending_key.take() {
                    map.insert(k, value);
                }
            }
        }
    }

    fn remember_anchor(&mut self, anchor: usize, value: &Value, mark: Marker) {
        if anchor == 0 || self.anchor_nodes > MAX_ANCHOR_NODES {
            return;
        }
        let size = node_count(value);
        self.anchor_nodes = self.anchor_nodes.saturating_add(size);
        if self.anchor_nodes > MAX_ANCHOR_NODES {
            let (pointer, _) = self.next_pointer();
            let span = self.span_at(mark, 1);
            self.error(
                &pointer,
                span,
                Code::YamlUnsupported,
                format!("anchors hold more than {MAX_ANCHOR_NODES} nodes"),
                "anchors around spec-sized values, not nested many levels deep",
            );
            return;
        }
        self.anchors.insert(anchor, (value.clone(), size));
    }

    fn scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<Tag>,
        mark: Marker,
    ) {
        let len = self.scalar_width(&text, style, mark);
        let span = self.span_at(mark, len);
        if self.in_key_position() {
            self.fix_block_mapping_span(span);
            let (pointer, _) = self.next_pointer();
            if style == TScalarStyle::Plain && text.is_empty() {
                self.error(
                    &pointer,
                    span,
                    Code::YamlUnsupported,
                    "empty mapping key".into(),
                    "a key name before the `:`",
                );
            }
            let duplicate = match self.stack.last() {
                Some(Frame::Map { map, .. }) => map.contains_key(&text),
                _ => false,
            };
            if duplicate {
                let p = child(&pointer, &text);
                self.error(
                    &p,
                    span,
                    Code::DuplicateKey,
                    format!("duplicate key `{text}`"),
                    "each key at most once in a mapping; remove one of the two",
                );
            }
            if let Some(Frame::Map { pending_key, .. }) = self.stack.last_mut() {
                *pending_key = Some((text, span));
            }
            return;
        }
        let (pointer, key) = self.next_pointer();
        let value = match tag {
            Some(t) if t.handle == "!!" && t.suffix == "str" => Value::String(text),
            Some(t) if t.handle == "tag:yaml.org,2002:" && t.suffix == "str" => Value::String(text),
            Some(t) => {
                // Point at the tag as written (`!!int`), which precedes the value on its line.
                let written = match t.handle.as_str() {
                    "tag:yaml.org,2002:" => format!("!!{}", t.suffix),
                    h => format!("{h}{}", t.suffix),
                };
                let line = self.source.line(span.line).unwrap_or_default();
                let before: String = line.chars().take(span.col.saturating_sub(1)).collect();
                let tag_span = before
                    .rfind(written.as_str())
                    .map(|i| Span {
                        line: span.line,
                        col: before[..i].chars().count() + 1,
                        len: written.chars().count(),
                    })
                    .unwrap_or(span);
                self.error(
                    &pointer,
                    tag_span,
                    Code::YamlUnsupported,
                    format!("unsupported YAML tag `{written}`"),
                    "a value without a tag (only `!!str` is accepted)",
                );
                Value::Null
            }
            None if style == TScalarStyle::Plain => {
                if YAML11_BOOLEANS.contains(&text.as_str()) {
                    self.yaml11.push((pointer.clone(), text.clone()));
                }
                resolve_plain(text)
            }
            None => Value::String(text),
        };
        self.spans.insert(pointer, NodeSpan { value: span, key });
        self.remember_anchor(anchor, &value, mark);
        self.place(value);
    }

    /// Width of a scalar as written, for the caret line.
    fn scalar_width(&self, text: &str, style: TScalarStyle, mark: Marker) -> usize {
        match style {
            TScalarStyle::Plain => text.chars().count(),
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                let quote = if style == TScalarStyle::SingleQuoted {
                    '\''
                } else {
                    '"'
                };
                let rest = self.rest_of_line(mark);
                let mut chars = rest.chars().enumerate().skip(1);
                let mut end = rest.chars().count();
                while let Some((i, c)) = chars.next() {
                    if c == '\\' && quote == '"' {
                        chars.next();
                    } else if c == quote {
                        if quote == '\'' && rest.chars().nth(i + 1) == Some('\'') {
                            chars.next();
                            continue;
                        }
                        end = i + 1;
                        break;
                    }
                }
                end
            }
            TScalarStyle::Literal | TScalarStyle::Folded => 1,
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        // Below the nesting limit, only the collections' ends are counted.
        if self.skipped > 0 {
            match ev {
                Event::SequenceStart(..) | Event::MappingStart(..) => self.skipped += 1,
                Event::SequenceEnd | Event::MappingEnd => self.skipped -= 1,
                _ => {}
            }
            return;
        }
        if matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..))
            && self.stack.len() >= MAX_DEPTH
            && !self.in_key_position()
        {
            self.skipped = 1;
            let (pointer, _) = self.next_pointer();
            let span = self.span_at(mark, 1);
            self.error(
                &pointer,
                span,
                Code::YamlUnsupported,
                format!("collections nested more than {MAX_DEPTH} deep"),
                "a spec nested as deep as the spec language goes (a few levels)",
            );
            self.place(Value::Null);
            return;
        }
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    let span = self.span_at(mark, 3);
                    self.error(
                        "",
                        span,
                        Code::YamlUnsupported,
                        "more than one YAML document".into(),
                        "a single document: one spec per file",
                    );
                }
            }
            Event::Scalar(text, style, anchor, tag) => self.scalar(text, style, anchor, tag, mark),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let span = self.span_at(mark, 1);
                if self.in_key_position() {
                    self.fix_block_mapping_span(span);
                    let (pointer, _) = self.next_pointer();
                    self.error(
                        &pointer,
                        span,
                        Code::YamlUnsupported,
                        "complex mapping keys are not supported".into(),
                        "a plain key name",
                    );
                    if let Some(Frame::Map { pending_key, .. }) = self.stack.last_mut() {
                        *pending_key = Some(("?".into(), span));
                    }
                }
                let (pointer, key) = self.next_pointer();
                self.spans
                    .insert(pointer.clone(), NodeSpan { value: span, key });
                let frame = if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq {
                        pointer,
                        items: Vec::new(),
                        anchor,
                    }
                } else {
                    let flow = self.rest_of_line(mark).starts_with('{');
                    Frame::Map {
                        pointer,
                        map: Map::new(),
                        pending_key: None,
                        anchor,
                        block_key: (!flow).then_some(key),
                    }
                };
                self.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, anchor, .. }) => (Value::Array(items), anchor),
                    Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                    None => return,
                };
                self.remember_anchor(anchor, &value, mark);
                self.place(value);
            }
            Event::Alias(id) => {
                let span = self.span_at(mark, 1);
                let size = self.anchors.get(&id).map_or(0, |(_, n)| *n);
                let was_over = self.alias_nodes > MAX_ALIAS_NODES;
                self.alias_nodes = self.alias_nodes.saturating_add(size);
                let value = if self.alias_nodes > MAX_ALIAS_NODES {
                    if !was_over {
                        let (pointer, _) = self.next_pointer();
                        self.error(
                            &pointer,
                            span,
                            Code::YamlUnsupported,
                            format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                            "aliases that expand to a spec-sized document",
                        );
                    }
                    Value::Null
                } else {
                    self.anchors
                        .get(&id)
                        .map(|(v, _)| v.clone())
                        .unwrap_or(Value::Null)
                };
                if self.in_key_position() {
                    self.fix_block_mapping_span(span);
                    let (pointer, _) = self.next_pointer();
                    self.error(
                        &pointer,
                        span,
                        Code::YamlUnsupported,
                        "aliases as mapping keys are not supported".into(),
                        "a plain key name",
                    );
                    if let Some(Frame::Map { pending_key, .. }) = self.stack.last_mut() {
                        *pending_key = Some(("*".into(), span));
                    }
                    return;
                }
                let (pointer, key) = self.next_pointer();
                self.spans.insert(pointer, NodeSpan { value: span, key });
                self.place(value);
            }
            _ => {}
        }
    }
}

/// How many nodes aliases may add to a document: far more than any spec
/// needs, far less than an alias bomb (`a: &a [x, x]`, `b: &b [*a, *a]`, …).
const MAX_ALIAS_NODES: usize = 100_000;

/// How many nodes anchored values may hold in all, counting a node once per
/// anchor around it: ten times the largest spec, far less than memory.
const MAX_ANCHOR_NODES: usize = 1_000_000;

/// How many problems one parse reports: every one beyond costs time and
/// output and tells the user nothing the first ones did not.
pub const MAX_DIAGNOSTICS: usize = 200;

/// How deep collections may nest: the spec language needs about ten levels;
/// much deeper values would exhaust the stack of the recursive stages after
/// this one.
const MAX_DEPTH: usize = 64;

/// The number of nodes of a value.
fn node_count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(node_count).sum(),
        Value::Object(m) => m.values().map(node_count).sum(),
        _ => 0,
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let t = text.as_str();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = t.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = digits.parse::<u64>()
            && !t.starts_with('-')
        {
            return Value::Number(u.into());
        }
    }
    if let Some(oct) = t.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::Number(i.into());
    }
    if let Some(hex) = t.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Number(i.into());
    }
    if is_core_float(t)
        && let Ok(f) = t.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text)
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` without a regex engine.
fn is_core_float(t: &str) -> bool {
    let b = t.strip_prefix(['-', '+']).unwrap_or(t).as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

/// Where the parser's complaint about a tab really is: the first tab in a
/// line's indentation at or after the line the parser stopped on (it often
/// stops at the end of the line before), else anywhere in the file.
fn indentation_tab(text: &str, error_line: usize) -> Option<Span> {
    let tabs: Vec<Span> = text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
            line[..indent].find('\t').map(|col| Span {
                line: i + 1,
                col: col + 1,
                len: 1,
            })
        })
        .collect();
    tabs.iter()
        .find(|s| s.line >= error_line)
        .or(tabs.first())
        .copied()
}

/// Reads a YAML document; syntax errors come back as diagnostics.
pub fn parse(source: &SourceFile) -> Result<Document, Vec<Diagnostic>> {
    let mut builder = Builder {
        source,
        line_starts: std::iter::once(0)
            .chain(source.text.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        stack: Vec::new(),
        root: None,
        documents: 0,
        anchors: std::collections::HashMap::new(),
        anchor_nodes: 0,
        alias_nodes: 0,
        skipped: 0,
        spans: SpanTable::default(),
        yaml11: Vec::new(),
        errors: Vec::new(),
    };
    let mut parser = Parser::new_from_str(&source.text);
    // The events are pulled one by one rather than through `Parser::load`,
    // which recurses once per nesting level and so overflows the stack on
    // `- - - - …` thousands deep; the builder keeps its own stack.
    let loaded = loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => break Ok(()),
            Ok((ev, mark)) => builder.on_event(ev, mark),
            Err(e) => break Err(e),
        }
    };
    if let Err(e) = loaded {
        let m = e.marker();
        if e.info().contains("tab")
            && let Some(tab) = indentation_tab(&source.text, m.line())
        {
            return Err(vec![
                Diagnostic::error(Code::YamlSyntax, "", "invalid YAML: a tab in the indentation")
                    .expected("spaces: YAML forbids tabs for indentation")
                    .help("replace the tab with spaces; an editor's \"indent with spaces\" setting avoids it")
                    .with_span(source.name.clone(), tab),
            ]);
        }
        let span = Span {
            line: m.line(),
            col: m.col() + 1,
            len: 1,
        };
        return Err(vec![
            Diagnostic::error(Code::YamlSyntax, "", format!("invalid YAML: {}", e.info()))
                .expected("well-formed YAML")
                .help("the parser stops where it notices the problem; the cause can be just before it, such as an unclosed bracket or quote or a wrong indentation")
                .with_span(source.name.clone(), span),
        ]);
    }
    if !builder.errors.is_empty() {
        return Err(builder.errors);
    }
    if builder.root.is_none() {
        // An empty file (or one of comments only) still gets a position.
        let span = Span {
            line: 1,
            col: 1,
            len: 1,
        };
        builder.spans.insert(
            String::new(),
            NodeSpan {
                value: span,
                key: None,
            },
        );
    }
    builder.spans.seal();
    Ok(Document {
        value: builder.root.unwrap_or(Value::Null),
        spans: builder.spans,
        yaml11_booleans: builder.yaml11,
    })
}
