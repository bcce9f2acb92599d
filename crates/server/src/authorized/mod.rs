//! Which registration entries each agent is authorized for.

pub mod follower;
pub mod index;

pub use index::EntryIndex;
