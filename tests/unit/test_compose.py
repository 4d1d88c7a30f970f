"""docker-compose.yml, Dockerfile, .env.example and .dockerignore, checked structurally.

No Docker engine is needed: the files are parsed and compared with pipeline.settings,
pipeline.infra.topics and the index templates, so a change on one side that the other does not
follow fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pipeline.infra import kibana
from pipeline.infra.topics import topic_configs, topic_names
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = ("setup", "worker", "api", "producer")
INFRA_SERVICES = ("kafka", "elasticsearch", "kibana")
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def read_env_example() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: not KEY=value: {line!r}"
        env[key.strip()] = value.strip()
    return env


def interpolate(value, env: dict[str, str]):
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR-default} substitution; $$ stays $."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return VAR.sub(sub, value).replace("$$", "$")


def variables(value) -> list[tuple[str, str | None, str | None]]:
    if isinstance(value, dict):
        return [v for item in value.values() for v in variables(item)]
    if isinstance(value, list):
        return [v for item in value for v in variables(item)]
    if isinstance(value, str):
        return [(m.group(1), m.group(2), m.group(3)) for m in VAR.finditer(value)]
    return []


@pytest.fixture(scope="module")
def raw() -> dict:
    # PyYAML is not a dependency yet (pyproject `test` extra): skip only the compose tests
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_example()


@pytest.fixture(scope="module")
def compose(raw, env_example) -> dict:
    """The compose model as `docker compose config` would see it with .env = .env.example."""
    return interpolate(raw, env_example)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def app_env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "use the mapping form of environment"
    return {k: str(v) for k, v in env.items()}


def settings_from(env: dict[str, str]) -> Settings:
    kwargs = {key[len("NEWS_") :].lower(): value for key, value in env.items()}
    return Settings(_env_file=None, **kwargs)


def command_text(service: dict) -> str:
    cmd = service.get("command", "")
    return cmd if isinstance(cmd, str) else " ".join(cmd)


# --- variables and .env.example ----------------------------------------------------------------


def test_every_compose_variable_is_in_env_example(raw, env_example):
    used = variables(raw)
    assert used
    missing = sorted({name for name, _, _ in used} - set(env_example))
    assert not missing, f".env.example lacks {missing}"


def test_env_example_matches_compose_defaults(raw, env_example):
    """Copying .env.example to .env changes nothing: its values are the compose defaults."""
    for name, op, default in variables(raw):
        if op in (":-", "-"):
            assert env_example[name] == default, (
                f"{name}: .env.example has {env_example[name]!r}, compose defaults to {default!r}"
            )


def test_env_example_news_values_are_settings(env_example):
    for key in env_example:
        if key.startswith("NEWS_"):
            assert key[5:].lower() in Settings.model_fields, key
    settings = settings_from({k: v for k, v in env_example.items() if k.startswith("NEWS_")})
    assert settings.max_message_bytes == Settings(_env_file=None).max_message_bytes


# --- services, images, versions ----------------------------------------------------------------


def test_services(services):
    assert set(INFRA_SERVICES + APP_SERVICES) <= set(services)
    for name, svc in services.items():
        assert "container_name" not in svc, f"{name}: container_name prevents scaling"
        for key, value in (svc.get("environment") or {}).items():
            assert not isinstance(value, bool), f"{name}: {key} is a YAML boolean, quote it"


def image_tag(image: str) -> tuple[str, str]:
    name, _, tag = image.rpartition(":")
    assert name and tag and "/" not in tag, f"untagged image {image}"
    return name, tag


def test_images_are_pinned(services):
    defaults = Settings(_env_file=None)
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        if "image" in svc:
            _, tag = image_tag(svc["image"])
            assert tag != "latest", f"{name}: image tag 'latest'"
    kafka_name, kafka_tag = image_tag(services["kafka"]["image"])
    assert kafka_name == "apache/kafka"
    assert re.fullmatch(r"3\.9\.\d+", kafka_tag)
    assert kafka_tag == defaults.kafka_version, "same Kafka as the local runtime"
    es_name, es_tag = image_tag(services["elasticsearch"]["image"])
    kb_name, kb_tag = image_tag(services["kibana"]["image"])
    assert es_name == "docker.elastic.co/elasticsearch/elasticsearch"
    assert kb_name == "docker.elastic.co/kibana/kibana"
    assert es_tag == kb_tag == defaults.es_version, "Kibana and Elasticsearch must match"


def test_app_services_use_the_project_image(services):
    images = set()
    for name in APP_SERVICES:
        svc = services[name]
        assert svc["build"]["context"] == "."
        assert svc["build"]["dockerfile"] == "Dockerfile"
        assert set(svc["build"]["args"]) == {"SPACY_MODEL"}
        images.add(svc["image"])
        assert "entrypoint" not in svc or name == "setup", f"{name}: keep the newspipe entrypoint"
    assert len(images) == 1, images


# --- app configuration: NEWS_* only, consistent with settings, topics and templates -----------


def test_app_env_is_news_settings_only(services):
    for name in APP_SERVICES:
        env = app_env(services[name])
        assert env, name
        for key in env:
            assert key.startswith("NEWS_"), f"{name}: {key} is not a NEWS_* setting"
            assert key[5:].lower() in Settings.model_fields, f"{name}: {key} is no Settings field"
        settings_from(env)  # validates the values


def test_app_services_share_one_configuration(services):
    envs = {name: app_env(services[name]) for name in APP_SERVICES}
    first = envs["setup"]
    for name, env in envs.items():
        assert env == first, f"{name} is configured differently from setup"


def test_app_env_points_at_the_services(services):
    env = app_env(services["worker"])
    settings = settings_from(env)
    for server in settings.kafka_bootstrap_list:
        host, _, port = server.partition(":")
        assert host == "kafka" and port == "9092"
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in advertised.split(",")
    for url, service, port in (
        (settings.es_url, "elasticsearch", 9200),
        (settings.kibana_url, "kibana", 5601),
    ):
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == (service, port), url
    assert str(settings.data_dir) == "/data"
    assert "/data" in {v.split(":")[1] for v in services["worker"]["volumes"]}
    assert settings.worker_web_port > 0, "the image health check probes the Faust web port"


def test_topic_and_index_names_agree_with_setup(services):
    """The workers use the topics and indices setup creates, and the local runtime's names."""
    defaults = Settings(_env_file=None)
    worker = settings_from(app_env(services["worker"]))
    setup = settings_from(app_env(services["setup"]))
    assert topic_names(worker) == topic_names(setup) == topic_names(defaults)
    assert topic_configs(worker) == topic_configs(setup)
    for short in ("articles", "alerts", "subscriptions", "fingerprints", "entities", "stories"):
        assert (ROOT / "deploy" / "elasticsearch" / f"{short}.json").is_file()
        assert worker.index(short) == setup.index(short) == defaults.index(short)
    # the Kibana data views follow the same prefix
    objects = kibana.render_saved_objects(kibana.load_saved_objects(), worker)
    titles = {o["id"]: o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    assert titles == {vid: worker.index(short) for vid, short in kibana.DATA_VIEWS.items()}


# --- kafka -----------------------------------------------------------------------------------


def test_kafka_kraft_single_node(services):
    env = {k: str(v) for k, v in services["kafka"]["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:9093"
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    assert listeners["CONTROLLER"] == ":9093" and listeners["PLAINTEXT"] == ":9092"
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners) <= set(protocols)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert "CONTROLLER" not in advertised
    external = advertised["EXTERNAL"].rpartition(":")[2]
    assert any(p.endswith(f":{external}") for p in services["kafka"]["ports"])
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
    ):
        assert env[key] == "1", key
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])


