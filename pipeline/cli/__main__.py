"""``python -m pipeline.cli``: the same as the ``newspipe`` command."""

from pipeline.cli.app import app

app()
