//! The descriptor's one error type: every refusal names the file, the line and column, and the
//! field path (`modules[1].node`), so a reader can go straight to the mistake.

use std::fmt;

/// A position in a descriptor file: 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as the caller named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index (0-based, as in the schema's JSON pointers).
    Index(usize),
}

/// The path from the document root to a field, written `modules[1].node`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The path followed by `": "`, or nothing at the document root.
    pub(crate) fn prefix(&self) -> String {
        if self.0.is_empty() {
            String::new()
        } else {
            format!("{self}: ")
        }
    }

    /// This path extended by one key.
    pub fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    /// This path extended by one index.
    pub fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                // Keys come from the input: a control character in one must not break the line.
                Segment::Key(key) if i == 0 => write!(f, "{}", printable(key.clone()))?,
                Segment::Key(key) => write!(f, ".{}", printable(key.clone()))?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// `message` with control characters (line breaks, terminal escapes taken from the input)
/// escaped, so every error stays one printable line.
pub(crate) fn printable(message: String) -> String {
    if message.chars().any(char::is_control) {
        message.chars().flat_map(char::escape_default).collect()
    } else {
        message
    }
}

/// Why a descriptor was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The descriptor (or a policy file it names) could not be read.
    #[error("{file}: cannot read: {reason}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        reason: String,
    },
    /// The descriptor is larger than a descriptor may be.
    #[error("{file}: {size} bytes; a descriptor may have at most {max}")]
    TooLarge {
        /// The file.
        file: String,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not well-formed YAML, or YAML this format does not allow (anchors, tags, several
    /// documents, duplicate keys, nesting too deep).
    #[error("{at}: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// What was wrong.
        message: String,
    },
    /// Well-formed YAML that is not a valid descriptor: a wrong type, an unknown field, a
    /// reference to something that does not exist, a rule broken.
    #[error("{at}: {}{message}", .path.prefix())]
    Invalid {
        /// Where.
        at: Location,
        /// Which field.
        path: FieldPath,
        /// What was wrong and what was expected.
        message: String,
    },
}

impl Error {
    /// The location, when the error has one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Syntax { at, .. } | Self::Invalid { at, .. } => Some(at),
            Self::Read { .. } | Self::TooLarge { .. } => None,
        }
    }
}
