//! A broker's life with the controller (KIP-631): register (BrokerRegistration) with whichever
//! voter is the active controller, then heartbeat (BrokerHeartbeat) every interval with how far
//! this node has replayed the metadata log, so the controller unfences it once caught up. A
//! stale broker epoch (the controller forgot it, or fenced and re-registered it) starts over.
//! Heartbeats keep one connection open to the controller that answers them, so the controller
//! notices a dead broker from the connection closing, not only from a silent session.

use crate::controller::Endpoint;
use crate::model::NodeId;
use crate::runtime;
use crate::wire::call_once;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    broker_registration_request, ApiKey, BrokerHeartbeatRequest, BrokerId,
    BrokerRegistrationRequest, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const NOT_CONTROLLER: i16 = ResponseError::NotController.code();
const STALE_BROKER_EPOCH: i16 = ResponseError::StaleBrokerEpoch.code();

#[derive(Clone)]
pub struct LifecycleConfig {
    pub node_id: NodeId,
    pub cluster_id: String,
    pub voters: BTreeMap<NodeId, (String, u16)>,
    pub endpoints: Vec<Endpoint>,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// Changes at every process start.
    pub incarnation_id: uuid::Uuid,
    /// How to reach the controllers' listener.
    pub connector: crate::wire::Connector,
}

async fn call(
    connector: &crate::wire::Connector,
    addr: &str,
    api_key: ApiKey,
    version: i16,
    body: &RequestKind,
) -> Option<ResponseKind> {
    call_once(
        connector,
        addr,
        "ketch-broker-lifecycle",
        api_key,
        version,
        body,
        1 << 20,
        Duration::from_secs(5),
    )
    .await
}

/// Controlled shutdown (KIP-631): a heartbeat with `want_shut_down` makes the active controller
/// fence this broker and move its leaderships now, so a restart registers again at once instead
/// of waiting out the old session. Best effort, within `timeout`.
pub async fn controlled_shutdown(config: &LifecycleConfig, broker_epoch: i64, timeout: Duration) {
    let heartbeat = RequestKind::BrokerHeartbeat(
        BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(config.node_id.0))
            .with_broker_epoch(broker_epoch)
            .with_want_fence(true)
            .with_want_shut_down(true),
    );
    let attempt = async {
        loop {
            for (h, p) in config.voters.values() {
                if let Some(ResponseKind::BrokerHeartbeat(r)) = call(
                    &config.connector,
                    &format!("{h}:{p}"),
                    ApiKey::BrokerHeartbeat,
                    1,
                    &heartbeat,
                )
                .await
                {
                    if r.error_code == 0 {
                        tracing::info!("controlled shutdown: fenced by the controller");
                        return;
                    }
                }
            }
            runtime::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(timeout, attempt).await.is_err() {
        tracing::warn!("controlled shutdown: no active controller answered");
    }
}

/// Runs until the task is dropped. `metadata_offset` is the last metadata offset this node has
/// replayed (-1 before any).
pub async fn run(config: LifecycleConfig, metadata_offset: Arc<AtomicI64>) {
    let addrs: Vec<String> = config
        .voters
        .values()
        .map(|(h, p)| format!("{h}:{p}"))
        .collect();
    let interval = Duration::from_millis(config.heartbeat_interval_ms.max(10));
    let mut preferred = 0usize;
    loop {
        // Register with the active controller, whichever voter that is.
        let registration = RequestKind::BrokerRegistration(
            BrokerRegistrationRequest::default()
                .with_broker_id(BrokerId(config.node_id.0))
                .with_cluster_id(StrBytes::from_string(config.cluster_id.clone()))
                .with_incarnation_id(config.incarnation_id)
                // No `broker.rack`: null, as Kafka sends (the codec's default is "").
                .with_rack(None)
                .with_listeners(
                    config
                        .endpoints
                        .iter()
                        .map(|e| {
                            broker_registration_request::Listener::default()
                                .with_name(StrBytes::from_string(e.name.clone()))
                                .with_host(StrBytes::from_string(e.host.clone()))
                                .with_port(e.port)
                        })
                        .collect(),
                ),
        );
        let mut broker_epoch = None;
        // Retry soon at first (the quorum may be electing its first leader right now), then
        // back off to half a second.
        let mut backoff = Duration::from_millis(20);
        while broker_epoch.is_none() {
            for i in 0..addrs.len() {
                let at = (preferred + i) % addrs.len();
                if let Some(ResponseKind::BrokerRegistration(r)) = call(
                    &config.connector,
                    &addrs[at],
                    ApiKey::BrokerRegistration,
                    2,
                    &registration,
                )
                .await
                {
                    match r.error_code {
                        0 => {
                            preferred = at;
                            broker_epoch = Some(r.broker_epoch);
                            tracing::info!(
                                broker_epoch = r.broker_epoch,
                                "registered with the controller"
                            );
                            break;
                        }
                        NOT_CONTROLLER => {}
                        code => tracing::warn!(code, "broker registration refused"),
                    }
                }
            }
            if broker_epoch.is_none() {
                runtime::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        }
        let Some(broker_epoch) = broker_epoch else {
            continue;
        };
        let mut fenced = true;
        // Heartbeat until the epoch goes stale.
        // Heartbeats go over one kept connection: when this process dies, the controller sees
        // the connection close and fences the broker at once instead of a session later.
        let mut session =
            crate::wire::Session::new("ketch-broker-lifecycle", 1 << 20, config.connector.clone());
        'heartbeats: loop {
            let heartbeat = RequestKind::BrokerHeartbeat(
                BrokerHeartbeatRequest::default()
                    .with_broker_id(BrokerId(config.node_id.0))
                    .with_broker_epoch(broker_epoch)
                    .with_current_metadata_offset(metadata_offset.load(Ordering::Relaxed)),
            );
            for i in 0..addrs.len() {
                let at = (preferred + i) % addrs.len();
                // A kept connection that failed (the controller restarted, a reset) is tried
                // once more on a new one at once, briefly: the controller waits a moment for
                // that before it takes the closed connection for this broker's death.
                let kept = session.is_connected_to(&addrs[at]);
                let mut answer = None;
                let timeouts: &[u64] = if kept { &[5000, 1000] } else { &[5000] };
                for timeout_ms in timeouts {
                    answer = session
                        .call(
                            &addrs[at],
                            ApiKey::BrokerHeartbeat,
                            1,
                            &heartbeat,
                            Duration::from_millis(*timeout_ms),
                        )
                        .await;
                    if answer.is_some() {
                        break;
                    }
                }
                let Some(ResponseKind::BrokerHeartbeat(r)) = answer else {
                    continue;
                };
                match r.error_code {
                    0 => {
                        preferred = at;
                        if r.is_fenced != fenced {
                            fenced = r.is_fenced;
                            tracing::info!(fenced, "broker state from the controller");
                        }
                        break;
                    }
                    STALE_BROKER_EPOCH => {
                        tracing::warn!(broker_epoch, "broker epoch is stale: registering again");
                        break 'heartbeats;
                    }
                    _ => {}
                }
            }
            // Fenced and waiting to catch up: ask again soon rather than a whole interval later.
            runtime::sleep(if fenced {
                interval.min(Duration::from_millis(50))
            } else {
                interval
            })
            .await;
        }
    }
}
