//! Prometheus metrics: the registry, the counters the data plane bumps, the gauges a scrape
//! fills from the node's state, and the `metrics.listener` HTTP endpoint that serves them.
//!
//! Names follow what the Prometheus JMX exporter's common Kafka rules make of Kafka's MBeans
//! (`kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=T` becomes
//! `kafka_server_brokertopicmetrics_messagesin_total{topic="T"}`), so dashboards built for
//! Kafka read ketch; consumer lag uses kafka_exporter's `kafka_consumergroup_lag`. The
//! exposition is `prometheus-client`'s (OpenMetrics text), never written by hand.
//!
//! Owns: metric names and help, counters and histograms, the HTTP/1.1 scrape endpoint (GET
//! `/metrics`, one response per connection). Must not touch: node state — what a gauge holds
//! comes from a [`Collect`] function the node hands in, called once per scrape.

use crate::runtime::net::{TcpListener, TcpStream};
use crate::runtime::{self, Clock};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A label set: `[]` for a total, `[("topic", t)]` for one topic, ….
pub type Labels = Vec<(String, String)>;

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The gauges a scrape sets. Each is a family (labels vary); a scrape replaces all of its
/// samples, so a partition that moved away stops being reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum G {
    PartitionCount,
    LeaderCount,
    UnderReplicatedPartitions,
    UnderMinIsrPartitions,
    ActiveControllerCount,
    OfflinePartitionsCount,
    GlobalTopicCount,
    GlobalPartitionCount,
    FencedBrokerCount,
    ActiveBrokerCount,
    RaftCurrentLeader,
    RaftCurrentEpoch,
    RaftHighWatermark,
    RaftLogEndOffset,
    RaftCurrentState,
    LogSize,
    LogSegments,
    LogStartOffset,
    LogEndOffset,
    GroupCurrentOffset,
    GroupLag,
    GroupMembers,
}

impl G {
    const ALL: [G; 22] = [
        G::PartitionCount,
        G::LeaderCount,
        G::UnderReplicatedPartitions,
        G::UnderMinIsrPartitions,
        G::ActiveControllerCount,
        G::OfflinePartitionsCount,
        G::GlobalTopicCount,
        G::GlobalPartitionCount,
        G::FencedBrokerCount,
        G::ActiveBrokerCount,
        G::RaftCurrentLeader,
        G::RaftCurrentEpoch,
        G::RaftHighWatermark,
        G::RaftLogEndOffset,
        G::RaftCurrentState,
        G::LogSize,
        G::LogSegments,
        G::LogStartOffset,
        G::LogEndOffset,
        G::GroupCurrentOffset,
        G::GroupLag,
        G::GroupMembers,
    ];

    /// (name, help).
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            G::PartitionCount => (
                "kafka_server_replicamanager_partitioncount",
                "Partitions with a replica on this broker",
            ),
            G::LeaderCount => (
                "kafka_server_replicamanager_leadercount",
                "Partitions this broker leads",
            ),
            G::UnderReplicatedPartitions => (
                "kafka_server_replicamanager_underreplicatedpartitions",
                "Partitions this broker leads whose ISR is smaller than their replica set",
            ),
            G::UnderMinIsrPartitions => (
                "kafka_server_replicamanager_underminisrpartitioncount",
                "Partitions this broker leads whose ISR is below min.insync.replicas",
            ),
            G::ActiveControllerCount => (
                "kafka_controller_kafkacontroller_activecontrollercount",
                "1 on the active controller, else 0",
            ),
            G::OfflinePartitionsCount => (
                "kafka_controller_kafkacontroller_offlinepartitionscount",
                "Partitions without a leader (reported by the active controller)",
            ),
            G::GlobalTopicCount => (
                "kafka_controller_kafkacontroller_globaltopiccount",
                "Topics in the metadata (reported by the active controller)",
            ),
            G::GlobalPartitionCount => (
                "kafka_controller_kafkacontroller_globalpartitioncount",
                "Partitions in the metadata (reported by the active controller)",
            ),
            G::FencedBrokerCount => (
                "kafka_controller_kafkacontroller_fencedbrokercount",
                "Registered brokers that are fenced (reported by the active controller)",
            ),
            G::ActiveBrokerCount => (
                "kafka_controller_kafkacontroller_activebrokercount",
                "Registered brokers that are not fenced (reported by the active controller)",
            ),
            G::RaftCurrentLeader => (
                "kafka_server_raft_metrics_current_leader",
                "The metadata quorum's leader as this node sees it, -1 if none",
            ),
            G::RaftCurrentEpoch => (
                "kafka_server_raft_metrics_current_epoch",
                "The metadata quorum's epoch",
            ),
            G::RaftHighWatermark => (
                "kafka_server_raft_metrics_high_watermark",
                "The metadata log's high watermark (committed offset)",
            ),
            G::RaftLogEndOffset => (
                "kafka_server_raft_metrics_log_end_offset",
                "The metadata log's end offset on this node",
            ),
            G::RaftCurrentState => (
                "kafka_server_raft_metrics_current_state",
                "1 for this node's role in the quorum (state label)",
            ),
            G::LogSize => ("kafka_log_log_size", "Bytes of a partition's log on disk"),
            G::LogSegments => (
                "kafka_log_log_numlogsegments",
                "Segments of a partition's log",
            ),
            G::LogStartOffset => (
                "kafka_log_log_logstartoffset",
                "First offset of a partition's log",
            ),
            G::LogEndOffset => (
                "kafka_log_log_logendoffset",
                "Log end offset of a partition's log",
            ),
            G::GroupCurrentOffset => (
                "kafka_consumergroup_current_offset",
                "A group's committed offset of a partition (reported by its coordinator)",
            ),
            G::GroupLag => (
                "kafka_consumergroup_lag",
                "High watermark minus a group's committed offset (reported by its coordinator, \
                 for partitions with a replica on it)",
            ),
            G::GroupMembers => (
                "kafka_consumergroup_members",
                "Members of a group (reported by its coordinator)",
            ),
        }
    }
}