def test_kafka_accepts_the_largest_app_message(services):
    env = {k: str(v) for k, v in services["kafka"]["environment"].items()}
    app = settings_from(app_env(services["worker"]))
    broker_max = int(env["KAFKA_MESSAGE_MAX_BYTES"])
    assert broker_max >= Settings(_env_file=None).max_message_bytes
    assert broker_max >= app.max_message_bytes
    assert int(env["KAFKA_REPLICA_FETCH_MAX_BYTES"]) >= broker_max
    assert int(env["KAFKA_NUM_PARTITIONS"]) == app.topic_partitions


# --- elasticsearch and kibana --------------------------------------------------------------------


def test_elasticsearch(services):
    env = {k: str(v) for k, v in services["elasticsearch"]["environment"].items()}
    assert env["discovery.type"] == "single-node"
    assert env["xpack.security.enabled"] == "false"
    assert env["ES_JAVA_OPTS"] == "-Xms512m -Xmx512m"
    assert "ELASTIC_PASSWORD" in env
    assert any(
        v.endswith(":/usr/share/elasticsearch/data") for v in services["elasticsearch"]["volumes"]
    )


def test_security_switch_is_documented():
    text = COMPOSE.read_text()
    assert "# NEWS_ES_USERNAME: elastic" in text
    assert "# NEWS_ES_PASSWORD: ${ELASTIC_PASSWORD}" in text
    assert "# ELASTICSEARCH_USERNAME: kibana_system" in text
    assert {"es_username", "es_password"} <= set(Settings.model_fields)


