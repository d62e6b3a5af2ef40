//! Kafka's wire over TCP, the one mechanism both listeners use (the client listener in
//! `broker/` and the controller listener in `quorum/`) and the one-request client that brokers
//! use to reach the controller.
//!
//! A listener is a [`Service`]: a table of the API versions it implements and a handler. This
//! module accepts connections (up to a limit), reads frames (length checked before the body is
//! read), decodes requests against the table, answers ApiVersions from that same table —
//! including KIP-511's fallback: an unsupported ApiVersions version gets error 35 and the whole
//! list in a v0 answer, so the client can pick a version — and closes a connection whose request
//! cannot be decoded, with a log line. One request at a time per connection, as Kafka does: a
//! client may pipeline, the answers keep their order.
//!
//! Owns no Kafka state: what a request means is the service's business.

use crate::protocol::frame::{
    decode_request, decode_response, encode_request, encode_response, peek_request, FrameError,
    Request,
};
use crate::runtime::net::{read_frame, write_frame, Stream, TcpListener, TcpStream};
use crate::runtime::tls::Tls;
use crate::runtime::{self};
use crate::security::sasl::{Authenticator, SaslServerConfig, Step};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    api_versions_response::ApiVersion, ApiKey, ApiVersionsResponse, RequestKind, ResponseKind,
};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

/// Who is on the other end of a connection, and which listener it came in on.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The listener's name (`PLAINTEXT`, `CONTROLLER`, …): Metadata answers with each broker's
    /// endpoint of that name.
    pub listener: String,
    /// `ip:port` of the client.
    pub addr: String,
    /// Who the client proved to be (`User:ANONYMOUS` when it proved nothing): Kafka's
    /// principal, from a TLS client certificate.
    pub principal: String,
}

impl Peer {
    /// The client's address without the port (Kafka's `client_host`, after a '/').
    pub fn ip(&self) -> &str {
        self.addr
            .rsplit_once(':')
            .map_or(self.addr.as_str(), |(ip, _)| ip)
    }
}

/// What one listener serves.
pub trait Service: Send + Sync + 'static {
    /// The versions this listener implements for each API key: ApiVersions advertises exactly
    /// this, and the decoder refuses anything else.
    fn supported(api_key: ApiKey) -> Option<(i16, i16)>;

    /// Answers one request (never ApiVersions, which this module answers from the table).
    /// `Ok(None)`: the API sends no answer (Produce with acks=0). `Err`: close the connection.
    fn handle<'a>(
        &'a self,
        peer: &'a Peer,
        request: &'a Request,
    ) -> impl Future<Output = Result<Option<ResponseKind>, String>> + Send + 'a;

    /// A connection ended (the peer closed it, it failed, or it broke a rule).
    fn closed<'a>(&'a self, _peer: &'a Peer) -> impl Future<Output = ()> + Send + 'a {
        async {}
    }

    /// The SCRAM credential of `user` for `mechanism`, for a SASL listener offering SCRAM.
    fn scram_credential(
        &self,
        _user: &str,
        _mechanism: crate::security::scram::Mechanism,
    ) -> Option<crate::security::scram::Credential> {
        None
    }
}

/// How a listener secures its connections: TLS first if its protocol has it, then SASL.
#[derive(Clone, Debug, Default)]
pub struct ListenerSecurity {
    pub tls: Option<Arc<Tls>>,
    pub sasl: Option<Arc<SaslServerConfig>>,
}

/// SaslHandshake versions served: v0 (the SASL tokens follow as bare length-prefixed frames,
/// from before KIP-152; librdkafka requires v0 in ApiVersions to try SASL at all) and v1
/// (SaslAuthenticate requests carry them).
const SASL_HANDSHAKE_VERSIONS: (i16, i16) = (0, 1);
const SASL_AUTHENTICATE_VERSIONS: (i16, i16) = (0, 2);
/// The largest frame read from a SASL listener's client before it authenticates.
const PRE_AUTHENTICATION_MAX_FRAME_BYTES: usize = 512 * 1024;

