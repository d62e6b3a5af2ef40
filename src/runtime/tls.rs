//! TLS over this runtime's sockets, with rustls (ring provider): one [`Tls`] per listener
//! whose protocol is SSL, serving both ends — accepting on the listener, and connecting to the
//! same listener on other nodes (inter-broker and controller traffic, as in Kafka, where a
//! listener's `ssl.*` settings configure both).
//!
//! Certificates and keys come from PEM files or PEM text. A file that changes (a renewed
//! certificate) is read again at the next handshake after it changed (checked at most once a
//! second); a new file that does not load leaves the old configuration in use, with an error
//! in the log, so a half-written renewal never takes a listener down.
//!
//! Owns the files it reads and the TLS state machines; knows nothing of Kafka. The peer's
//! certificate is handed back as DER for the caller to name a principal from.

use super::net::{Stream, TcpStream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Where PEM text comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Text(String),
}

/// Whether a client must, may or must not present a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCerts {
    None,
    Requested,
    Required,
}

/// What a [`Tls`] is made of.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// For log lines and errors: the listener these are for.
    pub name: String,
    /// This node's certificate chain and private key (the same file may hold both).
    pub identity: Option<(Pem, Pem)>,
    /// The certificates a peer's chain must lead to.
    pub trusted: Option<Pem>,
    pub client_certs: ClientCerts,
    /// A server's certificate must name the host connected to.
    pub verify_hostname: bool,
    /// TLS 1.2 is offered besides TLS 1.3.
    pub tls12: bool,
}

/// How long a handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

struct Loaded {
    server: Option<Arc<ServerConfig>>,
    client: Arc<ClientConfig>,
    /// Each file read, with its modification time and length when read.
    stamps: Vec<(PathBuf, Option<(SystemTime, u64)>)>,
    checked_at: Instant,
}

/// One listener's TLS, server and client side.
pub struct Tls {
    files: TlsFiles,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The PEM text of `pem`, noting the file in `stamps`. Text given in a properties file may
/// have lost its line breaks (continued lines are joined): the blocks are laid out again.
fn read_pem(
    pem: &Pem,
    stamps: &mut Vec<(PathBuf, Option<(SystemTime, u64)>)>,
) -> Result<String, String> {
    match pem {
        Pem::File(path) => {
            stamps.push((path.clone(), stamp(path)));
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
        }
        Pem::Text(text) => Ok(relayout_pem(text)),
    }
}

/// PEM blocks with their base64 on lines of their own, whatever whitespace the text had.
fn relayout_pem(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let after = &rest[begin + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(body_end) = body_start.find(&end_marker) else {
            break;
        };
        let body: String = body_start[..body_end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        out.push_str(&format!("-----BEGIN {label}-----\n"));
        for chunk in body.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str(&end_marker);
        out.push('\n');
        rest = &body_start[body_end + end_marker.len()..];
    }
    out
}

fn certificates(text: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no CERTIFICATE block"));
    }
    Ok(certs)
}

fn private_key(text: &str, what: &str) -> Result<PrivateKeyDer<'static>, String> {
    if text.contains("ENCRYPTED PRIVATE KEY") {
        return Err(format!(
            "{what}: the private key is encrypted, which is not implemented (give it unencrypted)"
        ));
    }
    PrivateKeyDer::from_pem_slice(text.as_bytes())
        .map_err(|e| format!("{what}: no usable private key: {e}"))
}

