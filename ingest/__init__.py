"""Getting data in and out: file import/export, the demo city, telemetry and alarm rules."""
