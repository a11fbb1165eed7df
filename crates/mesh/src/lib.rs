//! teemesh applications: modules on several attested nodes, wired by connections. Today this
//! crate holds the deployment descriptor ([`descriptor`]); the deployer and the event channels
//! join it later.

pub mod descriptor;
pub mod error;
pub mod yaml;

mod de;

pub use descriptor::{Descriptor, yaml_to_json};
pub use error::{Error, FieldPath, Location, Segment};
