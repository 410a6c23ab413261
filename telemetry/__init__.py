"""Telemetry from sentries (管网哨兵), station RTUs, household alarms and meters.

The path of a reading, one module per step:

    mqtt.py / modbus.py   sources: MQTT subscription to qiwang/# (QoS 1, acknowledged only once stored) and
                          Modbus TCP polling, both producing `Message`s
    payload.py            topic + UTF-8 JSON → `Reading`, or a `Rejection` naming the field and reason
    registry.py           the devices that may report (table view telemetry_device)
    rules.py              alarm rules: levels (dt_devicestatus), thresholds, hysteresis
    store.py              one transaction per batch: readings (idempotent on device + ts), latest
                          state on the device, quarantine, alarms and their handling record,
                          status history, regulator outbox
    pipeline.py           batches messages from any source into the store; retries while the
                          database is away, and acknowledges a message only once it is stored
    alarms.py             the alarm lifecycle (raised → acknowledged → dispatched → resolved → closed)
    offline.py            offline detection and offline rates (掉线率)
    outbox.py             replay of unsent records to the regulator's HTTP endpoint, in order
    simulate.py           realistic telemetry for the demo city
    broker.py             a project-local mosquitto for the demo and the tests: accounts and ACL
                          (no anonymous clients), reaped and restarted when it exits
    health.py             restarts and last failures of the supervised parts, for /health
"""
