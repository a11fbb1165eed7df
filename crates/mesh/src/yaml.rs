//! A bounded YAML loader that keeps the position of every node. Descriptors are untrusted input,
//! so it refuses what a descriptor never needs and an attacker could abuse: anchors and aliases
//! (exponential expansion), tags, several documents, duplicate keys, non-scalar keys, more than
//! [`MAX_BYTES`] bytes, [`MAX_DEPTH`] levels or [`MAX_NODES`] nodes.

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError};

use crate::error::{Error, Location};

/// The largest descriptor accepted, in bytes.
pub const MAX_BYTES: usize = 1 << 20;
/// The deepest nesting of sequences and mappings accepted.
pub const MAX_DEPTH: usize = 32;
/// The most nodes (scalars, sequences and mappings) accepted in one descriptor.
pub const MAX_NODES: usize = 100_000;

/// A 1-based position in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Pos {
    fn of(marker: &Marker) -> Self {
        Self {
            line: marker.line().max(1),
            column: marker.col() + 1,
        }
    }

    pub(crate) fn locate(self, file: &str) -> Location {
        Location {
            file: file.to_owned(),
            line: self.line,
            column: self.column,
        }
    }
}

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) at: Pos,
    pub(crate) value: Value,
}

/// The three kinds of YAML node; scalars keep whether they were quoted, since a quoted `30` is a
/// string and a plain one a number.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys are scalars, in document order, without duplicates.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The key's text when this node is a mapping key.
    pub(crate) fn key_text(&self) -> &str {
        match &self.value {
            Value::Scalar { text, .. } => text,
            Value::Seq(_) | Value::Map(_) => "",
        }
    }

    /// The value under `key` when this node is a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.key_text() == key)
                .map(|(_, v)| v),
            Value::Scalar { .. } | Value::Seq(_) => None,
        }
    }

    /// The item at `index` when this node is a sequence.
    pub(crate) fn item(&self, index: usize) -> Option<&Node> {
        match &self.value {
            Value::Seq(items) => items.get(index),
            Value::Scalar { .. } | Value::Map(_) => None,
        }
    }
}

enum Frame {
    Seq {
        at: Pos,
        items: Vec<Node>,
    },
    Map {
        at: Pos,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

/// Parses `text` (named `file` in errors) into one node tree.
pub(crate) fn load(text: &str, file: &str) -> Result<Node, Error> {
    if text.len() > MAX_BYTES {
        return Err(Error::TooLarge {
            file: file.to_owned(),
            size: text.len(),
            max: MAX_BYTES,
        });
    }
    let syntax = |at: Pos, message: String| Error::Syntax {
        at: at.locate(file),
        message: crate::error::printable(message),
    };
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut nodes = 0usize;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e: ScanError| {
            syntax(
                Pos::of(e.marker()),
                format!("YAML syntax error: {}", e.info()),
            )
        })?;
        let at = Pos::of(&span.start);
        let (anchor, tagged) = match &event {
            Event::Scalar(_, _, anchor, tag)
            | Event::SequenceStart(anchor, tag)
            | Event::MappingStart(anchor, tag) => (*anchor, tag.is_some()),
            _ => (0, false),
        };
        if anchor != 0 {
            return Err(syntax(
                at,
                "anchors (&name) are not allowed in a descriptor".into(),
            ));
        }
        if tagged {
            return Err(syntax(
                at,
                "tags (!name) are not allowed in a descriptor".into(),
            ));
        }
        let finished = match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(syntax(
                        at,
                        "a descriptor is one YAML document; found a second one".into(),
                    ));
                }
                None
            }
            Event::Alias(_) => {
                return Err(syntax(
                    at,
                    "aliases (*name) are not allowed in a descriptor".into(),
                ));
            }
            Event::Scalar(text, style, _, _) => Some(Node {
                at,
                value: Value::Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain,
                },
            }),
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(syntax(
                        at,
                        format!("nested more than {MAX_DEPTH} levels deep"),
                    ));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        at,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        at,
                        entries: Vec::new(),
                        key: None,
                    }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { at, items }) => Some(Node {
                    at,
                    value: Value::Seq(items),
                }),
                Some(Frame::Map { at, entries, .. }) => Some(Node {
                    at,
                    value: Value::Map(entries),
                }),
                None => return Err(syntax(at, "unbalanced YAML collection".into())),
            },
        };
        let Some(node) = finished else { continue };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(syntax(node.at, format!("more than {MAX_NODES} YAML nodes")));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => {
                    let Value::Scalar { text, .. } = &node.value else {
                        return Err(syntax(node.at, "mapping keys must be plain strings".into()));
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.key_text() == text) {
                        return Err(syntax(
                            node.at,
                            format!("duplicate key \"{text}\" (first at line {})", first.at.line),
                        ));
                    }
                    *key = Some(node);
                }
            },
        }
    }
    root.ok_or_else(|| syntax(Pos { line: 1, column: 1 }, "the descriptor is empty".into()))
}

