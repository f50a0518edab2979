"""`palaver serve`'s default-LLM flags and their PALAVER_LLM_* variables reach the server's Settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from palaver import cli
from palaver.settings import Settings


def served_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str]) -> Any:
    captured: dict[str, Settings] = {}

    def fake_serve(settings: Settings, sock: Any, *, workers: int, on_ready: Any) -> None:
        captured["settings"] = settings
        sock.close()

    monkeypatch.setattr("palaver.serving.serve", fake_serve)
    database = ["--database-url", f"sqlite:///{tmp_path / 'p.db'}", "--port", "0"]
    result = CliRunner().invoke(cli.main, ["serve", *database, *args], env=env)
    assert result.exit_code == 0, result.output
    return captured["settings"]


def test_flags_set_the_default_llm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--llm-base-url", "http://127.0.0.1:11434/v1", "--llm-model", "llama3.2", "--llm-api-key", "k",
            "--llm-timeout", "12"]  # fmt: skip
    s = served_settings(tmp_path, monkeypatch, args, {})
    assert (s.llm_base_url, s.llm_model, s.llm_api_key) == ("http://127.0.0.1:11434/v1", "llama3.2", "k")
    assert (s.llm_first_token_timeout, s.llm_idle_timeout) == (12, 12)


def test_environment_variables_set_it_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"PALAVER_LLM_BASE_URL": "https://llm.example/v1", "PALAVER_LLM_MODEL": "m", "PALAVER_LLM_API_KEY": "sk"}
    s = served_settings(tmp_path, monkeypatch, [], env)
    assert (s.llm_base_url, s.llm_model, s.llm_api_key, s.llm_idle_timeout) == ("https://llm.example/v1", "m", "sk", 30)


def test_no_default_llm_unless_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PALAVER_LLM_BASE_URL", "PALAVER_LLM_MODEL", "PALAVER_LLM_API_KEY", "PALAVER_LLM_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    s = served_settings(tmp_path, monkeypatch, [], {})
    assert (s.llm_base_url, s.llm_model, s.llm_api_key) == (None, None, None)


def test_a_base_url_that_is_not_http_is_refused() -> None:
    result = CliRunner().invoke(cli.main, ["serve", "--llm-base-url", "ftp://x/v1"])
    assert result.exit_code == 2 and "expected an http(s) URL" in result.output