/// rustls's ring provider. rustls marks it deprecated because ring has no post-quantum key
/// exchange (X25519MLKEM768); the aws-lc provider has, but builds a large C library with cmake,
/// which this project's 2-core CI pays for on every clean build. Classical key exchange is
/// what Kafka's own JVM TLS offers today.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server verifier that checks the chain but not the name (`ssl.endpoint.identification.
/// algorithm` empty): a certificate that is valid but names another host passes.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn load(files: &TlsFiles) -> Result<Loaded, String> {
    let mut stamps = Vec::new();
    let name = &files.name;
    let versions: &[&'static rustls::SupportedProtocolVersion] = if files.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let identity = match &files.identity {
        Some((chain, key)) => {
            let chain_text = read_pem(chain, &mut stamps)?;
            let key_text = if key == chain {
                chain_text.clone()
            } else {
                read_pem(key, &mut stamps)?
            };
            Some((
                certificates(&chain_text, &format!("listener {name}: keystore"))?,
                private_key(&key_text, &format!("listener {name}: keystore"))?,
            ))
        }
        None => None,
    };
    let mut roots = RootCertStore::empty();
    if let Some(trusted) = &files.trusted {
        let text = read_pem(trusted, &mut stamps)?;
        for cert in certificates(&text, &format!("listener {name}: truststore"))? {
            roots
                .add(cert)
                .map_err(|e| format!("listener {name}: truststore: {e}"))?;
        }
    }
    let roots = Arc::new(roots);
    let server = match &identity {
        Some((chain, key)) => {
            let verifier = match files.client_certs {
                ClientCerts::None => WebPkiClientVerifier::no_client_auth(),
                ClientCerts::Requested => {
                    WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), provider())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| format!("listener {name}: client certificates: {e}"))?
                }
                ClientCerts::Required => {
                    WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), provider())
                        .build()
                        .map_err(|e| format!("listener {name}: client certificates: {e}"))?
                }
            };
            let config = ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(versions)
                .map_err(|e| format!("listener {name}: {e}"))?
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain.clone(), key.clone_key())
                .map_err(|e| format!("listener {name}: keystore: {e}"))?;
            Some(Arc::new(config))
        }
        None => None,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| format!("listener {name}: {e}"))?;
    let builder = if files.verify_hostname {
        builder.with_root_certificates(Arc::clone(&roots))
    } else {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), provider())
            .build()
            .map_err(|e| format!("listener {name}: truststore: {e}"))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
    };
    let client = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("listener {name}: keystore: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Loaded {
        server,
        client: Arc::new(client),
        stamps,
        #[allow(clippy::disallowed_methods)] // the seam is where clocks are read
        checked_at: Instant::now(),
    })
}

impl Tls {
    /// Reads every file now: a listener that cannot load its certificates does not start.
    pub fn new(files: TlsFiles) -> Result<Arc<Tls>, String> {
        let loaded = load(&files)?;
        Ok(Arc::new(Tls {
            files,
            loaded: Mutex::new(loaded),
        }))
    }

    pub fn name(&self) -> &str {
        &self.files.name
    }

    /// The configurations to use now, read again first if a file changed.
    fn current(&self) -> (Option<Arc<ServerConfig>>, Arc<ClientConfig>) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        #[allow(clippy::disallowed_methods)] // elapsed() reads the clock: the seam may
        let due = loaded.checked_at.elapsed() >= RELOAD_CHECK_INTERVAL;
        if due {
            #[allow(clippy::disallowed_methods)] // the seam is where clocks are read
            let now = Instant::now();
            loaded.checked_at = now;
            let changed = loaded.stamps.iter().any(|(path, was)| stamp(path) != *was);
            if changed {
                match load(&self.files) {
                    Ok(new) => {
                        tracing::info!(listener = %self.files.name, "TLS certificates changed on disk: loaded them");
                        *loaded = new;
                    }
                    Err(e) => {
                        tracing::error!(listener = %self.files.name, "TLS certificates changed on disk but do not load; keeping the previous ones: {e}");
                        // Not again until the files change once more.
                        loaded.stamps = loaded
                            .stamps
                            .iter()
                            .map(|(p, _)| (p.clone(), stamp(p)))
                            .collect();
                    }
                }
            }
        }
        (loaded.server.clone(), Arc::clone(&loaded.client))
    }

    /// The server side of a handshake on an accepted connection: the stream, and the client's
    /// certificate (DER) if it gave one.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<(Stream, Option<Vec<u8>>)> {
        let (server, _) = self.current();
        let server = server.ok_or_else(|| {
            io::Error::other(format!(
                "listener {}: no keystore to serve TLS with",
                self.files.name
            ))
        })?;
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec());
        Ok((Stream::ServerTls(Box::new(tls)), peer))
    }

    /// The client side of a handshake with `host` (a name or an address) over `tcp`.
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> io::Result<Stream> {
        let (_, client) = self.current();
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(client);
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        Ok(Stream::ClientTls(Box::new(tls)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_text_that_lost_its_line_breaks_is_laid_out_again() {
        let joined = "-----BEGIN CERTIFICATE-----MIIBa Gh   pc==-----END CERTIFICATE-----  \
                      -----BEGIN PRIVATE KEY----- QUJD -----END PRIVATE KEY-----";
        assert_eq!(
            relayout_pem(joined),
            "-----BEGIN CERTIFICATE-----\nMIIBaGhpc==\n-----END CERTIFICATE-----\n\
             -----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n"
        );
    }
}
