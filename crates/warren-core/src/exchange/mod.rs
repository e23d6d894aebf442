//! Exchanges and their routing tables.

pub mod headers;
pub mod topic;
