"""Pipeline stages: pure functions over the message models, wired into agents by pipeline.app."""
