//! Authorization of client requests (issue 16): with `authorizer.class.name` set to Kafka's
//! `StandardAuthorizer`, each API checks the operations Kafka's broker checks, against the
//! ACLs in this broker's metadata image, for the connection's principal and host
//! (`security::acl` decides). Without it, everything is allowed, as in Kafka.
//!
//! Owns only the lookup; the handlers decide what to check and what to answer.

use super::context::{Broker, Connection};
use crate::security::acl::{authorize, resource, Acl, AuthorizerConfig, CLUSTER_NAME};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{RequestKind, ResponseKind};

impl Broker {
    /// Whether the client on `conn` may do `op` on resource `name` of `resource_type`.
    pub fn may(&self, conn: &Connection, resource_type: i8, name: &str, op: i8) -> bool {
        let Some(config) = &self.config.authorizer else {
            return true;
        };
        let image = self.image();
        let acls: Vec<Acl> = image
            .acls
            .values()
            .filter(|a| a.resource_type == resource_type)
            .map(|a| Acl {
                resource_type: a.resource_type,
                resource_name: a.resource_name.clone(),
                pattern_type: a.pattern_type,
                principal: a.principal.clone(),
                host: a.host.clone(),
                operation: a.operation,
                permission: a.permission_type,
            })
            .collect();
        let allowed = authorize(
            config,
            &acls,
            &conn.principal,
            conn.ip(),
            resource_type,
            name,
            op,
        );
        if !allowed {
            tracing::debug!(principal = %conn.principal, host = conn.ip(), resource_type, name, op, "not authorized");
        }
        allowed
    }

    /// Whether `op` on the cluster is allowed.
    pub fn may_on_cluster(&self, conn: &Connection, op: i8) -> bool {
        self.may(conn, resource::CLUSTER, CLUSTER_NAME, op)
    }

    /// Whether an authorizer is configured (ACL APIs answer SECURITY_DISABLED without one).
    pub fn authorizer(&self) -> Option<&AuthorizerConfig> {
        self.config.authorizer.as_ref()
    }
}

