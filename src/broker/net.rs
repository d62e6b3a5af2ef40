//! Reading and writing Kafka frames on a byte stream. The length is checked against the limit
//! before anything is allocated for the body, so a peer that claims 2 GiB costs four bytes.

use crate::protocol::frame::{decode_response, encode_request};
use crate::runtime::net::TcpStream;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads one frame's body (without the length prefix). `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> io::Result<Option<Bytes>> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len)
        .ok()
        .filter(|n| *n <= max_bytes)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame length {len} is outside 0..={max_bytes}"),
            )
        })?;
    // The buffer grows as bytes arrive beyond 16 MiB up front: a peer that claims a huge frame
    // and sends it slowly holds memory for what it sent (untouched capacity costs no memory).
    let mut body = Vec::with_capacity(len.min(16 << 20));
    (&mut *reader)
        .take(len as u64)
        .read_to_end(&mut body)
        .await?;
    if body.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame ended after {} of {len} bytes", body.len()),
        ));
    }
    Ok(Some(Bytes::from(body)))
}

/// Writes an already length-prefixed frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, frame: &[u8]) -> io::Result<()> {
    writer.write_all(frame).await?;
    writer.flush().await
}

/// One request on a fresh connection to `addr` and its answer; `None` on any failure or once
/// `timeout` has passed (the callers retry or try another node).
pub async fn call_once(
    addr: &str,
    client_id: &str,
    api_key: ApiKey,
    version: i16,
    body: &RequestKind,
    max_response_bytes: usize,
    timeout: Duration,
) -> Option<ResponseKind> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let frame = encode_request(1, client_id, api_key, version, body).ok()?;
        write_frame(&mut stream, &frame).await.ok()?;
        let answer = read_frame(&mut stream, max_response_bytes).await.ok()??;
        decode_response(api_key, version, answer)
            .ok()
            .map(|(_, r)| r)
    };
    tokio::time::timeout(timeout, exchange).await.ok()?
}
