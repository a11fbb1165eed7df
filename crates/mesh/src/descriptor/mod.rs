//! The application descriptor: YAML in, a typed and checked [`Descriptor`] out, or one error
//! naming the file, line, column and field. Reading is bounded (see [`crate::yaml`] limits);
//! checking is in `validate.rs`.

mod model;
mod validate;

use std::path::{Path, PathBuf};

use attest::policy::AppraisalPolicy;

pub use model::{
    Address, AppSpec, AppraisalRules, BrokerSpec, ConnectionSpec, EndSpec, Interval, Language,
    ModuleCode, ModuleMeasurement, ModuleSpec, NAME_PATTERN, Name, NodeSpec, PeriodicSpec,
    Platform, PolicySpec, PortKind, PortRef, Protection, TopicEnd,
};

use crate::de::{NodeDeserializer, from_node};
use crate::error::{Error, FieldPath, Segment};
use crate::yaml::{self, Node, Pos};

/// The largest policy TOML file a descriptor may name, in bytes.
pub const MAX_POLICY_BYTES: u64 = 256 * 1024;

/// A descriptor that parsed and passed every check. Only [`Descriptor::load`] and
/// [`Descriptor::parse`] build one.
#[derive(Debug, Clone)]
pub struct Descriptor {
    spec: AppSpec,
    base_dir: PathBuf,
    /// The file name and the positioned tree, for errors found after loading.
    file: String,
    root: Node,
    /// One per node, in the order of `spec.nodes`.
    policies: Vec<AppraisalPolicy>,
}

/// How [`Descriptor::parse`] reads the policy files a descriptor names.
pub type ReadFile<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

impl Descriptor {
    /// Reads and checks the descriptor at `path`; policy files are read relative to its folder.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let file = path.display().to_string();
        let text = read_bounded(path, yaml::MAX_BYTES as u64).map_err(|reason| Error::Read {
            file: file.clone(),
            reason,
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &file, &base_dir, &|p| {
            read_bounded(p, MAX_POLICY_BYTES).map_err(std::io::Error::other)
        })
    }

    /// Checks descriptor `text`, named `file` in errors; relative paths resolve against
    /// `base_dir` and policy files are read with `read_file`.
    pub fn parse(
        text: &str,
        file: &str,
        base_dir: &Path,
        read_file: ReadFile<'_>,
    ) -> Result<Self, Error> {
        let root = yaml::load(text, file)?;
        let spec: AppSpec = from_node(&root).map_err(|e| e.into_error(file, root.at))?;
        let located = Located { root: &root, file };
        let policies = validate::check(&spec, base_dir, read_file, &located)?;
        Ok(Self {
            spec,
            base_dir: base_dir.to_path_buf(),
            file: file.to_owned(),
            root,
            policies,
        })
    }

    /// The descriptor as written.
    pub fn spec(&self) -> &AppSpec {
        &self.spec
    }

    /// The appraisal policy of the node named `node` (read from its file if it named one).
    pub fn node_policy(&self, node: &str) -> Option<&AppraisalPolicy> {
        let index = self
            .spec
            .nodes
            .iter()
            .position(|n| n.name.as_str() == node)?;
        self.policies.get(index)
    }

    /// The broker named `name`.
    pub fn broker(&self, name: &str) -> Option<&BrokerSpec> {
        self.spec.brokers.iter().find(|b| b.name.as_str() == name)
    }

    /// The node a module runs on.
    pub fn node_of(&self, module: &ModuleSpec) -> Option<&NodeSpec> {
        self.spec.nodes.iter().find(|n| n.name == module.node)
    }

    /// A path from the descriptor, resolved against the descriptor's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// An error at the field `path` of this descriptor, for checks made after loading (e.g. a
    /// component whose bytes do not match its `measurement`).
    pub fn error_at(&self, path: FieldPath, message: String) -> Error {
        Located {
            root: &self.root,
            file: &self.file,
        }
        .error(path, message)
    }

    /// The descriptor as JSON (the shape `schema/app-descriptor.schema.json` describes).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.spec).unwrap_or_default()
    }
}

/// The YAML `text` as JSON, with the same bounds and refusals as [`Descriptor::parse`] but no
/// descriptor checks: what a JSON Schema validator sees.
pub fn yaml_to_json(text: &str, file: &str) -> Result<serde_json::Value, Error> {
    let root = yaml::load(text, file)?;
    serde::Deserialize::deserialize(NodeDeserializer(&root))
        .map_err(|e: crate::de::DeError| e.into_error(file, root.at))
}

fn read_bounded(path: &Path, max: u64) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(text)
}

/// Turns a field path into an error at that field's position in the text.
pub(crate) struct Located<'a> {
    root: &'a Node,
    file: &'a str,
}

impl Located<'_> {
    /// An error at `path` (or at the nearest enclosing node that exists).
    pub(crate) fn error(&self, path: FieldPath, message: String) -> Error {
        Error::Invalid {
            at: self.position(&path).locate(self.file),
            path,
            message: crate::error::printable(message),
        }
    }

    fn position(&self, path: &FieldPath) -> Pos {
        let mut node = self.root;
        for segment in &path.0 {
            let next = match segment {
                Segment::Key(key) => node.get(key),
                Segment::Index(index) => node.item(*index),
            };
            match next {
                Some(next) => node = next,
                None => break,
            }
        }
        node.at
    }
}
