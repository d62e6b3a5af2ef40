//! `ketch transactions`, as Kafka's `kafka-transactions.sh`: `list` (ListTransactions to every
//! broker), `describe --transactional-id` (DescribeTransactions to the id's coordinator),
//! `describe-producers --topic --partition` (DescribeProducers to the partition's leader) and
//! `abort` of a hanging transaction on one partition (WriteTxnMarkers to its leader, with the
//! producer's id, epoch and coordinator epoch given, or found by DescribeProducers from the
//! transaction's start offset). Output columns are Kafka's tool's. Talks to brokers only
//! through `crate::client`.

use crate::client::{broker_addr, error_name, Client};
use crate::runtime;
use kafka_protocol::messages::{
    describe_producers_request::TopicRequest,
    write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic},
    ApiKey, DescribeProducersRequest, DescribeTransactionsRequest, FindCoordinatorRequest,
    ListTransactionsRequest, ProducerId, RequestKind, ResponseKind, TopicName, TransactionalId,
    WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;

/// What `ketch transactions` does.
pub enum Action {
    List,
    Describe {
        transactional_id: String,
    },
    DescribeProducers {
        topic: String,
        partition: i32,
    },
    Abort {
        topic: String,
        partition: i32,
        /// Either the producer (id, epoch, coordinator epoch) or the transaction's first offset.
        producer: Option<(i64, i16, i32)>,
        start_offset: Option<i64>,
    },
}

pub fn run(bootstrap: &str, action: Action) -> Result<(), String> {
    runtime::block_on(async move {
        let mut client = Client::new(bootstrap, "ketch-transactions");
        match action {
            Action::List => list(&mut client).await,
            Action::Describe { transactional_id } => describe(&mut client, &transactional_id).await,
            Action::DescribeProducers { topic, partition } => {
                let producers = producers(&mut client, &topic, partition).await?;
                println!(
                    "ProducerId\tProducerEpoch\tLatestCoordinatorEpoch\tLastSequence\tLastTimestamp\tCurrentTransactionStartOffset"
                );
                for p in producers {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        p.producer_id.0,
                        p.producer_epoch,
                        p.coordinator_epoch,
                        p.last_sequence,
                        p.last_timestamp,
                        if p.current_txn_start_offset < 0 {
                            "None".to_string()
                        } else {
                            p.current_txn_start_offset.to_string()
                        }
                    );
                }
                Ok(())
            }
            Action::Abort {
                topic,
                partition,
                producer,
                start_offset,
            } => abort(&mut client, &topic, partition, producer, start_offset).await,
        }
    })
    .map_err(|e| e.to_string())?
}

async fn list(client: &mut Client) -> Result<(), String> {
    let m = client.metadata(Some(&[])).await?;
    let mut brokers: Vec<(i32, String)> = m
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    brokers.sort();
    println!("TransactionalId\tCoordinator\tProducerId\tTransactionState");
    for (id, addr) in brokers {
        let body = RequestKind::ListTransactions(ListTransactionsRequest::default());
        match client
            .send(&addr, ApiKey::ListTransactions, 0, &body)
            .await?
        {
            ResponseKind::ListTransactions(r) if r.error_code == 0 => {
                for t in r.transaction_states {
                    println!(
                        "{}\t{id}\t{}\t{}",
                        t.transactional_id.0, t.producer_id.0, t.transaction_state
                    );
                }
            }
            ResponseKind::ListTransactions(r) => {
                return Err(format!("broker {id}: {}", error_name(r.error_code)))
            }
            _ => {
                return Err(format!(
                    "broker {id}: unexpected answer to ListTransactions"
                ))
            }
        }
    }
    Ok(())
}

