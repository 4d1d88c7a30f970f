"""The one settings object: every knob is a ``NEWS_*`` environment variable.

Import :func:`get_settings` rather than constructing :class:`Settings` in several places,
so one process sees one configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWS_", env_file=".env", extra="ignore")

    # --- servers -------------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated host:port"
    )
    es_url: str = Field("http://127.0.0.1:9200", description="Elasticsearch URL")
    es_api_key: str | None = Field(None, description="Elasticsearch API key, when security is on")
    es_username: str | None = None
    es_password: str | None = None
    es_ca_certs: str | None = Field(None, description="CA bundle for an https Elasticsearch")

    # --- local runtime (newspipe up/down/status) -----------------------------------------
    data_dir: Path = Field(
        Path(".newspipe"), description="where the local runtime keeps servers, data, logs, pids"
    )
    kafka_version: str = "3.9.2"
    es_version: str = "8.19.21"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    es_port: int = 9200
    es_transport_port: int | None = Field(
        None, description="Elasticsearch node-to-node port (default: NEWS_ES_PORT + 100)"
    )
    dist_dir: Path | None = Field(
        None,
        description="where Maven puts the Kafka and Elasticsearch distributions "
        "(default: <data_dir>/dist); several data dirs may share one",
    )
    kafka_heap: str = "512m"
    es_heap: str = "512m"
    es_run_as: str = Field(
        "newspipe", description="unprivileged user Elasticsearch runs as when started by root"
    )

    # --- NLP -------------------------------------------------------------------------------
    spacy_model: str = Field(
        "en_core_web_sm",
        description="installed spaCy package name, a model directory, or a .whl file",
    )
    nlp_batch_size: int = Field(64, description="articles per nlp.pipe batch")

    # --- topics ------------------------------------------------------------------------------
    topic_prefix: str = Field("news", description="prefix of every topic name")
    topic_partitions: int = 4
    topic_replication: int = 1

    # --- indices -----------------------------------------------------------------------------
    index_prefix: str = Field("news", description="prefix of every index and alias name")

    # --- worker ------------------------------------------------------------------------------
    app_id: str = Field("newspipe", description="Faust application id (consumer group)")
    worker_web_port: int = Field(0, description="Faust worker web port (0 = off)")
    worker_web_host: str = Field("127.0.0.1", description="Faust worker web bind address")
    batch_max: int = Field(64, description="most messages one agent takes at once")
    batch_wait_s: float = Field(0.1, description="longest wait to fill a batch, seconds")
    worker_store: str = Field("memory://", description="Faust table store (memory:// or rocksdb://)")

    max_body_chars: int = Field(
        1_000_000, description="longer bodies are rejected to the dead-letter topic"
    )
    max_message_bytes: int = Field(
        33_554_432, description="largest Kafka message (broker, topics, producers, consumers)"
    )

    # --- dedupe ------------------------------------------------------------------------------
    dedupe_threshold: float = Field(0.8, description="Jaccard similarity of a near duplicate")

    # --- alerts ------------------------------------------------------------------------------
    api_token: str = Field("change-me", description="bearer token of the alerts HTTP API")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    webhook_allow_private: bool = Field(
        False, description="allow webhook delivery to loopback/private addresses"
    )
    webhook_timeout_s: float = 5.0
    webhook_retries: int = 3

    # --- kibana ------------------------------------------------------------------------------
    kibana_url: str = "http://127.0.0.1:5601"

    # --- operations: retention, metrics (pipeline/ops, docs/operations.md) -----------------
    rollover_max_age: str = Field("7d", description="roll the articles index over at this age")
    rollover_max_size: str = Field("20gb", description="... or at this primary shard size")
    rollover_max_docs: int | None = Field(None, description="... or at this many documents")
    retention_articles_days: float = Field(365, description="delete article indices older than this")
    retention_alerts_days: float = Field(180, description="delete alerts older than this")
    retention_duplicates_days: float = Field(7, description="duplicates topic retention")
    retention_deadletter_days: float = Field(28, description="dead-letter topic retention")
    dedupe_window_days: float = Field(30, description="forget dedupe fingerprints older than this")
    retention_interval_s: float = Field(3600, description="how often the worker runs retention")
    metrics_port: int = Field(0, description="worker Prometheus metrics port (0 = off)")
    metrics_host: str = Field("127.0.0.1", description="worker metrics bind address")
    metrics_lag_interval_s: float = Field(15, description="how often the worker measures lag")

    def topic(self, name: str) -> str:
        """Full topic name, e.g. ``topic("raw")`` -> ``news.raw``."""
        return f"{self.topic_prefix}.{name}"

    def index(self, name: str) -> str:
        """Full index/alias name, e.g. ``index("articles")`` -> ``news-articles``."""
        return f"{self.index_prefix}-{name}"

    @property
    def kafka_bootstrap_list(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap.split(",") if s.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
