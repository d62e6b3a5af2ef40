//! The simulated clients' Kafka requests: each one request over [`ketch::client::Client`] (madsim
//! TCP to a node's client listener), with the answer reduced to what the workload and the checker
//! need. Errors are Kafka error codes; a connection that fails or times out is [`NETWORK`], which
//! clients treat as retriable, as real clients do.

use bytes::Bytes;
use kafka_protocol::messages::{
    create_partitions_request::CreatePartitionsTopic,
    create_topics_request::CreatableTopic,
    fetch_request,
    incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
    list_offsets_request, offset_commit_request, offset_fetch_request, produce_request, ApiKey,
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, FetchRequest, FindCoordinatorRequest,
    GroupId, IncrementalAlterConfigsRequest, InitProducerIdRequest, ListOffsetsRequest,
    MetadataResponse, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use ketch::client::Client;
use ketch::protocol::record_batch::{records, RecordBatch};
use std::collections::BTreeMap;

/// The workload's topic.
pub const TOPIC: &str = "sim";
/// The consumer group whose commits are checked.
pub const GROUP: &str = "sim-group";
/// Not a Kafka code: the request got no answer (connection refused, closed or timed out).
pub const NETWORK: i16 = -100;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// One partition as a Metadata answer shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub error: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// The topic as one broker's Metadata answer shows it.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub brokers: BTreeMap<i32, String>,
    pub partitions: BTreeMap<i32, PartitionView>,
    /// Every other topic (`__consumer_offsets`), when the request asked for all of them.
    pub others: BTreeMap<String, BTreeMap<i32, PartitionView>>,
}

impl View {
    pub fn leader_addr(&self, partition: i32) -> Option<(String, i32, i32)> {
        let p = self.partitions.get(&partition)?;
        let addr = self.brokers.get(&p.leader)?;
        Some((addr.clone(), p.leader, p.leader_epoch))
    }
}

fn view_of(m: &MetadataResponse) -> View {
    let mut v = View::default();
    for b in &m.brokers {
        v.brokers
            .insert(b.node_id.0, format!("{}:{}", b.host, b.port));
    }
    for t in &m.topics {
        let topic = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        let partitions = if topic == TOPIC {
            &mut v.partitions
        } else {
            v.others.entry(topic).or_default()
        };
        for p in &t.partitions {
            partitions.insert(
                p.partition_index,
                PartitionView {
                    error: p.error_code,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                },
            );
        }
    }
    v
}

/// Metadata of the workload's topic from `addr`, or from the first bootstrap broker that answers.
pub async fn metadata(client: &mut Client, addr: Option<&str>) -> Result<View, i16> {
    let m = match addr {
        None => client
            .metadata(Some(&[TOPIC.to_string()]))
            .await
            .map_err(|_| NETWORK)?,
        Some(a) => {
            let body = RequestKind::Metadata(
                kafka_protocol::messages::MetadataRequest::default().with_topics(Some(vec![
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(name(TOPIC))),
                ])),
            );
            match client.send(a, ApiKey::Metadata, 12, &body).await {
                Ok(ResponseKind::Metadata(m)) => m,
                _ => return Err(NETWORK),
            }
        }
    };
    Ok(view_of(&m))
}

/// Metadata of every topic from `addr`: what its image holds, to compare brokers' images.
pub async fn metadata_all(client: &mut Client, addr: &str) -> Result<View, i16> {
    let body = RequestKind::Metadata(
        kafka_protocol::messages::MetadataRequest::default().with_topics(None),
    );
    match client.send(addr, ApiKey::Metadata, 12, &body).await {
        Ok(ResponseKind::Metadata(m)) => Ok(view_of(&m)),
        _ => Err(NETWORK),
    }
}

/// CreateTopics for the workload's topic; the topic's error code.
pub async fn create_topic(client: &mut Client, partitions: i32, rf: i16) -> i16 {
    let body = RequestKind::CreateTopics(
        CreateTopicsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(TOPIC))
                .with_num_partitions(partitions)
                .with_replication_factor(rf)]),
    );
    match client.send_any(ApiKey::CreateTopics, 5, &body).await {
        Ok(ResponseKind::CreateTopics(r)) => r.topics.first().map_or(NETWORK, |t| t.error_code),
        _ => NETWORK,
    }
}

