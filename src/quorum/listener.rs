//! The controller listener (`controller.listener.names`): the quorum's Vote, BeginQuorumEpoch,
//! EndQuorumEpoch, Fetch and FetchSnapshot from other members, DescribeQuorum for the tools, and
//! the controller APIs brokers call (BrokerRegistration, BrokerHeartbeat, topic administration,
//! AllocateProducerIds, AlterPartition). Connections are served by [`crate::wire`]; each decoded request is
//! handed to the member's driver task with a reply slot and answered when the driver fills it.
//! Quorum requests from another cluster are refused here (INCONSISTENT_CLUSTER_ID) and never
//! reach the core. Owns nothing but the channel to the driver.

use super::member::Inbound;
use super::wire::{
    cluster_id_of, inconsistent_cluster_response, request_from_wire, response_to_wire,
};
use crate::protocol::frame::Request;
use crate::wire::{Peer, Service};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Largest frame accepted on the controller listener.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// How long a connection waits for the driver to answer a request before giving up on it.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// The controller listener's service.
pub struct ControllerListener {
    pub inbound: mpsc::Sender<Inbound>,
    pub cluster_id: String,
}

/// Hands a request to the driver and waits for its answer, at most [`REPLY_TIMEOUT`].
async fn ask<T>(
    inbound: &mpsc::Sender<Inbound>,
    make: impl FnOnce(oneshot::Sender<T>) -> Inbound,
) -> Result<T, String> {
    let (reply, answer) = oneshot::channel();
    inbound
        .send(make(reply))
        .await
        .map_err(|_| "the quorum member is stopping")?;
    tokio::time::timeout(REPLY_TIMEOUT, answer)
        .await
        .map_err(|_| "no answer in time")?
        .map_err(|_| "request dropped".to_string())
}

impl Service for ControllerListener {
    fn supported(api_key: ApiKey) -> Option<(i16, i16)> {
        Some(match api_key {
            ApiKey::ApiVersions => (0, 4),
            ApiKey::Vote => (0, 2),
            ApiKey::BeginQuorumEpoch => (0, 1),
            ApiKey::EndQuorumEpoch => (0, 1),
            ApiKey::Fetch => (13, 17),
            ApiKey::FetchSnapshot => (0, 1),
            ApiKey::DescribeQuorum => (0, 2),
            ApiKey::BrokerRegistration => (0, 4),
            ApiKey::BrokerHeartbeat => (0, 1),
            ApiKey::CreateTopics => (2, 7),
            ApiKey::DeleteTopics => (1, 6),
            ApiKey::CreatePartitions => (0, 3),
            ApiKey::AllocateProducerIds => (0, 0),
            ApiKey::AlterPartition => (2, 2),
            ApiKey::ElectLeaders => (0, 2),
            ApiKey::IncrementalAlterConfigs => (0, 1),
            _ => return None,
        })
    }

    async fn handle(
        &self,
        _peer: &Peer,
        request: &Request,
    ) -> Result<Option<ResponseKind>, String> {
        let inbound = &self.inbound;
        let body = match &request.body {
            RequestKind::DescribeQuorum(_) => ResponseKind::DescribeQuorum(
                ask(inbound, |reply| Inbound::Describe { reply }).await?,
            ),
            RequestKind::BrokerRegistration(_)
            | RequestKind::BrokerHeartbeat(_)
            | RequestKind::CreateTopics(_)
            | RequestKind::DeleteTopics(_)
            | RequestKind::CreatePartitions(_)
            | RequestKind::AllocateProducerIds(_)
            | RequestKind::AlterPartition(_)
            | RequestKind::ElectLeaders(_)
            | RequestKind::IncrementalAlterConfigs(_) => {
                let request = request.body.clone();
                ask(inbound, |reply| Inbound::Controller { request, reply }).await?
            }
            other => {
                let (from, message) = request_from_wire(other).map_err(|e| {
                    tracing::warn!("controller listener: bad request: {e}");
                    e
                })?;
                let message = match cluster_id_of(other) {
                    Some(theirs) if theirs != self.cluster_id => {
                        tracing::warn!(
                            from = from.0,
                            theirs,
                            ours = %self.cluster_id,
                            "quorum request from another cluster refused"
                        );
                        inconsistent_cluster_response(&message).ok_or("not a quorum request")?
                    }
                    _ => {
                        ask(inbound, |reply| Inbound::Request {
                            from,
                            message,
                            reply,
                        })
                        .await?
                    }
                };
                response_to_wire(&message).ok_or("the core answered with a request")?
            }
        };
        Ok(Some(body))
    }
}
