"""The `palaver` command: serve, migrate, keys."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import click

from palaver import __version__
from palaver.cli_options import database_option, llm_options, webhook_options
from palaver.domain.clock import SystemClock, iso_timestamp
from palaver.domain.shards import Shard
from palaver.service.keys import UnknownAccount, issue_key
from palaver.settings import DELIVERY_NICENESS, Settings
from palaver.storage import Storage, open_storage
from palaver.storage.base import backend_of, open_ledger
from palaver.storage.ledger import DeliveryLedger

T = TypeVar("T")


class _Store(Protocol):
    async def migrate(self) -> list[str]: ...

    async def close(self) -> None: ...


S = TypeVar("S", bound=_Store)


def _with(
    store: Callable[[str], S], database_url: str, work: Callable[[S], Awaitable[T]], *, migrate: bool = True
) -> T:
    """Open (and migrate, unless `migrate=False`) a store for one command, run `work` on it, close it."""

    async def run() -> T:
        opened = store(database_url)
        try:
            if migrate:
                await opened.migrate()
            return await work(opened)
        finally:
            await opened.close()

    try:
        return asyncio.run(run())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def _with_storage(database_url: str, work: Callable[[Storage], Awaitable[T]], *, migrate: bool = True) -> T:
    return _with(open_storage, database_url, work, migrate=migrate)


def _with_ledger(database_url: str, work: Callable[[DeliveryLedger], Awaitable[T]]) -> T:
    return _with(open_ledger, database_url, work)


@click.group()
@click.version_option(__version__, prog_name="palaver")
def main() -> None:
    """Palaver: a self-hostable server for the Tavus Conversational Video API (v2)."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@database_option
@click.option(
    "--public-url", default=None, help="Base URL clients reach; used in conversation_url. Default: the listening URL."
)
@click.option(
    "--sqlite-synchronous",
    type=click.Choice(["NORMAL", "FULL"], case_sensitive=False),
    default="NORMAL",
    show_default=True,
    help="NORMAL survives a process crash; FULL also survives power loss (fsync per group commit).",
)
@webhook_options
@click.option(
    "--delivery-workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Webhook delivery processes, each owning a share of the conversations (default 1; more on machines "
    "with cores the API does not use).",
)
@click.option(
    "--no-delivery",
    is_flag=True,
    help="Do not start the webhook delivery worker (run `palaver deliver` yourself, or send no webhooks).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    envvar="PALAVER_WORKERS",
    help="API server processes sharing the port (PostgreSQL only: on SQLite one process serves).",
)
@click.option(
    "--pool-size",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    envvar="PALAVER_POOL_SIZE",
    help="PostgreSQL: connections in each API process's pool.",
)
@llm_options
def serve(
    host: str,
    port: int,
    database_url: str,
    public_url: str | None,
    sqlite_synchronous: str,
    allow_private_callbacks: bool,
    webhook_max_attempts: int,
    webhook_max_age: float,
    webhook_lease: float,
    delivery_workers: int | None,
    no_delivery: bool,
    workers: int,
    pool_size: int,
    llm_base_url: str | None,
    llm_model: str | None,
    llm_api_key: str | None,
    llm_timeout: float,
) -> None:
    """Start the API server and its webhook delivery worker (migrations are applied first).

    Replicas answer with their persona's LLM (`layers.llm.base_url`), else with the default LLM
    given by --llm-base-url / --llm-model / --llm-api-key (or PALAVER_LLM_BASE_URL,
    PALAVER_LLM_MODEL, PALAVER_LLM_API_KEY), else from their knowledge base (docs/brains.md).
    """
    from palaver.serving import serve as run_server

    try:
        backend = backend_of(database_url)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if workers > 1 and backend == "sqlite":
        raise click.ClickException(
            "--workers needs PostgreSQL (--database-url postgresql://...): on SQLite one process serves"
        )
    first_key = _with_storage(database_url, _first_key_if_none)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    # Listening from here, before any server process starts: with --workers N the ready line is
    # printed when the processes are forked, and a client that connects before one of them runs
    # waits in the backlog instead of being refused.
    sock.listen(2048)
    bound_port = sock.getsockname()[1]
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    listen_url = f"http://{shown_host}:{bound_port}"
    settings = Settings(
        database_url=database_url,
        public_url=public_url or listen_url,
        sqlite_synchronous=sqlite_synchronous.upper(),
        allow_private_callbacks=allow_private_callbacks,
        webhook_max_attempts=webhook_max_attempts,
        webhook_max_age=webhook_max_age,
        webhook_lease=webhook_lease,
        delivery_process=not no_delivery,
        delivery_workers=delivery_workers or 1,
        pool_size=pool_size,
        llm_base_url=llm_base_url or None,
        llm_model=llm_model or None,
        llm_api_key=llm_api_key or None,
        llm_first_token_timeout=llm_timeout,
        llm_idle_timeout=llm_timeout,
    )

    def ready() -> None:
        if first_key:
            click.echo(f"API key (shown once): {first_key}")
        click.echo(f"Palaver listening on {listen_url}")
        sys.stdout.flush()

    run_server(settings, sock, workers=workers, on_ready=ready)


async def _first_key_if_none(storage: Storage) -> str | None:
    if await storage.count_keys() > 0:
        return None
    issued = await issue_key(storage, SystemClock(), name="default")
    return issued.key


