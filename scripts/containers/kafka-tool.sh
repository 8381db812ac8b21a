#!/usr/bin/env bash
# /opt/kafka/bin/kafka-topics.sh of the locally built Kafka image (compose.yaml's health check).
exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml \
  -cp '/opt/kafka/libs/*' org.apache.kafka.tools.TopicCommand "$@"
