//! A minimal Kafka client for the command-line tools and the simulator's clients: one connection
//! per broker address, one request at a time, Kafka's own messages through `kafka-protocol`,
//! over `runtime::net` (so madsim's TCP in the simulator). Not a library client: no retries
//! beyond trying each bootstrap address, no pipelining.

use crate::protocol::frame::{decode_response, encode_request};
use crate::runtime::net::{read_frame, write_frame, Stream};
use crate::wire::Connector;
use kafka_protocol::messages::{
    metadata_request::MetadataRequestTopic, ApiKey, MetadataRequest, MetadataResponse, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::time::Duration;

const MAX_RESPONSE_BYTES: usize = 256 << 20;
pub const METADATA_VERSION: i16 = 12;

pub struct Client {
    bootstrap: Vec<String>,
    /// Where `send_any` starts: the bootstrap address that answered last.
    bootstrap_first: usize,
    connections: BTreeMap<String, Stream>,
    correlation_id: i32,
    client_id: String,
    timeout: Duration,
    connector: Connector,
}

/// The command-line tools' connections (`--command-config`): set once by the binary before
/// any tool runs; plain TCP when never set (the simulator's clients never set it).
static TOOLS_CONNECTOR: std::sync::OnceLock<Connector> = std::sync::OnceLock::new();

/// Sets how every [`Client`] made after this connects; the first call wins.
pub fn set_tools_connector(connector: Connector) {
    let _ = TOOLS_CONNECTOR.set(connector);
}

/// How the tools connect (see [`set_tools_connector`]).
pub fn tools_connector() -> Connector {
    TOOLS_CONNECTOR.get().cloned().unwrap_or_default()
}

impl Client {
    pub fn new(bootstrap: &str, client_id: &str) -> Client {
        Client {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            bootstrap_first: 0,
            connections: BTreeMap::new(),
            correlation_id: 0,
            client_id: client_id.to_string(),
            timeout: Duration::from_secs(30),
            connector: tools_connector(),
        }
    }

    /// How long one exchange (request and answer) may take; 30 s unless set.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Forgets every connection (the next request to an address connects again).
    pub fn disconnect(&mut self) {
        self.connections.clear();
    }

    /// Connects to `addr` unless a connection is open.
    async fn connect(&mut self, addr: &str) -> Result<(), String> {
        if !self.connections.contains_key(addr) {
            let connect_timeout = self.connector.connect_timeout().max(Duration::from_secs(5));
            let stream = tokio::time::timeout(connect_timeout, self.connector.connect(addr))
                .await
                .map_err(|_| format!("connecting to {addr} timed out"))?
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            self.connections.insert(addr.to_string(), stream);
        }
        Ok(())
    }

    /// One request that gets no answer (Produce with acks=0): written, not waited for. A broker
    /// that refuses it closes the connection, which the next request here finds.
    pub async fn send_oneway(
        &mut self,
        addr: &str,
        api_key: ApiKey,
        version: i16,
        body: &RequestKind,
    ) -> Result<(), String> {
        self.connect(addr).await?;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(self.correlation_id, &self.client_id, api_key, version, body)
            .map_err(|e| e.to_string())?;
        let Some(stream) = self.connections.get_mut(addr) else {
            return Err(format!("no connection to {addr}"));
        };
        let written = tokio::time::timeout(self.timeout, write_frame(stream, &frame))
            .await
            .map_err(|_| format!("writing to {addr} timed out"))
            .and_then(|r| r.map_err(|e| e.to_string()));
        if written.is_err() {
            self.connections.remove(addr);
        }
        written
    }

    /// One request to the broker at `addr`.
    pub async fn send(
        &mut self,
        addr: &str,
        api_key: ApiKey,
        version: i16,
        body: &RequestKind,
    ) -> Result<ResponseKind, String> {
        self.connect(addr).await?;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let frame = encode_request(correlation_id, &self.client_id, api_key, version, body)
            .map_err(|e| e.to_string())?;
        let timeout = self.timeout;
        let Some(stream) = self.connections.get_mut(addr) else {
            return Err(format!("no connection to {addr}"));
        };
        let exchange = async {
            write_frame(stream, &frame)
                .await
                .map_err(|e| e.to_string())?;
            let answer = read_frame(stream, MAX_RESPONSE_BYTES)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{addr} closed the connection"))?;
            let (got, response) =
                decode_response(api_key, version, answer).map_err(|e| e.to_string())?;
            if got != correlation_id {
                return Err(format!("correlation id {got}, expected {correlation_id}"));
            }
            Ok(response)
        };
        let result = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("no answer from {addr} in {timeout:?}"))
            .and_then(|r| r);
        if result.is_err() {
            self.connections.remove(addr);
        }
        result
    }

    /// One request to the first bootstrap broker that answers.
    pub async fn send_any(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &RequestKind,
    ) -> Result<ResponseKind, String> {
        let mut last = format!("no bootstrap server in '{}'", self.bootstrap.join(","));
        // The one that answered last is tried first: a dead first address must not cost a
        // timeout on every request.
        let n = self.bootstrap.len();
        for i in 0..n {
            let index = (self.bootstrap_first + i) % n;
            let addr = self.bootstrap[index].clone();
            match self.send(&addr, api_key, version, body).await {
                Ok(r) => {
                    self.bootstrap_first = index;
                    return Ok(r);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Metadata for `topics` (all when `None`), without creating any.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<MetadataResponse, String> {
        self.metadata_creating(topics, false).await
    }

    /// Metadata for `topics`, letting the broker auto-create them (as producers do).
    pub async fn metadata_creating(
        &mut self,
        topics: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse, String> {
        let body = RequestKind::Metadata(
            MetadataRequest::default()
                .with_allow_auto_topic_creation(allow_auto_topic_creation)
                .with_topics(topics.map(|ts| {
                    ts.iter()
                        .map(|t| {
                            MetadataRequestTopic::default()
                                .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                        })
                        .collect()
                })),
        );
        match self
            .send_any(ApiKey::Metadata, METADATA_VERSION, &body)
            .await?
        {
            ResponseKind::Metadata(m) => Ok(m),
            _ => Err("not a Metadata response".into()),
        }
    }
}

/// What a listener serves, as its ApiVersions says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// A broker's client listener (it answers Metadata).
    Broker,
    /// A controller listener (it answers Vote, not Metadata).
    Controller,
}

/// Asks `addr` for its ApiVersions (v0, which every Kafka listener answers).
pub async fn listener_kind(addr: &str) -> Option<ListenerKind> {
    let mut client = Client::new(addr, "ketch-probe");
    client.set_timeout(Duration::from_secs(3));
    let body = RequestKind::ApiVersions(Default::default());
    let ResponseKind::ApiVersions(r) = client
        .send(addr, ApiKey::ApiVersions, 0, &body)
        .await
        .ok()?
    else {
        return None;
    };
    let has = |k: ApiKey| r.api_keys.iter().any(|a| a.api_key == k as i16);
    if has(ApiKey::Metadata) {
        Some(ListenerKind::Broker)
    } else if has(ApiKey::Vote) {
        Some(ListenerKind::Controller)
    } else {
        None
    }
}

/// What to tell a person who gave a controller listener where a broker's was wanted.
pub async fn explain_failure(addr: &str, error: String) -> String {
    match listener_kind(addr).await {
        Some(ListenerKind::Controller) => format!(
            "{error}: {addr} is a controller listener (it serves the metadata quorum, not Kafka \
             clients); give --bootstrap-server a broker's listener (e.g. PLAINTEXT://:9092), or \
             use --bootstrap-controller {addr} where the tool takes it"
        ),
        _ => error,
    }
}

/// Refuses a broker's client listener given as `--bootstrap-controller`.
pub async fn check_controller_listeners(bootstrap: &str) -> Result<(), String> {
    for addr in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        if listener_kind(addr).await == Some(ListenerKind::Broker) {
            return Err(format!(
                "{addr} is a broker's client listener: --bootstrap-controller takes the \
                 controllers' listeners (controller.listener.names, e.g. CONTROLLER://:9093); \
                 for a broker use --bootstrap-server {addr}"
            ));
        }
    }
    Ok(())
}

/// host:port of broker `id` in a Metadata response.
pub fn broker_addr(m: &MetadataResponse, id: i32) -> Option<String> {
    m.brokers
        .iter()
        .find(|b| b.node_id.0 == id)
        .map(|b| format!("{}:{}", b.host, b.port))
}

/// Kafka's error names for the codes the tools print.
pub fn error_name(code: i16) -> &'static str {
    match code {
        0 => "NONE",
        1 => "OFFSET_OUT_OF_RANGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        5 => "LEADER_NOT_AVAILABLE",
        6 => "NOT_LEADER_OR_FOLLOWER",
        7 => "REQUEST_TIMED_OUT",
        10 => "MESSAGE_TOO_LARGE",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        17 => "INVALID_TOPIC_EXCEPTION",
        25 => "UNKNOWN_MEMBER_ID",
        36 => "TOPIC_ALREADY_EXISTS",
        37 => "INVALID_PARTITIONS",
        38 => "INVALID_REPLICATION_FACTOR",
        68 => "NON_EMPTY_GROUP",
        69 => "GROUP_ID_NOT_FOUND",
        _ => other_error_name(code),
    }
}

/// Kafka's name of any other code (`InvalidConfig` → `INVALID_CONFIG`), leaked once per
/// distinct code a tool meets (a handful), so names stay `&'static str`.
fn other_error_name(code: i16) -> &'static str {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    static NAMES: Mutex<BTreeMap<i16, &'static str>> = Mutex::new(BTreeMap::new());
    let Some(e) = kafka_protocol::error::ResponseError::try_from_code(code) else {
        return "UNKNOWN_SERVER_ERROR";
    };
    let Ok(mut names) = NAMES.lock() else {
        return "ERROR";
    };
    names.entry(code).or_insert_with(|| {
        let mut out = String::new();
        for (i, c) in format!("{e:?}").chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        Box::leak(out.into_boxed_str())
    })
}