/// One connection's SASL state.
struct SaslState {
    config: Arc<SaslServerConfig>,
    auth: Authenticator,
    /// The authenticated user, and when the session ends.
    session: Option<(String, Option<tokio::time::Instant>)>,
    /// A v0 SaslHandshake chose the mechanism: the exchange's tokens come as bare frames.
    raw_tokens: bool,
}

/// The limits of one listener.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request frame read (`socket.request.max.bytes`).
    pub max_frame_bytes: usize,
    /// Connections open at once (`max.connections`); more are closed as they arrive.
    pub max_connections: usize,
    /// Where each request's count and time go (`metrics.listener` set).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// The ApiVersions answer for a table of supported versions.
pub fn api_versions(
    supported: impl Fn(ApiKey) -> Option<(i16, i16)>,
    error_code: i16,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            ApiKey::iter()
                .filter_map(|k| supported(k).map(|range| (k, range)))
                .map(|(k, (min, max))| {
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}

/// Binds `host:port` (an empty host is every interface).
pub async fn bind(host: &str, port: u16) -> Result<(TcpListener, String), std::io::Error> {
    let addr = format!("{}:{port}", if host.is_empty() { "0.0.0.0" } else { host });
    let listener = TcpListener::bind(&addr).await?;
    Ok((listener, addr))
}

/// Log lines for connections refused for what they proved (a failed TLS handshake; a failed
/// authentication): a client retrying in a loop must not flood the log.
pub static REFUSALS: runtime::LogBudget = runtime::LogBudget::new(10, Duration::from_secs(10));

/// Why `serve` closed a connection after a failed authentication (already logged).
const AUTHENTICATION_FAILED: &str = "SASL authentication failed";

/// How this node reaches a listener of another node: plain TCP, or TLS with that listener's
/// settings (the same a listener of that name here serves with, as in Kafka).
#[derive(Clone, Debug, Default)]
pub struct Connector {
    tls: Option<Arc<Tls>>,
    sasl: Option<Arc<SaslClient>>,
}

/// What this side presents to a SASL listener.
#[derive(Clone, Debug)]
pub struct SaslClient {
    pub mechanism: String,
    pub user: String,
    pub password: String,
}

impl Connector {
    /// Plain TCP.
    pub fn plain() -> Connector {
        Connector::default()
    }

    pub fn tls(tls: Arc<Tls>) -> Connector {
        Connector {
            tls: Some(tls),
            sasl: None,
        }
    }

    /// TLS if `tls`, then SASL authentication if `sasl`.
    pub fn new(tls: Option<Arc<Tls>>, sasl: Option<SaslClient>) -> Connector {
        Connector {
            tls,
            sasl: sasl.map(Arc::new),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// How long a connection may take to make: a refused or clogged TCP connect fails at
    /// once, a TLS handshake takes round trips more.
    pub fn connect_timeout(&self) -> Duration {
        match self.tls {
            None => Duration::from_secs(1),
            Some(_) => crate::runtime::tls::HANDSHAKE_TIMEOUT,
        }
    }

    /// A connection to `addr` (`host:port`), TLS handshake done and SASL authentication
    /// passed if the listener wants them.
    pub async fn connect(&self, addr: &str) -> std::io::Result<Stream> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let mut stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(tls) => {
                let host = addr
                    .rsplit_once(':')
                    .map_or(addr, |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                tls.connect(host, tcp).await?
            }
        };
        if let Some(sasl) = &self.sasl {
            authenticate(&mut stream, sasl).await.map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("SASL authentication with {addr}: {e}"),
                )
            })?;
        }
        Ok(stream)
    }
}

/// One exchange on a connection being authenticated.
async fn sasl_call(
    stream: &mut Stream,
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &RequestKind,
) -> Result<ResponseKind, String> {
    let frame = encode_request(correlation_id, "ketch-sasl", api_key, version, body)
        .map_err(|e| e.to_string())?;
    write_frame(stream, &frame)
        .await
        .map_err(|e| e.to_string())?;
    let answer = read_frame(stream, 1 << 20)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the connection closed")?;
    decode_response(api_key, version, answer)
        .map(|(_, r)| r)
        .map_err(|e| e.to_string())
}

