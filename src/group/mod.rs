//! Consumer groups and transactions, sans-IO: the classic protocol's group coordinator
//! ([`coordinator`]) and the records it keeps in `__consumer_offsets` ([`records`]); the
//! transaction coordinator and its `__transaction_state` records ([`transactions`]). The broker
//! shells (`broker/groups.rs`, `broker/transactions.rs`) route requests here, append the
//! records, and hold the parked requests.

pub mod coordinator;
pub mod records;
pub mod transactions;

pub use coordinator::{Coordinator, GroupConfig};

#[cfg(test)]
mod tests;
