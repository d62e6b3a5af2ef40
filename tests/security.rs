//! Security against real clients (issue 16): TLS listeners with and without client
//! certificates for kcat (librdkafka), confluent-kafka, kafka-python and ketch's own tools;
//! certificates that must be refused (untrusted, expired, none where one is required, a
//! plaintext client on a TLS port); a renewed certificate picked up without a restart; and a
//! three-node cluster whose every listener — client, inter-broker and controller — is TLS
//! with client certificates required.
//!
//! Certificates are made here with rcgen: a CA, a server certificate for 127.0.0.1, client
//! certificates from that CA, from another CA, and one that expired.
#![allow(clippy::disallowed_methods)] // black-box tests wait on real time

mod common;

use common::{free_port, node_dir, python, run, Node};
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A certificate authority of the test's own.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A certificate for `cn` (with `sans`) from `ca`: (certificate PEM, key PEM).
fn leaf(ca: &Ca, cn: &str, org: Option<&str>, sans: &[&str], expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    if let Some(o) = org {
        params.distinguished_name.push(DnType::OrganizationName, o);
    }
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The files a test needs, in `dir`.
struct Pki {
    ca: String,
    rogue_ca: String,
    /// The server's key and chain in one file (a PEM keystore).
    server: String,
    /// The client's certificate and key apart (librdkafka, kafka-python) and together (ketch).
    client_cert: String,
    client_key: String,
    client_keystore: String,
    rogue_cert: String,
    rogue_key: String,
    expired_cert: String,
    expired_key: String,
    ca_handle: Ca,
}

fn pki(dir: &Path) -> Pki {
    let ca = ca("ketch test CA");
    let rogue = ca_other();
    let (server_cert, server_key) = leaf(&ca, "broker", None, &["127.0.0.1", "localhost"], false);
    let (client_cert, client_key) = leaf(&ca, "writer", Some("ketch"), &[], false);
    let (rogue_cert, rogue_key) = leaf(&rogue, "intruder", None, &[], false);
    let (expired_cert, expired_key) = leaf(&ca, "old", None, &[], true);
    Pki {
        ca: write(dir, "ca.pem", &ca.cert.pem()),
        rogue_ca: write(dir, "rogue-ca.pem", &rogue.cert.pem()),
        server: write(dir, "server.pem", &format!("{server_key}{server_cert}")),
        client_cert: write(dir, "client.crt", &client_cert),
        client_key: write(dir, "client.key", &client_key),
        client_keystore: write(dir, "client.pem", &format!("{client_key}{client_cert}")),
        rogue_cert: write(dir, "rogue.crt", &rogue_cert),
        rogue_key: write(dir, "rogue.key", &rogue_key),
        expired_cert: write(dir, "expired.crt", &expired_cert),
        expired_key: write(dir, "expired.key", &expired_key),
        ca_handle: ca,
    }
}

fn ca_other() -> Ca {
    ca("some other CA")
}

/// A scenario of tests/clients/security.py; its JSON line.
fn scenario(args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/security.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "security scenario {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("scenario output {line:?}: {e}"))
}

fn tls_settings(pki: &Pki, cert: Option<(&str, &str)>) -> String {
    let mut v = serde_json::json!({
        "security.protocol": "ssl",
        "ssl.ca.location": pki.ca,
    });
    if let Some((c, k)) = cert {
        v["ssl.certificate.location"] = c.into();
        v["ssl.key.location"] = k.into();
    }
    v.to_string()
}

#[test]
fn tls_listeners_serve_real_clients_and_refuse_what_they_must() {
    let dir = node_dir("tls");
    let pki = pki(&dir);
    let (ssl, mtls, controller) = (free_port(), free_port(), free_port());
    let config = format!(
        "process.roles=broker,controller\nnode.id=1\n\
         controller.quorum.voters=1@127.0.0.1:{controller}\n\
         listeners=SSL://127.0.0.1:{ssl},MTLS://127.0.0.1:{mtls},CONTROLLER://127.0.0.1:{controller}\n\
         listener.security.protocol.map=SSL:SSL,MTLS:SSL,CONTROLLER:PLAINTEXT\n\
         inter.broker.listener.name=SSL\ncontroller.listener.names=CONTROLLER\n\
         ssl.keystore.type=PEM\nssl.keystore.location={}\n\
         ssl.truststore.type=PEM\nssl.truststore.location={}\n\
         ssl.client.auth=requested\nlistener.name.mtls.ssl.client.auth=required\n\
         log.dirs={}\ngroup.initial.rebalance.delay.ms=0\noffsets.topic.replication.factor=1\n\
         offsets.topic.num.partitions=3\nbroker.heartbeat.interval.ms=500\n",
        pki.server,
        pki.ca,
        dir.join("data").display()
    );
    let ca_option = format!("ssl.ca.location={}", pki.ca);
    let node = Node::with_config(
        dir.clone(),
        ssl,
        &config,
        &["-X", "security.protocol=ssl", "-X", &ca_option],
    );
    let ssl_addr = format!("127.0.0.1:{ssl}");
    let mtls_addr = format!("127.0.0.1:{mtls}");

    // kcat over TLS without a client certificate (requested, not required).
    let kcat_tls = |extra: &[&str], stdin: Option<&str>| {
        let mut args = vec![
            "-b",
            &ssl_addr,
            "-X",
            "security.protocol=ssl",
            "-X",
            &ca_option,
        ];
        args.extend_from_slice(extra);
        run("kcat", &args, stdin)
    };
    let (ok, _, err) = kcat_tls(&["-P", "-t", "tls"], Some("one\ntwo\nthree\n"));
    assert!(ok, "kcat produce over TLS: {err}");
    let (ok, out, err) = kcat_tls(&["-C", "-t", "tls", "-e", "-q"], None);
    assert!(ok, "kcat consume over TLS: {err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["one", "two", "three"]);

    // confluent-kafka with a client certificate where one is required.
    let with_cert = tls_settings(&pki, Some((&pki.client_cert, &pki.client_key)));
    let r = scenario(&["roundtrip", &mtls_addr, "mtls", "50", &with_cert]);
    assert_eq!(
        (&r["produced"], &r["consumed"]),
        (&50.into(), &50.into()),
        "{r}"
    );

    // kafka-python over TLS, checking the server's name.
    let kp = serde_json::json!({
        "security_protocol": "SSL",
        "ssl_cafile": pki.ca,
        "ssl_check_hostname": true,
    })
    .to_string();
    let r = scenario(&["kafka-python-roundtrip", &ssl_addr, "tls-kp", "20", &kp]);
    assert_eq!(
        (&r["produced"], &r["consumed"]),
        (&20.into(), &20.into()),
        "{r}"
    );

    // Refused: no certificate where one is required, one from an untrusted CA, an expired
    // one, a client that does not trust the server, and a plaintext client on a TLS port.
    let cases = [
        (
            "no client certificate",
            mtls_addr.clone(),
            tls_settings(&pki, None),
        ),
        (
            "an untrusted client certificate",
            mtls_addr.clone(),
            tls_settings(&pki, Some((&pki.rogue_cert, &pki.rogue_key))),
        ),
        (
            "an expired client certificate",
            mtls_addr.clone(),
            tls_settings(&pki, Some((&pki.expired_cert, &pki.expired_key))),
        ),
        (
            "a server the client does not trust",
            ssl_addr.clone(),
            serde_json::json!({"security.protocol": "ssl", "ssl.ca.location": pki.rogue_ca})
                .to_string(),
        ),
        (
            "plaintext on a TLS port",
            ssl_addr.clone(),
            serde_json::json!({"security.protocol": "plaintext"}).to_string(),
        ),
    ];
    for (what, addr, settings) in &cases {
        let r = scenario(&["refused", addr, settings]);
        assert_eq!(r["refused"], true, "{what} was let in: {r}");
    }

    // ketch's own tools, with Kafka's --command-config.
    let props = write(
        &dir,
        "client.properties",
        &format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
             ssl.keystore.type=PEM\nssl.keystore.location={}\n",
            pki.ca, pki.client_keystore
        ),
    );
    let (ok, out, err) = node.ketch(
        &[
            "topics",
            "--bootstrap-server",
            &mtls_addr,
            "--command-config",
            &props,
            "--list",
        ],
        None,
    );
    assert!(ok && out.lines().any(|l| l == "mtls"), "{out}{err}");
    let (ok, _, err) = node.ketch(
        &["topics", "--bootstrap-server", &mtls_addr, "--list"],
        None,
    );
    assert!(
        !ok,
        "a tool without --command-config got through TLS: {err}"
    );

    // The listener still serves after all of that.
    let (ok, _, err) = kcat_tls(&["-L"], None);
    assert!(ok, "{err}");

    // A renewed certificate is used for new connections without a restart.
    let (renewed_cert, renewed_key) = leaf(
        &pki.ca_handle,
        "broker-renewed",
        None,
        &["127.0.0.1"],
        false,
    );
    let staged = write(
        &dir,
        "server.pem.new",
        &format!("{renewed_key}{renewed_cert}"),
    );
    std::fs::rename(&staged, &pki.server).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = run(
            "openssl",
            &["s_client", "-connect", &ssl_addr, "-CAfile", &pki.ca],
            Some(""),
        );
        if out.contains("CN = broker-renewed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (ok, out, err) = kcat_tls(&["-C", "-t", "tls", "-e", "-q"], None);
    assert!(
        ok && out.lines().count() == 3,
        "after the renewal: {out}{err}"
    );
}

/// Issue 16: "A 3-node cluster with SASL_SSL on every listener, inter-broker and controller
/// traffic included". Run twice: TLS with client certificates required everywhere (the nodes'
/// own connections present theirs), and SASL_SSL (SCRAM-SHA-512 between brokers, PLAIN on the
/// controllers' listener, where Kafka allows no SCRAM).
#[test]
fn a_three_node_cluster_runs_with_tls_on_every_listener() {
    let pki_dir = node_dir("tls-cluster-pki");
    let pki = pki(&pki_dir);
    let security = format!(
        "listener.security.protocol.map=SSL:SSL,CONTROLLER:SSL\n\
         inter.broker.listener.name=SSL\n\
         ssl.keystore.location={}\nssl.truststore.location={}\nssl.client.auth=required\n",
        pki.server, pki.ca
    );
    let props = write(
        &pki_dir,
        "client.properties",
        &format!(
            "security.protocol=SSL\nssl.truststore.location={}\nssl.keystore.location={}\n",
            pki.ca, pki.client_keystore
        ),
    );
    let client = tls_settings(&pki, Some((&pki.client_cert, &pki.client_key)));
    three_node_cluster(
        "tls-cluster",
        "SSL",
        &security,
        &props,
        &props,
        None,
        &client,
        &[],
    );
}

#[test]
fn a_three_node_cluster_runs_with_sasl_ssl_on_every_listener() {
    let pki_dir = node_dir("sasl-cluster-pki");
    let pki = pki(&pki_dir);
    let security = format!(
        "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_SSL\n\
         inter.broker.listener.name=SASL_SSL\n\
         listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512\n\
         sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512\n\
         listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={ADMIN_JAAS}\n\
         listener.name.controller.sasl.enabled.mechanisms=PLAIN\n\
         sasl.mechanism.controller.protocol=PLAIN\n\
         listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"ctl\" password=\"ctl-secret\" user_ctl=\"ctl-secret\" user_guest=\"guest-secret\";\n\
         authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
         super.users=User:admin;User:ctl\n\
         ssl.keystore.location={}\nssl.truststore.location={}\n",
        pki.server, pki.ca
    );
    let props = write(
        &pki_dir,
        "client.properties",
        &format!(
            "security.protocol=SASL_SSL\nssl.truststore.location={}\n\
             sasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config={ADMIN_JAAS}\n",
            pki.ca
        ),
    );
    // The quorum tool reaches the controllers' listener, which takes PLAIN.
    let controller_props = write(
        &pki_dir,
        "controller.properties",
        &format!(
            "security.protocol=SASL_SSL\nssl.truststore.location={}\nsasl.mechanism=PLAIN\n\
             sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"ctl\" password=\"ctl-secret\";\n",
            pki.ca
        ),
    );
    // An authenticated user who is no super user and has no ACL: the controllers refuse it.
    let guest_props = write(
        &pki_dir,
        "guest.properties",
        &format!(
            "security.protocol=SASL_SSL\nssl.truststore.location={}\nsasl.mechanism=PLAIN\n\
             sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"guest\" password=\"guest-secret\";\n",
            pki.ca
        ),
    );
    let client = sasl_settings(
        "sasl_ssl",
        "SCRAM-SHA-512",
        "admin",
        "admin-secret",
        Some(&pki.ca),
    );
    three_node_cluster(
        "sasl-cluster",
        "SASL_SSL",
        &security,
        &props,
        &controller_props,
        Some(&guest_props),
        &client,
        &[
            "--add-scram",
            "SCRAM-SHA-512=[name=admin,password=admin-secret]",
        ],
    );
}

/// Three combined nodes whose client listener is `listener` and whose every listener is
/// secured by `security`; `props` is the tools' `--command-config` for the brokers,
/// `controller_props` for the controllers' listener, `client` confluent-kafka's settings. Creates an RF=3 topic, produces and reads it back, waits for every ISR to fill,
/// checks the controllers' listener refuses a tool without the settings, then kills a node and
/// reads everything back from the others.
#[allow(clippy::too_many_arguments)]
fn three_node_cluster(
    name: &str,
    listener: &str,
    security: &str,
    props: &str,
    controller_props: &str,
    unauthorized_props: Option<&str>,
    client: &str,
    format_options: &[&str],
) {
    let dir = std::env::temp_dir().join(format!("ketch-{name}-{}", std::process::id()));
    let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let common_config = format!(
        "controller.listener.names=CONTROLLER\n\
         offsets.topic.replication.factor=3\ntransaction.state.log.replication.factor=3\n\
         group.initial.rebalance.delay.ms=0\nbroker.heartbeat.interval.ms=500\n{security}"
    );
    let ports = client_ports.clone();
    let listener_name = listener.to_string();
    let mut cluster = common::build_cluster_formatted(
        &dir,
        3,
        format_options,
        move |i, _, controller| {
            format!(
            "process.roles=broker,controller\n\
             listeners={listener_name}://127.0.0.1:{},CONTROLLER://127.0.0.1:{controller}\n{common_config}",
            ports[i]
        )
        },
    );
    for i in 0..3 {
        cluster.start(i);
    }
    let bootstrap = client_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let ketch = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--bootstrap-server", &bootstrap, "--command-config", props]);
        run(common::KETCH, &all, None)
    };
    // The brokers register over the controllers' secured listener; topic creation is
    // forwarded over it too.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (ok, out, err) = ketch(&[
            "topics",
            "--create",
            "--topic",
            "replicated",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
            "--config",
            "min.insync.replicas=2",
        ]);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no topic over {listener}: {out}{err}\nlogs in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let r = scenario(&["roundtrip", &bootstrap, "replicated", "300", client]);
    assert_eq!(
        (&r["produced"], &r["consumed"]),
        (&300.into(), &300.into()),
        "{r}"
    );
    // Followers fetch from leaders over the secured inter-broker listener: every ISR fills.
    let full_isr = || {
        let (ok, out, _) = ketch(&["topics", "--describe", "--topic", "replicated"]);
        ok && out
            .lines()
            .filter(|l| l.contains("Partition:"))
            .filter(|l| {
                l.split("Isr:").nth(1).is_some_and(|isr| {
                    isr.split_whitespace()
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .count()
                        == 3
                })
            })
            .count()
            == 3
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !full_isr() {
        assert!(
            Instant::now() < deadline,
            "the ISR never filled over {listener}; logs in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The controllers' listener serves the quorum tool with the settings, and refuses it
    // without.
    let controller = format!("127.0.0.1:{}", cluster.ports[1]);
    let (ok, out, err) = run(
        common::KETCH,
        &[
            "metadata-quorum",
            "--bootstrap-controller",
            &controller,
            "--command-config",
            controller_props,
            "describe",
            "--status",
        ],
        None,
    );
    assert!(ok && out.contains("LeaderId:"), "{out}{err}");
    if let Some(guest) = unauthorized_props {
        let (ok, out, err) = run(
            common::KETCH,
            &[
                "metadata-quorum",
                "--bootstrap-controller",
                &controller,
                "--command-config",
                guest,
                "describe",
                "--status",
            ],
            None,
        );
        assert!(
            !ok && (out.clone() + &err).contains("CLUSTER_AUTHORIZATION_FAILED"),
            "an unauthorized user described the quorum: {out}{err}"
        );
    }
    let (ok, out, _) = run(
        common::KETCH,
        &[
            "metadata-quorum",
            "--bootstrap-controller",
            &controller,
            "describe",
            "--status",
        ],
        None,
    );
    assert!(
        !ok,
        "a plaintext tool reached a secured controller listener: {out}"
    );
    // A node dies; what was acknowledged with acks=all is all there, read from the others.
    cluster.kill(0);
    let others = client_ports[1..]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let r = scenario(&["count", &others, "replicated", "300", client]);
    assert_eq!(r["count"], 300, "{r}");
    drop(cluster);
}

fn sasl_settings(
    protocol: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    ca: Option<&str>,
) -> String {
    let mut v = serde_json::json!({
        "security.protocol": protocol,
        "sasl.mechanisms": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    });
    if let Some(ca) = ca {
        v["ssl.ca.location"] = ca.into();
    }
    v.to_string()
}

const ADMIN_JAAS: &str = "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"admin-secret\";";

/// Issue 16, SASL: PLAIN and SCRAM-SHA-256/512 on SASL_PLAINTEXT and SASL_SSL listeners for
/// confluent-kafka, kcat and kafka-python; SCRAM users made with `ketch storage format
/// --add-scram` and `ketch configs --entity-type users` (AlterUserScramCredentials) and listed
/// by DescribeUserScramCredentials; wrong passwords, unknown users, a mechanism the listener
/// does not offer and a client that skips authentication are refused; a session past
/// `connections.max.reauth.ms` is closed unless the client authenticates again, which real
/// clients do.
#[test]
fn sasl_plain_and_scram_for_real_clients() {
    let dir = node_dir("sasl");
    let pki = pki(&dir);
    let (plain, sasl_ssl, controller) = (free_port(), free_port(), free_port());
    let config = format!(
        "process.roles=broker,controller\nnode.id=1\n\
         controller.quorum.voters=1@127.0.0.1:{controller}\n\
         listeners=SASL_PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{sasl_ssl},CONTROLLER://127.0.0.1:{controller}\n\
         listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT\n\
         inter.broker.listener.name=SASL_PLAINTEXT\ncontroller.listener.names=CONTROLLER\n\
         listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512\n\
         listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512\n\
         sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512\n\
         listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_carol=\"carol-secret\";\n\
         sasl.jaas.config={ADMIN_JAAS}\n\
         connections.max.reauth.ms=3000\n\
         ssl.keystore.location={}\nssl.truststore.location={}\n\
         log.dirs={}\ngroup.initial.rebalance.delay.ms=0\noffsets.topic.replication.factor=1\n\
         offsets.topic.num.partitions=3\nbroker.heartbeat.interval.ms=500\n",
        pki.server,
        pki.ca,
        dir.join("data").display()
    );
    // The first SCRAM user comes with the storage, as Kafka's `kafka-storage.sh --add-scram`.
    let node = Node::formatted_with(
        dir.clone(),
        plain,
        &config,
        &[
            "-X",
            "security.protocol=sasl_plaintext",
            "-X",
            "sasl.mechanisms=SCRAM-SHA-512",
            "-X",
            "sasl.username=admin",
            "-X",
            "sasl.password=admin-secret",
        ],
        &[
            "--add-scram",
            "SCRAM-SHA-512=[name=admin,password=admin-secret]",
        ],
    );
    let plain_addr = format!("127.0.0.1:{plain}");
    let ssl_addr = format!("127.0.0.1:{sasl_ssl}");
    let admin = write(
        &dir,
        "admin.properties",
        &format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config={ADMIN_JAAS}\n"
        ),
    );
    // AlterUserScramCredentials through the tool, then DescribeUserScramCredentials.
    for (mechanism, iterations) in [("SCRAM-SHA-512", 8192), ("SCRAM-SHA-256", 4096)] {
        let (ok, out, err) = node.ketch(
            &[
                "configs",
                "--bootstrap-server",
                &plain_addr,
                "--command-config",
                &admin,
                "--alter",
                "--entity-type",
                "users",
                "--entity-name",
                "alice",
                "--add-config",
                &format!("{mechanism}=[iterations={iterations},password=alice-secret]"),
            ],
            None,
        );
        assert!(ok, "{out}{err}");
    }
    let (ok, out, err) = node.ketch(
        &[
            "configs",
            "--bootstrap-server",
            &plain_addr,
            "--command-config",
            &admin,
            "--describe",
            "--entity-type",
            "users",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("user-principal 'admin' are SCRAM-SHA-512=iterations=4096")
            && out.contains("user-principal 'alice' are SCRAM-SHA-256=iterations=4096, SCRAM-SHA-512=iterations=8192"),
        "{out}"
    );

    // Real clients: every mechanism on SASL_PLAINTEXT, SCRAM-SHA-512 over SASL_SSL.
    for (i, (addr, settings)) in [
        (
            &plain_addr,
            sasl_settings("sasl_plaintext", "PLAIN", "carol", "carol-secret", None),
        ),
        (
            &plain_addr,
            sasl_settings(
                "sasl_plaintext",
                "SCRAM-SHA-256",
                "alice",
                "alice-secret",
                None,
            ),
        ),
        (
            &plain_addr,
            sasl_settings(
                "sasl_plaintext",
                "SCRAM-SHA-512",
                "alice",
                "alice-secret",
                None,
            ),
        ),
        (
            &ssl_addr,
            sasl_settings(
                "sasl_ssl",
                "SCRAM-SHA-512",
                "alice",
                "alice-secret",
                Some(&pki.ca),
            ),
        ),
    ]
    .iter()
    .enumerate()
    {
        let topic = format!("sasl-{i}");
        let r = scenario(&["roundtrip", addr, &topic, "40", settings]);
        assert_eq!(
            (&r["produced"], &r["consumed"]),
            (&40.into(), &40.into()),
            "{settings}: {r}"
        );
    }
    let kp = serde_json::json!({
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "alice-secret",
    })
    .to_string();
    let r = scenario(&["kafka-python-roundtrip", &plain_addr, "sasl-kp", "20", &kp]);
    assert_eq!(
        (&r["produced"], &r["consumed"]),
        (&20.into(), &20.into()),
        "{r}"
    );
    let ca_option = format!("ssl.ca.location={}", pki.ca);
    let (ok, out, err) = run(
        "kcat",
        &[
            "-b",
            &ssl_addr,
            "-X",
            "security.protocol=sasl_ssl",
            "-X",
            &ca_option,
            "-X",
            "sasl.mechanisms=SCRAM-SHA-512",
            "-X",
            "sasl.username=alice",
            "-X",
            "sasl.password=alice-secret",
            "-C",
            "-t",
            "sasl-3",
            "-e",
            "-q",
        ],
        None,
    );
    assert!(
        ok && out.lines().count() == 40,
        "kcat over SASL_SSL: {out}{err}"
    );

    // Refused.
    for (what, addr, settings) in [
        (
            "a wrong PLAIN password",
            &plain_addr,
            sasl_settings("sasl_plaintext", "PLAIN", "carol", "guess", None),
        ),
        (
            "a wrong SCRAM password",
            &plain_addr,
            sasl_settings("sasl_plaintext", "SCRAM-SHA-512", "alice", "guess", None),
        ),
        (
            "an unknown user",
            &plain_addr,
            sasl_settings("sasl_plaintext", "SCRAM-SHA-256", "mallory", "x", None),
        ),
        (
            "a mechanism the listener does not offer",
            &ssl_addr,
            sasl_settings("sasl_ssl", "PLAIN", "carol", "carol-secret", Some(&pki.ca)),
        ),
        (
            "a client that skips authentication",
            &plain_addr,
            serde_json::json!({"security.protocol": "plaintext"}).to_string(),
        ),
    ] {
        let r = scenario(&["refused", addr, &settings]);
        assert_eq!(r["refused"], true, "{what} was let in: {r}");
    }
    // Logged with the peer, and not once per retry.
    let log = std::fs::read_to_string(dir.join("node-1.log")).unwrap();
    let failures = log.matches("SASL authentication failed").count();
    assert!(
        failures > 0 && log.contains("peer=127.0.0.1:"),
        "no failure logged"
    );

    // KIP-368: a client that does not authenticate again is cut off when its session ends.
    ketch::runtime::block_on(async {
        use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind};
        let connector = ketch::wire::Connector::new(
            None,
            Some(ketch::wire::SaslClient {
                mechanism: "SCRAM-SHA-512".into(),
                user: "alice".into(),
                password: "alice-secret".into(),
            }),
        );
        let mut session = ketch::wire::Session::new("no-reauth", 1 << 20, connector);
        let body = RequestKind::Metadata(MetadataRequest::default());
        let first = session
            .call(
                &plain_addr,
                ApiKey::Metadata,
                12,
                &body,
                Duration::from_secs(5),
            )
            .await;
        assert!(first.is_some(), "the authenticated session was not served");
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(session.is_connected_to(&plain_addr));
        let late = session
            .call(
                &plain_addr,
                ApiKey::Metadata,
                12,
                &body,
                Duration::from_secs(5),
            )
            .await;
        assert!(
            late.is_none(),
            "a request after the session ended was served"
        );
    })
    .unwrap();
    // Real clients authenticate again on their connections and go on: a consumer reading for
    // three session lifetimes gets everything.
    let settings = sasl_settings(
        "sasl_plaintext",
        "SCRAM-SHA-512",
        "alice",
        "alice-secret",
        None,
    );
    let r = scenario(&[
        "slow-roundtrip",
        &plain_addr,
        "sasl-reauth",
        "10",
        &settings,
    ]);
    assert_eq!(
        (&r["produced"], &r["consumed"]),
        (&10.into(), &10.into()),
        "{r}"
    );
}

/// Issue 16, ACLs (KRaft's StandardAuthorizer semantics), with real clients over
/// SASL_PLAINTEXT/PLAIN: a user with READ on one topic and one group consumes it and commits,
/// but cannot write it, cannot read another topic, does not see it in Metadata and cannot join
/// another group; a PREFIXED ACL lets another user write every topic of its prefix, and a DENY
/// beats it; `ketch acls` adds, lists and removes them (CreateAcls, DescribeAcls, DeleteAcls),
/// which only a principal allowed to alter the cluster may; without an authorizer the ACL
/// APIs answer SECURITY_DISABLED.
#[test]
fn acls_are_enforced_for_real_clients() {
    let dir = node_dir("acls");
    let (port, controller) = (free_port(), free_port());
    // The controllers' listener authorizes too: the broker reaches it over PLAINTEXT, as
    // User:ANONYMOUS, which must therefore be a super user (as Kafka's documentation says).
    let config = format!(
        "process.roles=broker,controller\nnode.id=1\n\
         controller.quorum.voters=1@127.0.0.1:{controller}\n\
         listeners=SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
         listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT\n\
         inter.broker.listener.name=SASL_PLAINTEXT\ncontroller.listener.names=CONTROLLER\n\
         sasl.enabled.mechanisms=PLAIN\nsasl.mechanism.inter.broker.protocol=PLAIN\n\
         listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\" user_alice=\"alice-secret\" user_bob=\"bob-secret\";\n\
         authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
         super.users=User:admin;User:ANONYMOUS\n\
         log.dirs={}\ngroup.initial.rebalance.delay.ms=0\noffsets.topic.replication.factor=1\n\
         offsets.topic.num.partitions=3\nbroker.heartbeat.interval.ms=500\n",
        dir.join("data").display()
    );
    let node = Node::with_config(
        dir.clone(),
        port,
        &config,
        &[
            "-X",
            "security.protocol=sasl_plaintext",
            "-X",
            "sasl.mechanisms=PLAIN",
            "-X",
            "sasl.username=admin",
            "-X",
            "sasl.password=admin-secret",
        ],
    );
    let b = format!("127.0.0.1:{port}");
    let props = |user: &str| {
        write(
            &dir,
            &format!("{user}.properties"),
            &format!(
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
                 sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"{user}\" password=\"{user}-secret\";\n"
            ),
        )
    };
    let (admin, alice) = (props("admin"), props("alice"));
    let tool = |as_user: &str, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--bootstrap-server", &b, "--command-config", as_user]);
        node.ketch(&all, None)
    };
    for topic in ["orders", "payroll", "logs-app", "logs-secret"] {
        let (ok, out, err) = tool(&admin, &["topics", "--create", "--topic", topic]);
        assert!(ok, "{out}{err}");
    }
    let client = |user: &str| {
        sasl_settings(
            "sasl_plaintext",
            "PLAIN",
            user,
            &format!("{user}-secret"),
            None,
        )
    };
    for topic in ["orders", "payroll"] {
        let r = scenario(&["produce-one", &b, topic, &client("admin")]);
        assert_eq!(r["error"], Value::Null, "{r}");
    }
    // Only the cluster's ALTER may add ACLs: alice may not grant herself anything.
    let (ok, out, err) = tool(
        &alice,
        &[
            "acls",
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "All",
            "--topic",
            "payroll",
        ],
    );
    assert!(
        !ok && (out + &err).contains("CLUSTER_AUTHORIZATION_FAILED"),
        "alice added an ACL"
    );
    for args in [
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "orders",
        ][..],
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--group",
            "g1",
        ][..],
        &[
            "--add",
            "--allow-principal",
            "User:bob",
            "--operation",
            "Write",
            "--topic",
            "logs-",
            "--resource-pattern-type",
            "prefixed",
        ][..],
        &[
            "--add",
            "--deny-principal",
            "User:bob",
            "--operation",
            "Write",
            "--topic",
            "logs-secret",
        ][..],
    ] {
        let mut all = vec!["acls"];
        all.extend_from_slice(args);
        let (ok, out, err) = tool(&admin, &all);
        assert!(ok, "{args:?}: {out}{err}");
    }
    let (ok, listed, err) = tool(&admin, &["acls", "--list"]);
    assert!(ok, "{err}");
    assert!(
        listed.contains("ResourcePattern(resourceType=TOPIC, name=logs-, patternType=PREFIXED)")
            && listed
                .contains("(principal=User:bob, host=*, operation=WRITE, permissionType=DENY)")
            && listed
                .contains("(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)"),
        "{listed}"
    );

    // alice: reads orders in g1 and commits; nothing else.
    let r = scenario(&["consume-group", &b, "orders", "g1", "1", &client("alice")]);
    assert_eq!(
        (&r["consumed"], &r["error"]),
        (&1.into(), &Value::Null),
        "{r}"
    );
    let r = scenario(&["produce-one", &b, "orders", &client("alice")]);
    assert_eq!(r["error"], "TOPIC_AUTHORIZATION_FAILED", "{r}");
    let r = scenario(&["consume-group", &b, "payroll", "g1", "1", &client("alice")]);
    assert_eq!(r["consumed"], 0, "{r}");
    assert_eq!(r["error"], "TOPIC_AUTHORIZATION_FAILED", "{r}");
    let r = scenario(&["list-topics", &b, &client("alice")]);
    assert_eq!(r["topics"], serde_json::json!(["orders"]), "{r}");
    let r = scenario(&["consume-group", &b, "orders", "g2", "1", &client("alice")]);
    assert_eq!(r["error"], "GROUP_AUTHORIZATION_FAILED", "{r}");
    // Naming a topic by id does not get around its ACLs (DeleteTopics v6).
    ketch::runtime::block_on(async {
        use kafka_protocol::messages::*;
        let connector = ketch::wire::Connector::new(
            None,
            Some(ketch::wire::SaslClient {
                mechanism: "PLAIN".into(),
                user: "alice".into(),
                password: "alice-secret".into(),
            }),
        );
        let metadata = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(
                kafka_protocol::protocol::StrBytes::from_static_str("orders"),
            ))),
        ])));
        let Some(ResponseKind::Metadata(m)) = ketch::wire::call_once(
            &connector,
            &b,
            "acl-test",
            ApiKey::Metadata,
            12,
            &metadata,
            1 << 20,
            Duration::from_secs(5),
        )
        .await
        else {
            panic!("no Metadata answer");
        };
        let id = m.topics[0].topic_id;
        assert!(!id.is_nil());
        let delete = RequestKind::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![
                    delete_topics_request::DeleteTopicState::default().with_topic_id(id)
                ]),
        );
        let Some(ResponseKind::DeleteTopics(d)) = ketch::wire::call_once(
            &connector,
            &b,
            "acl-test",
            ApiKey::DeleteTopics,
            6,
            &delete,
            1 << 20,
            Duration::from_secs(5),
        )
        .await
        else {
            panic!("no DeleteTopics answer");
        };
        assert_eq!(d.responses[0].error_code, 29, "{d:?}");
    })
    .unwrap();
    // bob: the prefixed ACL lets him write logs-app; the deny on logs-secret wins.
    let r = scenario(&["produce-one", &b, "logs-app", &client("bob")]);
    assert_eq!(r["error"], Value::Null, "{r}");
    let r = scenario(&["produce-one", &b, "logs-secret", &client("bob")]);
    assert_eq!(r["error"], "TOPIC_AUTHORIZATION_FAILED", "{r}");
    let r = scenario(&["produce-one", &b, "orders", &client("bob")]);
    assert_eq!(r["error"], "TOPIC_AUTHORIZATION_FAILED", "{r}");
    // Admin requests are answered per topic, as Kafka answers them: with CREATE and DELETE
    // on logs-*, bob's one CreateTopics (DeleteTopics) makes (removes) the logs- topic and
    // is refused the other.
    for operation in ["Create", "Delete"] {
        let (ok, out, err) = tool(
            &admin,
            &[
                "acls",
                "--add",
                "--allow-principal",
                "User:bob",
                "--operation",
                operation,
                "--topic",
                "logs-",
                "--resource-pattern-type",
                "prefixed",
            ],
        );
        assert!(ok, "{out}{err}");
    }
    let r = scenario(&[
        "admin-topics",
        &b,
        "create",
        "logs-new,orders-new",
        &client("bob"),
    ]);
    assert_eq!(
        r["results"],
        serde_json::json!({"logs-new": null, "orders-new": "TOPIC_AUTHORIZATION_FAILED"}),
        "{r}"
    );
    let r = scenario(&[
        "admin-topics",
        &b,
        "delete",
        "logs-new,payroll",
        &client("bob"),
    ]);
    assert_eq!(
        r["results"],
        serde_json::json!({"logs-new": null, "payroll": "TOPIC_AUTHORIZATION_FAILED"}),
        "{r}"
    );
    let r = scenario(&["list-topics", &b, &client("admin")]);
    assert_eq!(
        r["topics"],
        serde_json::json!(["logs-app", "logs-secret", "orders", "payroll"]),
        "{r}"
    );
    // DeleteRecords too: logs-app's start moves past bob's one record, payroll's does not.
    let offsets = write(
        &dir,
        "offsets.json",
        r#"{"partitions": [{"topic": "logs-app", "partition": 0, "offset": -1},
                           {"topic": "payroll", "partition": 0, "offset": -1}], "version": 1}"#,
    );
    let (ok, out, err) = tool(
        &props("bob"),
        &["delete-records", "--offset-json-file", &offsets],
    );
    assert!(!ok, "{out}{err}");
    assert!(
        out.contains("partition: logs-app-0\tlow_watermark: 1")
            && out.contains("partition: payroll-0\terror: TOPIC_AUTHORIZATION_FAILED"),
        "{out}{err}"
    );
    // Removing alice's topic ACL takes her read away.
    let (ok, out, err) = tool(
        &admin,
        &[
            "acls",
            "--remove",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "orders",
            "--force",
        ],
    );
    assert!(ok && out.contains("Removed"), "{out}{err}");
    let r = scenario(&["list-topics", &b, &client("alice")]);
    assert_eq!(r["topics"], serde_json::json!([]), "{r}");
    drop(node);

    // Without an authorizer, the ACL APIs say so.
    let plain = Node::new("acls-off", "");
    let (ok, out, err) = plain.ketch(
        &["acls", "--bootstrap-server", &plain.bootstrap(), "--list"],
        None,
    );
    assert!(
        !ok && (out + &err).contains("SECURITY_DISABLED"),
        "acls --list without an authorizer succeeded"
    );
}
