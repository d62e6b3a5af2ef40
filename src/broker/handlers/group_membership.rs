//! JoinGroup (11), SyncGroup (14), Heartbeat (12), LeaveGroup (13): the classic rebalance
//! protocol, decided by the coordinator core in `group/`. Join and Sync may wait (parked) until
//! the rebalance moves on; the wait ends with the core's answer, or NOT_COORDINATOR if the
//! group's partition moves away meanwhile.

use super::super::groups::{Groups, NOT_COORDINATOR};
use crate::broker::context::{Broker, Connection};
use crate::group::coordinator::{JoinRequest, Protocol, Reply, SyncRequest};
use kafka_protocol::messages::{
    join_group_response::JoinGroupResponseMember, leave_group_response::MemberResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

fn join_error(code: i16, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
}

pub async fn join(
    broker: &Broker,
    conn: &Connection,
    client_id: &str,
    r: &JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let group_id = r.group_id.0.to_string();
    let request = JoinRequest {
        group_id: group_id.clone(),
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client_id.to_string(),
        client_host: format!("/{}", conn.ip()),
        session_timeout_ms: r.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        },
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata.to_vec(),
            })
            .collect(),
        require_known_member_id: version >= 4,
    };
    let answer = {
        let mut c = match broker.groups.coordinate(broker, &group_id).await {
            Ok(c) => c,
            Err(code) => return join_error(code, &r.member_id),
        };
        let token = broker.groups.token();
        let answer = Groups::park(&mut c.inner, token);
        let now = broker.clock.monotonic_ms();
        let fx = c.inner.core.join(now, token, request);
        broker.groups.apply(broker, &mut c.inner, fx).await;
        answer
    };
    let Ok(Reply::Join(j)) = answer.await else {
        return join_error(NOT_COORDINATOR, &r.member_id);
    };
    // Fields newer than the request's version keep their defaults (the encoder insists).
    JoinGroupResponse::default()
        .with_error_code(j.error)
        .with_generation_id(j.generation_id)
        .with_protocol_type(if version >= 7 {
            j.protocol_type.map(StrBytes::from_string)
        } else {
            None
        })
        .with_protocol_name(if version >= 7 {
            j.protocol_name.map(StrBytes::from_string)
        } else {
            Some(StrBytes::from_string(j.protocol_name.unwrap_or_default()))
        })
        .with_leader(StrBytes::from_string(j.leader))
        .with_member_id(StrBytes::from_string(j.member_id))
        .with_members(
            j.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(if version >= 5 {
                            m.group_instance_id.map(StrBytes::from_string)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata.into())
                })
                .collect(),
        )
}

pub async fn sync(broker: &Broker, r: &SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let group_id = r.group_id.0.to_string();
    let request = SyncRequest {
        group_id: group_id.clone(),
        generation_id: r.generation_id,
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: r.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: r.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: r
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.to_vec()))
            .collect(),
    };
    let answer = {
        let mut c = match broker.groups.coordinate(broker, &group_id).await {
            Ok(c) => c,
            Err(code) => return SyncGroupResponse::default().with_error_code(code),
        };
        let token = broker.groups.token();
        let answer = Groups::park(&mut c.inner, token);
        let now = broker.clock.monotonic_ms();
        let fx = c.inner.core.sync(now, token, request);
        broker.groups.apply(broker, &mut c.inner, fx).await;
        answer
    };
    let Ok(Reply::Sync(s)) = answer.await else {
        return SyncGroupResponse::default().with_error_code(NOT_COORDINATOR);
    };
    SyncGroupResponse::default()
        .with_error_code(s.error)
        .with_protocol_type(if version >= 5 {
            s.protocol_type.map(StrBytes::from_string)
        } else {
            None
        })
        .with_protocol_name(if version >= 5 {
            s.protocol_name.map(StrBytes::from_string)
        } else {
            None
        })
        .with_assignment(s.assignment.into())
}

pub async fn heartbeat(broker: &Broker, r: &HeartbeatRequest) -> HeartbeatResponse {
    let group_id = r.group_id.0.to_string();
    let code = match broker.groups.coordinate(broker, &group_id).await {
        Ok(mut c) => c.inner.core.heartbeat(
            broker.clock.monotonic_ms(),
            &group_id,
            r.generation_id,
            &r.member_id,
            r.group_instance_id.as_deref(),
        ),
        Err(code) => code,
    };
    HeartbeatResponse::default().with_error_code(code)
}

pub async fn leave(broker: &Broker, r: &LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group_id = r.group_id.0.to_string();
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        r.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(r.member_id.to_string(), None)]
    };
    let mut c = match broker.groups.coordinate(broker, &group_id).await {
        Ok(c) => c,
        Err(code) => return LeaveGroupResponse::default().with_error_code(code),
    };
    let (top, errors, fx) = c
        .inner
        .core
        .leave(broker.clock.monotonic_ms(), &group_id, &members);
    broker.groups.apply(broker, &mut c.inner, fx).await;
    let mut response = LeaveGroupResponse::default();
    if version >= 3 {
        response = response.with_members(
            members
                .into_iter()
                .zip(errors)
                .map(|((id, instance), code)| {
                    MemberResponse::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_group_instance_id(instance.map(StrBytes::from_string))
                        .with_error_code(code)
                })
                .collect(),
        );
    } else {
        response = response.with_error_code(top);
    }
    response
}
