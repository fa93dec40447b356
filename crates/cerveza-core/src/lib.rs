//! Cerveza's domain, free of I/O: validated names, profiles, selections, and the host
//! lifecycle workflows, which speak to the outside world only through [`ports`].

pub mod access;
pub mod backup;
pub mod converge;
pub mod error;
#[cfg(feature = "test-hooks")]
pub mod fake;
pub mod fleet;
pub mod lifecycle;
pub mod model;
pub mod names;
pub mod network;
pub mod offering;
pub mod ports;
pub mod profile;
pub mod selection;
pub mod tags;
pub mod token;
pub mod wait;

pub use error::{Error, ErrorKind};
pub use names::{HostGroup, Hostname, NameError, Product, ProfileName, Region, Zone};
