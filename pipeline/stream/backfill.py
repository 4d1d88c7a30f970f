"""``newspipe backfill``: inputs through the pipeline's own steps in this process, no Kafka.

For loading an archive or re-enriching after a model/rule change (``reprocess``). Messages go
through exactly the steps the Faust agents run (pipeline.stream.process); what fails is written to
``<data_dir>/deadletters.jsonl`` instead of the dead-letter topic. Backfill does not fire
alerts: ``newspipe alerts add --backfill`` reports indexed articles for a subscription.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress

from pipeline.stream.process import InMessage, Pipeline
from schemas import DeadLetter

log = logging.getLogger(__name__)


@dataclass
class BackfillReport:
    indexed: int = 0
    duplicates: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    elapsed_s: float = 0.0

    def summary(self) -> str:
        rate = self.indexed / self.elapsed_s if self.elapsed_s else 0.0
        return (
            f"indexed {self.indexed}, duplicates {self.duplicates}, failed {len(self.dead)} "
            f"in {self.elapsed_s:.1f}s ({rate:.1f} articles/s)"
        )


def _messages(models) -> list[InMessage]:
    return [InMessage(value=m.model_dump_json().encode("utf-8"), key=m.id.encode()) for m in models]


def run_batch(
    pipeline: Pipeline, messages: list[InMessage], report: BackfillReport, *, reprocess: bool
) -> None:
    cleaned = pipeline.clean_and_dedupe(messages, reprocess=reprocess)
    enriched = pipeline.enrich(_messages(cleaned.passed))
    rejected = pipeline.index(enriched.passed)
    if enriched.passed and pipeline.settings.articles_refresh_on_write:
        try:  # searchable now, not at the index's backstop clock
            pipeline.refresh_articles()
        except Exception as exc:  # best effort: the clock's refresh follows
            log.warning("backfill: articles index not refreshed after a batch: %s", exc)
    report.duplicates += len(cleaned.duplicates)
    report.indexed += len(enriched.passed) - len(rejected)
    report.dead += cleaned.dead + enriched.dead
    report.dead += [
        InMessage(value=a.model_dump_json().encode()).dead("index", e) for a, e in rejected
    ]


def backfill(pipeline: Pipeline, paths: list[Path], *, reprocess: bool = False) -> BackfillReport:
    from pipeline.infra.deadletter import dead_letter
    from pipeline.sources.ingest import Rejected, iter_inputs

    report = BackfillReport()
    started = time.monotonic()
    batch: list[InMessage] = []
    with Progress(transient=True) as progress:
        task = progress.add_task("backfill", total=None)
        for item in iter_inputs(paths):
            if isinstance(item, Rejected):
                report.dead.append(
                    dead_letter("ingest", f"{item.origin}: {item.reason}", item.payload)
                )
                continue
            batch += _messages([item])
            if len(batch) >= pipeline.settings.nlp_batch_size:
                run_batch(pipeline, batch, report, reprocess=reprocess)
                progress.update(task, advance=len(batch))
                batch = []
        if batch:
            run_batch(pipeline, batch, report, reprocess=reprocess)
    report.elapsed_s = time.monotonic() - started
    if report.dead:
        path = pipeline.settings.data_dir / "deadletters.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.writelines(letter.model_dump_json() + "\n" for letter in report.dead)
    return report