def test_kibana(services):
    env = {k: str(v) for k, v in services["kibana"]["environment"].items()}
    assert "http://elasticsearch:9200" in env["ELASTICSEARCH_HOSTS"]
    assert services["kibana"]["depends_on"]["elasticsearch"]["condition"] == "service_healthy"


def test_health_checks(services):
    probes = {
        "kafka": "kafka-broker-api-versions.sh",
        "elasticsearch": "_cluster/health",
        "kibana": "/api/status",
    }
    for name, probe in probes.items():
        check = services[name]["healthcheck"]
        test = check["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        assert probe in " ".join(test[1:]), name
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name}: healthcheck {key}"
    assert "level" in services["kibana"]["healthcheck"]["test"][1]
    assert "available" in services["kibana"]["healthcheck"]["test"][1]


# --- app services --------------------------------------------------------------------------------


def test_setup(services):
    setup = services["setup"]
    assert setup["restart"] == "no"
    assert setup["entrypoint"] == ["/bin/sh", "-c"]
    script = command_text(setup)
    assert "newspipe setup --kibana-url http://kibana:5601" in script
    assert re.search(r'if \[ "false" = "true" \]; then newspipe ingest /app/seeds; fi', script)
    for dep in INFRA_SERVICES:
        assert setup["depends_on"][dep]["condition"] == "service_healthy", dep
    assert "ports" not in setup


def test_setup_seeds_when_asked(raw, env_example):
    seeded = interpolate(raw, {**env_example, "SEED_ON_SETUP": "true"})
    script = command_text(seeded["services"]["setup"])
    assert 'if [ "true" = "true" ]; then newspipe ingest /app/seeds; fi' in script


