"""Settings are read in one place, qa/config.py: a flag wins over its QA_* variable, a variable over the default."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from qa.config import Settings
from qa.errors import QAError
from tests.conftest import ROOT


def test_a_flag_wins_over_the_environment_and_the_environment_over_the_default():
    environ = {
        "QA_CORPUS": "env-corpus",
        "QA_INDEX": "env-index",
        "QA_PORT": "8000",
        "QA_ANSWER_CONCURRENCY": "4",
        "QA_MODEL": "",
        "QA_ADMIN_PASSWORD": "s3cret",
        "HOME": "/nowhere",
    }
    settings = Settings.from_env(environ).with_flags({"corpus": "flag-corpus", "index": None, "json": True})
    assert settings.corpus == "flag-corpus"  # the flag
    assert (settings.index, settings.port, settings.answer_concurrency) == ("env-index", 8000, 4)  # the variables
    assert settings.admin_password == "s3cret"
    assert (settings.host, settings.embedder, settings.model) == ("127.0.0.1", "auto", None)  # defaults; "" is unset
    assert Settings.from_env({}) == Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_a_bad_value_is_refused_with_its_name():
    with pytest.raises(QAError, match=r"\$QA_PORT must be a whole number, not 'eighty'"):
        Settings.from_env({"QA_PORT": "eighty"})
    with pytest.raises(QAError, match=r"embedder 'int4' \(from --embedder or \$QA_EMBEDDER\)"):
        Settings.from_env({"QA_EMBEDDER": "int4"})
    with pytest.raises(QAError, match=r"answer concurrency 0 \(\$QA_ANSWER_CONCURRENCY\)"):
        Settings.from_env({"QA_ANSWER_CONCURRENCY": "0"})
    with pytest.raises(QAError, match="port 70000"):
        Settings().with_flags({"port": 70000})


def test_the_command_line_and_the_web_chat_take_a_flag_over_the_environment(tmp_path, monkeypatch, capsys):
    import app
    import qa.cli

    monkeypatch.setenv("QA_INDEX", str(tmp_path / "index-from-env"))
    monkeypatch.setenv("QA_PORT", "8000")
    assert qa.cli.main(["stats"]) == 2 and "index-from-env" in capsys.readouterr().err  # no index there
    assert qa.cli.main(["stats", "--index", str(tmp_path / "index-from-flag")]) == 2
    assert "index-from-flag" in capsys.readouterr().err
    settings = app.read_settings(["--port", "9000"])
    assert (settings.port, settings.index, settings.host) == (9000, str(tmp_path / "index-from-env"), "127.0.0.1")
    monkeypatch.setenv("QA_PORT", "eighty")
    assert qa.cli.main(["stats"]) == 2 and "$QA_PORT must be a whole number" in capsys.readouterr().err


def qa_variables(source: str) -> list[str]:
    """The QA_* names a module's code holds as whole strings: what it would read from the environment with."""
    return [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"QA_[A-Z0-9_]+", node.value)
    ]


def test_no_module_but_qa_config_reads_a_qa_variable():
    assert qa_variables('env = os.environ.get\nport = int(env("QA_PORT", "7860"))') == ["QA_PORT"]  # what it finds
    assert qa_variables('help = "default: $QA_MODEL"') == []  # a help text naming one is no read
    readers = {
        path.relative_to(ROOT).as_posix(): names
        for path in [*sorted((ROOT / "qa").glob("*.py")), ROOT / "app.py"]
        if path != ROOT / "qa" / "config.py" and (names := qa_variables(path.read_text()))
    }
    assert readers == {}, "read settings in qa/config.py (Settings.from_env) and pass them down"
    assert "environ" in Path(ROOT / "qa" / "config.py").read_text()
