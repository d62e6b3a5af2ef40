//! Client-side commands of the `ketch` binary that speak Kafka's protocol to a running node
//! (as Kafka's shell scripts do): `metadata-quorum describe` so far.

use crate::broker::net::{read_frame, write_frame};
use crate::broker::raft_wire::METADATA_TOPIC;
use crate::protocol::frame::{decode_response, encode_request};
use crate::runtime::{self, net::TcpStream, Clock};
use kafka_protocol::messages::{
    describe_quorum_request, ApiKey, DescribeQuorumRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;

const DESCRIBE_QUORUM_VERSION: i16 = 2;

/// `ketch metadata-quorum --bootstrap-server HOST:PORT describe [--status] [--replication]`,
/// printed as Kafka's `kafka-metadata-quorum.sh` prints it.
pub fn describe_quorum(bootstrap: &str, status: bool, replication: bool) -> Result<(), String> {
    let response = runtime::block_on(async {
        let mut stream =
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(bootstrap))
                .await
                .map_err(|_| format!("connecting to {bootstrap} timed out"))?
                .map_err(|e| format!("cannot connect to {bootstrap}: {e}"))?;
        let body = RequestKind::DescribeQuorum(DescribeQuorumRequest::default().with_topics(vec![
                describe_quorum_request::TopicData::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
                    .with_partitions(vec![
                        describe_quorum_request::PartitionData::default().with_partition_index(0)
                    ]),
            ]));
        let frame = encode_request(
            1,
            "ketch-metadata-quorum",
            ApiKey::DescribeQuorum,
            DESCRIBE_QUORUM_VERSION,
            &body,
        )
        .map_err(|e| e.to_string())?;
        write_frame(&mut stream, &frame)
            .await
            .map_err(|e| e.to_string())?;
        let answer =
            tokio::time::timeout(Duration::from_secs(5), read_frame(&mut stream, 16 << 20))
                .await
                .map_err(|_| "no answer in 5 s".to_string())?
                .map_err(|e| e.to_string())?
                .ok_or("the node closed the connection")?;
        decode_response(ApiKey::DescribeQuorum, DESCRIBE_QUORUM_VERSION, answer)
            .map_err(|e| e.to_string())
    })
    .map_err(|e| e.to_string())??;
    let ResponseKind::DescribeQuorum(r) = response.1 else {
        return Err("not a DescribeQuorum response".into());
    };
    let p = r
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == 0)
        .ok_or("the response names no metadata partition")?;
    let from_follower = p.error_code == 6;
    let leader_end = p
        .current_voters
        .iter()
        .find(|v| v.replica_id == p.leader_id)
        .map_or(-1, |v| v.log_end_offset);
    let now = Clock::system().wall_ms();
    if status {
        let lags: Vec<i64> = p
            .current_voters
            .iter()
            .filter(|v| v.replica_id != p.leader_id && v.log_end_offset >= 0)
            .map(|v| (leader_end - v.log_end_offset).max(0))
            .collect();
        let lag_ms: Vec<i64> = p
            .current_voters
            .iter()
            .filter(|v| v.replica_id != p.leader_id && v.last_caught_up_timestamp >= 0)
            .map(|v| (now - v.last_caught_up_timestamp).max(0))
            .collect();
        let ids = |v: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
            v.iter()
                .map(|r| r.replica_id.0.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        println!("LeaderId:               {}", p.leader_id.0);
        println!("LeaderEpoch:            {}", p.leader_epoch);
        println!("HighWatermark:          {}", p.high_watermark);
        if from_follower {
            println!("MaxFollowerLag:         unknown (answered by a follower; ask the leader)");
            println!("MaxFollowerLagTimeMs:   unknown");
        } else {
            println!(
                "MaxFollowerLag:         {}",
                lags.iter().max().copied().unwrap_or(0)
            );
            println!(
                "MaxFollowerLagTimeMs:   {}",
                lag_ms.iter().max().copied().unwrap_or(0)
            );
        }
        println!("CurrentVoters:          [{}]", ids(&p.current_voters));
        println!("CurrentObservers:       [{}]", ids(&p.observers));
    }
    if replication {
        println!("NodeId\tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus");
        for (v, kind) in p
            .current_voters
            .iter()
            .map(|v| (v, "Follower"))
            .chain(p.observers.iter().map(|v| (v, "Observer")))
        {
            let status = if v.replica_id == p.leader_id {
                "Leader"
            } else {
                kind
            };
            let lag = if v.log_end_offset >= 0 && leader_end >= 0 {
                (leader_end - v.log_end_offset).max(0).to_string()
            } else {
                "unknown".into()
            };
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                v.replica_id.0,
                v.log_end_offset,
                lag,
                v.last_fetch_timestamp,
                v.last_caught_up_timestamp,
                status
            );
        }
    }
    Ok(())
}
