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
use kafka_protocol::error::ResponseError;
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
    /// Brokers' heartbeat connections, to tell the driver when one closes.
    pub heartbeats: std::sync::Mutex<HeartbeatConnections>,
    /// The voters' controller listeners: a follower forwards DescribeQuorum to the leader.
    pub voters: std::collections::BTreeMap<crate::model::NodeId, (String, u16)>,
    /// How to reach them.
    pub connector: crate::wire::Connector,
    /// With `authorizer.class.name` set: its settings and the committed image, whose ACLs
    /// decide (see [`ControllerListener::unauthorized`]).
    pub authorizer: Option<(
        crate::security::acl::AuthorizerConfig,
        tokio::sync::watch::Receiver<std::sync::Arc<crate::controller::MetadataImage>>,
    )>,
}

impl ControllerListener {
    /// Whether the principal may make this request here: the quorum's and the brokers' own
    /// requests (Raft, registration, heartbeats, ISR changes, producer ids) need CLUSTER_ACTION
    /// on the cluster; DescribeQuorum needs DESCRIBE; an administrative request needs
    /// CLUSTER_ACTION (a broker forwarding it, having checked its client) or ALTER on the
    /// cluster (a tool with `--bootstrap-controller`; coarser than a broker's per-resource
    /// check). `None`: allowed; else the operation that was refused.
    fn unauthorized(&self, peer: &Peer, request: &RequestKind) -> Option<&'static str> {
        use crate::security::acl::{authorize, operation as op, resource, Acl, CLUSTER_NAME};
        let (config, image) = self.authorizer.as_ref()?;
        let image = image.borrow().clone();
        let acls: Vec<Acl> = image
            .acls
            .values()
            .filter(|a| a.resource_type == resource::CLUSTER)
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
        let may = |o: i8| {
            authorize(
                config,
                &acls,
                &peer.principal,
                peer.ip(),
                resource::CLUSTER,
                CLUSTER_NAME,
                o,
            )
        };
        match request {
            RequestKind::DescribeQuorum(_) => (!may(op::DESCRIBE)).then_some("DESCRIBE"),
            RequestKind::CreateTopics(_)
            | RequestKind::DeleteTopics(_)
            | RequestKind::CreatePartitions(_)
            | RequestKind::IncrementalAlterConfigs(_)
            | RequestKind::ElectLeaders(_)
            | RequestKind::AlterUserScramCredentials(_)
            | RequestKind::CreateAcls(_)
            | RequestKind::DeleteAcls(_) => {
                (!may(op::CLUSTER_ACTION) && !may(op::ALTER)).then_some("ALTER")
            }
            _ => (!may(op::CLUSTER_ACTION)).then_some("CLUSTER_ACTION"),
        }
    }
}

use crate::wire::NO_FORWARD_CLIENT_ID;

/// How long a closed heartbeat connection waits for the broker to heartbeat on a new one
/// before the driver is told the broker is gone: a live broker that lost its connection (a
/// timeout, a reset) reconnects at once.
pub const HEARTBEAT_RECONNECT_GRACE: Duration = Duration::from_millis(500);

/// Which connection carried each broker's last heartbeat this controller accepted (answered
/// without error: a NOT_CONTROLLER answer says nothing about this controller's session).
#[derive(Default)]
pub struct HeartbeatConnections {
    /// Connection → (broker, broker epoch) of the last accepted heartbeat on it.
    by_connection: std::collections::BTreeMap<String, (i32, i64)>,
    /// Broker → (its connection, a count of its accepted heartbeats).
    latest: std::collections::BTreeMap<i32, (String, u64)>,
}

impl HeartbeatConnections {
    fn accepted(&mut self, connection: &str, broker_id: i32, broker_epoch: i64) {
        self.by_connection
            .insert(connection.to_string(), (broker_id, broker_epoch));
        let count = self.latest.get(&broker_id).map_or(0, |(_, n)| n + 1);
        self.latest
            .insert(broker_id, (connection.to_string(), count));
    }

    /// The connection closed: the broker, its epoch and heartbeat count, if it was the
    /// broker's latest heartbeat connection.
    fn closed(&mut self, connection: &str) -> Option<(i32, i64, u64)> {
        let (broker, epoch) = self.by_connection.remove(connection)?;
        match self.latest.get(&broker) {
            Some((c, n)) if c == connection => Some((broker, epoch, *n)),
            _ => None,
        }
    }

