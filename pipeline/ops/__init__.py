"""Running newspipe for months: retention (rollover and deletion), mapping migrations,
dead-letter replay, Prometheus metrics and per-owner API keys. See docs/operations.md."""