/// CreatePartitions: grow the workload's topic to `count` partitions; the topic's error code
/// (37 INVALID_PARTITIONS when it already has that many).
pub async fn create_partitions(client: &mut Client, count: i32) -> i16 {
    let body = RequestKind::CreatePartitions(
        CreatePartitionsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name(TOPIC))
                .with_count(count)]),
    );
    match client.send_any(ApiKey::CreatePartitions, 3, &body).await {
        Ok(ResponseKind::CreatePartitions(r)) => {
            r.results.first().map_or(NETWORK, |t| t.error_code)
        }
        _ => NETWORK,
    }
}

/// IncrementalAlterConfigs: sets `key` to `value` on the workload's topic; the error code.
pub async fn set_topic_config(client: &mut Client, key: &str, value: &str) -> i16 {
    let body = RequestKind::IncrementalAlterConfigs(
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2) // TOPIC
                .with_resource_name(StrBytes::from_string(TOPIC.to_string()))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_string(key.to_string()))
                    .with_config_operation(0) // SET
                    .with_value(Some(StrBytes::from_string(value.to_string())))]),
        ]),
    );
    match client
        .send_any(ApiKey::IncrementalAlterConfigs, 1, &body)
        .await
    {
        Ok(ResponseKind::IncrementalAlterConfigs(r)) => {
            r.responses.first().map_or(NETWORK, |t| t.error_code)
        }
        _ => NETWORK,
    }
}

/// ListOffsets latest (-1) of one partition from `addr`, as a consumer asks it (replica -1,
/// read_uncommitted: the high watermark): (error, offset).
pub async fn latest_offset(client: &mut Client, addr: &str, partition: i32) -> (i16, i64) {
    list_offset(client, addr, partition, -1).await
}

/// ListOffsets EARLIEST (-2): the partition's log start, as a consumer resetting to
/// `earliest` asks it.
pub async fn earliest_offset(client: &mut Client, addr: &str, partition: i32) -> (i16, i64) {
    list_offset(client, addr, partition, -2).await
}

async fn list_offset(
    client: &mut Client,
    addr: &str,
    partition: i32,
    timestamp: i64,
) -> (i16, i64) {
    let body = RequestKind::ListOffsets(
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(name(TOPIC))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(timestamp),
                ])]),
    );
    match client.send(addr, ApiKey::ListOffsets, 2, &body).await {
        Ok(ResponseKind::ListOffsets(r)) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .map_or((NETWORK, -1), |p| (p.error_code, p.offset)),
        _ => (NETWORK, -1),
    }
}

/// DeleteRecords of one partition below `offset`, to its leader at `addr`: (error, low
/// watermark).
pub async fn delete_records(
    client: &mut Client,
    addr: &str,
    partition: i32,
    offset: i64,
) -> (i16, i64) {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    let body = RequestKind::DeleteRecords(
        kafka_protocol::messages::DeleteRecordsRequest::default()
            .with_timeout_ms(2_000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name(TOPIC))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset)])]),
    );
    match client.send(addr, ApiKey::DeleteRecords, 2, &body).await {
        Ok(ResponseKind::DeleteRecords(r)) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .map_or((NETWORK, -1), |p| (p.error_code, p.low_watermark)),
        _ => (NETWORK, -1),
    }
}

/// InitProducerId without a transactional id: (error, producer id, epoch).
pub async fn init_producer_id(client: &mut Client) -> (i16, i64, i16) {
    let body = RequestKind::InitProducerId(
        InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    match client.send_any(ApiKey::InitProducerId, 1, &body).await {
        Ok(ResponseKind::InitProducerId(r)) => (r.error_code, r.producer_id.0, r.producer_epoch),
        _ => (NETWORK, -1, -1),
    }
}

/// Produce of one batch to one partition.
fn produce_request(partition: i32, acks: i16, batch: Bytes) -> RequestKind {
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(3_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(name(TOPIC))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                ])]),
    )
}

/// One batch with acks=0: sent, never answered (`Err`: it could not even be written).
pub async fn produce_acks0(
    client: &mut Client,
    addr: &str,
    partition: i32,
    batch: Bytes,
) -> Result<(), String> {
    let body = produce_request(partition, 0, batch);
    client.send_oneway(addr, ApiKey::Produce, 9, &body).await
}

/// One batch to one partition: (error, base offset).
pub async fn produce(
    client: &mut Client,
    addr: &str,
    partition: i32,
    acks: i16,
    batch: Bytes,
) -> (i16, i64) {
    let body = produce_request(partition, acks, batch);
    match client.send(addr, ApiKey::Produce, 9, &body).await {
        Ok(ResponseKind::Produce(r)) => r
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == partition)
            .map_or((NETWORK, -1), |p| (p.error_code, p.base_offset)),
        _ => (NETWORK, -1),
    }
}

