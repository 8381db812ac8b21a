//! The system under test as separate OS processes: one gateway, N registration-service
//! instances and a dlq-worker, on their own topic and their own database, with the database
//! reached through a fault-injecting proxy so a scenario can take it away.

use std::time::Duration;

use crate::database::TestDatabase;
use crate::harness::gateway::GatewayPorts;
use crate::harness::{self, free_port, ServiceProcess};
use crate::ledger::{self, Expected, LedgerReport};
use crate::tcp_proxy::{database_socket_addr, TcpProxy};
use crate::{test_env, wait, TestEnv};
use reliable_messaging::dead_letter::dead_letter_topic;
use uuid::Uuid;

/// Shape of one cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub commit_policy: &'static str,
    pub registration_instances: usize,
    /// DLQ retry schedule: `constant` or `exponential`, and its first delay in ms.
    pub retry_backoff: (&'static str, u64),
    pub batch_size: u32,
    /// Extra variables for every service (e.g. `RUST_LOG=debug`).
    pub extra_env: Vec<(&'static str, String)>,
    /// Declare the topics the way the services do (`reliable_messaging::kafka::topics`, default
    /// policy: replication factor min(3, brokers), `min.insync.replicas` RF − 1) instead of
    /// with replication factor 1; for the replicated-cluster scenarios.
    pub production_topics: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            commit_policy: "after-durable-outcome",
            registration_instances: 1,
            retry_backoff: ("exponential", 1_000),
            batch_size: 50,
            extra_env: Vec::new(),
            production_topics: false,
        }
    }
}

pub struct Cluster {
    pub env: &'static TestEnv,
    pub db: TestDatabase,
    pub proxy: TcpProxy,
    pub topic: String,
    pub gateway_url: String,
    /// `/metrics` and the probes of the first gateway.
    pub gateway_internal_url: String,
    gateway: ServiceProcess,
    /// The gateway's environment, for restarts and further instances (same secret).
    gateway_env: Vec<(&'static str, String)>,
    /// Further gateway instances sharing the topic, the database and the secret.
    extra_gateways: Vec<ServiceProcess>,
    /// One slot per instance ever started; `None` once killed for good.
    registration: Vec<Option<ServiceProcess>>,
    registration_ports: Vec<u16>,
    dlq_worker: ServiceProcess,
    wiring: Wiring,
    /// Logs of every process this cluster started, killed ones included.
    log_paths: Vec<std::path::PathBuf>,
}

/// What the consumers' environment is made of.
struct Wiring {
    kafka_bootstrap: String,
    /// The database as the consumers reach it: through the proxy.
    database_url: String,
    topic: String,
    dlq_worker_port: u16,
    config: ClusterConfig,
}

impl Cluster {
    pub async fn start(config: ClusterConfig) -> Cluster {
        let env = test_env().await;
        let db = env.fresh_database().await;
        let proxy = TcpProxy::start(database_socket_addr(&db.url)).await;
        let topic = env.unique_topic("chaos-registrations");
        if config.production_topics {
            let policy = reliable_messaging::kafka::topics::TopicPolicy { partitions: Some(3), ..Default::default() };
            let kafka = reliable_messaging::KafkaSettings::new(env.kafka_bootstrap.clone(), "chaos-cluster");
            reliable_messaging::kafka::topics::ensure_exist_with(
                &kafka,
                &[&topic, &dead_letter_topic(&topic)],
                &policy,
            )
            .await
            .expect("declare the topics");
        } else {
            env.create_topics(&[&topic, &dead_letter_topic(&topic)], 3).await;
        }

        let gateway_ports = GatewayPorts::free();
        let secret = harness::gateway::random_secret();
        // Cheap hashing (the harness's default): these scenarios are about loss, not password cost.
        let mut gateway_env =
            harness::gateway::process_env(gateway_ports, &env.kafka_bootstrap, &db.url, &topic, &secret);
        gateway_env.push(("PUBLISH_TIMEOUT_MS", "3000".to_owned()));
        gateway_env.extend(config.extra_env.iter().cloned());
        let gateway = ServiceProcess::spawn("gateway", &gateway_env);
        let gateway_env = gateway_env.clone();
        let wiring = Wiring {
            kafka_bootstrap: env.kafka_bootstrap.clone(),
            database_url: proxy.rewrite_url(&db.url),
            topic: topic.clone(),
            dlq_worker_port: free_port(),
            config: config.clone(),
        };
        let dlq_worker = ServiceProcess::spawn("dlq-worker", &wiring.dlq_worker_env());
        let log_paths = vec![gateway.log_path.clone(), dlq_worker.log_path.clone()];
        let mut cluster = Cluster {
            env,
            db,
            proxy,
            topic,
            gateway_url: gateway_ports.url(),
            gateway_internal_url: gateway_ports.internal_url(),
            gateway,
            gateway_env,
            extra_gateways: Vec::new(),
            registration: Vec::new(),
            registration_ports: Vec::new(),
            dlq_worker,
            wiring,
            log_paths,
        };
        for _ in 0..config.registration_instances {
            cluster.add_registration_instance();
        }
        cluster.wait_ready(&format!("{}/readyz", cluster.gateway_internal_url)).await;
        for port in cluster.registration_ports.clone() {
            cluster.wait_ready(&format!("http://127.0.0.1:{port}/healthz")).await;
        }
        cluster.wait_ready(&format!("http://127.0.0.1:{}/healthz", cluster.wiring.dlq_worker_port)).await;
        // Every instance in the group with partitions before the load starts.
        let ports = cluster.registration_ports.clone();
        let client = reqwest::Client::new();
        wait::until(Duration::from_secs(60), "registration-service instances own partitions", || {
            let (ports, client) = (ports.clone(), client.clone());
            async move {
                let mut ready = 0;
                for p in &ports {
                    if harness::answers_ok(&client, &format!("http://127.0.0.1:{p}/readyz")).await {
                        ready += 1;
                    }
                }
                ready == ports.len().min(3)
            }
        })
        .await;
        cluster
    }

