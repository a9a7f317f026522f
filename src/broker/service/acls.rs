//! Authorization through the service: every operation asks `authorize` before it acts, and the
//! ACLs themselves are changed here (Kafka's CreateAcls, DescribeAcls, DeleteAcls).

use super::{Principal, RequestContext, Service};
use crate::broker::acls::{self, Acl, AclFilter, Operation, ResourceType};
use crate::broker::{BrokerError, BrokerResult, ErrorKind};

/// The cluster's name as a resource, as Kafka names it.
pub const CLUSTER: &str = "kafka-cluster";

impl Service {
    /// Ok if the request's principal may do `operation` to the resource, else the
    /// authorization error of its type. Always Ok while no listener asks for authentication.
    pub fn authorize(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        name: &str,
        operation: Operation,
    ) -> BrokerResult<()> {
        if self.is_authorized(ctx, resource_type, name, operation) {
            return Ok(());
        }
        let principal = principal_name(&ctx.principal);
        metrics::counter!("ringmq_authorization_denials_total", "resource" => format!("{resource_type:?}"))
            .increment(1);
        tracing::info!(
            principal,
            ?resource_type,
            name,
            ?operation,
            "denied by the ACLs"
        );
        let kind = match resource_type {
            ResourceType::Topic => ErrorKind::TopicAuthorizationFailed,
            ResourceType::Group => ErrorKind::GroupAuthorizationFailed,
            ResourceType::Cluster | ResourceType::TransactionalId => {
                ErrorKind::ClusterAuthorizationFailed
            }
        };
        Err(BrokerError::new(
            kind,
            format!("{principal} may not {operation:?} {resource_type:?} {name:?}"),
        ))
    }

    /// Whether the request's principal may do `operation` to the resource (for lists that
    /// leave out what the principal may not see).
    pub fn is_authorized(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        name: &str,
        operation: Operation,
    ) -> bool {
        let config = &self.state.config;
        if !config.authorization_enforced() {
            return true;
        }
        let principal = principal_name(&ctx.principal);
        config.super_users.contains(&principal)
            || self
                .state
                .acls()
                .allows(&principal, resource_type, name, operation)
    }

    /// Creating a topic: Create on the cluster, or on the topic's name (Kafka's rule).
    pub(super) fn authorize_creation(&self, ctx: &RequestContext, topic: &str) -> BrokerResult<()> {
        if self.is_authorized(ctx, ResourceType::Cluster, CLUSTER, Operation::Create) {
            return Ok(());
        }
        self.authorize(ctx, ResourceType::Topic, topic, Operation::Create)
    }

    /// Whether some rule lets the principal write some topic (for producer ids).
    pub(super) fn may_write_some_topic(&self, ctx: &RequestContext) -> bool {
        let principal = principal_name(&ctx.principal);
        self.state.acls().rules().iter().any(|acl| {
            (acl.principal == principal || acl.principal == "User:*")
                && acl.resource_type == ResourceType::Topic
                && acl.permission == crate::broker::acls::Permission::Allow
                && matches!(acl.operation, Operation::Write | Operation::All)
        })
    }

    /// The rules `filter` matches; needs Describe on the cluster.
    pub fn describe_acls(
        &self,
        ctx: &RequestContext,
        filter: &AclFilter,
    ) -> BrokerResult<Vec<Acl>> {
        self.authorize(ctx, ResourceType::Cluster, CLUSTER, Operation::Describe)?;
        Ok(self
            .state
            .acls()
            .rules()
            .iter()
            .filter(|acl| filter.matches(acl))
            .cloned()
            .collect())
    }

    /// Adds rules, durably and on every shard before the answer; one outcome per rule. Needs
    /// Alter on the cluster.
    pub async fn create_acls(
        &self,
        ctx: &RequestContext,
        rules: Vec<Acl>,
    ) -> BrokerResult<Vec<BrokerResult<()>>> {
        self.authorize(ctx, ResourceType::Cluster, CLUSTER, Operation::Alter)?;
        self.state
            .on_shard_until(ctx.deadline, 0, move |shard0| async move {
                acls::change(&shard0, move |acls| {
                    rules
                        .into_iter()
                        .map(|rule| {
                            acls.add(rule).map_err(|reason| {
                                BrokerError::new(ErrorKind::ResourceLimit, reason)
                            })
                        })
                        .collect()
                })
                .await
            })
            .await
    }

    /// Removes the rules each filter matches; returns them, per filter. Needs Alter on the
    /// cluster.
    pub async fn delete_acls(
        &self,
        ctx: &RequestContext,
        filters: Vec<AclFilter>,
    ) -> BrokerResult<Vec<Vec<Acl>>> {
        self.authorize(ctx, ResourceType::Cluster, CLUSTER, Operation::Alter)?;
        self.state
            .on_shard_until(ctx.deadline, 0, move |shard0| async move {
                acls::change(&shard0, move |acls| {
                    filters.iter().map(|filter| acls.remove(filter)).collect()
                })
                .await
            })
            .await
    }
}

/// The principal as ACLs name it.
pub fn principal_name(principal: &Principal) -> String {
    match principal {
        Principal::Anonymous => acls::ANONYMOUS.to_string(),
        Principal::User(user) => format!("User:{user}"),
    }
}
