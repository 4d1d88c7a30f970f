"""``python -m pipeline.runtime up|down|status`` (usable before the main CLI exists)."""

from pipeline.runtime.cli import runtime_app

runtime_app(prog_name="python -m pipeline.runtime")
