//! Scenarios on a replicated Kafka cluster (`scripts/chaos.sh --replicated`): the local
//! three-broker KRaft cluster of `scripts/local-services.sh up --brokers 3`, topics declared the
//! way the services declare them (replication factor 3, `min.insync.replicas` 2, no unclean
//! election), and broker faults placed on the broker that matters at that moment: the current
//! leader of partitions that are receiving the load, the active controller. Every fault is
//! checked to have landed (the victim led loaded partitions when it was hit), every scenario
//! ends with the ledger and with a count of each accepted request id's records on the topic
//! (the idempotent producer wrote each once; any extra record is a client retry).
//!
//! Failover figures (the 503 window after a kill, the leader election time from the broker's
//! own log) are printed in each scenario's note; BENCHMARKS.md records them.

mod conclude;
mod faults;
mod rig;
mod scenarios;

use std::time::Duration;

use futures::FutureExt;

use crate::scenarios::Scenario;
use crate::Options;
use scenarios::{
    below_min_isr, db_server_restart, dlq_failover, leader_isolated, leader_kill, negative_control_acks_1,
    rolling_restart,
};

/// The replicated scenarios; the MariaDB restart only with `--restart-database` (it restarts
/// the machine's shared database server, so nobody else may be testing).
pub fn all(options: &Options) -> Vec<Scenario> {
    let mut list = vec![
        Scenario { name: "replicated-leader-kill", what: "kill -9 of the leader of loaded partitions, then of the active controller, then of a leader whose followers are 3 s behind; each broker restarted", run: |o| leader_kill(o).boxed() },
        Scenario { name: "negative-control-replicated-acks-1", what: "the same leader kills with the producer at acks=1: the ledger MUST report acknowledged sign-ups lost", run: |o| negative_control_acks_1(o).boxed() },
        Scenario { name: "replicated-leader-isolated", what: "the leader of loaded partitions cut off from the other brokers and the clients for 30 s, then healed", run: |o| leader_isolated(o).boxed() },
        Scenario { name: "replicated-below-min-isr", what: "two of three brokers down: fewer in-sync replicas than min.insync.replicas, 503 with Retry-After and never 202 until they return", run: |o| below_min_isr(o).boxed() },
        Scenario { name: "replicated-rolling-restart", what: "each broker stopped and restarted in turn, each while it leads loaded partitions", run: |o| rolling_restart(o).boxed() },
        Scenario { name: "replicated-dlq-failover", what: "kill -9 of the DLQ's leader while the registration-service dead-letters, then of the leader the dlq-worker re-sends to", run: |o| dlq_failover(o).boxed() },
    ];
    if options.restart_database {
        list.push(Scenario {
            name: "replicated-db-server-restart",
            what: "the MariaDB server restarted (stopped, started) while the registration-service holds a batch",
            run: |o| db_server_restart(o).boxed(),
        });
    }
    list
}

/// How long the system may take to settle after the faults stop.
const SETTLE: Duration = Duration::from_secs(150);
/// A killed broker is fenced after `broker.session.timeout.ms` (9 s); generous beyond that.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);
