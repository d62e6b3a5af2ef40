//! One handler per Kafka API the client listener serves. [`supported`] is the single table of
//! what is implemented: ApiVersions (answered by [`crate::wire`] from this table, KIP-511
//! fallback included) advertises exactly it, and the decoder refuses anything else. Handlers
//! depend on [`super::context`], never on the listener; they turn internal errors into Kafka
//! error codes and never panic on input.

pub mod acls;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod delete_records;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_transactions;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod group_admin;
pub mod group_membership;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod offsets;
pub mod produce;
pub mod topics;
pub mod txn_offset_commit;
pub mod user_scram;
pub mod write_txn_markers;

use super::context::{Broker, Connection};
use crate::protocol::frame::Request;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

/// The versions the client listener implements for each API key.
pub fn supported(api_key: ApiKey) -> Option<(i16, i16)> {
    Some(match api_key {
        ApiKey::ApiVersions => (0, 4),
        ApiKey::Metadata => (1, 12),
        ApiKey::Produce => (3, 11),
        ApiKey::Fetch => (4, 12),
        ApiKey::ListOffsets => (1, 8),
        ApiKey::OffsetForLeaderEpoch => (2, 4),
        ApiKey::CreateTopics => (2, 7),
        ApiKey::DeleteTopics => (1, 6),
        ApiKey::CreatePartitions => (0, 3),
        ApiKey::DescribeCluster => (0, 1),
        ApiKey::ElectLeaders => (0, 2),
        ApiKey::DescribeConfigs => (1, 4),
        ApiKey::IncrementalAlterConfigs => (0, 1),
        ApiKey::DescribeQuorum => (0, 2),
        ApiKey::DescribeLogDirs => (1, 4),
        ApiKey::DeleteRecords => (0, 2),
        ApiKey::InitProducerId => (0, 4),
        ApiKey::FindCoordinator => (0, 4),
        ApiKey::JoinGroup => (0, 9),
        ApiKey::SyncGroup => (0, 5),
        ApiKey::Heartbeat => (0, 4),
        ApiKey::LeaveGroup => (0, 5),
        ApiKey::OffsetCommit => (2, 9),
        ApiKey::OffsetFetch => (1, 9),
        ApiKey::OffsetDelete => (0, 0),
        ApiKey::ListGroups => (0, 5),
        ApiKey::DescribeGroups => (0, 5),
        ApiKey::DeleteGroups => (0, 2),
        ApiKey::AddPartitionsToTxn => (0, 4),
        ApiKey::AddOffsetsToTxn => (0, 3),
        ApiKey::EndTxn => (0, 3),
        ApiKey::TxnOffsetCommit => (0, 3),
        ApiKey::WriteTxnMarkers => (1, 1),
        ApiKey::DescribeProducers => (0, 0),
        ApiKey::DescribeTransactions => (0, 0),
        ApiKey::ListTransactions => (0, 1),
        ApiKey::DescribeUserScramCredentials => (0, 0),
        ApiKey::AlterUserScramCredentials => (0, 0),
        ApiKey::DescribeAcls => (1, 3),
        ApiKey::CreateAcls => (1, 3),
        ApiKey::DeleteAcls => (1, 3),
        _ => return None,
    })
}

/// Answers one request; `Ok(None)` when the API sends no answer (Produce with acks=0), `Err`
/// when the connection must close (a failed acks=0 Produce).
pub async fn handle(
    broker: &Broker,
    conn: &Connection,
    request: &Request,
) -> Result<Option<ResponseKind>, String> {
    let version = request.version;
    if let Some(refused) = super::authz::gate(broker, conn, &request.body, version) {
        return Ok(Some(refused));
    }
    let answer = dispatch(broker, conn, request).await?;
    Ok(answer.map(|mut a| {
        super::authz::filter_response(broker, conn, &request.body, &mut a);
        a
    }))
}

