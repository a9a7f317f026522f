//! Kafka's CreateAcls, DescribeAcls and DeleteAcls over the service's ACLs, with Kafka's codes
//! for resource types, pattern types, operations and permissions. A filter may say ANY for any
//! field (and MATCH for the pattern type, which here means ANY); a creation may not.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{INVALID_REQUEST, code_of};
use crate::broker::service::{
    Acl, AclFilter, Operation, PatternType, Permission, RequestContext, ResourceType, Service,
};

/// Kafka's ANY, in every enum: the filter matches any value.
const ANY: i8 = 1;

fn resource_type(code: i8) -> Option<ResourceType> {
    match code {
        2 => Some(ResourceType::Topic),
        3 => Some(ResourceType::Group),
        4 => Some(ResourceType::Cluster),
        5 => Some(ResourceType::TransactionalId),
        _ => None,
    }
}

fn resource_type_code(value: ResourceType) -> i8 {
    match value {
        ResourceType::Topic => 2,
        ResourceType::Group => 3,
        ResourceType::Cluster => 4,
        ResourceType::TransactionalId => 5,
    }
}

fn pattern_type(code: i8) -> Option<PatternType> {
    match code {
        3 => Some(PatternType::Literal),
        4 => Some(PatternType::Prefixed),
        _ => None,
    }
}

fn pattern_type_code(value: PatternType) -> i8 {
    match value {
        PatternType::Literal => 3,
        PatternType::Prefixed => 4,
    }
}

const OPERATIONS: [(i8, Operation); 11] = [
    (2, Operation::All),
    (3, Operation::Read),
    (4, Operation::Write),
    (5, Operation::Create),
    (6, Operation::Delete),
    (7, Operation::Alter),
    (8, Operation::Describe),
    (9, Operation::ClusterAction),
    (10, Operation::DescribeConfigs),
    (11, Operation::AlterConfigs),
    (12, Operation::IdempotentWrite),
];

fn operation(code: i8) -> Option<Operation> {
    OPERATIONS
        .iter()
        .find(|(known, _)| *known == code)
        .map(|(_, operation)| *operation)
}

fn operation_code(value: Operation) -> i8 {
    OPERATIONS
        .iter()
        .find(|(_, known)| *known == value)
        .map_or(0, |(code, _)| *code)
}

fn permission(code: i8) -> Option<Permission> {
    match code {
        2 => Some(Permission::Deny),
        3 => Some(Permission::Allow),
        _ => None,
    }
}

fn permission_code(value: Permission) -> i8 {
    match value {
        Permission::Deny => 2,
        Permission::Allow => 3,
    }
}

fn creation(entry: &AclCreation) -> Result<Acl, &'static str> {
    Ok(Acl {
        principal: entry.principal.to_string(),
        host: entry.host.to_string(),
        resource_type: resource_type(entry.resource_type).ok_or("unknown resource type")?,
        pattern_type: pattern_type(entry.resource_pattern_type).ok_or("unknown pattern type")?,
        name: entry.resource_name.to_string(),
        operation: operation(entry.operation).ok_or("unknown operation")?,
        permission: permission(entry.permission_type).ok_or("unknown permission")?,
    })
}

/// None for ANY, the value if known, Err otherwise.
fn any_or<T>(code: i8, known: Option<T>) -> Result<Option<T>, ()> {
    match (code, known) {
        (ANY, _) => Ok(None),
        (_, Some(value)) => Ok(Some(value)),
        (_, None) => Err(()),
    }
}

/// A filter from Kafka's fields; Err for a value that is neither known nor ANY (or MATCH).
fn filter(
    (resource, name, pattern): (i8, Option<&StrBytes>, i8),
    (principal, host): (Option<&StrBytes>, Option<&StrBytes>),
    (op, permission_type): (i8, i8),
) -> Result<AclFilter, &'static str> {
    Ok(AclFilter {
        principal: principal.map(ToString::to_string),
        host: host.map(ToString::to_string),
        resource_type: any_or(resource, resource_type(resource))
            .map_err(|()| "unknown resource type")?,
        // MATCH (2) asks for whatever applies to the name; the name filter does that here.
        pattern_type: if pattern == 2 {
            None
        } else {
            any_or(pattern, pattern_type(pattern)).map_err(|()| "unknown pattern type")?
        },
        name: name.map(ToString::to_string),
        operation: any_or(op, operation(op)).map_err(|()| "unknown operation")?,
        permission: any_or(permission_type, permission(permission_type))
            .map_err(|()| "unknown permission")?,
    })
}

