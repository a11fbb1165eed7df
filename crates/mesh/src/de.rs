//! serde over the positioned YAML tree: typed structures with `deny_unknown_fields`, and every
//! error tagged with the position of the node it arose at and the field path leading to it.

use std::fmt;

use serde::de::{self, DeserializeSeed, Error as _, Visitor};

use crate::error::{Error, FieldPath, Segment};
use crate::yaml::{Node, Plain, Pos, Value, resolve_plain};

/// A deserialisation error before it is given its file name.
#[derive(Debug)]
pub(crate) struct DeError {
    at: Option<Pos>,
    /// Innermost segment last while the error travels up; reversed in `into_error`.
    reversed_path: Vec<Segment>,
    message: String,
}

impl DeError {
    fn at_default(mut self, at: Pos) -> Self {
        self.at.get_or_insert(at);
        self
    }

    fn within(mut self, segment: Segment) -> Self {
        self.reversed_path.push(segment);
        self
    }

    pub(crate) fn into_error(mut self, file: &str, root: Pos) -> Error {
        self.reversed_path.reverse();
        Error::Invalid {
            at: self.at.unwrap_or(root).locate(file),
            path: FieldPath(self.reversed_path),
            message: self.message,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let mut message = msg.to_string();
        // serde's words for a failed untagged enum say nothing to a reader; the only untagged
        // enums a descriptor reaches are the policy's "one value or a list" and durations.
        if message.starts_with("data did not match any variant of untagged enum") {
            message = "expected one value or a list of values of this key's form (measurements \
                       are hex: 64 digits for sgx, 96 for tdx, snp and sim; durations are \
                       seconds or text like 30d)"
                .into();
        }
        Self {
            at: None,
            reversed_path: Vec::new(),
            message: crate::error::printable(message),
        }
    }
}

/// Deserialises a `T` from a node.
pub(crate) fn from_node<'de, T: de::Deserialize<'de>>(node: &'de Node) -> Result<T, DeError> {
    T::deserialize(NodeDeserializer(node))
}

/// A node as a serde `Deserializer`.
pub(crate) struct NodeDeserializer<'a>(pub(crate) &'a Node);

fn describe_plain(plain: Plain, text: &str) -> String {
    match plain {
        Plain::Null => "null".into(),
        Plain::Bool(b) => format!("the boolean {b}"),
        Plain::Unsigned(_) | Plain::Signed(_) | Plain::HugeInteger => format!("the integer {text}"),
        Plain::Float(_) | Plain::NotFinite => format!("the number {text}"),
        Plain::Text => format!("\"{text}\""),
    }
}

impl<'de> NodeDeserializer<'de> {
    fn scalar_any<V: Visitor<'de>>(&self, text: &'de str, visitor: V) -> Result<V::Value, DeError> {
        match resolve_plain(text) {
            Plain::Null => visitor.visit_unit(),
            Plain::Bool(b) => visitor.visit_bool(b),
            Plain::Unsigned(n) => visitor.visit_u64(n),
            Plain::Signed(n) => visitor.visit_i64(n),
            Plain::Float(n) => visitor.visit_f64(n),
            Plain::NotFinite => Err(de::Error::custom(format!(
                "{text} is not a number JSON can carry"
            ))),
            Plain::HugeInteger => Err(de::Error::custom(format!(
                "the integer {text} does not fit in 64 bits (quote it if it is a string)"
            ))),
            Plain::Text => visitor.visit_borrowed_str(text),
        }
    }
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let at = self.0.at;
        match &self.0.value {
            Value::Scalar { text, plain: true } => self.scalar_any(text, visitor),
            Value::Scalar { text, plain: false } => visitor.visit_borrowed_str(text),
            Value::Seq(items) => visitor.visit_seq(SeqAccess {
                items: items.iter(),
                index: 0,
            }),
            Value::Map(entries) => visitor.visit_map(MapAccess {
                entries: entries.iter(),
                value: None,
            }),
        }
        .map_err(|e| e.at_default(at))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let at = self.0.at;
        match &self.0.value {
            Value::Scalar { text, plain } => {
                let resolved = if *plain {
                    resolve_plain(text)
                } else {
                    Plain::Text
                };
                if resolved != Plain::Text {
                    return Err(DeError::custom(format!(
                        "expected a string, found {} (quote it to make it a string)",
                        describe_plain(resolved, text)
                    ))
                    .at_default(at));
                }
                visitor
                    .visit_borrowed_str::<DeError>(text)
                    .map_err(|e| e.at_default(at))
            }
            Value::Seq(_) | Value::Map(_) => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.value {
            Value::Scalar { text, plain: true } if resolve_plain(text) == Plain::Null => {
                visitor.visit_none()
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let at = self.0.at;
        match &self.0.value {
            Value::Scalar { text, .. } => {
                let variant = de::value::BorrowedStrDeserializer::<DeError>::new(text);
                visitor.visit_enum(variant)
            }
            Value::Seq(_) | Value::Map(_) => Err(DeError::custom("expected one word")),
        }
        .map_err(|e| e.at_default(at))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct SeqAccess<'a> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(NodeDeserializer(item))
            .map(Some)
            .map_err(|e| e.at_default(item.at).within(Segment::Index(index)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAccess<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<(&'a Node, &'a Node)>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        let text = key.key_text();
        let key_de = de::value::BorrowedStrDeserializer::<DeError>::new(text);
        seed.deserialize(key_de)
            .map(Some)
            .map_err(|e| e.at_default(key.at).within(Segment::Key(text.to_owned())))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, value)) = self.value.take() else {
            return Err(DeError::custom("a mapping value without its key"));
        };
        seed.deserialize(NodeDeserializer(value)).map_err(|e| {
            e.at_default(value.at)
                .within(Segment::Key(key.key_text().to_owned()))
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
