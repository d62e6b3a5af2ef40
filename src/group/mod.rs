//! Consumer groups, sans-IO: the classic protocol's coordinator ([`coordinator`]) and the
//! records it keeps in `__consumer_offsets` ([`records`]). The broker shell (`broker/groups.rs`)
//! routes requests here, appends the records, and holds the parked requests.

pub mod coordinator;
pub mod records;

pub use coordinator::{Coordinator, GroupConfig};

#[cfg(test)]
mod tests;