@main.command()
@database_option
def migrate(database_url: str) -> None:
    """Apply pending schema migrations."""
    applied = _with_storage(database_url, lambda s: s.migrate(), migrate=False)
    click.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


@main.group()
def keys() -> None:
    """Manage API keys (each belongs to an account)."""


@keys.command("create")
@click.option("--name", default="", help="A label for the key (and for a new account).")
@click.option("--account", "account_id", default=None, help="Add the key to this existing account (rotation).")
@click.option(
    "--max-concurrent", type=click.IntRange(min=1), default=None, help="The account's concurrent conversation limit."
)
@database_option
def keys_create(name: str, account_id: str | None, max_concurrent: int | None, database_url: str) -> None:
    """Create a key; prints it alone on the last line."""

    async def work(storage: Storage) -> None:
        try:
            issued = await issue_key(
                storage, SystemClock(), name=name, account_id=account_id, max_concurrent=max_concurrent
            )
        except UnknownAccount as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"account_id: {issued.account_id}")
        click.echo(f"key_id: {issued.key_id}")
        click.echo(f"webhook_secret: {await storage.webhook_secret(issued.account_id)}")
        click.echo(issued.key)

    _with_storage(database_url, work)


@keys.command("list")
@database_option
def keys_list(database_url: str) -> None:
    """List keys (never the keys themselves)."""

    async def work(storage: Storage) -> None:
        for key in await storage.list_keys():
            state = f"revoked {key.revoked_at}" if key.revoked_at else "active"
            click.echo(f"{key.key_id}\t{key.account_id}\t{key.name or '-'}\t{key.created_at}\t{state}")

    _with_storage(database_url, work)


@keys.command("revoke")
@click.argument("key_id")
@database_option
def keys_revoke(key_id: str, database_url: str) -> None:
    """Revoke a key; a running server stops accepting it within a second."""

    async def work(storage: Storage) -> bool:
        return await storage.revoke_key(key_id, iso_timestamp(SystemClock().now()))

    if not _with_storage(database_url, work):
        raise click.ClickException(f"no active key {key_id}")
    click.echo(f"revoked {key_id}")


@keys.command("rotate-secret")
@click.argument("account_id")
@database_option
def keys_rotate_secret(account_id: str, database_url: str) -> None:
    """Give an account a new webhook signing secret (printed); the old one stops at once."""
    secret = _with_storage(database_url, lambda s: s.rotate_webhook_secret(account_id))
    if secret is None:
        raise click.ClickException(f"no account {account_id}")
    click.echo(secret)


@main.group()
def webhooks() -> None:
    """Inspect and replay webhook deliveries."""


@webhooks.command("list")
@click.option("--conversation", "conversation_id", default=None)
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]), default=None)
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@database_option
def webhooks_list(conversation_id: str | None, status: str | None, limit: int, database_url: str) -> None:
    """One line per event: id, conversation, type, status, attempts, last result, URL."""

    async def work(ledger: DeliveryLedger) -> None:
        for d in await ledger.list_deliveries(conversation_id=conversation_id, status=status, limit=limit):
            last = d.last_error or (str(d.last_status_code) if d.last_status_code else "-")
            click.echo(f"{d.event_id}\t{d.conversation_id}\t{d.event_type}\t{d.status}\t{d.attempts}\t{last}\t{d.url}")

    _with_ledger(database_url, work)


@webhooks.command("replay")
@click.argument("event_id")
@database_option
def webhooks_replay(event_id: str, database_url: str) -> None:
    """Send a delivered or failed event again (the delivery worker picks it up within a second)."""
    found = _with_ledger(database_url, lambda ledger: ledger.find_delivery(event_id))
    if found is None or found.status == "pending":
        raise click.ClickException(f"no delivered or failed event {event_id}")
    _with_storage(database_url, lambda s: s.request_replay(event_id, found.conversation_id))
    click.echo(f"queued {event_id}")


@main.command()
@database_option
@webhook_options
@click.option(
    "--niceness", type=click.IntRange(0, 19), default=DELIVERY_NICENESS, show_default=True, help="Scheduling priority."
)
@click.option(
    "--shard",
    default="0/1",
    show_default=True,
    help="INDEX/COUNT: deliver for the conversations of this shard only (one worker per shard).",
)
@click.option("--parent-pipe", is_flag=True, hidden=True, help="Stop when standard input closes (used by serve).")
def deliver(
    database_url: str,
    allow_private_callbacks: bool,
    webhook_max_attempts: int,
    webhook_max_age: float,
    webhook_lease: float,
    niceness: int,
    shard: str,
    parent_pipe: bool,
) -> None:
    """Run the webhook delivery worker (`palaver serve` starts one; use this with --no-delivery)."""
    from palaver.delivery import process

    settings = Settings(
        database_url=database_url,
        allow_private_callbacks=allow_private_callbacks,
        webhook_max_attempts=webhook_max_attempts,
        webhook_max_age=webhook_max_age,
        webhook_lease=webhook_lease,
    )
    try:
        index, count = (int(part) for part in shard.split("/"))
        owned = Shard(index, count)
    except ValueError as exc:
        raise click.BadParameter(f"expected INDEX/COUNT with 0 <= INDEX < COUNT, got {shard!r}") from exc
    process.run(settings, parent_pipe=parent_pipe, niceness=niceness, shard=owned)
