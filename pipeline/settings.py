"""The one settings object: every knob is a ``NEWS_*`` environment variable.

Import :func:`get_settings` rather than constructing :class:`Settings` in several places,
so one process sees one configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
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
    kafka_brokers: int = Field(
        1, description="brokers `newspipe up` starts (3: a KRaft cluster, see pipeline/runtime)"
    )
    es_nodes: int = Field(1, description="Elasticsearch nodes `newspipe up` starts (3: a cluster)")
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
    spacy_models: dict[str, str] = Field(
        default_factory=lambda: {"fr": "fr_core_news_sm"},
        description="language (ISO 639-1) -> spaCy pipeline, JSON; English and undetermined "
        "articles use spacy_model; an article in a language with no pipeline gets no entities",
    )
    nlp_batch_size: int = Field(64, description="articles per nlp.pipe batch")
    nlp_matmul: Literal["auto", "blis", "numpy"] = Field(
        "auto",
        description="matrix products of the spaCy pipelines: BLIS (thinc's default) or NumPy's "
        "BLAS; auto measures both on the pipeline's weight shapes when it loads and takes the "
        "faster (pipeline.stages.matmul)",
    )
    nlp_process: bool = Field(
        True,
        description="the worker runs nlp.pipe in a process of its own (its other steps keep "
        "the GIL; the next batch is parsed while the last one is finished)",
    )
    nlp_processes: int = Field(
        1,
        ge=1,
        description="parse processes per worker when NEWS_NLP_PROCESS is on: a batch is split "
        "among them (more cores for the NER, one model's memory each)",
    )

    # --- topics ------------------------------------------------------------------------------
    topic_prefix: str = Field("news", description="prefix of every topic name")
    topic_partitions: int = 4
    topic_replication: int = 1
    """``min.insync.replicas`` of the topics follows (pipeline.infra.topics.min_insync)."""

    # --- indices -----------------------------------------------------------------------------
    index_prefix: str = Field("news", description="prefix of every index and alias name")
    es_replicas: int | None = Field(
        None, description="replicas per shard of new indices (default: the templates' value, 0)"
    )
    alerts_on_clean: bool = Field(
        True,
        description="match keyword subscriptions (no entity:/event: field, not per story, no "
        "digest) on the clean article, before the NER, so their alerts never wait for it; "
        "false: every subscription waits for the enriched article",
    )
    enrich_indexes: bool = Field(
        True,
        description="the enrich agent indexes its articles and matches their entity/event "
        "subscriptions itself, one topic hop fewer on the way to search and to an entity "
        "alert (it still publishes them on the enriched topic); false: the index and alerts "
        "agents read them back from the enriched topic",
    )
    index_clean: bool = Field(
        False,
        description="the clean step also writes each new article's text to the articles "
        "index, so a search finds it before its NER (entities, events and story come with "
        "the enriched document, which replaces it; `enriched` tells them apart). Off by "
        "default: it costs Elasticsearch about 3 ms of CPU per article, which on a machine "
        "the stack fills delays the entity alerts (docs/performance.md)",
    )
    state_refresh_s: float = Field(
        5.0,
        gt=0,
        description="refresh interval of the pipeline's own state indices (dedupe fingerprints, "
        "alert ledger, stories, entity registry): how soon a write there is searchable "
        "(Kibana, alert history). The stages read them by id, in real time; the outbox keeps "
        "1 s",
    )
    articles_refresh_s: float = Field(
        0.5,
        gt=0,
        description="how soon an indexed article is found by a search, at most: the worker "
        "refreshes the articles index after its writes, at most once per this interval "
        "(backfill after each batch; with articles_refresh_on_write off, the index's own "
        "refresh interval). "
        "Shorter costs Elasticsearch CPU (docs/performance.md)",
    )
    articles_refresh_on_write: bool = Field(
        True,
        description="refresh the articles index after each write (in the background, one "
        "refresh at a time, writes meanwhile sharing the next): an article written after a "
        "pause is searchable one refresh after its write, not at the index's next tick; the "
        "index's own interval is then a backstop for other writers "
        "(pipeline.infra.es.ARTICLES_CLOCK_BACKSTOP_S)",
    )

    # --- worker ------------------------------------------------------------------------------
    app_id: str = Field("newspipe", description="Faust application id (consumer group)")
    worker_web_port: int = Field(0, description="Faust worker web port (0 = off)")
    worker_web_host: str = Field("127.0.0.1", description="Faust worker web bind address")
    batch_max: int = Field(64, description="most messages one agent takes at once")
    enrich_batch_max: int = Field(
        16,
        ge=1,
        description="most articles the enrich agent (the NER) takes at once: a stream near "
        "capacity grew its batches to batch_max, and every article then waited for a whole "
        "batch's parse (at 33.7 articles/s, 80% of one worker's capacity: all alerts p99 "
        "2.9-3.3 s with 64, 1.57-1.65 s with 16, for 2-6% more CPU per article; "
        "docs/performance.md)",
    )
    alerts_first: bool = Field(
        True,
        description="under backlog, the enrich agent reads ahead and takes first the articles "
        "that an entity/event (or per-story) subscription could match, told from their words "
        "(pipeline.alerts.prefilter), so their alerts do not wait behind the rest; false: "
        "articles in the order they arrived",
    )
    alerts_first_lookahead: int = Field(
        2048,
        ge=1,
        description="most clean articles the enrich agent reads ahead (alerts_first): an "
        "article can be taken first only once it is read, so this bounds the backlog it "
        "can skip",
    )
    alerts_first_lookahead_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1,
        description="about the most bytes of clean articles the enrich agent reads ahead",
    )
    alerts_first_max_defer_s: float = Field(
        5.0,
        ge=0,
        description="an article passed over this long for urgent ones (alerts_first) gets, "
        "with the others passed over as long, at least half of each enrich batch, seconds",
    )
    enrich_batch_bytes: int = Field(
        16_384,
        ge=1,
        description="an enrich batch also ends once its messages add up to this many bytes "
        "(the article that reaches it is the last): a batch's parse takes time in proportion "
        "to its text, so long articles come in smaller batches (16 Reuters articles of 120 "
        "words are about 20 KB, 5 of 450 words about 16 KB)",
    )
    batch_wait_s: float = Field(
        0.005,
        description="longest wait for more messages once one arrived, seconds "
        "(batches grow under backlog without waiting; pipeline.stream.batching)",
    )
    batch_linger_s: float = Field(
        0.05,
        description="while messages arrive at least this often (mean gap), a batch waits up "
        "to this long for more, so a steady stream shares each batch's fixed costs (at 20 "
        "articles/s, 0.05 s took 4-7% off the worker's CPU per article and 5% off the "
        "machine's; docs/performance.md); a quieter stream waits batch_wait_s",
    )
    worker_store: str = Field(
        "memory://", description="Faust table store (memory:// or rocksdb://)"
    )

    retry_max_wait_s: float = Field(
        2.0, description="longest wait between retries of a server that is down (seconds)"
    )
    max_body_chars: int = Field(
        1_000_000, description="longer bodies are rejected to the dead-letter topic"
    )
    max_message_bytes: int = Field(
        33_554_432, description="largest Kafka message (broker, topics, producers, consumers)"
    )

    # --- inputs at the door (newspipe ingest, feeds; docs/bad-input.md) ------------------
    max_input_bytes: int = Field(
        67_108_864, description="largest file read whole, after decompression (.jsonl streams)"
    )
    max_article_bytes: int = Field(
        4_194_304, description="largest article a producer may send (its JSON), bytes"
    )
    max_json_depth: int = Field(64, description="deepest nesting of a JSON input")
    producer_deadline_s: float = Field(
        60.0, description="longest wait for the broker to take or acknowledge messages"
    )
    feed_timeout_s: float = Field(30.0, description="longest fetch of one feed, seconds")
    feed_max_bytes: int = Field(10_485_760, description="largest feed document, bytes")

    # --- dedupe ------------------------------------------------------------------------------
    dedupe_threshold: float = Field(0.8, description="Jaccard similarity of a near duplicate")

    # --- alerts ------------------------------------------------------------------------------
    api_token: str = Field(
        "",
        description="bearer token of the HTTP API; empty or 'change-me': generated into"
        " <data_dir>/api-token on first start",
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    webhook_allow_private: bool = Field(
        False, description="allow webhook delivery to loopback/private addresses"
    )
    webhook_timeout_s: float = Field(
        5.0, description="one webhook attempt's timeout (connect + answer)"
    )
    # --- alert delivery (docs/alerts.md, "Delivery") -----------------------------------------
    webhook_allow_targets: str = Field(
        "", description="host:port webhook targets allowed although non-public, comma separated"
    )
    webhook_max_redirects: int = Field(3, description="redirect hops followed (each one checked)")
    webhook_max_age_s: float = Field(86400.0, description="a delivery is retried up to this age")
    webhook_max_attempts: int = Field(50, description="a delivery fails after this many attempts")
    webhook_backoff_s: float = Field(
        2.0, description="delay before the first retry (doubles, jittered)"
    )
    webhook_backoff_max_s: float = Field(3600.0, description="longest delay between two attempts")
    webhook_inflight_per_target: int = Field(4, description="concurrent sends per target host:port")
    webhook_inflight_total: int = Field(64, description="concurrent sends per worker")
    webhook_breaker_failures: int = Field(
        5, description="consecutive failures that open a target's breaker"
    )
    webhook_breaker_cooldown_s: float = Field(
        30.0, description="how long an open breaker skips its target"
    )
    outbox_poll_s: float = Field(
        1.0, description="how often a worker looks for due deliveries it was not told of"
    )
    outbox_lease_s: float = Field(
        120.0, description="a leased delivery is taken over by another worker after this"
    )
    digest_hourly_s: float = Field(3600.0, description="period of 'hourly' digests, seconds")
    digest_daily_s: float = Field(86400.0, description="period of 'daily' digests, seconds")
    subscription_max_query_chars: int = Field(1000, description="longest subscription query")
    subscription_max_owner_chars: int = Field(200, description="longest subscription owner")
    subscription_max_channels: int = Field(
        10, description="most channels (webhooks) per subscription"
    )
    subscription_max_url_chars: int = Field(2048, description="longest webhook URL")
    secrets_key: str | None = Field(
        None,
        description="Fernet key sealing webhook URLs and secrets (default: <data_dir>/secrets.key, made on first use)",
    )

    # --- web sources (pipeline.sources): page fetching and extraction ---------------------
    user_agent: str = Field(
        "newspipe/0.1 (+https://github.com/newspipe/newspipe)",
        description="User-Agent of page, feed and robots.txt requests",
    )
    fetch_timeout_s: float = Field(20.0, description="connect/read timeout of one request")
    fetch_max_bytes: int = Field(5_000_000, description="larger responses are cut off and refused")
    fetch_max_redirects: int = Field(5, description="most redirects followed per request")
    fetch_per_host: int = Field(2, description="most concurrent requests to one host")
    fetch_host_delay_s: float = Field(
        1.0, description="least time between two requests to one host"
    )
    fetch_concurrency: int = Field(8, description="most concurrent requests overall")
    fetch_robots: bool = Field(True, description="honour robots.txt")
    feed_min_words: int = Field(
        120, description="feed entries with fewer words are teasers: their page is fetched"
    )

    # --- stories (pipeline.stages.stories) -----------------------------------------------
    story_window_hours: float = Field(
        120.0, description="an article joins a story only within this time of its articles"
    )
    story_threshold: float = Field(
        0.35, description="least similarity (0-1) of an article to a story it joins"
    )

    # --- kibana ------------------------------------------------------------------------------
    kibana_url: str = "http://127.0.0.1:5601"

    # --- operations: retention, metrics (pipeline/ops, docs/operations.md) -----------------
    rollover_max_age: str = Field("7d", description="roll the articles index over at this age")
    rollover_max_size: str = Field("20gb", description="... or at this primary shard size")
    rollover_max_docs: int | None = Field(None, description="... or at this many documents")
    retention_articles_days: float = Field(
        365, description="delete article indices older than this"
    )
    retention_alerts_days: float = Field(180, description="delete alerts older than this")
    retention_duplicates_days: float = Field(7, description="duplicates topic retention")
    retention_deadletter_days: float = Field(28, description="dead-letter topic retention")
    retention_outbox_days: float = Field(
        30,
        description="delete finished webhook outbox entries "
        "(delivered, failed, refused) last updated longer ago than this",
    )
    retention_stories_days: float = Field(
        90,
        description="delete stories last updated longer ago than "
        "this (never less than the story window)",
    )
    dedupe_window_days: float = Field(30, description="forget dedupe fingerprints older than this")
    retention_interval_s: float = Field(3600, description="how often the worker runs retention")
    metrics_port: int = Field(0, description="worker Prometheus metrics port (0 = off)")
    metrics_host: str = Field("127.0.0.1", description="worker metrics bind address")
    metrics_lag_interval_s: float = Field(15, description="how often the worker measures lag")
    api_metrics_auth: bool = Field(
        False,
        description="GET /metrics of the HTTP API needs an admin "
        "key (or the deployment token); off: open, like the worker's port",
    )

    @field_validator("webhook_allow_targets")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        for item in (t.strip() for t in value.split(",")):
            host, sep, port = item.rpartition(":")
            if item and not (sep and host and port.isdigit()):
                raise ValueError(f"{item!r} is not host:port")
        return value

    def topic(self, name: str) -> str:
        """Full topic name, e.g. ``topic("raw")`` -> ``news.raw``."""
        return f"{self.topic_prefix}.{name}"

    def index(self, name: str) -> str:
        """Full index/alias name, e.g. ``index("articles")`` -> ``news-articles``."""
        return f"{self.index_prefix}-{name}"

    @property
    def es_url_list(self) -> list[str]:
        """``es_url`` may name several nodes, comma separated."""
        return [u.strip() for u in self.es_url.split(",") if u.strip()]

    @property
    def kafka_bootstrap_list(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap.split(",") if s.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