/// One SaslAuthenticate (v2) of the client side: the server's bytes.
async fn sasl_step(
    stream: &mut Stream,
    correlation_id: i32,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let body = RequestKind::SaslAuthenticate(
        kafka_protocol::messages::SaslAuthenticateRequest::default().with_auth_bytes(bytes.into()),
    );
    match sasl_call(stream, correlation_id, ApiKey::SaslAuthenticate, 2, &body).await? {
        ResponseKind::SaslAuthenticate(r) if r.error_code == 0 => Ok(r.auth_bytes.to_vec()),
        ResponseKind::SaslAuthenticate(r) => Err(format!(
            "refused (error {}): {}",
            r.error_code,
            r.error_message.as_deref().unwrap_or("")
        )),
        _ => Err("not a SaslAuthenticate answer".to_string()),
    }
}

/// The client side of SASL (SaslHandshake v1, then SaslAuthenticate v2 until done).
async fn authenticate(stream: &mut Stream, sasl: &SaslClient) -> Result<(), String> {
    use crate::security::scram::{Mechanism, ScramClient};
    let handshake = RequestKind::SaslHandshake(
        kafka_protocol::messages::SaslHandshakeRequest::default().with_mechanism(
            kafka_protocol::protocol::StrBytes::from_string(sasl.mechanism.clone()),
        ),
    );
    match sasl_call(stream, 1, ApiKey::SaslHandshake, 1, &handshake).await? {
        ResponseKind::SaslHandshake(r) if r.error_code == 0 => {}
        ResponseKind::SaslHandshake(r) => {
            return Err(format!(
                "mechanism {} refused (error {}); the listener offers {:?}",
                sasl.mechanism, r.error_code, r.mechanisms
            ))
        }
        _ => return Err("not a SaslHandshake answer".into()),
    }
    match sasl.mechanism.as_str() {
        "PLAIN" => {
            sasl_step(
                stream,
                2,
                crate::security::plain::message(&sasl.user, &sasl.password),
            )
            .await?;
            Ok(())
        }
        name => {
            let mechanism =
                Mechanism::from_name(name).ok_or(format!("mechanism {name} is not implemented"))?;
            let nonce = runtime::random_bytes_16()
                .map(|b| crate::security::scram::base64_encode(&b))
                .map_err(|e| format!("no randomness for the nonce: {e}"))?;
            let mut client = ScramClient::new(mechanism, &sasl.user, &sasl.password, &nonce);
            let server_first = sasl_step(stream, 2, client.first()).await?;
            let last = client.last(&server_first).map_err(|e| e.to_string())?;
            let server_final = sasl_step(stream, 3, last).await?;
            client.verify(&server_final).map_err(|e| e.to_string())
        }
    }
}

/// A listener's server side and this node's client of it, from its TLS and SASL settings.
pub fn secure_listener(
    tls: Option<&crate::model::tls::TlsSettings>,
    sasl: Option<&crate::model::sasl::SaslSettings>,
    reauth_ms: u64,
) -> Result<(ListenerSecurity, Connector), String> {
    use crate::security::jaas;
    let tls = tls.map(load_tls).transpose()?;
    let (server, client) = match sasl {
        None => (None, None),
        Some(s) => {
            let entry = |mechanism: &str| -> Result<Option<jaas::JaasEntry>, String> {
                s.jaas
                    .get(mechanism)
                    .map(|text| {
                        jaas::parse(text).map_err(|e| {
                            format!(
                                "listener {}: {mechanism}'s sasl.jaas.config: {e}",
                                s.listener
                            )
                        })
                    })
                    .transpose()
            };
            let plain_users = match entry("PLAIN")? {
                Some(e) if s.mechanisms.iter().any(|m| m == "PLAIN") => e.plain_users(),
                _ => Default::default(),
            };
            let client = match &s.client_mechanism {
                None => None,
                Some(m) => {
                    let (user, password) =
                        entry(m)?.and_then(|e| e.credentials()).ok_or_else(|| {
                            format!(
                                "listener {}: {m}'s sasl.jaas.config must give username and \
                                 password (this node's own, to connect to the listener elsewhere)",
                                s.listener
                            )
                        })?;
                    Some(SaslClient {
                        mechanism: m.clone(),
                        user,
                        password,
                    })
                }
            };
            (
                Some(Arc::new(SaslServerConfig {
                    mechanisms: s.mechanisms.clone(),
                    plain_users,
                    reauth_ms,
                })),
                client,
            )
        }
    };
    Ok((
        ListenerSecurity {
            tls: tls.clone(),
            sasl: server,
        },
        Connector::new(tls, client),
    ))
}

