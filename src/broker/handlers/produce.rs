//! Produce (0): appends each partition's record batches to its log as the leader. Batches are
//! validated (header, CRC-32C, size) and get their offsets by rewriting the base offset; records
//! are never decoded. acks=0 gets no answer; acks=1 and acks=-1 are answered once appended (one
//! replica: the leader's log end is the high watermark).

use super::super::partitions::PartitionError;
use crate::broker::context::Broker;
use crate::model::TopicPartition;
use crate::protocol::record_batch::{BatchHeader, RecordBatch};
use kafka_protocol::messages::{produce_response, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

const INVALID_REQUIRED_ACKS: i16 = 21;
const INVALID_RECORD: i16 = 87;

struct Outcome {
    error_code: i16,
    message: Option<String>,
    base_offset: i64,
    log_start_offset: i64,
}

fn failure(code: i16, message: impl Into<String>) -> Outcome {
    Outcome {
        error_code: code,
        message: Some(message.into()),
        base_offset: -1,
        log_start_offset: -1,
    }
}

/// Refuses what this broker cannot store faithfully yet: transactional batches (their
/// markers and the last stable offset are not implemented).
fn check_batches(data: &[u8]) -> Result<(), Outcome> {
    let mut rest = data;
    while !rest.is_empty() {
        let Ok(header) = BatchHeader::parse(rest, usize::MAX) else {
            return Ok(()); // the log's own validation reports it precisely
        };
        let size = header.size();
        if rest.len() < size {
            return Ok(());
        }
        if let Ok((batch, _)) = RecordBatch::parse(&rest[..size], usize::MAX) {
            if batch.is_transactional() || batch.is_control() {
                return Err(failure(
                    INVALID_RECORD,
                    "transactional batches are not supported by this broker yet",
                ));
            }
        }
        rest = &rest[size..];
    }
    Ok(())
}

fn produce_one(broker: &Broker, tp: &TopicPartition, records: Option<&[u8]>) -> Outcome {
    let node = broker.partitions.node_id();
    let Some(partition) = broker.partitions.get_or_apply(tp, &broker.image()) else {
        let image = broker.image();
        let exists = image
            .topic_by_name(&tp.topic)
            .is_some_and(|t| t.partitions.contains_key(&tp.partition));
        let e = if exists {
            PartitionError::NotLeader
        } else {
            PartitionError::UnknownTopicOrPartition
        };
        return failure(e.code(), e.to_string());
    };
    if tp.topic == crate::model::CONSUMER_OFFSETS {
        return failure(17, "producing to an internal topic is not allowed");
    }
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return failure(INVALID_RECORD, "no records");
    };
    if let Err(o) = check_batches(records) {
        return o;
    }
    let mut data = records.to_vec();
    match partition.append_as_leader(node, &mut data, broker.clock.wall_ms()) {
        Ok((first_offset, log_start)) => Outcome {
            error_code: 0,
            message: None,
            base_offset: first_offset,
            log_start_offset: log_start as i64,
        },
        Err(e) => {
            if matches!(e, PartitionError::Storage(_)) {
                tracing::error!(partition = %tp, "append failed: {e}");
            } else {
                tracing::debug!(partition = %tp, "produce refused: {e}");
            }
            failure(e.code(), e.to_string())
        }
    }
}

pub async fn handle(broker: &Broker, r: &ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks_valid = matches!(r.acks, -1..=1);
    let mut appended = false;
    let mut responses = Vec::with_capacity(r.topic_data.len());
    for t in &r.topic_data {
        let mut partitions = Vec::with_capacity(t.partition_data.len());
        for p in &t.partition_data {
            let tp = TopicPartition::new(t.name.0.to_string(), p.index);
            let outcome = if acks_valid {
                produce_one(broker, &tp, p.records.as_deref())
            } else {
                failure(
                    INVALID_REQUIRED_ACKS,
                    format!("acks must be 0, 1 or -1, not {}", r.acks),
                )
            };
            appended |= outcome.error_code == 0;
            partitions.push(
                produce_response::PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_error_code(outcome.error_code)
                    .with_base_offset(outcome.base_offset)
                    .with_log_append_time_ms(-1)
                    // These fields exist from v5 and v8: the encoder refuses values before.
                    .with_log_start_offset(if version >= 5 {
                        outcome.log_start_offset
                    } else {
                        -1
                    })
                    .with_error_message(if version >= 8 {
                        outcome.message.map(StrBytes::from_string)
                    } else {
                        None
                    }),
            );
        }
        responses.push(
            produce_response::TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_partition_responses(partitions),
        );
    }
    if appended {
        broker.partitions.notify_appended();
    }
    if r.acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}
