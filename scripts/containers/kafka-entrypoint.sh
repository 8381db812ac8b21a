#!/usr/bin/env bash
# Entry point of the locally built Kafka image: server.properties from the environment as the
# official apache/kafka image does it (KAFKA_LISTENERS -> listeners, `_` -> `.`), storage
# formatted once with CLUSTER_ID, then the broker in the foreground, logging to stdout.
set -euo pipefail
config=/opt/kafka/config/server.properties
data=/tmp/kraft-combined-logs
{
  # Single-node defaults, each overridable by a KAFKA_* variable (printed later, later wins).
  printf '%s\n' process.roles=broker,controller node.id=1 "log.dirs=$data" \
    offsets.topic.replication.factor=1 transaction.state.log.replication.factor=1 \
    transaction.state.log.min.isr=1 share.coordinator.state.topic.replication.factor=1 \
    share.coordinator.state.topic.min.isr=1 group.initial.rebalance.delay.ms=0
  # JVM settings, not broker settings.
  env | grep '^KAFKA_' | grep -vE '^KAFKA_(HEAP_OPTS|OPTS|JVM_PERFORMANCE_OPTS|LOG4J_OPTS)=' |
    while IFS='=' read -r name value; do
      key=${name#KAFKA_}
      key=${key,,}
      printf '%s=%s\n' "${key//_/.}" "$value"
    done
} >"$config"
if [[ ! -f $data/meta.properties ]]; then
  # A static quorum (controller.quorum.voters, as the tests and compose.yaml give) is formatted
  # as is; without one, this node is a dynamic quorum of its own (--standalone).
  standalone=(--standalone)
  grep -q '^controller\.quorum\.voters=' "$config" && standalone=()
  java -Xmx256m -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format "${standalone[@]}" \
    -t "${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" -c "$config" >/dev/null
fi
# shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of JVM flags
exec java ${KAFKA_HEAP_OPTS:--Xmx512m} -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
  -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml -cp '/opt/kafka/libs/*' kafka.Kafka "$config"
