//! What a handler may use: the [`Broker`] (its configuration, the committed metadata image,
//! the partitions, the group coordinator, the controller client, the clock) and the
//! [`Connection`] a request came in on. Handlers depend on this module, never on the listener
//! that runs them (`server`). Owns no tasks and no sockets.

use super::controller_client::ControllerClient;
use super::groups::Groups;
use super::partitions::{Partition, PartitionError, Partitions};
use super::transactions::Transactions;
use crate::controller::MetadataImage;
use crate::model::config::Listener;
use crate::model::TopicPartition;
use crate::runtime::Clock;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What the broker's handlers need to know of its configuration.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub cluster_id: String,
    /// The client listeners to bind (the controller listener is the quorum's).
    pub listeners: Vec<Listener>,
    pub auto_create_topics: bool,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    pub log_retention_check_interval_ms: u64,
    pub log_flush_interval_ms: Option<u64>,
    /// `inter.broker.listener.name`: the endpoint followers fetch from leaders on.
    pub inter_broker_listener_name: String,
    /// How each client listener secures its connections (TLS, SASL), by name.
    pub listener_security: std::collections::BTreeMap<String, crate::wire::ListenerSecurity>,
    /// How this broker reaches the inter-broker listener of others (replica fetchers,
    /// transaction markers and verification).
    pub inter_broker: crate::wire::Connector,
    /// The authorizer's settings when `authorizer.class.name` is set; `None`: no
    /// authorization.
    pub authorizer: Option<crate::security::acl::AuthorizerConfig>,
    /// `offsets.topic.replication.factor` (at most the live brokers when the topic is made).
    pub offsets_topic_replication_factor: i16,
    /// `transaction.state.log.replication.factor` and `.min.isr`, for creating the state topic.
    pub transaction_state_replication_factor: i16,
    pub transaction_state_min_isr: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub transaction_abort_check_interval_ms: u64,
    /// `transaction.partition.verification.enable` (KIP-890).
    pub transaction_verification: bool,
    /// `log.dirs`, for DescribeLogDirs.
    pub log_dirs: Vec<std::path::PathBuf>,
    /// Every broker setting as `server.properties` gave it or its default, for DescribeConfigs.
    pub described: Vec<(String, String, bool)>,
    /// The log cleaner's settings (`log.cleaner.*`).
    pub cleaner: crate::model::config::CleanerSettings,
    /// Planted bugs (simulator only): `commit_before_append`.
    pub bugs: crate::model::bugs::ClusterBugs,
}

/// Everything a handler may use.
pub struct Broker {
    pub config: BrokerConfig,
    pub image: watch::Receiver<Arc<MetadataImage>>,
    pub partitions: Arc<Partitions>,
    pub controller: ControllerClient,
    pub clock: Clock,
    pub groups: Groups,
    pub transactions: Transactions,
    /// Idempotent producer ids this broker may hand out.
    pub producer_ids: tokio::sync::Mutex<ProducerIdBlock>,
    /// Counters the handlers bump (`metrics.listener` set), else `None`.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// One client connection: the listener it came in on (Metadata answers with each broker's
/// endpoint of that name) and the client's address.
pub use crate::wire::Peer as Connection;

impl Broker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: BrokerConfig,
        image: watch::Receiver<Arc<MetadataImage>>,
        partitions: Arc<Partitions>,
        controller: ControllerClient,
        clock: Clock,
        groups: Groups,
        transactions: Transactions,
        metrics: Option<Arc<crate::metrics::Metrics>>,
    ) -> Broker {
        Broker {
            config,
            image,
            partitions,
            controller,
            clock,
            groups,
            transactions,
            producer_ids: Default::default(),
            metrics,
        }
    }

    /// The committed metadata image as of now.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image.borrow())
    }

    /// This broker's replica of `tp` (opened now if the image just assigned it), or why there
    /// is none: NOT_LEADER_OR_FOLLOWER for a partition that exists elsewhere,
    /// UNKNOWN_TOPIC_OR_PARTITION for one that does not exist.
    pub fn partition(&self, tp: &TopicPartition) -> Result<Arc<Partition>, PartitionError> {
        let image = self.image();
        self.partitions.get_or_apply(tp, &image).ok_or_else(|| {
            let exists = image
                .topic_by_name(&tp.topic)
                .is_some_and(|t| t.partitions.contains_key(&tp.partition));
            if exists {
                PartitionError::NotLeader
            } else {
                PartitionError::UnknownTopicOrPartition
            }
        })
    }

    /// Waits until the image satisfies `done`, at most `timeout`; returns whether it did.
    pub async fn wait_for_image(
        &self,
        timeout: Duration,
        done: impl Fn(&MetadataImage) -> bool,
    ) -> bool {
        let mut rx = self.image.clone();
        let wait = async {
            loop {
                if done(&rx.borrow_and_update()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    // The quorum member stopped: nothing will change any more.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// The idempotent producer ids this broker may hand out: `next..end`, a block the active
/// controller allocated (InitProducerId takes from it).
#[derive(Debug, Default)]
pub struct ProducerIdBlock {
    pub next: i64,
    pub end: i64,
}
