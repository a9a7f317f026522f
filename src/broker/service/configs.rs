//! The service's view of settings: a topic's and the broker's, by Kafka's names (see
//! `broker::configs`), for Kafka's DescribeConfigs and any admin tool.

use super::{CLUSTER, Operation, RequestContext, ResourceType, Service};
use crate::broker::BrokerResult;
use crate::broker::configs::{self, ConfigEntry};

impl Service {
    /// A topic's settings, each marked when it equals the broker's topic default.
    pub fn topic_configs(
        &self,
        ctx: &RequestContext,
        topic: &str,
    ) -> BrokerResult<Vec<ConfigEntry>> {
        self.authorize(ctx, ResourceType::Topic, topic, Operation::DescribeConfigs)?;
        let topics = self.state.topics();
        let meta = topics
            .get(topic)
            .ok_or_else(|| crate::broker::BrokerError::unknown_topic(topic))?;
        Ok(configs::topic_entries(
            &meta.config,
            &self.state.config.topic_defaults,
        ))
    }

    /// The broker's settings (read-only: it reads them at start).
    pub fn broker_configs(&self, ctx: &RequestContext) -> BrokerResult<Vec<ConfigEntry>> {
        self.authorize(
            ctx,
            ResourceType::Cluster,
            CLUSTER,
            Operation::DescribeConfigs,
        )?;
        Ok(configs::broker_entries(&self.state.config))
    }
}
