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
    list_offsets_request, offset_commit_request, offset_fetch_request, produce_request,
    AddPartitionsToTxnRequest, ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest,
    EndTxnRequest, FetchRequest, FindCoordinatorRequest, GroupId, IncrementalAlterConfigsRequest,
    InitProducerIdRequest, ListOffsetsRequest, MetadataResponse, OffsetCommitRequest,
    OffsetFetchRequest, ProduceRequest, ProducerId, RequestKind, ResponseKind, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use ketch::client::Client;
use ketch::protocol::record_batch::{marker_of, records, RecordBatch};
use std::collections::{BTreeMap, BTreeSet};

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

/// Produce of one batch to one partition (a transactional producer's names its
/// `transactional.id`, which KIP-890's verification needs).
fn produce_request(
    partition: i32,
    acks: i16,
    batch: Bytes,
    transactional_id: Option<&str>,
) -> RequestKind {
    RequestKind::Produce(
        ProduceRequest::default()
            .with_transactional_id(
                transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_string()))),
            )
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
    let body = produce_request(partition, 0, batch, None);
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
    produce_as(client, addr, partition, acks, batch, None).await
}

/// One batch to one partition, from transactional id `transactional_id` if given: (error,
/// base offset).
pub async fn produce_as(
    client: &mut Client,
    addr: &str,
    partition: i32,
    acks: i16,
    batch: Bytes,
    transactional_id: Option<&str>,
) -> (i16, i64) {
    let body = produce_request(partition, acks, batch, transactional_id);
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

/// One batch of a fetch answer, as a read_committed consumer needs it.
#[derive(Clone, Debug)]
pub struct BatchMeta {
    pub base_offset: i64,
    pub last_offset: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub transactional: bool,
    /// A transaction marker: `Some(true)` commit, `Some(false)` abort.
    pub marker: Option<bool>,
}

/// A consumer's fetch of one partition: the error, the high watermark the leader reported and
/// the records it returned as (offset, value). Control batches (transaction markers) are no
/// records, as a consumer never delivers them; they are listed in `batches` and count in
/// `next_offset`.
pub struct Fetched {
    pub error: i16,
    pub high_watermark: i64,
    /// The last stable offset the leader reported (-1 when it reported none).
    pub last_stable_offset: i64,
    pub records: Vec<(i64, String)>,
    /// Every whole batch returned, in order.
    pub batches: Vec<BatchMeta>,
    /// The aborted transactions the answer listed: (producer id, first offset).
    pub aborted: Vec<(i64, i64)>,
    /// Past the last whole batch returned: where the next fetch starts.
    pub next_offset: Option<i64>,
    /// Batches that did not parse (a corrupt answer is itself a finding).
    pub malformed: Option<String>,
}

/// A read_uncommitted fetch, as the plain consumer makes it.
pub async fn fetch(
    client: &mut Client,
    addr: &str,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    max_wait_ms: i32,
) -> Fetched {
    fetch_isolated(
        client,
        addr,
        partition,
        offset,
        leader_epoch,
        max_wait_ms,
        false,
    )
    .await
}

/// A fetch at either isolation level. With `read_committed`, the records of aborted
/// transactions are dropped here as Kafka's consumer drops them (its `Fetcher`): a producer
/// joins the aborted set at the first batch reaching an aborted transaction's first offset,
/// its transactional batches are skipped while it is in it, and its abort marker takes it out.
pub async fn fetch_isolated(
    client: &mut Client,
    addr: &str,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    max_wait_ms: i32,
    read_committed: bool,
) -> Fetched {
    let body = RequestKind::Fetch(
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_isolation_level(i8::from(read_committed))
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
        last_stable_offset: -1,
        records: Vec::new(),
        batches: Vec::new(),
        aborted: Vec::new(),
        next_offset: None,
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
    out.last_stable_offset = p.last_stable_offset;
    out.aborted = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    let mut pending_aborts = out.aborted.clone();
    pending_aborts.sort_by_key(|(_, first)| std::cmp::Reverse(*first));
    let mut aborted_producers: BTreeSet<i64> = BTreeSet::new();
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
        rest = tail;
        let meta = BatchMeta {
            base_offset: batch.base_offset(),
            last_offset: batch.base_offset() + i64::from(batch.last_offset_delta()),
            producer_id: batch.producer_id(),
            producer_epoch: batch.producer_epoch(),
            transactional: batch.is_transactional(),
            marker: marker_of(&batch).map(|(commit, _)| commit),
        };
        out.next_offset = Some(meta.last_offset + 1);
        if read_committed {
            while pending_aborts
                .last()
                .is_some_and(|(_, first)| *first <= meta.last_offset)
            {
                if let Some((pid, _)) = pending_aborts.pop() {
                    aborted_producers.insert(pid);
                }
            }
        }
        let skip = batch.is_control()
            || (read_committed
                && meta.transactional
                && aborted_producers.contains(&meta.producer_id));
        if read_committed && meta.marker == Some(false) {
            aborted_producers.remove(&meta.producer_id);
        }
        out.batches.push(meta);
        if skip {
            continue;
        }
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
    }
    out
}

/// The coordinator of the group: (error, address).
pub async fn find_coordinator(client: &mut Client) -> (i16, String) {
    coordinator_of(client, GROUP, 0).await
}

/// FindCoordinator for `key` of `key_type` (0 group, 1 transactional id): (error, address).
async fn coordinator_of(client: &mut Client, key: &str, key_type: i8) -> (i16, String) {
    let body = RequestKind::FindCoordinator(
        FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(key.to_string()))
            .with_key_type(key_type),
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

/// The coordinator of transactional id `tid` (FindCoordinator key type 1): (error, address).
pub async fn find_transaction_coordinator(client: &mut Client, tid: &str) -> (i16, String) {
    coordinator_of(client, tid, 1).await
}

/// InitProducerId with transactional id `tid`, to its coordinator: (error, producer id, epoch).
pub async fn init_transactional_producer(
    client: &mut Client,
    coordinator: &str,
    tid: &str,
    transaction_timeout_ms: i32,
) -> (i16, i64, i16) {
    let body = RequestKind::InitProducerId(
        InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
                tid.to_string(),
            ))))
            .with_transaction_timeout_ms(transaction_timeout_ms),
    );
    match client
        .send(coordinator, ApiKey::InitProducerId, 1, &body)
        .await
    {
        Ok(ResponseKind::InitProducerId(r)) => (r.error_code, r.producer_id.0, r.producer_epoch),
        _ => (NETWORK, -1, -1),
    }
}

