"""Local runtime: Kafka + Elasticsearch without Docker (``newspipe up/down/status``)."""

from pipeline.runtime.local import LocalRuntime, LocalRuntimeError, ServiceStatus

__all__ = ["LocalRuntime", "LocalRuntimeError", "ServiceStatus"]
