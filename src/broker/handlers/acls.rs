//! DescribeAcls (29), from this broker's metadata image; CreateAcls (30) and DeleteAcls (31),
//! decided by the active controller (forwarded, see `topics`). As in Kafka, without an
//! authorizer they answer SECURITY_DISABLED, and they need DESCRIBE (describe) or ALTER
//! (create, delete) on the cluster.

use crate::broker::context::{Broker, Connection};
use crate::security::acl::{operation, Acl, AclFilter};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

pub const SECURITY_DISABLED: i16 = ResponseError::SecurityDisabled.code();
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = ResponseError::ClusterAuthorizationFailed.code();

pub fn describe(
    broker: &Broker,
    conn: &Connection,
    r: &DescribeAclsRequest,
) -> DescribeAclsResponse {
    let refuse = |code: i16, message: &str| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message.to_string())))
    };
    if broker.authorizer().is_none() {
        return refuse(SECURITY_DISABLED, "no authorizer is configured");
    }
    if !broker.may_on_cluster(conn, operation::DESCRIBE) {
        return refuse(
            CLUSTER_AUTHORIZATION_FAILED,
            "DESCRIBE on the cluster is needed",
        );
    }
    let filter = AclFilter {
        resource_type: r.resource_type_filter,
        resource_name: r.resource_name_filter.as_ref().map(|s| s.to_string()),
        pattern_type: r.pattern_type_filter,
        principal: r.principal_filter.as_ref().map(|s| s.to_string()),
        host: r.host_filter.as_ref().map(|s| s.to_string()),
        operation: r.operation,
        permission: r.permission_type,
    };
    let image = broker.image();
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for a in image.acls.values() {
        let acl = Acl {
            resource_type: a.resource_type,
            resource_name: a.resource_name.clone(),
            pattern_type: a.pattern_type,
            principal: a.principal.clone(),
            host: a.host.clone(),
            operation: a.operation,
            permission: a.permission_type,
        };
        if !filter.matches(&acl) {
            continue;
        }
        by_resource
            .entry((a.resource_type, a.resource_name.clone(), a.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(StrBytes::from_string(a.principal.clone()))
                    .with_host(StrBytes::from_string(a.host.clone()))
                    .with_operation(a.operation)
                    .with_permission_type(a.permission_type),
            );
    }
    DescribeAclsResponse::default().with_resources(
        by_resource
            .into_iter()
            .map(|((t, name, p), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(t)
                    .with_resource_name(StrBytes::from_string(name))
                    .with_pattern_type(p)
                    .with_acls(acls)
            })
            .collect(),
    )
}