/// Refuses, whole, a request whose group, transactional id or cluster operation the
/// principal may not use, with the answer Kafka gives (GROUP_AUTHORIZATION_FAILED 30,
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED 53, CLUSTER_AUTHORIZATION_FAILED 31); `None` lets the
/// handler run (which checks topics itself where a request names several).
pub fn gate(
    broker: &Broker,
    conn: &Connection,
    request: &RequestKind,
    version: i16,
) -> Option<ResponseKind> {
    use crate::security::acl::operation as op;
    use kafka_protocol::messages::*;
    broker.authorizer()?;
    let group = |g: &str, o: i8| broker.may(conn, resource::GROUP, g, o);
    let txn = |t: &str| broker.may(conn, resource::TRANSACTIONAL_ID, t, op::WRITE);
    let cluster = |o: i8| broker.may_on_cluster(conn, o);
    const GROUP: i16 = ResponseError::GroupAuthorizationFailed.code();
    const TXN: i16 = ResponseError::TransactionalIdAuthorizationFailed.code();
    const CLUSTER: i16 = ResponseError::ClusterAuthorizationFailed.code();
    Some(match request {
        RequestKind::JoinGroup(r) if !group(&r.group_id, op::READ) => ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(GROUP)
                .with_generation_id(-1),
        ),
        RequestKind::SyncGroup(r) if !group(&r.group_id, op::READ) => {
            ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(GROUP))
        }
        RequestKind::Heartbeat(r) if !group(&r.group_id, op::READ) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(GROUP))
        }
        RequestKind::LeaveGroup(r) if !group(&r.group_id, op::READ) => {
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(GROUP))
        }
        RequestKind::OffsetCommit(r) if !group(&r.group_id, op::READ) => {
            ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        offset_commit_response::OffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        offset_commit_response::OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(GROUP)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ))
        }
        RequestKind::OffsetFetch(r)
            if version < 8 && !group(&r.group_id, op::DESCRIBE) =>
        {
            ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_error_code(GROUP))
        }
        RequestKind::OffsetFetch(r)
            if version >= 8 && r.groups.iter().any(|g| !group(&g.group_id, op::DESCRIBE)) =>
        {
            ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|g| {
                        offset_fetch_response::OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(if group(&g.group_id, op::DESCRIBE) {
                                ResponseError::OperationNotAttempted.code()
                            } else {
                                GROUP
                            })
                    })
                    .collect(),
            ))
        }
        RequestKind::OffsetDelete(r) if !group(&r.group_id, op::DELETE) => {
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(GROUP))
        }
        // And READ on each topic whose offsets go (refused whole otherwise).
        RequestKind::OffsetDelete(r)
            if r.topics.iter().any(|t| !broker.may(conn, resource::TOPIC, &t.name, op::READ)) =>
        {
            ResponseKind::OffsetDelete(
                OffsetDeleteResponse::default()
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
            )
        }
        RequestKind::DescribeGroups(r) if r.groups.iter().any(|g| !group(g, op::DESCRIBE)) => {
            ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|g| {
                        describe_groups_response::DescribedGroup::default()
                            .with_group_id(g.clone())
                            .with_error_code(if group(g, op::DESCRIBE) {
                                ResponseError::OperationNotAttempted.code()
                            } else {
                                GROUP
                            })
                    })
                    .collect(),
            ))
        }
        RequestKind::DeleteGroups(r) if r.groups_names.iter().any(|g| !group(g, op::DELETE)) => {
            ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(
                r.groups_names
                    .iter()
                    .map(|g| {
                        delete_groups_response::DeletableGroupResult::default()
                            .with_group_id(g.clone())
                            .with_error_code(if group(g, op::DELETE) {
                                ResponseError::OperationNotAttempted.code()
                            } else {
                                GROUP
                            })
                    })
                    .collect(),
            ))
        }
        RequestKind::InitProducerId(r) => match &r.transactional_id {
            Some(t) if !txn(t) => ResponseKind::InitProducerId(
                InitProducerIdResponse::default()
                    .with_error_code(TXN)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            ),
            // An idempotent producer: IDEMPOTENT_WRITE on the cluster, or WRITE on some
            // topic (KIP-679).
            None if !cluster(op::IDEMPOTENT_WRITE)
                && !broker
                    .image()
                    .topics
                    .values()
                    .any(|t| broker.may(conn, resource::TOPIC, &t.name, op::WRITE)) =>
            {
                ResponseKind::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_error_code(CLUSTER)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                )
            }
            _ => return None,
        },
        RequestKind::AddPartitionsToTxn(r) if version >= 4 && !cluster(op::CLUSTER_ACTION) => {
            ResponseKind::AddPartitionsToTxn(AddPartitionsToTxnResponse::default().with_error_code(CLUSTER))
        }
        RequestKind::AddPartitionsToTxn(r) if version < 4 => {
            let tid_ok = txn(&r.v3_and_below_transactional_id);
            let topic_ok = |name: &str| broker.may(conn, resource::TOPIC, name, op::WRITE);
            if tid_ok && r.v3_and_below_topics.iter().all(|t| topic_ok(&t.name)) {
                return None;
            }
            ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
                    r.v3_and_below_topics
                        .iter()
                        .map(|t| {
                            let code = if !tid_ok {
                                TXN
                            } else if !topic_ok(&t.name) {
                                ResponseError::TopicAuthorizationFailed.code()
                            } else {
                                ResponseError::OperationNotAttempted.code()
                            };
                            add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                                .with_name(t.name.clone())
                                .with_results_by_partition(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                                                .with_partition_index(*p)
                                                .with_partition_error_code(code)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            )
        }
        RequestKind::AddOffsetsToTxn(r) if !txn(&r.transactional_id) => {
            ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(TXN))
        }
        RequestKind::AddOffsetsToTxn(r) if !group(&r.group_id, op::READ) => {
            ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(GROUP))
        }
        RequestKind::EndTxn(r) if !txn(&r.transactional_id) => {
            ResponseKind::EndTxn(EndTxnResponse::default().with_error_code(TXN))
        }
        RequestKind::TxnOffsetCommit(r)
            if !txn(&r.transactional_id)
                || !group(&r.group_id, op::READ)
                || r.topics.iter().any(|t| !broker.may(conn, resource::TOPIC, &t.name, op::READ)) =>
        {
            let code = if !txn(&r.transactional_id) {
                TXN
            } else if !group(&r.group_id, op::READ) {
                GROUP
            } else {
                ResponseError::TopicAuthorizationFailed.code()
            };
            ResponseKind::TxnOffsetCommit(TxnOffsetCommitResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ))
        }
        RequestKind::WriteTxnMarkers(r) if !cluster(op::CLUSTER_ACTION) => {
            ResponseKind::WriteTxnMarkers(WriteTxnMarkersResponse::default().with_markers(
                r.markers
                    .iter()
                    .map(|m| {
                        write_txn_markers_response::WritableTxnMarkerResult::default()
                            .with_producer_id(m.producer_id)
                            .with_topics(
                                m.topics
                                    .iter()
                                    .map(|t| {
                                        write_txn_markers_response::WritableTxnMarkerTopicResult::default()
                                            .with_name(t.name.clone())
                                            .with_partitions(
                                                t.partition_indexes
                                                    .iter()
                                                    .map(|p| {
                                                        write_txn_markers_response::WritableTxnMarkerPartitionResult::default()
                                                            .with_partition_index(*p)
                                                            .with_error_code(CLUSTER)
                                                    })
                                                    .collect(),
                                            )
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ))
        }
        RequestKind::DescribeCluster(_) if !cluster(op::DESCRIBE) => ResponseKind::DescribeCluster(
            DescribeClusterResponse::default().with_error_code(CLUSTER),
        ),
        RequestKind::DescribeLogDirs(_) if !cluster(op::DESCRIBE) => ResponseKind::DescribeLogDirs(
            DescribeLogDirsResponse::default().with_error_code(CLUSTER),
        ),
        RequestKind::DescribeUserScramCredentials(_) if !cluster(op::DESCRIBE) => {
            ResponseKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsResponse::default().with_error_code(CLUSTER),
            )
        }
        RequestKind::DescribeQuorum(_) if !cluster(op::DESCRIBE) => ResponseKind::DescribeQuorum(
            DescribeQuorumResponse::default().with_error_code(CLUSTER),
        ),
        _ => return None,
    })
}

/// Narrows an answer to what the principal may see, for the APIs Kafka filters after the
/// fact: ListGroups and ListTransactions list only what it may DESCRIBE (all with DESCRIBE on
/// the cluster); DescribeTransactions, DescribeConfigs, DescribeProducers and
/// OffsetForLeaderEpoch answer an authorization error for what it may not see.
pub fn filter_response(
    broker: &Broker,
    conn: &Connection,
    request: &RequestKind,
    response: &mut ResponseKind,
) {
    use crate::security::acl::operation as op;
    if broker.authorizer().is_none() {
        return;
    }
    const TOPIC: i16 = ResponseError::TopicAuthorizationFailed.code();
    let topic = |t: &str, o: i8| broker.may(conn, resource::TOPIC, t, o);
    match response {
        ResponseKind::ListGroups(r) if !broker.may_on_cluster(conn, op::DESCRIBE) => {
            r.groups
                .retain(|g| broker.may(conn, resource::GROUP, &g.group_id, op::DESCRIBE));
        }
        // Offsets of topics the principal may not describe are not told.
        ResponseKind::OffsetFetch(r) => {
            let hide = |name: &str| !topic(name, op::DESCRIBE);
            for t in &mut r.topics {
                if hide(&t.name) {
                    for p in &mut t.partitions {
                        p.committed_offset = -1;
                        p.metadata = None;
                        p.error_code = TOPIC;
                    }
                }
            }
            for g in &mut r.groups {
                for t in &mut g.topics {
                    if hide(&t.name) {
                        for p in &mut t.partitions {
                            p.committed_offset = -1;
                            p.metadata = None;
                            p.error_code = TOPIC;
                        }
                    }
                }
            }
        }
        ResponseKind::ListTransactions(r) => r.transaction_states.retain(|t| {
            broker.may(
                conn,
                resource::TRANSACTIONAL_ID,
                &t.transactional_id,
                op::DESCRIBE,
            )
        }),
        ResponseKind::DescribeTransactions(r) => {
            for t in &mut r.transaction_states {
                if !broker.may(
                    conn,
                    resource::TRANSACTIONAL_ID,
                    &t.transactional_id,
                    op::DESCRIBE,
                ) {
                    *t = kafka_protocol::messages::describe_transactions_response::TransactionState::default()
                        .with_transactional_id(t.transactional_id.clone())
                        .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
                }
            }
        }
        ResponseKind::DescribeConfigs(r) => {
            for res in &mut r.results {
                let allowed = match res.resource_type {
                    2 => topic(&res.resource_name, op::DESCRIBE_CONFIGS),
                    _ => broker.may_on_cluster(conn, op::DESCRIBE_CONFIGS),
                };
                if !allowed {
                    res.configs.clear();
                    res.error_code = if res.resource_type == 2 {
                        TOPIC
                    } else {
                        ResponseError::ClusterAuthorizationFailed.code()
                    };
                    res.error_message = None;
                }
            }
        }
        ResponseKind::DescribeProducers(r) => {
            for t in &mut r.topics {
                if !topic(&t.name, op::READ) {
                    for p in &mut t.partitions {
                        p.active_producers.clear();
                        p.error_code = TOPIC;
                        p.error_message = None;
                    }
                }
            }
        }
        ResponseKind::OffsetForLeaderEpoch(r) => {
            let replica =
                matches!(request, RequestKind::OffsetForLeaderEpoch(q) if q.replica_id.0 >= 0);
            let cluster_ok = replica && broker.may_on_cluster(conn, op::CLUSTER_ACTION);
            for t in &mut r.topics {
                let allowed = if replica {
                    cluster_ok
                } else {
                    topic(&t.topic, op::DESCRIBE)
                };
                if !allowed {
                    for p in &mut t.partitions {
                        p.error_code = if replica {
                            ResponseError::ClusterAuthorizationFailed.code()
                        } else {
                            TOPIC
                        };
                        p.leader_epoch = -1;
                        p.end_offset = -1;
                    }
                }
            }
        }
        _ => {}
    }
}