/// What a plain scalar means under the YAML 1.2 core schema (the JSON-compatible subset; `.inf`
/// and `.nan` are refused later since JSON has no such numbers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Plain {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    NotFinite,
    /// An integer too large for 64 bits.
    HugeInteger,
    Text,
}

pub(crate) fn resolve_plain(text: &str) -> Plain {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return Plain::NotFinite,
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return if text.starts_with('-') {
            text.parse().map_or(Plain::HugeInteger, Plain::Signed)
        } else {
            digits.parse().map_or(Plain::HugeInteger, Plain::Unsigned)
        };
    }
    if is_float(digits) {
        return match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Plain::Float(v),
            _ => Plain::NotFinite,
        };
    }
    Plain::Text
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` without the sign.
fn is_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (mantissa, None),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int)
        && frac.is_none_or(all_digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_like_the_core_schema() {
        assert_eq!(resolve_plain("~"), Plain::Null);
        assert_eq!(resolve_plain("true"), Plain::Bool(true));
        assert_eq!(resolve_plain("30"), Plain::Unsigned(30));
        assert_eq!(resolve_plain("-3"), Plain::Signed(-3));
        assert_eq!(resolve_plain("2.5e3"), Plain::Float(2500.0));
        assert_eq!(resolve_plain(".5"), Plain::Float(0.5));
        assert_eq!(resolve_plain(".inf"), Plain::NotFinite);
        assert_eq!(resolve_plain("500ms"), Plain::Text);
        assert_eq!(resolve_plain("127.0.0.1:7001"), Plain::Text);
        assert_eq!(resolve_plain("yes"), Plain::Text);
        assert_eq!(resolve_plain("."), Plain::Text);
        assert_eq!(resolve_plain("1e"), Plain::Text);
        assert_eq!(resolve_plain(&"9".repeat(64)), Plain::HugeInteger);
    }

    #[test]
    fn positions_are_one_based() {
        let root = load("a:\n  b: [1, 2]\n", "t.yaml").expect("valid");
        assert_eq!(root.at, Pos { line: 1, column: 1 });
        let b = root.get("a").and_then(|a| a.get("b")).expect("b");
        assert_eq!(b.at, Pos { line: 2, column: 6 });
        assert_eq!(
            b.item(1).map(|n| n.at),
            Some(Pos {
                line: 2,
                column: 10
            })
        );
    }

    #[test]
    fn refuses_what_a_descriptor_never_needs() {
        for (text, expected) in [
            ("a: &x 1\nb: *x\n", "t.yaml:1:4: anchors"),
            ("a: !!str 1\n", "t.yaml:1:4: tags"),
            (
                "a: 1\n---\nb: 2\n",
                "t.yaml:2:1: a descriptor is one YAML document",
            ),
            (
                "a: 1\na: 2\n",
                "t.yaml:2:1: duplicate key \"a\" (first at line 1)",
            ),
            (
                "? [a]\n: 1\n",
                "t.yaml:1:3: mapping keys must be plain strings",
            ),
            ("", "t.yaml:1:1: the descriptor is empty"),
        ] {
            let err = load(text, "t.yaml").expect_err(text).to_string();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        let err = load(&deep, "t.yaml").expect_err("deep").to_string();
        assert!(err.contains("nested more than 32 levels"), "{err}");
    }
}
