//! ringmq's own binary protocol, the lightweight front door (documented in docs/PROTOCOL.md):
//! length-prefixed frames, a fixed header with api key, version and correlation id, many
//! requests in flight per connection, and a stable error code with a message in every response.
//! Used by the server and by the Rust client; it knows nothing of shards or storage beyond the
//! ack levels and error kinds it carries.

pub mod codec;
pub mod error;
pub mod messages;
pub mod queues;
pub mod replies;
mod responses;
pub mod routing;

pub use error::{ErrorCode, ProtocolError};
pub use messages::{
    ApiKey, FetchRequest, FetchResponse, OffsetSpec, ProduceRequest, ProduceResponse, Request,
    Response, TopicMetadata,
};
