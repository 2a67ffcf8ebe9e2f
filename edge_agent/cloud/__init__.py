"""Cloud sync over MQTT: the link, topics, signed bundles, the downlink, the outbox drain and telemetry."""
