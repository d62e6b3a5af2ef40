//! The Kafka client listener and the broker's background work. The listeners (every entry of
//! `listeners` that is not a controller listener) are served by [`crate::wire`] with
//! [`handlers::supported`] as the table and [`handlers::handle`] as the handler. Background
//! tasks: following the committed metadata image (partitions created, led and deleted as it
//! says), the replica fetchers and the ISR sender, the ISR check, high watermark
//! checkpoints, group ticks, retention, optional periodic flushes. On shutdown it stops accepting,
//! flushes and checkpoints every log. Owns the tasks; partition state is `partitions`'.

use super::context::Broker;
use super::handlers;
use super::BrokerError;
use crate::protocol::frame::Request;
use crate::runtime;
use crate::wire::{Limits, Peer, Service};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use std::sync::Arc;
use std::time::Duration;

/// The client listener's service.
struct ClientListener(Arc<Broker>);

impl Service for ClientListener {
    fn supported(api_key: ApiKey) -> Option<(i16, i16)> {
        handlers::supported(api_key)
    }

    async fn handle(&self, peer: &Peer, request: &Request) -> Result<Option<ResponseKind>, String> {
        handlers::handle(&self.0, peer, request).await
    }

    fn scram_credential(
        &self,
        user: &str,
        mechanism: crate::security::scram::Mechanism,
    ) -> Option<crate::security::scram::Credential> {
        handlers::user_scram::credential(&self.0, user, mechanism)
    }
}

/// Runs the client listeners and the broker's background tasks until `shutdown` completes;
/// then stops accepting, flushes and checkpoints every log.
pub async fn run(
    broker: Arc<Broker>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BrokerError> {
    let mut tasks = Vec::new();
    let service = Arc::new(ClientListener(Arc::clone(&broker)));
    let limits = Limits {
        max_frame_bytes: broker.config.socket_request_max_bytes,
        max_connections: broker.config.max_connections,
        metrics: broker.metrics.clone(),
    };
    for l in &broker.config.listeners {
        let (listener, addr) =
            crate::wire::bind(&l.host, l.port)
                .await
                .map_err(|source| BrokerError::Listen {
                    addr: format!("{}:{}", l.host, l.port),
                    source,
                })?;
        tracing::info!(%addr, listener = %l.name, "client listener ready");
        tasks.push(runtime::spawn(crate::wire::accept_loop(
            Arc::clone(&service),
            listener,
            l.name.clone(),
            limits.clone(),
            broker
                .config
                .listener_security
                .get(&l.name)
                .cloned()
                .unwrap_or_default(),
        )));
    }
    // Follow the committed metadata: create, lead and delete partitions as it says.
    {
        let broker = Arc::clone(&broker);
        tasks.push(runtime::spawn(async move {
            let mut rx = broker.image.clone();
            loop {
                let image = Arc::clone(&rx.borrow_and_update());
                broker.partitions.apply_image(&image);
                if rx.changed().await.is_err() {
                    return;
                }
                // A broker may apply the committed metadata well after its peers.
                runtime::buggify_delay("apply metadata").await;
            }
        }));
    }
    {
        // Group sessions and rebalance deadlines.
        let broker = Arc::clone(&broker);
        tasks.push(runtime::spawn(async move {
            loop {
                runtime::sleep(Duration::from_millis(100)).await;
                broker.groups.tick(&broker).await;
            }
        }));
    }
    // Transaction markers, and the abort of timed-out transactions.
    tasks.push(runtime::spawn(super::transactions::run_markers(
        Arc::clone(&broker),
    )));
    {
        let broker = Arc::clone(&broker);
        tasks.push(runtime::spawn(async move {
            // State partitions this broker came to lead are loaded within half a second; the
            // timeout check runs every transaction.abort.timed.out.transaction.cleanup.interval.ms.
            let every_ms = broker.config.transaction_abort_check_interval_ms.max(1);
            let mut waited_ms = 0;
            loop {
                runtime::sleep(Duration::from_millis(500.min(every_ms))).await;
                waited_ms += 500.min(every_ms);
                if waited_ms >= every_ms {
                    waited_ms = 0;
                    broker.transactions.tick(&broker).await;
                } else {
                    broker.transactions.load_led(&broker).await;
                }
            }
        }));
    }
    {
        let broker = Arc::clone(&broker);
        tasks.push(runtime::spawn(async move {
            let every = Duration::from_millis(broker.config.log_retention_check_interval_ms);
            loop {
                runtime::sleep(every).await;
                let now = broker.clock.wall_ms();
                let partitions = Arc::clone(&broker.partitions);
                let _ = runtime::blocking(move || partitions.apply_retention(now)).await;
            }
        }));
    }
    // The log cleaner: `log.cleaner.threads` tasks sharing one IO throttle.
    if broker.config.cleaner.enable {
        let shared =
            super::cleaner::CleanerShared::new(broker.config.cleaner.io_max_bytes_per_second);
        for _ in 0..broker.config.cleaner.threads {
            tasks.push(runtime::spawn(super::cleaner::run(
                Arc::clone(&broker),
                Arc::clone(&shared),
            )));
        }
    }
    // Replication: fetchers for the partitions this broker follows, the leaders' ISR changes
    // to the controller, the periodic check for followers that stopped catching up, and the
    // high watermark checkpoint (Kafka's replica.high.watermark.checkpoint.interval.ms, 5 s).
    tasks.push(runtime::spawn(super::replica_fetcher::run_manager(
        Arc::clone(&broker),
    )));
    tasks.push(runtime::spawn(super::replica_fetcher::run_isr_sender(
        Arc::clone(&broker),
    )));
    {
        let broker = Arc::clone(&broker);
        tasks.push(runtime::spawn(async move {
            loop {
                runtime::sleep(Duration::from_millis(500)).await;
                broker.partitions.isr_tick();
            }
        }));
    }
    {
        let broker = Arc::clone(&broker);
        tasks.push(runtime::spawn(async move {
            loop {
                runtime::sleep(Duration::from_secs(5)).await;
                let partitions = Arc::clone(&broker.partitions);
                if let Err(e) = runtime::blocking(move || partitions.write_high_watermarks()).await
                {
                    tracing::error!("checkpointing high watermarks failed: {e}");
                }
            }
        }));
    }
    if let Some(ms) = broker.config.log_flush_interval_ms {
        let broker = Arc::clone(&broker);
        tasks.push(runtime::spawn(async move {
            loop {
                runtime::sleep(Duration::from_millis(ms)).await;
                let partitions = Arc::clone(&broker.partitions);
                let flushing = Arc::clone(&partitions);
                if let Err(e) = runtime::blocking(move || flushing.flush_all()).await {
                    // A failed fsync may have dropped the dirty pages: nothing since the last
                    // good flush can be promised (the writer's rule, applied here too).
                    partitions.fail(format!("flushing partition logs: {e}"));
                }
            }
        }));
    }
    // A fatal storage error (a failed fsync or write) stops the broker: it cannot promise what
    // it acknowledges any more.
    let mut fatal = broker.partitions.subscribe_fatal();
    let failed = tokio::select! {
        _ = shutdown => None,
        f = fatal.wait_for(|f| f.is_some()) => f.ok().and_then(|f| f.clone()),
    };
    tracing::info!("broker stopping: no new connections; flushing logs");
    for t in &tasks {
        t.abort();
    }
    if let Some(e) = failed {
        return Err(BrokerError::LogFailed(e));
    }
    broker.partitions.close_all().map_err(BrokerError::Close)?;
    tracing::info!("broker stopped");
    Ok(())
}