async fn dispatch(
    broker: &Broker,
    conn: &Connection,
    request: &Request,
) -> Result<Option<ResponseKind>, String> {
    let version = request.version;
    Ok(Some(match &request.body {
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(metadata::handle(broker, conn, r, version).await)
        }
        RequestKind::Produce(r) => {
            return produce::handle(broker, conn, r, version)
                .await
                .map(|answer| answer.map(ResponseKind::Produce))
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(broker, conn, r, version).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, conn, r, version))
        }
        RequestKind::CreateTopics(_)
        | RequestKind::DeleteTopics(_)
        | RequestKind::CreatePartitions(_)
        | RequestKind::IncrementalAlterConfigs(_)
        | RequestKind::AlterUserScramCredentials(_)
        | RequestKind::CreateAcls(_)
        | RequestKind::DeleteAcls(_)
        | RequestKind::ElectLeaders(_) => topics::handle(broker, conn, request).await,
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(acls::describe(broker, conn, r)),
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(user_scram::describe(broker, r))
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(describe_log_dirs::handle(broker, r))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(broker, conn, r).await)
        }
        // As Kafka's brokers: forwarded to the quorum, the leader's answer relayed.
        RequestKind::DescribeQuorum(_) => {
            match broker
                .controller
                .call(
                    ApiKey::DescribeQuorum,
                    version,
                    &request.body,
                    std::time::Duration::from_secs(10),
                )
                .await
            {
                Some(answer @ ResponseKind::DescribeQuorum(_)) => answer,
                _ => ResponseKind::DescribeQuorum(
                    kafka_protocol::messages::DescribeQuorumResponse::default()
                        .with_error_code(
                            kafka_protocol::error::ResponseError::RequestTimedOut.code(),
                        )
                        // error_message exists from v2: the encoder refuses it before.
                        .with_error_message((version >= 2).then(|| {
                            kafka_protocol::protocol::StrBytes::from_static_str(
                                "no quorum leader answered DescribeQuorum",
                            )
                        })),
                ),
            }
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(broker, r))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(broker, conn, r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(broker, conn, r, version).await)
        }
        RequestKind::JoinGroup(r) => {
            let client_id = request.header.client_id.as_deref().unwrap_or("");
            ResponseKind::JoinGroup(
                group_membership::join(broker, conn, client_id, r, version).await,
            )
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(group_membership::sync(broker, r, version).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(group_membership::heartbeat(broker, r).await)
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(group_membership::leave(broker, r, version).await)
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(offsets::commit(broker, conn, r, version).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offsets::fetch(broker, r, version).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(offsets::delete(broker, r).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(group_admin::list(broker, r, version).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(group_admin::describe(broker, r, version).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(group_admin::delete(broker, r).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, r).await)
        }
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(
            add_partitions_to_txn::handle(broker, r, version).await,
        ),
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(broker, r).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(end_txn::handle(broker, r).await),
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn_offset_commit::handle(broker, r, version).await)
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(write_txn_markers::handle(broker, r).await)
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(describe_producers::handle(broker, r))
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(describe_transactions::describe(broker, r).await)
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(describe_transactions::list(broker, r, version).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(broker, r, version))
        }
        // The decoder refuses what `supported` does not list, so this is unreachable in
        // practice; answering nothing closes no connection and confuses no one.
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_what_the_issue_requires() {
        let r = crate::wire::api_versions(supported, 0);
        let range = |k: ApiKey| {
            r.api_keys
                .iter()
                .find(|v| v.api_key == k as i16)
                .map(|v| (v.min_version, v.max_version))
        };
        assert_eq!(range(ApiKey::ApiVersions), Some((0, 4)));
        assert_eq!(range(ApiKey::Produce), Some((3, 11)));
        assert_eq!(range(ApiKey::Fetch), Some((4, 12)));
        assert_eq!(range(ApiKey::Metadata), Some((1, 12)));
        // Quorum-internal APIs are the controller listener's, never advertised to clients.
        assert_eq!(range(ApiKey::Vote), None);
    }
}