pub async fn create(
    service: &Service,
    ctx: &RequestContext,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let checked: Vec<Result<Acl, &'static str>> = request.creations.iter().map(creation).collect();
    let valid: Vec<Acl> = checked
        .iter()
        .filter_map(|acl| acl.as_ref().ok().cloned())
        .collect();
    let mut outcomes = service.create_acls(ctx, valid).await.map(Vec::into_iter);
    let results = checked
        .into_iter()
        .map(|acl| {
            let outcome = match (acl, &mut outcomes) {
                (Err(reason), _) => Err((INVALID_REQUEST, reason.to_string())),
                (Ok(_), Err(error)) => Err((code_of(error), error.message.clone())),
                (Ok(_), Ok(each)) => match each.next() {
                    Some(Ok(())) | None => Ok(()),
                    Some(Err(error)) => Err((code_of(&error), error.message)),
                },
            };
            match outcome {
                Ok(()) => AclCreationResult::default(),
                Err((code, message)) => AclCreationResult::default()
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub fn describe(
    service: &Service,
    ctx: &RequestContext,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let wanted = filter(
        (
            request.resource_type_filter,
            request.resource_name_filter.as_ref(),
            request.pattern_type_filter,
        ),
        (
            request.principal_filter.as_ref(),
            request.host_filter.as_ref(),
        ),
        (request.operation, request.permission_type),
    );
    let wanted = match wanted {
        Ok(wanted) => wanted,
        Err(reason) => {
            return DescribeAclsResponse::default()
                .with_error_code(INVALID_REQUEST)
                .with_error_message(Some(StrBytes::from_static_str(reason)));
        }
    };
    let rules = match service.describe_acls(ctx, &wanted) {
        Ok(rules) => rules,
        Err(error) => {
            return DescribeAclsResponse::default()
                .with_error_code(code_of(&error))
                .with_error_message(Some(StrBytes::from_string(error.message)));
        }
    };
    // One entry per resource, its rules beneath it.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for rule in rules {
        let description = AclDescription::default()
            .with_principal(StrBytes::from_string(rule.principal.clone()))
            .with_host(StrBytes::from_string(rule.host.clone()))
            .with_operation(operation_code(rule.operation))
            .with_permission_type(permission_code(rule.permission));
        let same = |resource: &DescribeAclsResource| {
            resource.resource_type == resource_type_code(rule.resource_type)
                && resource.resource_name.as_str() == rule.name
                && resource.pattern_type == pattern_type_code(rule.pattern_type)
        };
        match resources.iter_mut().find(|resource| same(resource)) {
            Some(resource) => resource.acls.push(description),
            None => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(resource_type_code(rule.resource_type))
                    .with_resource_name(StrBytes::from_string(rule.name.clone()))
                    .with_pattern_type(pattern_type_code(rule.pattern_type))
                    .with_acls(vec![description]),
            ),
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn delete(
    service: &Service,
    ctx: &RequestContext,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let filters: Vec<Result<AclFilter, &'static str>> = request
        .filters
        .iter()
        .map(|entry| {
            filter(
                (
                    entry.resource_type_filter,
                    entry.resource_name_filter.as_ref(),
                    entry.pattern_type_filter,
                ),
                (entry.principal_filter.as_ref(), entry.host_filter.as_ref()),
                (entry.operation, entry.permission_type),
            )
        })
        .collect();
    let valid: Vec<AclFilter> = filters
        .iter()
        .filter_map(|f| f.as_ref().ok().cloned())
        .collect();
    let mut removed = service.delete_acls(ctx, valid).await.map(Vec::into_iter);
    let results = filters
        .into_iter()
        .map(|filter| match (filter, &mut removed) {
            (Err(reason), _) => DeleteAclsFilterResult::default()
                .with_error_code(INVALID_REQUEST)
                .with_error_message(Some(StrBytes::from_static_str(reason))),
            (Ok(_), Err(error)) => DeleteAclsFilterResult::default()
                .with_error_code(code_of(error))
                .with_error_message(Some(StrBytes::from_string(error.message.clone()))),
            (Ok(_), Ok(each)) => DeleteAclsFilterResult::default().with_matching_acls(
                each.next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|rule| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(resource_type_code(rule.resource_type))
                            .with_resource_name(StrBytes::from_string(rule.name))
                            .with_pattern_type(pattern_type_code(rule.pattern_type))
                            .with_principal(StrBytes::from_string(rule.principal))
                            .with_host(StrBytes::from_string(rule.host))
                            .with_operation(operation_code(rule.operation))
                            .with_permission_type(permission_code(rule.permission))
                    })
                    .collect(),
            ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
