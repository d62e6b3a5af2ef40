//! Helpers shared by the black-box tests of a real `ketch` quorum: start nodes, read
//! `metadata-quorum describe`, wait for an agreed leader.
#![allow(dead_code)] // each test binary uses a different part
#![allow(clippy::disallowed_methods)] // black-box tests wait on real time

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KETCH: &str = env!("CARGO_BIN_EXE_ketch");

/// The Python with the Kafka clients the black-box tests drive: `KETCH_PYTHON`, or the venv
/// `ci/test` makes.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("KETCH_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/client-venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with Kafka clients: run ci/test once (it makes target/client-venv), or set \
         KETCH_PYTHON to a python with kafka-python and confluent-kafka"
    );
    venv
}

/// A port for a node to listen on. Taken below the kernel's ephemeral range (32768 and up on
/// Linux), so an outgoing connection cannot grab it between this check and the node's bind;
/// spread by process id and a counter so tests running side by side do not pick the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 10_000 + (std::process::id() % 400) as u16 * 50;
    loop {
        let candidate = 10_000 + (base - 10_000 + NEXT.fetch_add(1, Ordering::Relaxed)) % 20_000;
        if TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            return candidate;
        }
    }
}

pub struct Cluster {
    pub dir: PathBuf,
    pub ports: Vec<u16>,
    pub children: Vec<Option<Child>>,
}