    /// SIGTERM of the gateway, then a new gateway process on the same address: everything it
    /// held in memory is gone. Returns whether the old one exited cleanly.
    pub async fn restart_gateway(&mut self) -> bool {
        let clean = self.gateway.terminate(Duration::from_secs(30)).await;
        self.gateway = ServiceProcess::spawn("gateway", &self.gateway_env);
        self.log_paths.push(self.gateway.log_path.clone());
        self.wait_ready(&format!("{}/readyz", self.gateway_internal_url)).await;
        clean
    }

    /// Starts another gateway instance of the same deployment (same topic, database and
    /// secret) on ports of its own; returns its public base URL.
    pub async fn add_gateway_instance(&mut self) -> String {
        let ports = GatewayPorts::free();
        let env: Vec<(&'static str, String)> = self
            .gateway_env
            .iter()
            .map(|(k, v)| match *k {
                "GATEWAY_ADDR" => (*k, format!("127.0.0.1:{}", ports.public)),
                "GATEWAY_INTERNAL_ADDR" => (*k, format!("127.0.0.1:{}", ports.internal)),
                _ => (*k, v.clone()),
            })
            .collect();
        let process = ServiceProcess::spawn("gateway", &env);
        self.log_paths.push(process.log_path.clone());
        self.extra_gateways.push(process);
        self.wait_ready(&format!("{}/readyz", ports.internal_url())).await;
        ports.url()
    }

    /// Starts one more registration-service instance; returns its slot.
    pub fn add_registration_instance(&mut self) -> usize {
        let port = free_port();
        let process = ServiceProcess::spawn("registration-service", &self.wiring.registration_env(port));
        self.log_paths.push(process.log_path.clone());
        self.registration.push(Some(process));
        self.registration_ports.push(port);
        self.registration.len() - 1
    }

    /// Waits until instance `slot` owns partitions (its `/readyz` answers 200), so a fault
    /// injected next hits a consumer that is actually working.
    pub async fn wait_registration_assigned(&self, slot: usize) {
        self.wait_ready(&format!("http://127.0.0.1:{}/readyz", self.registration_ports[slot])).await;
    }

    /// The consumer group of this cluster's registration-service instances.
    pub fn registration_group(&self) -> String {
        registration_group(&self.topic)
    }

    /// The HTTP port (probes and `/metrics`) of registration-service instance `slot`.
    pub fn registration_port(&self, slot: usize) -> u16 {
        self.registration_ports[slot]
    }

    /// The HTTP port (probes and `/metrics`) of the dlq-worker.
    pub fn dlq_worker_port(&self) -> u16 {
        self.wiring.dlq_worker_port
    }

    /// SIGKILL of instance `slot`.
    pub async fn kill_registration(&mut self, slot: usize) {
        if let Some(p) = self.registration[slot].as_mut() {
            p.kill_9().await;
        }
        self.registration[slot] = None;
    }

    /// A new process in slot `slot` (after a kill or a stop).
    pub fn restart_registration(&mut self, slot: usize) {
        let port = free_port();
        self.registration_ports[slot] = port;
        let process = ServiceProcess::spawn("registration-service", &self.wiring.registration_env(port));
        self.log_paths.push(process.log_path.clone());
        self.registration[slot] = Some(process);
    }

    /// SIGTERM of instance `slot`; whether it exited cleanly.
    pub async fn terminate_registration(&mut self, slot: usize) -> bool {
        let clean = match self.registration[slot].as_mut() {
            Some(p) => p.terminate(Duration::from_secs(30)).await,
            None => true,
        };
        self.registration[slot] = None;
        clean
    }

    pub async fn kill_dlq_worker(&mut self) {
        self.dlq_worker.kill_9().await;
    }

    pub fn restart_dlq_worker(&mut self) {
        self.dlq_worker = ServiceProcess::spawn("dlq-worker", &self.wiring.dlq_worker_env());
        self.log_paths.push(self.dlq_worker.log_path.clone());
    }

    /// Everything every process of this cluster logged so far.
    pub fn all_logs(&self) -> String {
        self.log_paths.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect::<Vec<_>>().join("\n")
    }

    pub fn gateway_is_running(&mut self) -> bool {
        self.gateway.is_running()
    }

    async fn wait_ready(&self, url: &str) {
        harness::wait_ready(url, Duration::from_secs(60)).await;
    }

    /// Waits until every accepted request reached an end state (or `timeout`), and returns the
    /// ledger.
    pub async fn settle(&self, accepted: &[Expected], timeout: Duration) -> LedgerReport {
        let deadline = tokio::time::Instant::now() + timeout;
        let ids: Vec<Uuid> = accepted.iter().map(|a| a.request_id).collect();
        // Poll on where requests ended (cheap), then hold every row to its content once.
        while !ledger::lost_so_far(&self.db, &ids).await.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        ledger::check(&self.db, accepted).await
    }

    /// Stops every process gracefully; returns the names of those that did not exit cleanly.
    pub async fn stop(mut self) -> Vec<String> {
        let mut unclean = Vec::new();
        for slot in 0..self.registration.len() {
            if !self.terminate_registration(slot).await {
                unclean.push(format!("registration-service[{slot}]"));
            }
        }
        if !self.dlq_worker.terminate(Duration::from_secs(30)).await {
            unclean.push("dlq-worker".to_owned());
        }
        for (i, mut extra) in std::mem::take(&mut self.extra_gateways).into_iter().enumerate() {
            if !extra.terminate(Duration::from_secs(30)).await {
                unclean.push(format!("gateway[{}]", i + 1));
            }
        }
        if !self.gateway.terminate(Duration::from_secs(30)).await {
            unclean.push("gateway".to_owned());
        }
        unclean
    }
}

impl Wiring {
    fn registration_env(&self, port: u16) -> Vec<(&'static str, String)> {
        let (kind, initial) = self.config.retry_backoff;
        vec![
            ("KAFKA_BOOTSTRAP_SERVERS", self.kafka_bootstrap.clone()),
            ("DATABASE_URL", self.database_url.clone()),
            ("REGISTRATIONS_TOPIC", self.topic.clone()),
            ("CONSUMER_GROUP", registration_group(&self.topic)),
            ("REGISTRATION_SERVICE_ADDR", format!("127.0.0.1:{port}")),
            ("COMMIT_POLICY", self.config.commit_policy.to_owned()),
            ("BATCH_SIZE", self.config.batch_size.to_string()),
            // About 1.5 s of in-place retries before the DLQ: the window in which a crash
            // finds a polled batch not yet stored (see kill_registration_repeatedly).
            ("IN_PLACE_RETRIES", "3".to_owned()),
            ("IN_PLACE_BACKOFF", "constant".to_owned()),
            ("IN_PLACE_BACKOFF_INITIAL_MS", "500".to_owned()),
            ("RETRY_BACKOFF", kind.to_owned()),
            ("RETRY_BACKOFF_INITIAL_MS", initial.to_string()),
        ]
        .into_iter()
        .chain(self.config.extra_env.iter().cloned())
        .collect()
    }

    fn dlq_worker_env(&self) -> Vec<(&'static str, String)> {
        let (kind, initial) = self.config.retry_backoff;
        vec![
            ("KAFKA_BOOTSTRAP_SERVERS", self.kafka_bootstrap.clone()),
            ("DATABASE_URL", self.database_url.clone()),
            ("DLQ_TOPIC_PATTERN", format!("^{}$", dead_letter_topic(&self.topic))),
            ("DLQ_CONSUMER_GROUP", format!("dlq-worker-{}", self.topic)),
            ("DLQ_WORKER_ADDR", format!("127.0.0.1:{}", self.dlq_worker_port)),
            ("RETRY_THRESHOLD", "5".to_owned()),
            ("RETRY_BACKOFF", kind.to_owned()),
            ("RETRY_BACKOFF_INITIAL_MS", initial.to_string()),
        ]
        .into_iter()
        .chain(self.config.extra_env.iter().cloned())
        .collect()
    }
}

/// A group per cluster: clusters of tests running side by side would otherwise share one
/// group, rebalance each other, and a member stalled on a cut database holds every such
/// rebalance (and the others' commits) up.
fn registration_group(topic: &str) -> String {
    format!("{topic}-registration-service")
}