/// One gauge value a scrape reports.
pub struct Sample {
    pub gauge: G,
    pub labels: Labels,
    pub value: i64,
}

impl Sample {
    pub fn new(gauge: G, labels: &[(&str, &str)], value: i64) -> Sample {
        Sample {
            gauge,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }
}

/// What a scrape asks the node for: every gauge sample as of now.
pub type Collect = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Vec<Sample>> + Send>> + Send + Sync>;

/// The node's metrics. Counters are bumped where things happen; gauges are filled per scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    clock: Clock,
    messages_in: Family<Labels, Counter>,
    bytes_in: Family<Labels, Counter>,
    bytes_out: Family<Labels, Counter>,
    replication_bytes_out: Family<Labels, Counter>,
    produce_requests: Family<Labels, Counter>,
    fetch_requests: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    request_errors: Family<Labels, Counter>,
    request_time_ms: HistogramFamily,
    raft_commit_latency: Histogram,
    cleaner_read_bytes: Counter,
    cleaner_written_bytes: Counter,
    cleaner_records_removed: Counter,
    cleaner_clean_time: Histogram,
    /// Metadata log entries this node appended as leader and not yet committed.
    uncommitted: std::sync::Mutex<Uncommitted>,
    gauges: Vec<(G, Family<Labels, Gauge>)>,
    /// Topics with per-topic counter series, so a deleted topic's can be removed.
    topics_seen: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// One scrape at a time: a scrape clears and refills the gauges.
    scrape: tokio::sync::Mutex<()>,
}

/// A quorum leader's appended, not yet committed stretches of the metadata log: (end offset,
/// when the step that appended them began, monotonic ms), oldest first.
#[derive(Debug, Default)]
struct Uncommitted {
    epoch: Option<i32>,
    log_end: u64,
    appended: std::collections::VecDeque<(u64, u64)>,
}

fn request_time_histogram() -> Histogram {
    // 0.125 ms … ~4 s: a fetch long poll waits up to fetch.max.wait.ms (500 ms by default).
    Histogram::new(exponential_buckets(0.125, 2.0, 16))
}

