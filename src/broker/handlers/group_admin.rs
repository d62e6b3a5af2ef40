//! ListGroups (16), DescribeGroups (15), DeleteGroups (42): the groups this broker
//! coordinates, as `kafka-consumer-groups.sh` shows and deletes them.

use crate::broker::context::Broker;
use crate::group::coordinator::NONE;
use kafka_protocol::messages::{
    delete_groups_response::DeletableGroupResult,
    describe_groups_response::{DescribedGroup, DescribedGroupMember},
    list_groups_response::ListedGroup,
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;

pub async fn list(broker: &Broker, r: &ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let inner = broker.groups.lock().await;
    let groups = inner
        .core
        .groups()
        .filter(|g| {
            r.states_filter.is_empty()
                || r.states_filter
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(g.state.name()))
        })
        .filter(|_| {
            r.types_filter.is_empty()
                || r.types_filter
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case("classic"))
        })
        .map(|g| {
            let mut listed = ListedGroup::default()
                .with_group_id(kafka_protocol::messages::GroupId(StrBytes::from_string(
                    g.group_id.clone(),
                )))
                .with_protocol_type(StrBytes::from_string(
                    g.protocol_type.clone().unwrap_or_default(),
                ));
            if version >= 4 {
                listed = listed.with_group_state(StrBytes::from_static_str(g.state.name()));
            }
            if version >= 5 {
                listed = listed.with_group_type(StrBytes::from_static_str("classic"));
            }
            listed
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe(
    broker: &Broker,
    r: &DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut out = Vec::new();
    for id in &r.groups {
        let described = DescribedGroup::default().with_group_id(id.clone());
        let c = match broker.groups.coordinate(broker, &id.0).await {
            Ok(c) => c,
            Err(code) => {
                out.push(described.with_error_code(code));
                continue;
            }
        };
        let Some(g) = c.inner.core.group(&id.0) else {
            // Kafka describes an unknown group as Dead with no members.
            out.push(described.with_group_state(StrBytes::from_static_str("Dead")));
            continue;
        };
        let protocol = g.protocol.clone().unwrap_or_default();
        let members = g
            .members
            .values()
            .map(|m| {
                DescribedGroupMember::default()
                    .with_member_id(StrBytes::from_string(m.member_id.clone()))
                    .with_group_instance_id(if version >= 4 {
                        m.group_instance_id.clone().map(StrBytes::from_string)
                    } else {
                        None
                    })
                    .with_client_id(StrBytes::from_string(m.client_id.clone()))
                    .with_client_host(StrBytes::from_string(m.client_host.clone()))
                    .with_member_metadata(
                        m.protocols
                            .iter()
                            .find(|p| p.name == protocol)
                            .map(|p| p.metadata.clone())
                            .unwrap_or_default()
                            .into(),
                    )
                    .with_member_assignment(m.assignment.clone().into())
            })
            .collect();
        out.push(
            described
                .with_error_code(NONE)
                .with_group_state(StrBytes::from_static_str(g.state.name()))
                .with_protocol_type(StrBytes::from_string(
                    g.protocol_type.clone().unwrap_or_default(),
                ))
                .with_protocol_data(StrBytes::from_string(protocol))
                .with_members(members),
        );
    }
    DescribeGroupsResponse::default().with_groups(out)
}

pub async fn delete(broker: &Broker, r: &DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for id in &r.groups_names {
        let code = match broker.groups.coordinate(broker, &id.0).await {
            Ok(mut c) => {
                let (code, writes) = c.inner.core.delete_group(&id.0);
                match broker.groups.append(broker, &mut c.inner, &writes).await {
                    Ok(()) => code,
                    Err(e) => e.code(),
                }
            }
            Err(code) => code,
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
