//! The quorum member's clients of its peers: two connections per other voter, one for fetches
//! and snapshot chunks (a leader may hold a fetch for 500 ms) and one for everything else, so a
//! held fetch never delays a vote. Each sends one request at a time and hands the answer to the
//! driver; a request that finds no connection, or whose answer does not come within
//! [`REPLY_TIMEOUT`], is dropped: the core retries. Owns the connections, nothing else.

use super::listener::{MAX_FRAME_BYTES, REPLY_TIMEOUT};
use super::member::Inbound;
use super::wire::{request_to_wire, response_from_wire};
use crate::model::NodeId;
use crate::protocol::frame::{decode_response, encode_request};
use crate::raft::Message;
use crate::runtime::net::{read_frame, write_frame, Stream};
use crate::wire::Connector;
use std::time::Duration;
use tokio::sync::mpsc;

pub async fn peer_client(
    peer: NodeId,
    addr: String,
    mut requests: mpsc::Receiver<Message>,
    inbound: mpsc::Sender<Inbound>,
    cluster_id: String,
    me: NodeId,
    connector: Connector,
) {
    let client_id = format!("ketch-quorum-{}", me.0);
    let mut stream: Option<Stream> = None;
    // A refused or clogged TCP connect fails at once; a TLS handshake takes round trips more.
    let connect_timeout = if connector.is_tls() {
        connector.connect_timeout()
    } else {
        Duration::from_millis(500)
    };
    let mut correlation_id = 0i32;
    while let Some(message) = requests.recv().await {
        let Some((api_key, version, body)) = request_to_wire(peer, &message, &cluster_id) else {
            continue;
        };
        if stream.is_none() {
            match tokio::time::timeout(connect_timeout, connector.connect(&addr)).await {
                Ok(Ok(s)) => {
                    stream = Some(s);
                }
                _ => continue, // unreachable: drop, the core retries
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        correlation_id = correlation_id.wrapping_add(1);
        let exchange = async {
            let frame = encode_request(correlation_id, &client_id, api_key, version, &body)
                .map_err(|e| e.to_string())?;
            write_frame(s, &frame).await.map_err(|e| e.to_string())?;
            let answer = read_frame(s, MAX_FRAME_BYTES)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("connection closed")?;
            let (got, response) =
                decode_response(api_key, version, answer).map_err(|e| e.to_string())?;
            if got != correlation_id {
                return Err(format!("correlation id {got}, expected {correlation_id}"));
            }
            response_from_wire(&message, response)
        };
        match tokio::time::timeout(REPLY_TIMEOUT, exchange).await {
            Ok(Ok(response)) => {
                if inbound
                    .send(Inbound::Response {
                        from: peer,
                        message: response,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = peer.0, "quorum request failed: {e}");
                stream = None;
            }
            Err(_) => stream = None,
        }
    }
}
