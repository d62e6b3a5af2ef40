//! Requests from a broker to the active controller (CreateTopics, DeleteTopics,
//! CreatePartitions, …), over the controller listener with Kafka's own messages. Tries the voter
//! the quorum names as leader first, then the others, until one answers as the active
//! controller or the deadline passes. Owns no state beyond the voter addresses and a hint.

use crate::model::NodeId;
use crate::runtime;
use crate::wire::call_once;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const NOT_CONTROLLER: i16 = ResponseError::NotController.code();
/// Largest controller response read.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

#[derive(Clone)]
pub struct ControllerClient {
    voters: Arc<BTreeMap<NodeId, (String, u16)>>,
    /// The quorum leader as this node last saw it (-1 unknown), updated by the quorum observer.
    leader_hint: Arc<AtomicI32>,
    client_id: String,
    connector: crate::wire::Connector,
}

/// Whether a controller's answer says "not the active controller".
fn not_controller(response: &ResponseKind) -> bool {
    match response {
        ResponseKind::CreateTopics(r) => r.topics.iter().any(|t| t.error_code == NOT_CONTROLLER),
        ResponseKind::DeleteTopics(r) => r.responses.iter().any(|t| t.error_code == NOT_CONTROLLER),
        ResponseKind::CreatePartitions(r) => {
            r.results.iter().any(|t| t.error_code == NOT_CONTROLLER)
        }
        ResponseKind::BrokerRegistration(r) => r.error_code == NOT_CONTROLLER,
        ResponseKind::BrokerHeartbeat(r) => r.error_code == NOT_CONTROLLER,
        ResponseKind::AllocateProducerIds(r) => r.error_code == NOT_CONTROLLER,
        ResponseKind::AlterPartition(r) => r.error_code == NOT_CONTROLLER,
        ResponseKind::ElectLeaders(r) => r.error_code == NOT_CONTROLLER,
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter().any(|t| t.error_code == NOT_CONTROLLER)
        }
        ResponseKind::AlterUserScramCredentials(r) => {
            r.results.iter().any(|t| t.error_code == NOT_CONTROLLER)
        }
        ResponseKind::CreateAcls(r) => r.results.iter().any(|t| t.error_code == NOT_CONTROLLER),
        ResponseKind::DeleteAcls(r) => r
            .filter_results
            .iter()
            .any(|t| t.error_code == NOT_CONTROLLER),
        // A quorum follower's own view: try the others for the leader's.
        ResponseKind::DescribeQuorum(r) => r.topics.iter().any(|t| {
            t.partitions
                .iter()
                .any(|p| p.error_code == ResponseError::NotLeaderOrFollower.code())
        }),
        _ => false,
    }
}

impl ControllerClient {
    pub fn new(
        voters: BTreeMap<NodeId, (String, u16)>,
        leader_hint: Arc<AtomicI32>,
        node_id: NodeId,
        connector: crate::wire::Connector,
    ) -> ControllerClient {
        ControllerClient {
            voters: Arc::new(voters),
            leader_hint,
            client_id: format!("ketch-broker-{}", node_id.0),
            connector,
        }
    }

    async fn call_one(
        &self,
        addr: &str,
        api_key: ApiKey,
        version: i16,
        body: &RequestKind,
    ) -> Option<ResponseKind> {
        call_once(
            &self.connector,
            addr,
            &self.client_id,
            api_key,
            version,
            body,
            MAX_RESPONSE_BYTES,
            Duration::from_secs(5),
        )
        .await
    }

    /// Sends `body` to the active controller; `None` if none answered within `timeout`.
    pub async fn call(
        &self,
        api_key: ApiKey,
        version: i16,
        body: &RequestKind,
        timeout: Duration,
    ) -> Option<ResponseKind> {
        let attempts = async {
            loop {
                let hint = NodeId(self.leader_hint.load(Ordering::Relaxed));
                let mut order: Vec<&(String, u16)> = self.voters.get(&hint).into_iter().collect();
                order.extend(
                    self.voters
                        .iter()
                        .filter(|(id, _)| **id != hint)
                        .map(|(_, a)| a),
                );
                for (host, port) in order {
                    let addr = format!("{host}:{port}");
                    if let Some(r) = self.call_one(&addr, api_key, version, body).await {
                        if !not_controller(&r) {
                            return r;
                        }
                    }
                }
                runtime::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(timeout, attempts).await.ok()
    }
}
