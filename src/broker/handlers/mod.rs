//! One handler per Kafka API the client listener serves. [`supported`] is the single table of
//! what is implemented: ApiVersions advertises exactly it, and the decoder refuses anything else.
//! Handlers turn internal errors into Kafka error codes; they never panic on input.

pub mod api_versions;
pub mod describe_cluster;
pub mod describe_configs;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod topics;

use super::client_server::{Broker, Connection};
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
        ApiKey::CreateTopics => (2, 7),
        ApiKey::DeleteTopics => (1, 6),
        ApiKey::CreatePartitions => (0, 3),
        ApiKey::DescribeCluster => (0, 1),
        ApiKey::DescribeConfigs => (1, 4),
        ApiKey::InitProducerId => (0, 4),
        _ => return None,
    })
}

/// Answers one request; `None` when the API sends no answer (Produce with acks=0).
pub async fn handle(broker: &Broker, conn: &Connection, request: &Request) -> Option<ResponseKind> {
    let version = request.version;
    Some(match &request.body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::response(0)),
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(metadata::handle(broker, conn, r, version).await)
        }
        RequestKind::Produce(r) => {
            return produce::handle(broker, r, version)
                .await
                .map(ResponseKind::Produce)
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(broker, r, version).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, r, version))
        }
        RequestKind::CreateTopics(_)
        | RequestKind::DeleteTopics(_)
        | RequestKind::CreatePartitions(_) => topics::handle(broker, request).await,
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(broker, conn, r))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(broker, r, version))
        }
        // The decoder refuses what `supported` does not list, so this is unreachable in
        // practice; answering nothing closes no connection and confuses no one.
        _ => return None,
    })
}
