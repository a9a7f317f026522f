//! Access control lists: which principal may do what to which resource. Rules allow or deny
//! an operation on a resource named literally, by prefix, or `*`; a deny wins over any allow;
//! super users may do everything. Enforced only when some listener asks for authentication
//! (then an unauthenticated client is the principal `User:ANONYMOUS`, and what no rule allows is
//! denied); with no authentication anywhere, everything is allowed, as on a fresh loopback
//! broker. Kept in `acls.json` beside `users.json`, changed on shard 0 and handed to every shard
//! as a snapshot, so checking a request reads only its own shard's copy.

use std::io;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use super::error::{BrokerError, BrokerResult, ErrorKind};
use super::{ShardState, admin};

const ACLS_FILE: &str = "acls.json";
/// Rules the broker holds at most.
pub const ACLS_MAX: usize = 10_000;
/// The principal of a client that did not authenticate, as Kafka names it.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum PatternType {
    /// The name itself, or `*` for every name.
    Literal,
    /// Every name starting with it.
    Prefixed,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Operation {
    /// Operations a rule for `self` also grants (Kafka's implied operations): Read, Write,
    /// Delete and Alter imply Describe; AlterConfigs implies DescribeConfigs.
    fn covers(self, wanted: Operation) -> bool {
        self == Operation::All
            || self == wanted
            || (wanted == Operation::Describe
                && matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ))
            || (wanted == Operation::DescribeConfigs && self == Operation::AlterConfigs)
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Permission {
    Allow,
    Deny,
}

/// One rule.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Acl {
    /// `User:name`, or `User:*` for every principal.
    pub principal: String,
    /// The client's host, or `*`.
    pub host: String,
    pub resource_type: ResourceType,
    pub pattern_type: PatternType,
    /// The resource's name (the cluster's is `kafka-cluster`), or `*` with Literal.
    pub name: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl Acl {
    fn matches(
        &self,
        principal: &str,
        resource_type: ResourceType,
        name: &str,
        operation: Operation,
    ) -> bool {
        (self.principal == principal || self.principal == "User:*")
            && self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.name == name || self.name == "*",
                PatternType::Prefixed => name.starts_with(&self.name),
            }
            && self.operation.covers(operation)
    }
}

/// A filter over rules (Kafka's DescribeAcls and DeleteAcls): None matches anything.
#[derive(Clone, Debug, Default)]
pub struct AclFilter {
    pub principal: Option<String>,
    pub host: Option<String>,
    pub resource_type: Option<ResourceType>,
    pub pattern_type: Option<PatternType>,
    pub name: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    pub fn matches(&self, acl: &Acl) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && self.resource_type.is_none_or(|t| t == acl.resource_type)
            && self.pattern_type.is_none_or(|t| t == acl.pattern_type)
            && self.name.as_ref().is_none_or(|n| *n == acl.name)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Acls {
    rules: Vec<Acl>,
}

impl Acls {
    /// The saved acls, or none when no file was ever saved.
    pub fn load(data_dir: &Path) -> Result<Acls, String> {
        super::json_file::load(data_dir, ACLS_FILE)
    }

    pub fn save(&self, data_dir: &Path) -> io::Result<()> {
        super::json_file::save(data_dir, ACLS_FILE, self)
    }

    pub fn rules(&self) -> &[Acl] {
        &self.rules
    }

    /// Adds `acl` (once); Err when the broker holds ACLS_MAX rules already.
    pub fn add(&mut self, acl: Acl) -> Result<(), String> {
        if self.rules.contains(&acl) {
            return Ok(());
        }
        if self.rules.len() >= ACLS_MAX {
            return Err(format!("the broker holds {ACLS_MAX} ACLs already"));
        }
        self.rules.push(acl);
        Ok(())
    }

    /// Removes every rule `filter` matches; returns them.
    pub fn remove(&mut self, filter: &AclFilter) -> Vec<Acl> {
        let (removed, kept) = std::mem::take(&mut self.rules)
            .into_iter()
            .partition(|acl| filter.matches(acl));
        self.rules = kept;
        removed
    }

