"""The streaming application: Faust agents (worker), the batch steps they share with backfill and benchmarks (process), backfill."""