impl Metrics {
    pub fn new(clock: Clock) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<Labels, Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let messages_in = counter(
            &mut registry,
            "kafka_server_brokertopicmetrics_messagesin",
            "Records appended by producers (per topic, and a total without labels)",
        );
        let bytes_in = counter(
            &mut registry,
            "kafka_server_brokertopicmetrics_bytesin",
            "Record batch bytes appended by producers (per topic, and a total)",
        );
        let bytes_out = counter(
            &mut registry,
            "kafka_server_brokertopicmetrics_bytesout",
            "Record batch bytes sent to consumers (per topic, and a total; replication excluded)",
        );
        let replication_bytes_out = counter(
            &mut registry,
            "kafka_server_brokertopicmetrics_replicationbytesout",
            "Record batch bytes sent to follower replicas (per topic, and a total)",
        );
        let produce_requests = counter(
            &mut registry,
            "kafka_server_brokertopicmetrics_totalproducerequests",
            "Partition produce requests (per topic, and a total)",
        );
        let fetch_requests = counter(
            &mut registry,
            "kafka_server_brokertopicmetrics_totalfetchrequests",
            "Partition fetch requests from consumers (per topic, and a total)",
        );
        let requests = counter(
            &mut registry,
            "kafka_network_requestmetrics_requests",
            "Requests answered, per API (request) and version",
        );
        let request_errors = counter(
            &mut registry,
            "kafka_network_requestmetrics_errors",
            "Requests whose handling failed and closed the connection, per API",
        );
        let request_time_ms: HistogramFamily =
            Family::new_with_constructor(request_time_histogram as fn() -> Histogram);
        registry.register(
            "kafka_network_requestmetrics_totaltimems",
            "Time from a request read to its response written, in milliseconds, per API",
            request_time_ms.clone(),
        );
        // 0.125 ms … ~4 s: an fsync and a follower's fetch round trip. In seconds, as
        // Prometheus names units (promtool refuses `_ms`).
        let raft_commit_latency = Histogram::new(exponential_buckets(0.000_125, 2.0, 16));
        registry.register(
            "kafka_server_raft_metrics_commit_latency_seconds",
            "Time from the quorum leader appending a metadata log entry to its commit, in \
             seconds (Kafka's commit-latency-avg is rate(_sum) / rate(_count), times 1000)",
            raft_commit_latency.clone(),
        );
        let plain_counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let cleaner_read_bytes = plain_counter(
            &mut registry,
            "kafka_log_logcleaner_read_bytes",
            "Bytes of segments the log cleaner read (both of its passes)",
        );
        let cleaner_written_bytes = plain_counter(
            &mut registry,
            "kafka_log_logcleaner_written_bytes",
            "Bytes of cleaned segments the log cleaner swapped in",
        );
        let cleaner_records_removed = plain_counter(
            &mut registry,
            "kafka_log_logcleaner_records_removed",
            "Records compaction removed (superseded, keyless, or tombstones past their horizon)",
        );
        let cleaner_clean_time = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "kafka_log_logcleaner_clean_time_seconds",
            "Time one clean of one log took, in seconds (Kafka's max-clean-time-secs is its max)",
            cleaner_clean_time.clone(),
        );
        let gauges = G::ALL
            .iter()
            .map(|&g| {
                let (name, help) = g.describe();
                let family = Family::<Labels, Gauge>::default();
                registry.register(name, help, family.clone());
                (g, family)
            })
            .collect();
        Arc::new(Metrics {
            registry,
            clock,
            messages_in,
            bytes_in,
            bytes_out,
            replication_bytes_out,
            produce_requests,
            fetch_requests,
            requests,
            request_errors,
            request_time_ms,
            raft_commit_latency,
            cleaner_read_bytes,
            cleaner_written_bytes,
            cleaner_records_removed,
            cleaner_clean_time,
            uncommitted: Default::default(),
            gauges,
            topics_seen: Default::default(),
            scrape: tokio::sync::Mutex::new(()),
        })
    }

    fn per_topic(&self, family: &Family<Labels, Counter>, topic: &str, n: u64) {
        if let Ok(mut seen) = self.topics_seen.lock() {
            if !seen.contains(topic) {
                seen.insert(topic.to_string());
            }
        }
        family
            .get_or_create(&vec![("topic".to_string(), topic.to_string())])
            .inc_by(n);
        family.get_or_create(&Vec::new()).inc_by(n);
    }

    /// A batch a producer appended to `topic`.
    /// One log was cleaned.
    pub fn log_cleaned(
        &self,
        bytes_read: u64,
        bytes_written: u64,
        records_removed: u64,
        elapsed_ms: u64,
    ) {
        self.cleaner_read_bytes.inc_by(bytes_read);
        self.cleaner_written_bytes.inc_by(bytes_written);
        self.cleaner_records_removed.inc_by(records_removed);
        self.cleaner_clean_time.observe(elapsed_ms as f64 / 1000.0);
    }

    pub fn produced(&self, topic: &str, records: u64, bytes: u64) {
        self.per_topic(&self.messages_in, topic, records);
        self.per_topic(&self.bytes_in, topic, bytes);
    }

    /// A partition of `topic` in a Produce request (appended or not).
    pub fn produce_request(&self, topic: &str) {
        self.per_topic(&self.produce_requests, topic, 1);
    }

    /// Bytes of `topic` a fetch returned; `replica` when a follower fetched.
    pub fn fetched(&self, topic: &str, bytes: u64, replica: bool) {
        if replica {
            self.per_topic(&self.replication_bytes_out, topic, bytes);
        } else {
            self.per_topic(&self.fetch_requests, topic, 1);
            self.per_topic(&self.bytes_out, topic, bytes);
        }
    }

    /// Removes the per-topic counter series of topics not in `existing` (deleted), as Kafka
    /// removes a deleted topic's BrokerTopicMetrics; the totals keep what they counted.
    pub fn retain_topics(&self, existing: impl Fn(&str) -> bool) {
        let gone: Vec<String> = match self.topics_seen.lock() {
            Ok(mut seen) => {
                let gone = seen.iter().filter(|t| !existing(t)).cloned().collect();
                seen.retain(|t| existing(t));
                gone
            }
            Err(_) => return,
        };
        for topic in gone {
            let labels = vec![("topic".to_string(), topic)];
            for family in [
                &self.messages_in,
                &self.bytes_in,
                &self.bytes_out,
                &self.replication_bytes_out,
                &self.produce_requests,
                &self.fetch_requests,
            ] {
                family.remove(&labels);
            }
        }
    }

    /// Now, for timing a request.
    pub fn now(&self) -> Duration {
        self.clock.monotonic()
    }

    /// A request answered (`ok`) or failed, `started` from [`Metrics::now`].
    pub fn request(&self, api: &str, version: i16, started: Duration, ok: bool) {
        let api_label = vec![("request".to_string(), api.to_string())];
        if ok {
            self.requests
                .get_or_create(&vec![
                    ("request".to_string(), api.to_string()),
                    ("version".to_string(), version.to_string()),
                ])
                .inc();
        } else {
            self.request_errors.get_or_create(&api_label).inc();
        }
        let elapsed = self.clock.monotonic().saturating_sub(started);
        self.request_time_ms
            .get_or_create(&api_label)
            .observe(elapsed.as_secs_f64() * 1000.0);
    }

    /// The quorum member's state after a step (`leader`: this node leads `epoch`; the step
    /// began at `step_started_ms`): times each stretch this leader appended from that step's
    /// start to the step after which the high watermark covers it. A follower, or a new
    /// epoch, starts over (what an earlier leader appended is not this one's to time).
    pub fn quorum_step(
        &self,
        leader: bool,
        epoch: i32,
        log_end: u64,
        high_watermark: u64,
        step_started_ms: u64,
    ) {
        let Ok(mut u) = self.uncommitted.lock() else {
            return;
        };
        if !leader || u.epoch != Some(epoch) {
            *u = Uncommitted {
                epoch: leader.then_some(epoch),
                log_end,
                appended: Default::default(),
            };
            return;
        }
        if log_end > u.log_end {
            u.appended.push_back((log_end, step_started_ms));
        }
        u.log_end = log_end;
        let now_ms = self.clock.monotonic_ms();
        while let Some(&(end, at_ms)) = u.appended.front() {
            if end > high_watermark {
                break;
            }
            u.appended.pop_front();
            self.raft_commit_latency
                .observe(now_ms.saturating_sub(at_ms) as f64 / 1000.0);
        }
    }

    /// The exposition: the gauges replaced by `samples`, then everything encoded.
    pub async fn render(&self, samples: Vec<Sample>) -> String {
        let _one_at_a_time = self.scrape.lock().await;
        for (_, family) in &self.gauges {
            family.clear();
        }
        for s in samples {
            if let Some((_, family)) = self.gauges.iter().find(|(g, _)| *g == s.gauge) {
                family.get_or_create(&s.labels).set(s.value);
            }
        }
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!("metrics encoding failed: {e}");
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped: each connection gets one
/// response (`Connection: close`), what Prometheus' scraper expects of a simple target.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, collect: Collect) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let metrics = Arc::clone(&metrics);
                let collect = Arc::clone(&collect);
                runtime::spawn(async move {
                    if let Err(e) = answer(stream, &metrics, &collect).await {
                        tracing::debug!(%addr, "metrics connection: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("metrics listener accept failed: {e}");
                runtime::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The most of a request head read: a scraper sends a few hundred bytes.
const MAX_REQUEST_HEAD_BYTES: usize = 8192;

async fn answer(
    mut stream: TcpStream,
    metrics: &Metrics,
    collect: &Collect,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 || head.len() + n > MAX_REQUEST_HEAD_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "no complete HTTP request head",
                ));
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), read_head)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head"))??;
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    // Prometheus asks for OpenMetrics; curl, promtool and older scrapers get the classic
    // text format.
    let openmetrics = text.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("accept:") && l.contains("application/openmetrics-text")
    });
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") if openmetrics => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(collect().await).await,
        ),
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            classic_text(&metrics.render(collect().await).await),
        ),
        ("GET", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "ketch metrics: GET /metrics\n".to_string(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The classic Prometheus text format (0.0.4) of `prometheus-client`'s OpenMetrics text. They
/// differ in what this changes: a counter family's HELP and TYPE name its samples' `_total`
/// name (OpenMetrics names the family without it), and there is no `# EOF` or `# UNIT`.
/// Samples, labels and values are the same in both.
fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_topics_series_go_and_the_totals_stay() {
        let m = Metrics::new(Clock::system());
        m.produced("kept", 1, 10);
        m.produced("gone", 2, 20);
        m.retain_topics(|t| t == "kept");
        let text = runtime::block_on(m.render(Vec::new())).unwrap();
        assert!(text.contains("kafka_server_brokertopicmetrics_messagesin_total{topic=\"kept\"} 1"));
        assert!(!text.contains("topic=\"gone\""), "{text}");
        assert!(text.contains("kafka_server_brokertopicmetrics_messagesin_total{} 3"));
    }

    #[test]
    fn commit_latency_times_what_this_leader_appended_until_the_high_watermark_covers_it() {
        let m = Metrics::new(Clock::system());
        let count = |m: &Metrics| {
            let text = runtime::block_on(m.render(Vec::new())).unwrap();
            text.lines()
                .find_map(|l| {
                    l.strip_prefix("kafka_server_raft_metrics_commit_latency_seconds_count ")
                })
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let now = m.clock.monotonic_ms();
        // Leader of epoch 3 from log end 10 (the earlier leader's entries are not timed).
        m.quorum_step(true, 3, 10, 4, now);
        m.quorum_step(true, 3, 12, 10, now); // appended 10..12; the old ones commit
        assert_eq!(count(&m), "0");
        m.quorum_step(true, 3, 15, 11, now); // appended 12..15; 10..12 not whole yet
        assert_eq!(count(&m), "0");
        m.quorum_step(true, 3, 15, 15, now);
        assert_eq!(count(&m), "2", "both stretches committed");
        // A new epoch, or a follower, starts over.
        m.quorum_step(true, 4, 20, 15, now);
        m.quorum_step(false, 4, 20, 20, now);
        m.quorum_step(true, 5, 21, 21, now);
        assert_eq!(count(&m), "2");
    }

    #[test]
    fn names_are_the_jmx_exporters_and_gauges_are_replaced_per_scrape() {
        let m = Metrics::new(Clock::system());
        m.produced("orders", 3, 300);
        m.produced("orders", 2, 100);
        m.produced("audit", 1, 10);
        let started = m.now();
        m.request("Produce", 9, started, true);
        let text = runtime::block_on(m.render(vec![
            Sample::new(G::LeaderCount, &[], 4),
            Sample::new(G::LogSize, &[("topic", "orders"), ("partition", "0")], 400),
        ]))
        .unwrap();
        for line in [
            "kafka_server_brokertopicmetrics_messagesin_total{topic=\"orders\"} 5",
            "kafka_server_brokertopicmetrics_messagesin_total{topic=\"audit\"} 1",
            "kafka_server_brokertopicmetrics_messagesin_total{} 6",
            "kafka_server_brokertopicmetrics_bytesin_total{} 410",
            "kafka_network_requestmetrics_requests_total{request=\"Produce\",version=\"9\"} 1",
            "kafka_network_requestmetrics_totaltimems_count{request=\"Produce\"} 1",
            "kafka_server_replicamanager_leadercount{} 4",
            "kafka_log_log_size{topic=\"orders\",partition=\"0\"} 400",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        let classic = classic_text(&text);
        assert!(
            classic.contains("# TYPE kafka_server_brokertopicmetrics_messagesin_total counter\n")
        );
        assert!(classic.contains("# TYPE kafka_server_replicamanager_leadercount gauge\n"));
        assert!(!classic.contains("# EOF"));
        let text = runtime::block_on(m.render(vec![])).unwrap();
        assert!(
            !text.contains("kafka_log_log_size{"),
            "a gauge not reported again is gone:\n{text}"
        );
    }
}
