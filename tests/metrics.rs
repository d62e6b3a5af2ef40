//! The metrics listener as an operator uses it: a real Prometheus server (Debian's package,
//! which `ci/test` installs) scrapes a running node after a known workload, and the values
//! come back through Prometheus' query API; `promtool check metrics` accepts the exposition.
#![allow(clippy::disallowed_methods)] // black-box tests wait on real time

mod common;

use common::{free_port, run, Node, KETCH};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `GET path` on `port`: the body of a 200 answer.
fn http_get(port: u16, path: &str, accept: Option<&str>) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{accept}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One instant query's result: (labels, value) per series.
fn query(port: u16, promql: &str) -> Vec<(serde_json::Value, f64)> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let Some(body) = http_get(port, &format!("/api/v1/query?query={encoded}"), None) else {
        return Vec::new();
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
        return Vec::new();
    };
    json["data"]["result"]
        .as_array()
        .map(|series| {
            series
                .iter()
                .filter_map(|s| {
                    let value = s["value"][1].as_str()?.parse().ok()?;
                    Some((s["metric"].clone(), value))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `promql` until its single series has `want` (Prometheus scrapes every second).
fn wait_for(port: u16, promql: &str, want: f64) {
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < Duration::from_secs(30) {
        last = query(port, promql);
        if last.len() == 1 && (last[0].1 - want).abs() < 1e-9 {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{promql}: wanted one series = {want}, Prometheus says {last:?}");
}

#[test]
fn prometheus_scrapes_the_workload_a_node_served() {
    let metrics_port = free_port();
    let node = Node::new(
        "metrics",
        &format!("metrics.listener=http://127.0.0.1:{metrics_port}\n"),
    );
    let bootstrap = node.bootstrap();
    let ketch = |args: &[&str]| {
        let (ok, out, err) = run(KETCH, args, None);
        assert!(ok, "{args:?}: {out}{err}");
        out
    };
    ketch(&[
        "topics",
        "--bootstrap-server",
        &bootstrap,
        "--create",
        "--topic",
        "metered",
        "--partitions",
        "1",
    ]);
    let lines: String = (0..500).map(|i| format!("record-{i}\n")).collect();
    let (ok, _, err) = run(
        "kcat",
        &["-b", &bootstrap, "-P", "-t", "metered", "-p", "0"],
        Some(&lines),
    );
    assert!(ok, "{err}");
    // A group 300 records behind: committed at 200 of 500.
    ketch(&[
        "consumer-groups",
        "--bootstrap-server",
        &bootstrap,
        "--reset-offsets",
        "--group",
        "lagging",
        "--topic",
        "metered",
        "--to-offset",
        "200",
        "--execute",
    ]);
    // 500 records read back by a consumer: bytes out.
    let (ok, out, err) = run(
        "kcat",
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            "metered",
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        None,
    );
    assert!(ok && out.lines().count() == 500, "{err}");

    let exposition =
        http_get(metrics_port, "/metrics", None).expect("the metrics endpoint answers");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is not installed (ci/test installs Debian's prometheus package)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let openmetrics = http_get(
        metrics_port,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    )
    .unwrap();
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");

    let dir = node.dir.join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let prometheus_port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: ketch\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let _prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus is not installed (ci/test installs Debian's package)"),
    );
    wait_for(prometheus_port, "up{job=\"ketch\"}", 1.0);
    wait_for(
        prometheus_port,
        "kafka_server_brokertopicmetrics_messagesin_total{topic=\"metered\"}",
        500.0,
    );
    let bytes_in = query(
        prometheus_port,
        "kafka_server_brokertopicmetrics_bytesin_total{topic=\"metered\"}",
    );
    let bytes_out = query(
        prometheus_port,
        "kafka_server_brokertopicmetrics_bytesout_total{topic=\"metered\"}",
    );
    assert!(
        bytes_in.len() == 1 && bytes_in[0].1 > 500.0 * 10.0,
        "500 records of 10-11 bytes and their batch framing: {bytes_in:?}"
    );
    assert!(
        bytes_out.len() == 1 && bytes_out[0].1 >= bytes_in[0].1,
        "everything produced was read back: in {bytes_in:?}, out {bytes_out:?}"
    );
    wait_for(
        prometheus_port,
        "kafka_consumergroup_lag{consumergroup=\"lagging\",topic=\"metered\",partition=\"0\"}",
        300.0,
    );
    wait_for(
        prometheus_port,
        "kafka_log_log_logendoffset{topic=\"metered\",partition=\"0\"}",
        500.0,
    );
    wait_for(
        prometheus_port,
        "kafka_log_log_numlogsegments{topic=\"metered\",partition=\"0\"}",
        1.0,
    );
    wait_for(
        prometheus_port,
        "kafka_controller_kafkacontroller_activecontrollercount",
        1.0,
    );
    wait_for(
        prometheus_port,
        "kafka_server_raft_metrics_current_leader",
        1.0,
    );
    wait_for(
        prometheus_port,
        "kafka_server_replicamanager_underreplicatedpartitions",
        0.0,
    );
    // metered's partition and the offsets topic's five.
    wait_for(
        prometheus_port,
        "kafka_server_replicamanager_leadercount",
        6.0,
    );
    wait_for(
        prometheus_port,
        "kafka_controller_kafkacontroller_globaltopiccount",
        2.0,
    );
    let produce = query(
        prometheus_port,
        "sum(kafka_network_requestmetrics_requests_total{request=\"Produce\"})",
    );
    assert!(
        produce.len() == 1 && produce[0].1 >= 1.0,
        "kcat's produce requests were counted: {produce:?}"
    );
    let timed = query(
        prometheus_port,
        "kafka_network_requestmetrics_totaltimems_count{request=\"Produce\"}",
    );
    assert!(
        timed.len() == 1 && (timed[0].1 - produce[0].1).abs() < 1e-9,
        "every produce request was timed: {timed:?} vs {produce:?}"
    );
    // Fetches are named as Kafka's request metrics name them: a consumer's FetchConsumer.
    let fetches = query(
        prometheus_port,
        "sum(kafka_network_requestmetrics_requests_total{request=\"FetchConsumer\"})",
    );
    assert!(
        fetches.len() == 1 && fetches[0].1 >= 1.0,
        "kcat's fetches were counted as FetchConsumer: {fetches:?}"
    );
    // The single voter leads the metadata quorum and committed the topics' records (and the
    // broker's registration and heartbeats): each appended stretch was timed to its commit.
    let commits = query(
        prometheus_port,
        "kafka_server_raft_metrics_commit_latency_seconds_count",
    );
    assert!(
        commits.len() == 1 && commits[0].1 >= 2.0,
        "metadata commits were timed: {commits:?}"
    );
}