/// AddPartitionsToTxn v3 of the workload topic's `partitions`: the first error among them (0
/// when all were added).
pub async fn add_partitions_to_txn(
    client: &mut Client,
    coordinator: &str,
    tid: &str,
    producer: (i64, i16),
    partitions: &[i32],
) -> i16 {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let body = RequestKind::AddPartitionsToTxn(
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(
                tid.to_string(),
            )))
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(name(TOPIC))
                .with_partitions(partitions.to_vec())]),
    );
    match client
        .send(coordinator, ApiKey::AddPartitionsToTxn, 3, &body)
        .await
    {
        Ok(ResponseKind::AddPartitionsToTxn(r)) => {
            if r.error_code != 0 {
                return r.error_code;
            }
            let codes: Vec<i16> = r
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| t.results_by_partition.iter())
                .map(|p| p.partition_error_code)
                .collect();
            if codes.len() != partitions.len() {
                return NETWORK;
            }
            codes.into_iter().find(|c| *c != 0).unwrap_or(0)
        }
        _ => NETWORK,
    }
}

/// EndTxn v3: commit (`true`) or abort the producer's transaction; the error code.
pub async fn end_txn(
    client: &mut Client,
    coordinator: &str,
    tid: &str,
    producer: (i64, i16),
    commit: bool,
) -> i16 {
    let body = RequestKind::EndTxn(
        EndTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(tid.to_string())))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_committed(commit),
    );
    match client.send(coordinator, ApiKey::EndTxn, 3, &body).await {
        Ok(ResponseKind::EndTxn(r)) => r.error_code,
        _ => NETWORK,
    }
}
