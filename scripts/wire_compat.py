#!/usr/bin/env python3
"""Wire compatibility: a real Confluent client reads slamon's records.

Consumes TOPIC from the beginning with a fresh group using confluent-kafka's Consumer,
SchemaRegistryClient and AvroDeserializer against slamon's registry, and prints one
JSON line per decoded record. Exits non-zero unless at least EXPECTED records decoded.

    python3 scripts/wire_compat.py BOOTSTRAP REGISTRY_URL TOPIC EXPECTED
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main():
    bootstrap, registry, topic, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = SchemaRegistryClient({"url": registry})
    deserializer = AvroDeserializer(client)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"wire-compat-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    decoded = 0
    deadline = time.time() + 60
    try:
        while decoded < expected and time.time() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            value = deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE))
            key = msg.key().decode() if msg.key() else None
            print(json.dumps({"key": key, "event_type": value["event_type"], "schema_version": value["schema_version"],
                              "event_id": value["event_id"]}))
            decoded += 1
    finally:
        consumer.close()
    if decoded < expected:
        print(f"decoded {decoded} of {expected} records", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