/// The TLS a listener's `ssl.*` settings describe, every file read now.
pub fn load_tls(t: &crate::model::tls::TlsSettings) -> Result<Arc<Tls>, String> {
    use crate::model::tls::{ClientAuth, PemSource};
    use crate::runtime::tls::{ClientCerts, Pem, TlsFiles};
    let pem = |p: &PemSource| match p {
        PemSource::File(path) => Pem::File(path.clone()),
        PemSource::Inline(text) => Pem::Text(text.clone()),
    };
    Tls::new(TlsFiles {
        name: t.listener.clone(),
        identity: t
            .keystore
            .as_ref()
            .map(|(chain, key)| (pem(chain), pem(key))),
        trusted: t.truststore.as_ref().map(pem),
        client_certs: match t.client_auth {
            ClientAuth::None => ClientCerts::None,
            ClientAuth::Requested => ClientCerts::Requested,
            ClientAuth::Required => ClientCerts::Required,
        },
        verify_hostname: t.verify_hostname,
        tls12: t.tls12,
    })
}

/// A client's connector from its properties, as Kafka's clients and tools read them
/// (`--command-config`): `security.protocol` PLAINTEXT or SSL, and the `ssl.*` keys.
pub fn client_connector(props: &crate::model::properties::Properties) -> Result<Connector, String> {
    let protocol = props
        .get("security.protocol")
        .map(|p| p.trim().to_ascii_uppercase())
        .unwrap_or_else(|| "PLAINTEXT".to_string());
    let tls = match protocol.as_str() {
        "PLAINTEXT" | "SASL_PLAINTEXT" => None,
        "SSL" | "SASL_SSL" => {
            let settings =
                crate::model::tls::parse_tls(props, "client").map_err(|e| e.to_string())?;
            Some(load_tls(&settings)?)
        }
        other => {
            return Err(format!(
                "security.protocol={other} is not a Kafka security protocol"
            ))
        }
    };
    let sasl = if protocol.starts_with("SASL_") {
        let mechanism = props
            .get("sasl.mechanism")
            .map(|m| m.trim().to_ascii_uppercase())
            .ok_or("sasl.mechanism is needed with a SASL security.protocol")?;
        if !crate::security::sasl::MECHANISMS.contains(&mechanism.as_str()) {
            return Err(format!("sasl.mechanism={mechanism} is not implemented"));
        }
        let text = props
            .get("sasl.jaas.config")
            .ok_or("sasl.jaas.config is needed with a SASL security.protocol")?;
        let (user, password) = crate::security::jaas::parse(text)
            .map_err(|e| format!("sasl.jaas.config: {e}"))?
            .credentials()
            .ok_or("sasl.jaas.config must give username and password")?;
        Some(SaslClient {
            mechanism,
            user,
            password,
        })
    } else {
        None
    };
    Ok(Connector::new(tls, sasl))
}