impl Cluster {
    pub fn config_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("server-{}.properties", i + 1))
    }

    pub fn start(&mut self, i: usize) {
        let log = std::fs::File::create(self.dir.join(format!("node-{}.log", i + 1))).unwrap();
        let child = Command::new(KETCH)
            .arg("server")
            .arg(self.config_path(i))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    /// `describe --status` from node `i`, as (leader, epoch, high watermark).
    pub fn status(&self, i: usize) -> Option<(i32, i32, i64)> {
        let out = Command::new(KETCH)
            .args([
                "metadata-quorum",
                "--bootstrap-controller",
                &format!("127.0.0.1:{}", self.ports[i]),
            ])
            // Node i's own view: the tests compare what each member thinks.
            .args(["describe", "--status", "--local"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> Option<i64> {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        };
        Some((
            field("LeaderId:")? as i32,
            field("LeaderEpoch:")? as i32,
            field("HighWatermark:")?,
        ))
    }

    /// `describe --replication` from node `i`: (node id, log end offset, status) per replica.
    pub fn replication(&self, i: usize) -> Vec<(i32, i64, String)> {
        let Ok(out) = Command::new(KETCH)
            .args([
                "metadata-quorum",
                "--bootstrap-controller",
                &format!("127.0.0.1:{}", self.ports[i]),
            ])
            .args(["describe", "--replication", "--local"])
            .output()
        else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Some((
                    f.first()?.parse().ok()?,
                    f.get(1)?.parse().ok()?,
                    f.get(5)?.to_string(),
                ))
            })
            .collect()
    }

    /// Waits until every running node names the same leader, in an epoch above `above`.
    pub fn wait_for_leader(&self, above: i32, timeout: Duration) -> (i32, i32, Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let views: Vec<Option<(i32, i32, i64)>> = (0..self.ports.len())
                .filter(|i| self.children[*i].is_some())
                .map(|i| self.status(i))
                .collect();
            if let Some(Some((leader, epoch, _))) = views.first() {
                let agreed = views
                    .iter()
                    .all(|v| v.is_some_and(|(l, e, _)| l == *leader && e == *epoch));
                if agreed && *leader > 0 && *epoch > above {
                    return (*leader, *epoch, start.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "no agreed leader above epoch {above} within {timeout:?}; logs in {}",
            self.dir.display()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

/// Writes one server.properties per entry of `configs(i, voters, controller_port)` (node i+1;
/// the first three are the voters) into a fresh `dir` and formats them all with one cluster id.
pub fn build_cluster(
    dir: &Path,
    nodes: usize,
    configs: impl Fn(usize, &str, u16) -> String,
) -> Cluster {
    build_cluster_formatted(dir, nodes, &[], configs)
}

/// As [`build_cluster`], with `format_options` for `ketch storage format` (`--add-scram`).
pub fn build_cluster_formatted(
    dir: &Path,
    nodes: usize,
    format_options: &[&str],
    configs: impl Fn(usize, &str, u16) -> String,
) -> Cluster {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let random_uuid = Command::new(KETCH)
        .args(["storage", "random-uuid"])
        .output()
        .unwrap();
    let cluster_id = String::from_utf8(random_uuid.stdout)
        .unwrap()
        .trim()
        .to_string();
    let cluster = Cluster {
        dir: dir.to_path_buf(),
        ports: ports.clone(),
        children: (0..nodes).map(|_| None).collect(),
    };
    for i in 0..nodes {
        let port = ports.get(i).copied().unwrap_or(0);
        let text = format!(
            "node.id={}\ncontroller.quorum.voters={voters}\nlog.dirs={}\n{}",
            i + 1,
            dir.join(format!("data-{}", i + 1)).display(),
            configs(i, &voters, port)
        );
        std::fs::write(cluster.config_path(i), text).unwrap();
        let status = Command::new(KETCH)
            .args(["storage", "format", "-t", &cluster_id, "-c"])
            .arg(cluster.config_path(i))
            .args(format_options)
            .status()
            .unwrap();
        assert!(status.success());
    }
    cluster
}

/// Three controllers (nodes 1-3) and a broker-only observer (node 4), formatted, not started.
/// `extra` is appended to every controller's server.properties.
pub fn make_cluster(dir: &Path, extra: &str) -> Cluster {
    build_cluster(dir, 4, |i, _, port| {
        if i < 3 {
            format!(
                "process.roles=controller\nlisteners=CONTROLLER://127.0.0.1:{port}\n\
                 controller.listener.names=CONTROLLER\n{extra}"
            )
        } else {
            "process.roles=broker\n".to_string()
        }
    })
}

/// Three combined nodes (`process.roles=broker,controller`), formatted, not started; each has a
/// PLAINTEXT listener (not served yet) and a CONTROLLER listener.
pub fn make_combined_cluster(dir: &Path, extra: &str) -> Cluster {
    build_cluster(dir, 3, |_, _, port| {
        format!(
            "process.roles=broker,controller\n\
             listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\n{extra}",
            free_port()
        )
    })
}

/// `ketch topics --bootstrap-controller <all controllers> <args>`: (success, stdout + stderr).
pub fn topics(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let bootstrap = cluster
        .ports
        .iter()
        .enumerate()
        .filter(|(i, _)| cluster.children[*i].is_some())
        .map(|(_, p)| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new(KETCH)
        .args(["topics", "--bootstrap-controller", &bootstrap])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// One combined node (broker and controller) of the real binary.
pub struct Node {
    pub dir: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
    starts: usize,
    /// kcat options for the listener at `port` (its security settings).
    kcat_options: Vec<String>,
}

/// A fresh directory for node `name` of this test process.
pub fn node_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ketch-clients-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Node {
    pub fn new(name: &str, extra: &str) -> Node {
        let dir = node_dir(name);
        let port = free_port();
        let controller = free_port();
        let config = format!(
            "process.roles=broker,controller\nnode.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{controller}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
             controller.listener.names=CONTROLLER\nlog.dirs={}\n\
             group.initial.rebalance.delay.ms=0\noffsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=5\nbroker.heartbeat.interval.ms=500\n{extra}",
            dir.join("data").display()
        );
        Node::with_config(dir, port, &config, &[])
    }

    /// A node of `config` (in `dir`, from [`node_dir`]) whose clients' listener is at `port`,
    /// reached by kcat with `kcat_options` (`-X security.protocol=ssl`, …).
    pub fn with_config(dir: PathBuf, port: u16, config: &str, kcat_options: &[&str]) -> Node {
        Node::formatted_with(dir, port, config, kcat_options, &[])
    }

    /// As [`Node::with_config`], `format_options` given to `ketch storage format`.
    pub fn formatted_with(
        dir: PathBuf,
        port: u16,
        config: &str,
        kcat_options: &[&str],
        format_options: &[&str],
    ) -> Node {
        std::fs::write(dir.join("server.properties"), config).unwrap();
        let status = Command::new(KETCH)
            .args(["storage", "format", "-t", "4L6g3nShT-eMCtK--X86sw", "-c"])
            .arg(dir.join("server.properties"))
            .args(format_options)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let mut node = Node {
            dir,
            port,
            child: None,
            starts: 0,
            kcat_options: kcat_options.iter().map(|s| s.to_string()).collect(),
        };
        node.start();
        node
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        self.starts += 1;
        let log =
            std::fs::File::create(self.dir.join(format!("node-{}.log", self.starts))).unwrap();
        self.child = Some(
            Command::new(KETCH)
                .arg("server")
                .arg(self.dir.join("server.properties"))
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        // Ready when the broker lists itself (registered and unfenced).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            let out = Command::new("kcat")
                .args(["-b", &self.bootstrap(), "-L", "-m", "2"])
                .args(&self.kcat_options)
                .output()
                .expect("kcat is not installed (ci/test installs the Debian package)");
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains(" 1 brokers:")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the broker did not come up; logs in {}", self.dir.display());
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        c.wait().unwrap()
    }

    pub fn ketch(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        run(KETCH, args, stdin)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every record of `topic` from the beginning, as kcat prints `offset value` lines.
pub fn kcat_read_all(bootstrap: &str, topic: &str) -> String {
    let (ok, out, err) = run(
        "kcat",
        &[
            "-C",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-f",
            "%o %s\n",
        ],
        None,
    );
    assert!(ok, "{err}");
    out
}

/// Runs `program` with `args`, `stdin` written to it: (success, stdout, stderr).
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (ci/test installs what the tests need)"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A request frame, length prefix included: header v1 with a null client id, then `body`.
pub fn request(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.extend_from_slice(body);
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    out
}
