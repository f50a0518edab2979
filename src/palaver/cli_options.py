"""The options several `palaver` commands share: where the state is, webhook delivery, the default model.

Apart from cli.py so that the commands read as what they do; the defaults come
from `Settings`, `palaver.settings`' constants and the environment variables named
in each option's help.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from palaver.settings import DEFAULT_LLM_TIMEOUT, Settings, default_database_url

F = TypeVar("F", bound=Callable[..., Any])

database_option = click.option(
    "--database-url",
    default=default_database_url,
    show_default="sqlite:///palaver.db, or $PALAVER_DATABASE_URL",
    help="Where Palaver keeps its state.",
)


def webhook_options(command: F) -> F:
    """The delivery settings `serve` hands its workers and `deliver` takes itself, defaulting to Settings'."""
    defaults = Settings()
    command = click.option(
        "--webhook-max-age",
        type=click.FloatRange(min=1),
        default=defaults.webhook_max_age,
        show_default=True,
        help="Seconds.",
    )(command)
    command = click.option(
        "--webhook-max-attempts", type=click.IntRange(min=1), default=defaults.webhook_max_attempts, show_default=True
    )(command)
    command = click.option(
        "--webhook-lease",
        type=click.FloatRange(min=1),
        default=defaults.webhook_lease,
        show_default=True,
        help="PostgreSQL: seconds a delivery worker's claim on a webhook lasts (a dead worker's claims pass to "
        "another worker after this).",
    )(command)
    return click.option(
        "--allow-private-callbacks",
        is_flag=True,
        help="Deliver webhooks to loopback/private addresses too (local development and tests).",
    )(command)


def _http_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value and not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"expected an http(s) URL, got {value!r}")
    return value or None


def llm_options(command: F) -> F:
    """The default language model of `serve`: for personas whose `layers.llm` names no base_url."""
    command = click.option(
        "--llm-timeout",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_LLM_TIMEOUT,
        show_default=True,
        envvar="PALAVER_LLM_TIMEOUT",
        help="Seconds a room waits for a language model's first token, and then between tokens, before it "
        "reports the model as failed ($PALAVER_LLM_TIMEOUT).",
    )(command)
    command = click.option(
        "--llm-api-key",
        default=None,
        envvar="PALAVER_LLM_API_KEY",
        help="Bearer key for --llm-base-url ($PALAVER_LLM_API_KEY; prefer the variable: flags show in ps).",
    )(command)
    command = click.option(
        "--llm-model",
        default=None,
        envvar="PALAVER_LLM_MODEL",
        help="Model to ask at --llm-base-url, unless a persona names a non-Tavus model ($PALAVER_LLM_MODEL).",
    )(command)
    return click.option(
        "--llm-base-url",
        default=None,
        envvar="PALAVER_LLM_BASE_URL",
        callback=_http_url,
        help="Default OpenAI-compatible endpoint (e.g. http://127.0.0.1:11434/v1) for personas whose layers.llm "
        "names no base_url; trusted, so it may be private ($PALAVER_LLM_BASE_URL). Without one, such replicas "
        "answer from their knowledge base only.",
    )(command)