/// Accepts connections on `listener` for ever, one task per connection; with `tls`, each
/// begins with a TLS handshake (a connection that fails it is closed, with a log line).
pub async fn accept_loop<S: Service>(
    service: Arc<S>,
    listener: TcpListener,
    name: String,
    limits: Limits,
    security: ListenerSecurity,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if open.fetch_add(1, Ordering::Relaxed) + 1 > limits.max_connections {
                    open.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(%addr, listener = %name, limit = limits.max_connections, "max.connections reached: connection refused");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let service = Arc::clone(&service);
                let open = Arc::clone(&open);
                let mut peer = Peer {
                    listener: name.clone(),
                    addr: addr.to_string(),
                    principal: crate::security::ANONYMOUS.to_string(),
                };
                let max_frame_bytes = limits.max_frame_bytes;
                let metrics = limits.metrics.clone();
                let tls = security.tls.clone();
                let sasl = security.sasl.clone();
                tracing::debug!(peer = %peer.addr, listener = %peer.listener, "connection accepted");
                runtime::spawn(async move {
                    let stream = match tls {
                        None => Stream::Plain(stream),
                        Some(tls) => match tls.accept(stream).await {
                            Ok((stream, certificate)) => {
                                if let Some(der) = certificate {
                                    peer.principal =
                                        crate::security::principal_of_certificate(&der);
                                }
                                stream
                            }
                            Err(e) => {
                                if let Some(held) = REFUSALS.take() {
                                    if held > 0 {
                                        tracing::warn!("{held} more connections failed their TLS handshake or authentication (not logged one by one)");
                                    }
                                    tracing::warn!(peer = %peer.addr, listener = %peer.listener, "TLS handshake failed: {e}");
                                }
                                open.fetch_sub(1, Ordering::Relaxed);
                                return;
                            }
                        },
                    };
                    let sasl = sasl.map(|config| SaslState {
                        config,
                        auth: Authenticator::default(),
                        session: None,
                        raw_tokens: false,
                    });
                    match serve(
                        &*service,
                        &mut peer,
                        stream,
                        max_frame_bytes,
                        metrics.as_deref(),
                        sasl,
                    )
                    .await
                    {
                        // Refused authentications were logged within REFUSALS' budget.
                        Err(e) if e == AUTHENTICATION_FAILED => {
                            tracing::debug!(peer = %peer.addr, listener = %peer.listener, "closing a connection: {e}")
                        }
                        Err(e) => {
                            tracing::info!(peer = %peer.addr, listener = %peer.listener, "closing a connection: {e}")
                        }
                        Ok(()) => {
                            tracing::debug!(peer = %peer.addr, listener = %peer.listener, "connection closed by the peer")
                        }
                    }
                    service.closed(&peer).await;
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) => {
                tracing::warn!(listener = %name, "accept failed: {e}");
                runtime::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve<S: Service, T: AsyncRead + AsyncWrite + Unpin>(
    service: &S,
    peer: &mut Peer,
    mut stream: T,
    max_frame_bytes: usize,
    metrics: Option<&crate::metrics::Metrics>,
    mut sasl: Option<SaslState>,
) -> Result<(), String> {
    // A SASL listener serves the SASL APIs too; no other listener advertises them.
    let sasl_on = sasl.is_some();
    let supported = move |k: ApiKey| match k {
        ApiKey::SaslHandshake if sasl_on => Some(SASL_HANDSHAKE_VERSIONS),
        ApiKey::SaslAuthenticate if sasl_on => Some(SASL_AUTHENTICATE_VERSIONS),
        k => S::supported(k),
    };
    loop {
        // Before authentication a frame is small (Kafka's sasl.server.max.receive.size): an
        // unauthenticated peer must not make this node read and decode 100 MiB requests.
        let limit = if sasl.as_ref().is_some_and(|s| s.session.is_none()) {
            max_frame_bytes.min(PRE_AUTHENTICATION_MAX_FRAME_BYTES)
        } else {
            max_frame_bytes
        };
        let Some(frame) = read_frame(&mut stream, limit)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        // After a v0 SaslHandshake the SASL tokens come bare, each answered bare.
        if let Some(state) = sasl.as_mut().filter(|s| s.raw_tokens) {
            let (out, done) = sasl_raw_token(service, state, &frame, peer)?;
            let mut answer = Vec::with_capacity(4 + out.len());
            answer.extend_from_slice(&(out.len() as u32).to_be_bytes());
            answer.extend_from_slice(&out);
            write_frame(&mut stream, &answer)
                .await
                .map_err(|e| e.to_string())?;
            if done {
                state.raw_tokens = false;
            }
            continue;
        }
        let request = match decode_request(frame.clone(), supported) {
            Ok(r) => r,
            Err(FrameError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                let body = ResponseKind::ApiVersions(api_versions(
                    supported,
                    ResponseError::UnsupportedVersion.code(),
                ));
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
        drop(frame);
        let started = metrics.map(|m| m.now());
        // Kafka's request metrics tell a consumer's fetch from a follower's.
        let api_name = metrics
            .map(|_| match &request.body {
                RequestKind::Fetch(f)
                    if f.replica_id.0 >= 0 || f.replica_state.replica_id.0 >= 0 =>
                {
                    "FetchFollower".to_string()
                }
                RequestKind::Fetch(_) => "FetchConsumer".to_string(),
                _ => format!("{:?}", request.api_key),
            })
            .unwrap_or_default();
        let api_version = request.version;
        let record = |ok: bool| {
            if let (Some(m), Some(started)) = (metrics, started) {
                m.request(&api_name, api_version, started, ok);
            }
        };
        let correlation_id = request.header.correlation_id;
        // SASL: the handshake and exchange are answered here; nothing else is served before
        // the client is authenticated, nor after its session ended (KIP-368).
        let mut close_after = None;
        let sasl_answer = match (&mut sasl, &request.body) {
            (_, RequestKind::ApiVersions(_)) | (None, _) => None,
            (Some(state), RequestKind::SaslHandshake(r)) => {
                let answer = sasl_handshake(state, &r.mechanism, peer);
                state.raw_tokens = request.version == 0 && state.auth.in_exchange();
                Some(answer)
            }
            (Some(state), RequestKind::SaslAuthenticate(r)) => {
                let (answer, failed) =
                    sasl_authenticate(service, state, &r.auth_bytes, request.version, peer);
                close_after = failed;
                Some(answer)
            }
            (Some(state), _) => match &state.session {
                None => {
                    return Err(format!(
                        "{:?} before SASL authentication: closing the connection",
                        request.api_key
                    ))
                }
                Some((user, Some(end))) if runtime::monotonic_now() >= *end => {
                    return Err(format!(
                        "the SASL session of {user} ended (connections.max.reauth.ms) \
                             without re-authentication: closing the connection"
                    ))
                }
                Some(_) => None,
            },
        };
        let body = if let Some(answer) = sasl_answer {
            Some(answer)
        } else if let RequestKind::ApiVersions(_) = request.body {
            Some(ResponseKind::ApiVersions(api_versions(supported, 0)))
        } else {
            let span = tracing::debug_span!(
                "request",
                client_id = request.header.client_id.as_deref().unwrap_or(""),
                correlation_id,
                api_key = ?request.api_key,
                api_version = request.version
            );
            match service.handle(peer, &request).instrument(span).await {
                Ok(body) => body,
                Err(e) => {
                    record(false);
                    return Err(e);
                }
            }
        };
        let Some(body) = body else {
            record(true);
            continue; // acks=0: no answer
        };
        let out = encode_response(correlation_id, request.api_key, request.version, &body)
            .map_err(|e| e.to_string())?;
        // Only the encoded answer is held while a slow reader takes it.
        drop(body);
        drop(request);
        write_frame(&mut stream, &out)
            .await
            .map_err(|e| e.to_string())?;
        record(true);
        if close_after.is_some() {
            return Err(AUTHENTICATION_FAILED.to_string());
        }
    }
}

/// SaslHandshake: the client names its mechanism.
fn sasl_handshake(state: &mut SaslState, mechanism: &str, peer: &Peer) -> ResponseKind {
    use kafka_protocol::messages::SaslHandshakeResponse;
    let enabled: Vec<kafka_protocol::protocol::StrBytes> = state
        .config
        .mechanisms
        .iter()
        .map(|m| kafka_protocol::protocol::StrBytes::from_string(m.clone()))
        .collect();
    let code = match state.auth.handshake(mechanism, &state.config) {
        Ok(()) => 0,
        Err(_) => {
            tracing::info!(peer = %peer.addr, listener = %peer.listener, mechanism,
                "SaslHandshake with a mechanism not enabled here");
            ResponseError::UnsupportedSaslMechanism.code()
        }
    };
    ResponseKind::SaslHandshake(
        SaslHandshakeResponse::default()
            .with_error_code(code)
            .with_mechanisms(enabled),
    )
}

/// One bare SASL token (after a v0 handshake): the bytes to send back and whether the
/// exchange is over; `Err` closes the connection (v0 has no way to say why).
fn sasl_raw_token<S: Service>(
    service: &S,
    state: &mut SaslState,
    token: &[u8],
    peer: &mut Peer,
) -> Result<(Vec<u8>, bool), String> {
    let (answer, failed) = sasl_authenticate(service, state, token, 0, peer);
    if failed.is_some() {
        return Err(AUTHENTICATION_FAILED.to_string());
    }
    match answer {
        ResponseKind::SaslAuthenticate(r) => Ok((
            r.auth_bytes.to_vec(),
            state.session.is_some() && !state.auth.in_exchange(),
        )),
        _ => Err("no SASL answer".into()),
    }
}

/// SaslAuthenticate: one step of the exchange. The answer, and why to close the connection
/// after sending it (a failed authentication), if so.
fn sasl_authenticate<S: Service>(
    service: &S,
    state: &mut SaslState,
    bytes: &[u8],
    version: i16,
    peer: &mut Peer,
) -> (ResponseKind, Option<String>) {
    use kafka_protocol::messages::SaslAuthenticateResponse;
    let nonce = runtime::random_bytes_16()
        .map(|b| crate::security::scram::base64_encode(&b))
        .unwrap_or_default();
    let step = if nonce.is_empty() {
        Err("no randomness for the server nonce".to_string())
    } else {
        state.auth.step(
            bytes,
            &state.config,
            |user, mechanism| service.scram_credential(user, mechanism),
            &nonce,
        )
    };
    let step = match step {
        Ok(Step::Done { user, .. })
            if state
                .session
                .as_ref()
                .is_some_and(|(before, _)| *before != user) =>
        {
            Err(format!(
                "re-authentication as {user} on a connection authenticated as another user"
            ))
        }
        other => other,
    };
    match step {
        Ok(Step::Continue(out)) => (
            ResponseKind::SaslAuthenticate(
                SaslAuthenticateResponse::default().with_auth_bytes(out.into()),
            ),
            None,
        ),
        Ok(Step::Done { user, bytes: out }) => {
            let lifetime_ms = state.config.reauth_ms;
            let end = (lifetime_ms > 0)
                .then(|| runtime::monotonic_now() + Duration::from_millis(lifetime_ms));
            let again = state.session.is_some();
            tracing::debug!(peer = %peer.addr, listener = %peer.listener, %user, again, "SASL authentication succeeded");
            peer.principal = format!("User:{user}");
            state.session = Some((user, end));
            let mut answer = SaslAuthenticateResponse::default().with_auth_bytes(out.into());
            if version >= 1 {
                answer =
                    answer.with_session_lifetime_ms(i64::try_from(lifetime_ms).unwrap_or(i64::MAX));
            }
            (ResponseKind::SaslAuthenticate(answer), None)
        }
        Err(why) => {
            if let Some(held) = REFUSALS.take() {
                if held > 0 {
                    tracing::warn!("{held} more connections failed their TLS handshake or authentication (not logged one by one)");
                }
                tracing::warn!(peer = %peer.addr, listener = %peer.listener, "SASL authentication failed: {why}");
            }
            let message = format!("Authentication failed: {why}");
            (
                ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                        .with_error_message(Some(kafka_protocol::protocol::StrBytes::from_string(
                            message.clone(),
                        ))),
                ),
                Some(message),
            )
        }
    }
}

/// The client id of a DescribeQuorum that is answered by the controller it reaches, never
/// forwarded to the leader: a follower's forwards (one hop, so two members that each think
/// the other leads cannot bounce one) and `metadata-quorum describe --local`.
pub const NO_FORWARD_CLIENT_ID: &str = "ketch-quorum-no-forward";

/// One request on a fresh connection to `addr` and its answer; `None` on any failure or once
/// `timeout` has passed (the callers retry or try another node).
#[allow(clippy::too_many_arguments)]
pub async fn call_once(
    connector: &Connector,
    addr: &str,
    client_id: &str,
    api_key: ApiKey,
    version: i16,
    body: &RequestKind,
    max_response_bytes: usize,
    timeout: Duration,
) -> Option<ResponseKind> {
    let exchange = async {
        let mut stream = connector.connect(addr).await.ok()?;
        let frame = encode_request(1, client_id, api_key, version, body).ok()?;
        write_frame(&mut stream, &frame).await.ok()?;
        let answer = read_frame(&mut stream, max_response_bytes).await.ok()??;
        decode_response(api_key, version, answer)
            .ok()
            .map(|(_, r)| r)
    };
    tokio::time::timeout(timeout, exchange).await.ok()?
}

/// Whether every one of `addrs` (at least one) refuses a connection: nobody listens there, so
/// the process that did is gone. A connection made, or one that did not answer within
/// `timeout` (a host down, a partition), says nothing of the kind.
pub async fn all_refuse(addrs: &[String], timeout: Duration) -> bool {
    if addrs.is_empty() {
        return false;
    }
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr.as_str())).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            _ => return false,
        }
    }
    true
}

/// A client connection kept open across requests (a broker's heartbeats to the active
/// controller: the controller learns of the broker's death from the connection closing).
/// Reconnects on the next request after any failure.
pub struct Session {
    client_id: String,
    max_response_bytes: usize,
    connector: Connector,
    addr: String,
    stream: Option<Stream>,
    correlation_id: i32,
}

impl Session {
    pub fn new(client_id: &str, max_response_bytes: usize, connector: Connector) -> Session {
        Session {
            client_id: client_id.to_string(),
            max_response_bytes,
            connector,
            addr: String::new(),
            stream: None,
            correlation_id: 0,
        }
    }

    /// Whether a connection to `addr` is open (from an earlier exchange that succeeded).
    pub fn is_connected_to(&self, addr: &str) -> bool {
        self.addr == addr && self.stream.is_some()
    }

    /// One request to `addr` on the kept connection (a new one if `addr` changed or the last
    /// exchange failed); `None` on any failure or after `timeout`.
    pub async fn call(
        &mut self,
        addr: &str,
        api_key: ApiKey,
        version: i16,
        body: &RequestKind,
        timeout: Duration,
    ) -> Option<ResponseKind> {
        if self.addr != addr {
            self.stream = None;
            self.addr = addr.to_string();
        }
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let (client_id, max_response_bytes) = (&self.client_id, self.max_response_bytes);
        let connector = &self.connector;
        let stream = &mut self.stream;
        let exchange = async {
            if stream.is_none() {
                *stream = Some(connector.connect(addr).await.ok()?);
            }
            let s = stream.as_mut()?;
            let frame = encode_request(correlation_id, client_id, api_key, version, body).ok()?;
            write_frame(s, &frame).await.ok()?;
            let answer = read_frame(s, max_response_bytes).await.ok()??;
            match decode_response(api_key, version, answer) {
                Ok((got, r)) if got == correlation_id => Some(r),
                _ => None,
            }
        };
        let answer = tokio::time::timeout(timeout, exchange).await.ok().flatten();
        if answer.is_none() {
            self.stream = None;
        }
        answer
    }
}
