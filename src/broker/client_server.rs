//! The Kafka client listener: accepts connections on the broker's listeners, reads frames
//! (length checked against `socket.request.max.bytes` before the body is read), decodes them,
//! hands each to its handler in `handlers/`, and writes the answers back in request order
//! (one request at a time per connection, as Kafka does: a client may pipeline, the answers
//! keep their order). Also runs the broker's background work: following the metadata image,
//! retention, periodic flushes. Owns connections and tasks; partition state is `partitions`'.

use super::controller_client::ControllerClient;
use super::handlers;
use super::net::{read_frame, write_frame};
use super::partitions::Partitions;
use crate::controller::MetadataImage;
use crate::model::config::Listener;
use crate::protocol::frame::{decode_request, encode_response, peek_request, FrameError};
use crate::runtime::{self, net::TcpListener, net::TcpStream, Clock};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

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
    /// `offsets.topic.replication.factor` (at most the live brokers when the topic is made).
    pub offsets_topic_replication_factor: i16,
    /// Every broker setting as `server.properties` gave it or its default, for DescribeConfigs.
    pub described: Vec<(String, String, bool)>,
}

/// Everything a handler may use.
pub struct Broker {
    pub config: BrokerConfig,
    pub image: watch::Receiver<Arc<MetadataImage>>,
    pub partitions: Arc<Partitions>,
    pub controller: ControllerClient,
    pub clock: Clock,
    pub groups: super::groups::Groups,
    /// Idempotent producer ids this broker may hand out.
    pub producer_ids: tokio::sync::Mutex<handlers::init_producer_id::ProducerIdBlock>,
    connections: AtomicUsize,
}

/// One client connection's context.
pub struct Connection {
    /// The listener it came in on: Metadata answers with each broker's endpoint of that name.
    pub listener: String,
    pub peer: String,
}

impl Connection {
    /// The client's address without the port (Kafka's `client_host`, after a '/').
    pub fn peer_ip(&self) -> &str {
        self.peer
            .rsplit_once(':')
            .map_or(self.peer.as_str(), |(ip, _)| ip)
    }
}

impl Broker {
    pub fn new(
        config: BrokerConfig,
        image: watch::Receiver<Arc<MetadataImage>>,
        partitions: Arc<Partitions>,
        controller: ControllerClient,
        clock: Clock,
        groups: super::groups::Groups,
    ) -> Broker {
        Broker {
            config,
            image,
            partitions,
            controller,
            clock,
            groups,
            producer_ids: Default::default(),
            connections: AtomicUsize::new(0),
        }
    }

    /// The committed metadata image as of now.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image.borrow())
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

/// Runs the client listeners and the broker's background tasks until `shutdown` completes;
/// then stops accepting, flushes and checkpoints every log.
pub async fn run(
    broker: Arc<Broker>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let mut tasks = Vec::new();
    for l in &broker.config.listeners {
        let addr = format!(
            "{}:{}",
            if l.host.is_empty() {
                "0.0.0.0"
            } else {
                &l.host
            },
            l.port
        );
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        tracing::info!(%addr, listener = %l.name, "client listener ready");
        tasks.push(runtime::spawn(accept_loop(
            Arc::clone(&broker),
            listener,
            l.name.clone(),
        )));
    }
    // Follow the committed metadata: create, lead and delete partitions as it says.
    {
        let broker = Arc::clone(&broker);
        tasks.push(runtime::spawn(async move {
            let mut rx = broker.image.clone();
            loop {
                let image = Arc::clone(&rx.borrow_and_update());
                broker.partitions.apply_image(&image);
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }));
    }
    {
        // Group sessions and rebalance deadlines.
        let broker = Arc::clone(&broker);
        tasks.push(runtime::spawn(async move {
            loop {
                runtime::sleep(Duration::from_millis(100)).await;
                broker.groups.tick(&broker).await;
            }
        }));
    }
    {
        let broker = Arc::clone(&broker);
        tasks.push(runtime::spawn(async move {
            let every = Duration::from_millis(broker.config.log_retention_check_interval_ms);
            loop {
                runtime::sleep(every).await;
                let now = broker.clock.wall_ms();
                let partitions = Arc::clone(&broker.partitions);
                let _ = runtime::blocking(move || partitions.apply_retention(now)).await;
            }
        }));
    }
    if let Some(ms) = broker.config.log_flush_interval_ms {
        let broker = Arc::clone(&broker);
        tasks.push(runtime::spawn(async move {
            loop {
                runtime::sleep(Duration::from_millis(ms)).await;
                let partitions = Arc::clone(&broker.partitions);
                if let Err(e) = runtime::blocking(move || partitions.flush_all()).await {
                    tracing::error!("flushing partition logs failed: {e}");
                }
            }
        }));
    }
    shutdown.await;
    tracing::info!("broker stopping: no new connections; flushing logs");
    for t in &tasks {
        t.abort();
    }
    broker
        .partitions
        .close_all()
        .map_err(|e| format!("closing partition logs: {e}"))?;
    tracing::info!("broker stopped");
    Ok(())
}

async fn accept_loop(broker: Arc<Broker>, listener: TcpListener, name: String) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let open = broker.connections.fetch_add(1, Ordering::Relaxed) + 1;
                if open > broker.config.max_connections {
                    broker.connections.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(%peer, limit = broker.config.max_connections, "max.connections reached: connection refused");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let broker = Arc::clone(&broker);
                let conn = Connection {
                    listener: name.clone(),
                    peer: peer.to_string(),
                };
                runtime::spawn(async move {
                    if let Err(e) = serve(&broker, &conn, stream).await {
                        tracing::info!(peer = %conn.peer, "closing a client connection: {e}");
                    }
                    broker.connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                runtime::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(broker: &Broker, conn: &Connection, mut stream: TcpStream) -> Result<(), String> {
    loop {
        let Some(frame) = read_frame(&mut stream, broker.config.socket_request_max_bytes)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let request = match decode_request(frame.clone(), handlers::supported) {
            Ok(r) => r,
            Err(FrameError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                // KIP-511: error 35 and the full list, in v0, so the client can pick a version.
                let body = ResponseKind::ApiVersions(handlers::api_versions::response(35));
                let out = encode_response(correlation_id, ApiKey::ApiVersions, 0, &body)
                    .map_err(|e| e.to_string())?;
                write_frame(&mut stream, &out)
                    .await
                    .map_err(|e| e.to_string())?;
                continue;
            }
            Err(e) => {
                let (key, version, correlation_id) = peek_request(&frame).unwrap_or((-1, -1, -1));
                return Err(format!(
                    "bad request (api key {key}, version {version}, correlation id {correlation_id}): {e}"
                ));
            }
        };
        let correlation_id = request.header.correlation_id;
        let span = tracing::debug_span!(
            "request",
            client_id = request.header.client_id.as_deref().unwrap_or(""),
            correlation_id,
            api_key = ?request.api_key,
            api_version = request.version
        );
        let Some(body) = handlers::handle(broker, conn, &request)
            .instrument(span)
            .await
        else {
            continue; // acks=0: no answer
        };
        let out = encode_response(correlation_id, request.api_key, request.version, &body)
            .map_err(|e| e.to_string())?;
        // Only the encoded answer is held while a slow reader takes it.
        drop(body);
        drop(request);
        drop(frame);
        write_frame(&mut stream, &out)
            .await
            .map_err(|e| e.to_string())?;
    }
}
