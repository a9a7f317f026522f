//! ringmq: a single-node, thread-per-core message broker.
//!
//! Layers depend downward only (see ARCHITECTURE.md):
//! `server` and `kafka` (the two protocols' front doors) -> `broker` (semantics) -> `shard`
//! (thread-per-core, cross-shard calls) -> `storage` (partition logs), with `batch` (the record
//! format), `protocol` (the wire codec), `runtime` (our seam over compio) and `config` as
//! leaves, and `partitioner` (the key → partition rules) shared by all. `client` is the Rust
//! client; it uses only `protocol`, `batch`, `runtime` and `partitioner`.

pub mod auth;
pub mod batch;
pub mod broker;
pub mod cli;
pub mod client;
pub mod config;
pub mod kafka;
pub mod metrics;
pub mod net;
pub mod partitioner;
pub mod protocol;
pub mod runtime;
pub mod server;
pub mod shard;
pub mod sqs;
pub mod storage;