    /// Whether the broker heartbeated since (on another connection).
    fn heartbeated_since(&self, broker_id: i32, count: u64) -> bool {
        self.latest
            .get(&broker_id)
            .is_some_and(|(_, n)| *n != count)
    }
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
            ApiKey::AlterUserScramCredentials => (0, 0),
            ApiKey::CreateAcls => (1, 3),
            ApiKey::DeleteAcls => (1, 3),
            _ => return None,
        })
    }

    async fn handle(&self, peer: &Peer, request: &Request) -> Result<Option<ResponseKind>, String> {
        if let Some(operation) = self.unauthorized(peer, &request.body) {
            let why = format!(
                "{} is not authorized for {operation} on the cluster ({:?})",
                peer.principal, request.api_key
            );
            if let RequestKind::DescribeQuorum(_) = request.body {
                return Ok(Some(ResponseKind::DescribeQuorum(
                    kafka_protocol::messages::DescribeQuorumResponse::default()
                        .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                        // error_message exists from v2: the encoder refuses it before.
                        .with_error_message(
                            (request.version >= 2)
                                .then(|| kafka_protocol::protocol::StrBytes::from_string(why)),
                        ),
                )));
            }
            // What has an error answer gets it; a quorum request's connection is closed.
            return match crate::protocol::responses::refusal(
                &request.body,
                ResponseError::ClusterAuthorizationFailed.code(),
                &why,
            ) {
                Some(answer) => Ok(Some(answer)),
                None => Err(why),
            };
        }
        let inbound = &self.inbound;
        let body = match &request.body {
            RequestKind::DescribeQuorum(_) => {
                let ours = ask(inbound, |reply| Inbound::Describe { reply }).await?;
                // A follower knows only its own view (no follower lags): the leader's answer,
                // when it can be had, is what the tools want.
                let leader = ours
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .find(|p| p.error_code == ResponseError::NotLeaderOrFollower.code())
                    .map(|p| crate::model::NodeId(p.leader_id.0));
                let forwarded = request.header.client_id.as_deref() == Some(NO_FORWARD_CLIENT_ID);
                let target = leader
                    .filter(|_| !forwarded)
                    .and_then(|id| self.voters.get(&id));
                let from_leader = match target {
                    Some((host, port)) => {
                        crate::wire::call_once(
                            &self.connector,
                            &format!("{host}:{port}"),
                            NO_FORWARD_CLIENT_ID,
                            request.api_key,
                            request.version,
                            &request.body,
                            MAX_FRAME_BYTES,
                            REPLY_TIMEOUT,
                        )
                        .await
                    }
                    None => None,
                };
                match from_leader {
                    Some(answer @ ResponseKind::DescribeQuorum(_)) => answer,
                    _ => ResponseKind::DescribeQuorum(ours),
                }
            }
            RequestKind::BrokerHeartbeat(h) => {
                let request = request.body.clone();
                let answer = ask(inbound, |reply| Inbound::Controller { request, reply }).await?;
                if matches!(&answer, ResponseKind::BrokerHeartbeat(r) if r.error_code == 0) {
                    if let Ok(mut hb) = self.heartbeats.lock() {
                        hb.accepted(&peer.addr, h.broker_id.0, h.broker_epoch);
                    }
                }
                answer
            }
            RequestKind::BrokerRegistration(_)
            | RequestKind::CreateTopics(_)
            | RequestKind::DeleteTopics(_)
            | RequestKind::CreatePartitions(_)
            | RequestKind::AllocateProducerIds(_)
            | RequestKind::AlterPartition(_)
            | RequestKind::ElectLeaders(_)
            | RequestKind::IncrementalAlterConfigs(_)
            | RequestKind::AlterUserScramCredentials(_)
            | RequestKind::CreateAcls(_)
            | RequestKind::DeleteAcls(_) => {
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

    /// A broker's heartbeat connection closed and no heartbeat came on another one within
    /// [`HEARTBEAT_RECONNECT_GRACE`]: the broker process is most likely gone (the kernel closes
    /// a dead process's sockets), so the driver is told now rather than after
    /// `broker.session.timeout.ms`. A paused or partitioned broker keeps its connection open;
    /// its session expires as before.
    async fn closed(&self, peer: &Peer) {
        let Some((broker_id, broker_epoch, count)) = self
            .heartbeats
            .lock()
            .ok()
            .and_then(|mut hb| hb.closed(&peer.addr))
        else {
            return;
        };
        crate::runtime::sleep(HEARTBEAT_RECONNECT_GRACE).await;
        let back = self
            .heartbeats
            .lock()
            .map_or(true, |hb| hb.heartbeated_since(broker_id, count));
        if !back {
            let _ = self
                .inbound
                .send(Inbound::BrokerGone {
                    broker_id,
                    broker_epoch,
                    why: "broker's heartbeat connection closed",
                })
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HeartbeatConnections;

    #[test]
    fn only_the_latest_accepted_connection_reports_a_loss() {
        let mut hb = HeartbeatConnections::default();
        hb.accepted("a:1", 1, 10);
        hb.accepted("a:1", 1, 10);
        // The broker moved to a new connection: the old one closing means nothing.
        hb.accepted("a:2", 1, 10);
        assert_eq!(hb.closed("a:1"), None);
        let (broker, epoch, count) = hb.closed("a:2").unwrap();
        assert_eq!((broker, epoch), (1, 10));
        assert!(!hb.heartbeated_since(1, count));
        // It reconnected within the grace period.
        hb.accepted("a:3", 1, 10);
        assert!(hb.heartbeated_since(1, count));
        // A connection that never carried an accepted heartbeat reports nothing.
        assert_eq!(hb.closed("b:1"), None);
    }
}
