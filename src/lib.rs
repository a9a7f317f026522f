//! ringmq: a single-node, thread-per-core message broker.
//!
//! Layers depend downward only (see ARCHITECTURE.md):
//! protocols -> broker semantics -> shards -> storage, with `batch` (the record format) and
//! `runtime` (our seam over compio) as leaves that any layer may use.

pub mod batch;
pub mod runtime;
pub mod storage;
