//! The service's view of settings: a topic's and the broker's, by Kafka's names (see
//! `broker::configs`), for Kafka's DescribeConfigs and any admin tool.

use super::{CLUSTER, Operation, RequestContext, ResourceType, Service};
use crate::broker::BrokerResult;
use crate::broker::admin::{self, ConfigChange};
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

    /// Changes a topic's settings (`replace_all`: Kafka's AlterConfigs, whatever is not named
    /// reverts to the default), durably and on every partition before the answer; with
    /// `validate_only`, only checks. Needs AlterConfigs on the topic.
    pub async fn alter_topic_config(
        &self,
        ctx: &RequestContext,
        topic: String,
        changes: Vec<ConfigChange>,
        (replace_all, validate_only): (bool, bool),
    ) -> BrokerResult<()> {
        self.authorize(ctx, ResourceType::Topic, &topic, Operation::AlterConfigs)?;
        self.check_exclusive(ctx, &topic)?;
        if validate_only {
            return admin::validate_config_changes(&self.state, &topic, &changes, replace_all)
                .map(|_| ());
        }
        self.state
            .on_shard_until(ctx.deadline, 0, move |zero| async move {
                admin::alter_topic_config(&zero, topic, changes, replace_all).await
            })
            .await
    }
}