async fn describe(client: &mut Client, transactional_id: &str) -> Result<(), String> {
    let find = RequestKind::FindCoordinator(
        FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(transactional_id.to_string()))
            .with_key_type(1),
    );
    let (coordinator, addr) = match client.send_any(ApiKey::FindCoordinator, 3, &find).await? {
        ResponseKind::FindCoordinator(r) if r.error_code == 0 => {
            (r.node_id.0, format!("{}:{}", r.host, r.port))
        }
        ResponseKind::FindCoordinator(r) => {
            return Err(format!(
                "no coordinator for {transactional_id}: {}",
                error_name(r.error_code)
            ))
        }
        _ => return Err("unexpected answer to FindCoordinator".into()),
    };
    let body = RequestKind::DescribeTransactions(
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
            StrBytes::from_string(transactional_id.to_string()),
        )]),
    );
    let ResponseKind::DescribeTransactions(r) = client
        .send(&addr, ApiKey::DescribeTransactions, 0, &body)
        .await?
    else {
        return Err("unexpected answer to DescribeTransactions".into());
    };
    let Some(t) = r.transaction_states.into_iter().next() else {
        return Err("an empty answer to DescribeTransactions".into());
    };
    if t.error_code != 0 {
        return Err(format!("{transactional_id}: {}", error_name(t.error_code)));
    }
    let now_ms = runtime::Clock::system().wall_ms();
    let partitions: Vec<String> = t
        .topics
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |p| format!("{}-{p}", tp.topic.0))
        })
        .collect();
    println!(
        "CoordinatorId\tTransactionalId\tProducerId\tProducerEpoch\tTransactionState\tTransactionTimeoutMs\tCurrentTransactionStartTimeMs\tTransactionDurationMs\tTopicPartitions"
    );
    let (start, duration) = if t.transaction_start_time_ms < 0 {
        ("None".to_string(), "None".to_string())
    } else {
        (
            t.transaction_start_time_ms.to_string(),
            (now_ms - t.transaction_start_time_ms).to_string(),
        )
    };
    println!(
        "{coordinator}\t{transactional_id}\t{}\t{}\t{}\t{}\t{start}\t{duration}\t{}",
        t.producer_id.0,
        t.producer_epoch,
        t.transaction_state,
        t.transaction_timeout_ms,
        partitions.join(",")
    );
    Ok(())
}

/// The leader's address of `topic`-`partition`.
async fn leader_of(client: &mut Client, topic: &str, partition: i32) -> Result<String, String> {
    let m = client.metadata(Some(&[topic.to_string()])).await?;
    let t = m
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .ok_or_else(|| format!("no topic {topic}"))?;
    if t.error_code != 0 {
        return Err(format!("topic {topic}: {}", error_name(t.error_code)));
    }
    let p = t
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| format!("topic {topic} has no partition {partition}"))?;
    broker_addr(&m, p.leader_id.0).ok_or_else(|| format!("{topic}-{partition} has no leader"))
}

async fn producers(
    client: &mut Client,
    topic: &str,
    partition: i32,
) -> Result<Vec<kafka_protocol::messages::describe_producers_response::ProducerState>, String> {
    let addr = leader_of(client, topic, partition).await?;
    let body = RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(
        vec![TopicRequest::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_indexes(vec![partition])],
    ));
    let ResponseKind::DescribeProducers(r) = client
        .send(&addr, ApiKey::DescribeProducers, 0, &body)
        .await?
    else {
        return Err("unexpected answer to DescribeProducers".into());
    };
    let p = r
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .next()
        .ok_or("an empty answer to DescribeProducers")?;
    if p.error_code != 0 {
        return Err(format!("{topic}-{partition}: {}", error_name(p.error_code)));
    }
    Ok(p.active_producers)
}

async fn abort(
    client: &mut Client,
    topic: &str,
    partition: i32,
    producer: Option<(i64, i16, i32)>,
    start_offset: Option<i64>,
) -> Result<(), String> {
    let (producer_id, epoch, coordinator_epoch) = match (producer, start_offset) {
        (Some(p), _) => p,
        (None, Some(offset)) => {
            let found = producers(client, topic, partition)
                .await?
                .into_iter()
                .find(|p| p.current_txn_start_offset == offset)
                .ok_or_else(|| {
                    format!("no open transaction starts at offset {offset} of {topic}-{partition}")
                })?;
            (
                found.producer_id.0,
                i16::try_from(found.producer_epoch).unwrap_or(i16::MAX),
                found.coordinator_epoch,
            )
        }
        (None, None) => {
            return Err("abort needs --start-offset, or --producer-id, --producer-epoch and --coordinator-epoch".into())
        }
    };
    let addr = leader_of(client, topic, partition).await?;
    let body = RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_coordinator_epoch(coordinator_epoch)
            .with_transaction_result(false)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_indexes(vec![partition])]),
    ]));
    let ResponseKind::WriteTxnMarkers(r) = client
        .send(&addr, ApiKey::WriteTxnMarkers, 1, &body)
        .await?
    else {
        return Err("unexpected answer to WriteTxnMarkers".into());
    };
    let code = r
        .markers
        .iter()
        .flat_map(|m| m.topics.iter().flat_map(|t| t.partitions.iter()))
        .map(|p| p.error_code)
        .next()
        .unwrap_or(-1);
    if code != 0 {
        return Err(format!(
            "abort of producer {producer_id} on {topic}-{partition}: {}",
            error_name(code)
        ));
    }
    println!(
        "Aborted the transaction of producer {producer_id} (epoch {epoch}) on {topic}-{partition}"
    );
    Ok(())
}