def test_worker_is_scalable(services):
    worker = services["worker"]
    assert command_text(worker) == "worker"
    assert "ports" not in worker, "fixed host ports prevent --scale worker=N"
    assert worker["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert worker["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
    assert "healthcheck" not in worker  # the image's HEALTHCHECK (Faust web port) applies


def test_api(services):
    api = services["api"]
    args = shlex.split(command_text(api))
    assert args[0] == "api"
    assert args[args.index("--host") + 1] == "0.0.0.0"
    port = args[args.index("--port") + 1]
    assert any(p.endswith(f":{port}") for p in api["ports"])
    assert "NEWS_API_TOKEN" in api["environment"]
    assert api["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert port in " ".join(api["healthcheck"]["test"])


def test_producer_is_optional(raw, env_example, services):
    producer = services["producer"]
    assert producer["profiles"] == ["feed"]
    fed = interpolate(raw, {**env_example, "FEED_URL": "https://example.org/rss"})
    assert fed["services"]["producer"]["command"] == ["ingest", "--feed", "https://example.org/rss"]


def test_ports_are_local_and_unique(services):
    seen = set()
    for name, svc in services.items():
        for mapping in svc.get("ports", []):
            host_ip, host_port, container_port = str(mapping).split(":")
            assert host_ip == "127.0.0.1", f"{name}: {mapping} is reachable from the network"
            assert host_port not in seen, f"{name}: host port {host_port} used twice"
            seen.add(host_port)
    assert seen == {"29092", "9200", "5601", "8000", "9090", "3000"}


def test_named_volumes_are_declared(compose, services):
    declared = set(compose["volumes"])
    used = set()
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used <= declared, used - declared
    assert {"kafka-data", "es-data", "worker-data"} <= used
    assert any(v.startswith("kafka-data:") for v in services["kafka"]["volumes"])


def test_restart_policies_are_strings(raw):
    for name, svc in raw["services"].items():
        if "restart" in svc:
            assert isinstance(svc["restart"], str), f"{name}: quote the restart policy"


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_multi_stage_slim_python():
    instructions = dockerfile_instructions()
    args = dict((rest.split("=", 1) + [""])[:2] for kw, rest in instructions if kw == "ARG")
    froms = [rest for kw, rest in instructions if kw == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    for stage in froms:
        image = stage.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert image.startswith("python:3.11-slim"), image
    assert " AS build" in froms[0] and any("from=build" in rest for kw, rest in instructions)


def test_dockerfile_runs_as_non_root():
    users = [rest for kw, rest in dockerfile_instructions() if kw == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}
    assert any("useradd" in rest and users[-1] in rest for kw, rest in dockerfile_instructions())


def test_wheel_model_name_matches_the_loader():
    """A wheel SPACY_MODEL is checked at build time under the name pipeline.stages.nlp loads it by."""
    nlp = pytest.importorskip("pipeline.stages.nlp")
    wheel = "models/en_core_web_sm-3.8.0-py3-none-any.whl"
    assert nlp.loadable_name(wheel) == "en_core_web_sm"
    runs = " ".join(rest for kw, rest in dockerfile_instructions() if kw == "RUN")
    assert 'name="$(basename "${SPACY_MODEL}" | cut -d- -f1)"' in runs


def test_dockerfile_model_and_entrypoint():
    instructions = dockerfile_instructions()
    assert ("ARG", "SPACY_MODEL=en_core_web_sm") in instructions
    assert ("ENV", "NEWS_SPACY_MODEL=${SPACY_MODEL}") in instructions
    assert Settings.model_fields["spacy_model"].default == "en_core_web_sm"
    runs = " ".join(rest for kw, rest in instructions if kw == "RUN")
    assert 'python -m spacy download "${SPACY_MODEL}"' in runs
    assert 'pip install --no-deps "/ctx/${SPACY_MODEL}"' in runs  # a .whl in the build context
    assert ("ENTRYPOINT", '["newspipe"]') in instructions
    assert any(kw == "HEALTHCHECK" and "NEWS_WORKER_WEB_PORT" in rest for kw, rest in instructions)


def test_dockerfile_builds_the_wheel_with_its_package_data():
    """The image runs the installed wheel, which carries deploy/ as package data; /app keeps
    only the seeds (SEED_ON_SETUP ingests /app/seeds)."""
    instructions = dockerfile_instructions()
    workdirs = [rest for kw, rest in instructions if kw == "WORKDIR"]
    assert workdirs[0] == "/src" and workdirs[-1] == "/app"
    env = " ".join(rest for kw, rest in instructions if kw == "ENV")
    assert "PYTHONPATH" not in env and "NEWS_DATA_DIR=/data" in env
    copies = {
        tuple(rest.split()) for kw, rest in instructions if kw == "COPY" and "--from" not in rest
    }
    for source in ("pipeline", "schemas", "deploy", "seeds"):  # the wheel's sources and seeds
        assert (source, f"./{source}") in copies, source
        assert (ROOT / source).exists(), source
    assert kibana.OBJECTS_PATH.relative_to(ROOT) == Path("deploy/kibana/saved_objects.ndjson")


def test_dockerignore_keeps_secrets_out_and_sources_in():
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert ".env" in patterns and ".git" in patterns and ".newspipe" in patterns
    for needed in (
        "pipeline",
        "schemas",
        "deploy",
        "deploy/kibana",
        "deploy/elasticsearch",
        "seeds",
        "pyproject.toml",
        "README.md",
    ):
        assert needed not in patterns, needed


def test_dockerfile_copy_sources_exist():
    """Every file the build copies from the context exists (README.md: pyproject's readme)."""
    for kw, rest in dockerfile_instructions():
        if kw != "COPY" or "--from" in rest:
            continue
        *sources, _dest = [part for part in rest.split() if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