/// A consumer's fetch of one partition: the error, the high watermark the leader reported and
/// the records it returned as (offset, value).
pub struct Fetched {
    pub error: i16,
    pub high_watermark: i64,
    pub records: Vec<(i64, String)>,
    /// Batches that did not parse (a corrupt answer is itself a finding).
    pub malformed: Option<String>,
}

pub async fn fetch(
    client: &mut Client,
    addr: &str,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    max_wait_ms: i32,
) -> Fetched {
    let body = RequestKind::Fetch(
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(name(TOPIC))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(leader_epoch)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(256 << 10)])]),
    );
    let mut out = Fetched {
        error: NETWORK,
        high_watermark: -1,
        records: Vec::new(),
        malformed: None,
    };
    let Ok(ResponseKind::Fetch(r)) = client.send(addr, ApiKey::Fetch, 12, &body).await else {
        return out;
    };
    let Some(p) = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
    else {
        return out;
    };
    out.error = p.error_code;
    out.high_watermark = p.high_watermark;
    let bytes = p.records.clone().unwrap_or_default();
    let mut rest: &[u8] = &bytes;
    while !rest.is_empty() {
        let (batch, tail) = match RecordBatch::parse(rest, usize::MAX) {
            Ok(x) => x,
            Err(e) => {
                // A partial batch at the end is allowed (KIP-74); anything else is not.
                if rest.len() >= 61 {
                    out.malformed = Some(e.to_string());
                }
                break;
            }
        };
        match records(&batch) {
            Ok(list) => {
                for r in list {
                    let value = r
                        .value
                        .map(|v| String::from_utf8_lossy(v).to_string())
                        .unwrap_or_default();
                    out.records
                        .push((batch.base_offset() + r.offset_delta, value));
                }
            }
            Err(e) => out.malformed = Some(e.to_string()),
        }
        rest = tail;
    }
    out
}

/// The coordinator of the group: (error, address).
pub async fn find_coordinator(client: &mut Client) -> (i16, String) {
    let body = RequestKind::FindCoordinator(
        FindCoordinatorRequest::default().with_key(StrBytes::from_string(GROUP.to_string())),
    );
    match client.send_any(ApiKey::FindCoordinator, 3, &body).await {
        Ok(ResponseKind::FindCoordinator(r)) => (r.error_code, format!("{}:{}", r.host, r.port)),
        _ => (NETWORK, String::new()),
    }
}

/// A standalone commit (generation -1) of `offsets`: each partition's error code.
pub async fn commit(
    client: &mut Client,
    coordinator: &str,
    offsets: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, i16> {
    let body = RequestKind::OffsetCommit(
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(GROUP.to_string())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(name(TOPIC))
                    .with_partitions(
                        offsets
                            .iter()
                            .map(|(p, o)| {
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*o)
                                    .with_committed_metadata(Some(StrBytes::from_static_str("")))
                            })
                            .collect(),
                    ),
            ]),
    );
    let mut out: BTreeMap<i32, i16> = offsets.keys().map(|p| (*p, NETWORK)).collect();
    if let Ok(ResponseKind::OffsetCommit(r)) = client
        .send(coordinator, ApiKey::OffsetCommit, 8, &body)
        .await
    {
        for p in r.topics.iter().flat_map(|t| t.partitions.iter()) {
            out.insert(p.partition_index, p.error_code);
        }
    }
    out
}

/// The group's committed offsets: (top-level error, partition → (error, offset)).
pub async fn committed(
    client: &mut Client,
    coordinator: &str,
    partitions: &[i32],
) -> (i16, BTreeMap<i32, (i16, i64)>) {
    let body = RequestKind::OffsetFetch(
        OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(GROUP.to_string())))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(name(TOPIC))
                    .with_partition_indexes(partitions.to_vec()),
            ])),
    );
    let mut out = BTreeMap::new();
    match client
        .send(coordinator, ApiKey::OffsetFetch, 7, &body)
        .await
    {
        Ok(ResponseKind::OffsetFetch(r)) => {
            for p in r.topics.iter().flat_map(|t| t.partitions.iter()) {
                out.insert(p.partition_index, (p.error_code, p.committed_offset));
            }
            (r.error_code, out)
        }
        _ => (NETWORK, out),
    }
}