    /// Whether `principal` may do `operation` to the resource: a matching deny wins, then a
    /// matching allow admits; nothing matching denies.
    pub fn allows(
        &self,
        principal: &str,
        resource_type: ResourceType,
        name: &str,
        operation: Operation,
    ) -> bool {
        let matching = self
            .rules
            .iter()
            .filter(|acl| acl.matches(principal, resource_type, name, operation));
        let mut allowed = false;
        for acl in matching {
            match acl.permission {
                Permission::Deny => return false,
                Permission::Allow => allowed = true,
            }
        }
        allowed
    }
}

/// Applies a change to the ACLs on shard 0, one admin change at a time: saved, then handed to
/// every shard. `edit` answers what the caller gets back.
pub(super) async fn change<T>(
    state: &Rc<ShardState>,
    edit: impl FnOnce(&mut Acls) -> T,
) -> BrokerResult<T> {
    let _turn = admin::admin_turn(state).await;
    let mut acls = Acls::clone(&state.acls());
    let answer = edit(&mut acls);
    let dir = state.config.data_dir.clone();
    let to_save = acls.clone();
    crate::runtime::blocking(move || to_save.save(&dir))
        .await
        .map_err(|error| {
            BrokerError::new(
                ErrorKind::StorageFailed,
                format!("saving acls.json: {error}"),
            )
        })?;
    let acls = Arc::new(acls);
    // Saved: the change stands even if a shard takes it late (the error says so).
    super::snapshot::distribute(state, |shard| &shard.acls, acls).await?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        principal: &str,
        pattern: PatternType,
        name: &str,
        operation: Operation,
        permission: Permission,
    ) -> Acl {
        Acl {
            principal: principal.into(),
            host: "*".into(),
            resource_type: ResourceType::Topic,
            pattern_type: pattern,
            name: name.into(),
            operation,
            permission,
        }
    }

    #[test]
    fn deny_wins_prefixes_and_wildcards_match_and_nothing_matching_denies() {
        let mut acls = Acls::default();
        acls.add(rule(
            "User:alice",
            PatternType::Prefixed,
            "orders.",
            Operation::Write,
            Permission::Allow,
        ))
        .unwrap();
        acls.add(rule(
            "User:alice",
            PatternType::Literal,
            "orders.secret",
            Operation::All,
            Permission::Deny,
        ))
        .unwrap();
        acls.add(rule(
            "User:*",
            PatternType::Literal,
            "*",
            Operation::Read,
            Permission::Allow,
        ))
        .unwrap();
        let topic = ResourceType::Topic;
        assert!(acls.allows("User:alice", topic, "orders.eu", Operation::Write));
        assert!(
            acls.allows("User:alice", topic, "orders.eu", Operation::Describe),
            "write implies describe"
        );
        assert!(
            !acls.allows("User:alice", topic, "orders.secret", Operation::Write),
            "deny wins"
        );
        assert!(
            !acls.allows("User:alice", topic, "orders.secret", Operation::Read),
            "deny All wins over allow Read"
        );
        assert!(!acls.allows("User:alice", topic, "billing", Operation::Write));
        assert!(
            acls.allows("User:bob", topic, "billing", Operation::Read),
            "User:* and *"
        );
        assert!(!acls.allows("User:bob", ResourceType::Group, "billing", Operation::Read));
        let removed = acls.remove(&AclFilter {
            principal: Some("User:alice".into()),
            ..AclFilter::default()
        });
        assert_eq!(removed.len(), 2);
        assert!(!acls.allows("User:alice", topic, "orders.eu", Operation::Write));
    }

    #[test]
    fn acls_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Acls::load(dir.path()).unwrap(), Acls::default());
        let mut acls = Acls::default();
        acls.add(rule(
            "User:alice",
            PatternType::Literal,
            "t",
            Operation::Read,
            Permission::Allow,
        ))
        .unwrap();
        acls.save(dir.path()).unwrap();
        assert_eq!(Acls::load(dir.path()).unwrap(), acls);
    }
}
