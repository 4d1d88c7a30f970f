"""``newspipe``: the one command line (:mod:`pipeline.cli.app`), its terminal output
(:mod:`pipeline.cli.output`) and the demo (:mod:`pipeline.cli.demo`)."""

from pipeline.cli.app import app

__all__ = ["app"]
