"""A webhook dispatcher alone in its own process, wired as in the worker
(:func:`pipeline.stream.worker.make_dispatcher`) but without the agents:
``python -m tests.integration.dispatcher_process`` with the ``NEWS_*`` of a test. The outbox
tests run several over one outbox and SIGKILL one mid-lease."""

from __future__ import annotations

import asyncio
import logging
import sys


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s"
    )
    from pipeline.settings import Settings
    from pipeline.stream.process import Pipeline
    from pipeline.stream.worker import make_dispatcher

    settings = Settings()
    pipeline = Pipeline(settings)
    pipeline.subscriptions.catch_up()
    dispatcher = make_dispatcher(settings, pipeline)
    print("dispatcher ready", flush=True)
    asyncio.run(dispatcher.run())


if __name__ == "__main__":
    main()
