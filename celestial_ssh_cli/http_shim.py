"""``celestial-ssh serve``: a small HTTP shim for users of the older HTTP design.

A front end like the CLI (the library never imports aiohttp). Endpoints:

- ``GET /health``: podman and CRIU versions of this host and ``criu check``; no token.
- ``POST /start_migration``: JSON ``source``, ``target``, ``container`` (or the old names
  ``server_ip`` for the target and ``container_name``), and optionally the settings a batch
  plan takes but ``direct`` (``tls``, ``transport``, ``compression``, ``bwlimit``, ...); runs
  :func:`celestial_ssh.migrate` over SSH with the server's connection settings. ``?wait=false``
  answers 202 at once; poll ``GET /migrations/<id>``.
- ``GET /container/<id>`` (also ``/containers/<id>``, the old pull path): checkpoint the
  LOCAL container and stream the archive (uncompressed tar) while podman writes it. The
  container is stopped here afterwards; if the download breaks, it is restored here.
- ``GET /container/<id>/stats``: podman's ``--print-stats`` of the last export of that
  container (only known once podman has exited, so not sent with the download).

Every endpoint but ``/health`` needs ``Authorization: Bearer <token>``. Every error is JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import click
from aiohttp import web

from celestial_ssh import CelestialError, MigrationOptions, MigrationReport, migrate
from celestial_ssh.commands import (
    CheckpointOptions,
    checkpoint_export,
    container_inspect,
    criu_check,
    criu_version,
    restore_local,
)
from celestial_ssh.connection import ConnectionSettings
from celestial_ssh.doctor_commands import podman_version
from celestial_ssh.errors import InvalidInput
from celestial_ssh.hosts import HostSpec
from celestial_ssh.migration import check_options
from celestial_ssh.podman_json import parse_criu_version, parse_stats
from celestial_ssh.settings import SETTINGS, option_fields, parse_setting
from celestial_ssh.shell import validate_container_name

from .boundary import Command
from .failures import CommandFailed, ExitCode, http_status_for
from .options import host_settings

TOKEN_ENV = "CELESTIAL_SSH_TOKEN"
CHUNK = 1024 * 1024

# celestial_ssh.migrate's signature, as the shim calls it
Migrate = Callable[[str, str, str, MigrationOptions], MigrationReport]

TOKEN: web.AppKey[str] = web.AppKey("token", str)
CONNECTION: web.AppKey[ConnectionSettings] = web.AppKey("connection", ConnectionSettings)
MIGRATE: web.AppKey[Migrate] = web.AppKey("migrate")
PODMAN: web.AppKey[tuple[str, ...]] = web.AppKey("podman", tuple)
MIGRATIONS: web.AppKey[dict[str, dict[str, Any]]] = web.AppKey("migrations", dict)
EXPORT_STATS: web.AppKey[dict[str, dict[str, Any]]] = web.AppKey("export_stats", dict)
BACKGROUND: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("background", set)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"status": "failed", "error": message, **extra}, status=status)


# -- middlewares ---------------------------------------------------------------------------
@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own errors (404, 405, 413...) as JSON, like ours."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error(error.status, error.reason)


@web.middleware
async def _require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/health":
        return await handler(request)
    expected = request.app[TOKEN]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        return web.json_response(
            {"status": "failed", "error": "missing or wrong bearer token"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return await handler(request)


# -- helpers -------------------------------------------------------------------------------
async def _run(argv: Sequence[str], timeout: float = 60) -> tuple[int, str, str]:
    """Run a local command from an argument list (never a shell); missing -> exit 127."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        return 127, "", str(error)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return 124, "", "timed out"
    return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def _with_podman(podman: Sequence[str], argv: list[str]) -> list[str]:
    """The library's podman command, run with this server's podman (tests give a fake one)."""
    if argv[0] != "podman":
        raise ValueError(f"not a podman command: {argv!r}")
    return [*podman, *argv[1:]]


def _container_arg(request: web.Request) -> str:
    value = request.match_info["id"]
    try:
        return validate_container_name(value)
    except InvalidInput as error:
        raise web.HTTPBadRequest(reason=str(error).splitlines()[0]) from None


def _spawn(app: web.Application, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coroutine)
    app[BACKGROUND].add(task)
    task.add_done_callback(app[BACKGROUND].discard)
    return task


# -- /health -------------------------------------------------------------------------------
async def health(request: web.Request) -> web.Response:
    podman = request.app[PODMAN]
    code, out, _ = await _run(_with_podman(podman, podman_version()))
    podman_release = None
    if code == 0:
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            document = json.loads(out)
            podman_release = (document.get("Client") or document.get("Server") or {}).get("Version")
    code, out, err = await _run(criu_version())
    criu_release = parse_criu_version(out + err) if code == 0 else None
    criu_works = False
    if criu_release is not None:
        code, _, _ = await _run(criu_check())
        criu_works = code == 0
    return web.json_response(
        {"status": "UP", "podman": podman_release, "criu": criu_release, "criu_check": criu_works}
    )


# -- /start_migration ----------------------------------------------------------------------
def _migration_arguments(
    body: Any, connection: ConnectionSettings
) -> tuple[str, str, str, MigrationOptions]:
    """The request's hosts, container and options, checked (unknown keys are ignored, as
    the older server did)."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    source = body.get("source")
    target = body.get("target", body.get("server_ip"))
    container = body.get("container", body.get("container_name"))
    for field, value in (("source", source), ("target", target), ("container", container)):
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{field!r} is required (a string)")
    assert isinstance(source, str) and isinstance(target, str) and isinstance(container, str)
    HostSpec.parse(source)
    HostSpec.parse(target)
    validate_container_name(container)
    settings = {
        key: parse_setting(key, body[key], at="the request")
        for key in SETTINGS
        if body.get(key) is not None  # null: not given, as the older server ignored it
    }
    if settings.get("direct") or settings.get("data_path") == "ssh":
        # it would lend this server's ssh-agent to the source host, on a request's say-so
        raise InvalidInput(
            "'direct' (data_path 'ssh') is not taken over HTTP; the default (data_path "
            "'auto') streams host to host over TLS where it can"
        )
    options = MigrationOptions(
        connection=connection,
        **option_fields(settings),
    )
    check_options(options)
    return source, target, container, options


async def _run_migration(
    app: web.Application, source: str, target: str, container: str, options: MigrationOptions
) -> tuple[int, dict[str, Any]]:
    try:
        report = await asyncio.to_thread(app[MIGRATE], source, target, container, options)
    except CelestialError as error:
        return http_status_for(error), {
            "status": "failed",
            "error": str(error),
            "report": error.report.to_dict() if error.report else None,
        }
    except Exception as error:  # a bug: still an answer, never a dropped connection
        return 500, {"status": "failed", "error": f"internal error: {error!r}", "report": None}
    return 200, report.to_dict()


async def start_migration(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "the body must be JSON")
    try:
        source, target, container, options = _migration_arguments(body, request.app[CONNECTION])
    except InvalidInput as error:
        return _error(400, str(error))
    app = request.app
    if request.query.get("wait", "true").lower() in ("false", "0", "no"):
        migration_id = uuid.uuid4().hex
        app[MIGRATIONS][migration_id] = {"state": "running"}

        async def background() -> None:
            status, document = await _run_migration(app, source, target, container, options)
            app[MIGRATIONS][migration_id] = {**document, "state": "finished", "http": status}

        _spawn(app, background())
        return web.json_response(
            {"id": migration_id, "poll": f"/migrations/{migration_id}"}, status=202
        )
    status, document = await _run_migration(app, source, target, container, options)
    return web.json_response(document, status=status)


async def migration_status(request: web.Request) -> web.Response:
    document = request.app[MIGRATIONS].get(request.match_info["id"])
    if document is None:
        return _error(404, "no such migration")
    return web.json_response(document)


# -- /container/<id> -----------------------------------------------------------------------
async def _inspect(podman: Sequence[str], container: str) -> dict[str, Any] | None:
    code, out, _ = await _run(_with_podman(podman, container_inspect(container)))
    if code != 0:
        return None
    try:
        document = json.loads(out)
    except ValueError:
        return None
    if isinstance(document, list) and document and isinstance(document[0], dict):
        return document[0]
    return None


class _FifoReader:
    """Reads the export FIFO in a thread; never blocks forever if podman never opens it."""

    def __init__(self, path: str, process: asyncio.subprocess.Process):
        self.path = path
        self.process = process
        self.file: Any = None

    async def open(self) -> None:
        opening = asyncio.ensure_future(asyncio.to_thread(open, self.path, "rb", buffering=0))
        exited = asyncio.ensure_future(self.process.wait())
        await asyncio.wait({opening, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not opening.done():
            # podman ended without opening the FIFO: open it for writing once so the
            # blocked reader returns (and then reads end-of-file)
            with contextlib.suppress(OSError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
        self.file = await opening
        if not exited.done():
            exited.cancel()

    async def read(self) -> bytes:
        return bytes(await asyncio.to_thread(self.file.read, CHUNK))

    async def drain(self) -> None:
        if self.file is None:
            return
        while await self.read():
            pass

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


async def _finish_export(
    app: web.Application,
    reader: _FifoReader,
    process: asyncio.subprocess.Process,
    workdir: str,
    container: str,
    container_id: str,
    *,
    restore: bool,
) -> None:
    """Drain the FIFO so podman ends, keep its stats, restore here if the download broke."""
    try:
        await reader.drain()
        await process.wait()
        stdout = Path(workdir, "checkpoint.out").read_text(errors="replace")
        stderr = Path(workdir, "checkpoint.err").read_text(errors="replace")
        document = {
            "container": container,
            "container_id": container_id,
            "exit_code": process.returncode,
            "complete": not restore and process.returncode == 0,
            "stats": parse_stats(stdout),
            "stderr": stderr[-4000:],
        }
        app[EXPORT_STATS][container] = document
        app[EXPORT_STATS][container_id] = document
        if restore:
            podman = app[PODMAN]
            info = await _inspect(podman, container_id)
            state = ((info or {}).get("State") or {}).get("Status")
            if state != "running":
                code, _, err = await _run(
                    _with_podman(podman, restore_local(container_id)), timeout=600
                )
                document["restored_here"] = code == 0
                if code != 0:
                    document["restore_error"] = err[-4000:]
    finally:
        reader.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def export_container(request: web.Request) -> web.StreamResponse:
    container = _container_arg(request)
    app = request.app
    podman = app[PODMAN]
    info = await _inspect(podman, container)
    if info is None:
        return _error(404, f"no container {container!r} on this host")
    container_id = str(info.get("Id") or container)
    workdir = tempfile.mkdtemp(prefix="celestial-shim-")  # 0700, named by mkdtemp
    fifo = os.path.join(workdir, "export.tar")
    os.mkfifo(fifo, 0o600)
    with (
        open(os.path.join(workdir, "checkpoint.out"), "wb") as out,
        open(os.path.join(workdir, "checkpoint.err"), "wb") as err,
    ):
        # the engine's checkpoint options: uncompressed, with podman's statistics
        process = await asyncio.create_subprocess_exec(
            *podman,
            *checkpoint_export(fifo, container, CheckpointOptions(compression="none")),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    reader = _FifoReader(fifo, process)
    finished = False
    try:
        await reader.open()
        first = await reader.read()
        if not first:
            await _finish_export(
                app, reader, process, workdir, container, container_id, restore=False
            )
            finished = True
            stats = app[EXPORT_STATS][container_id]
            if stats["exit_code"] != 0:
                return _error(
                    500,
                    f"podman container checkpoint failed (exit {stats['exit_code']})",
                    stderr=stats["stderr"],
                )
            return _error(500, "podman exported an empty archive")
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/x-tar",
                "X-Celestial-Container-Id": container_id,
                "X-Celestial-Stats": f"/container/{container_id}/stats",
            }
        )
        await response.prepare(request)
        chunk = first
        while chunk:
            await response.write(chunk)
            chunk = await reader.read()
        finished = True
        await _finish_export(app, reader, process, workdir, container, container_id, restore=False)
        if process.returncode != 0:
            # too late for a status code: break the transfer so the client sees it failed
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response
    finally:
        if not finished:
            # the client went away mid-stream: drain the FIFO so podman finishes, then run
            # the container here again (never leave it stopped)
            _spawn(
                app,
                _finish_export(
                    app, reader, process, workdir, container, container_id, restore=True
                ),
            )


async def export_stats(request: web.Request) -> web.Response:
    container = _container_arg(request)
    document = request.app[EXPORT_STATS].get(container)
    if document is None:
        return _error(404, f"no export of {container!r} since the server started")
    return web.json_response(document)


async def _wait_for_background(app: web.Application) -> None:
    if app[BACKGROUND]:
        await asyncio.gather(*app[BACKGROUND], return_exceptions=True)


def create_app(
    token: str,
    connection: ConnectionSettings,
    podman: Sequence[str] = ("podman",),
    *,
    run_migration: Migrate = migrate,
) -> web.Application:
    """The shim; its migrations reach their hosts through ``connection`` and run through
    ``run_migration`` (tests give a fake)."""
    if not token:
        raise ValueError("the HTTP shim needs a non-empty token")
    app = web.Application(middlewares=[_json_errors, _require_token])
    app[TOKEN] = token
    app[CONNECTION] = connection
    app[MIGRATE] = run_migration
    app[PODMAN] = tuple(podman)
    app[MIGRATIONS] = {}
    app[EXPORT_STATS] = {}
    app[BACKGROUND] = set()
    app.router.add_get("/health", health)
    app.router.add_post("/start_migration", start_migration)
    app.router.add_get("/migrations/{id}", migration_status)
    for prefix in ("/container", "/containers"):
        app.router.add_get(prefix + "/{id}", export_container)
        app.router.add_get(prefix + "/{id}/stats", export_stats)
    app.on_shutdown.append(_wait_for_background)
    return app


def read_token(token_file: str | None) -> str | None:
    if token_file is not None:
        return Path(token_file).read_text().strip() or None
    return os.environ.get(TOKEN_ENV, "").strip() or None


@click.command("serve", cls=Command)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help=f"File holding the bearer token (default: ${TOKEN_ENV}).",
)
@click.option(
    "-F",
    "--ssh-config",
    type=click.Path(dir_okay=False),
    default=None,
    help="ssh_config file for the migrations (default: ~/.ssh/config).",
)
def serve(host: str, port: int, token_file: str | None, ssh_config: str | None) -> None:
    """HTTP shim for the older HTTP design (/health, /start_migration, /container/<id>)."""
    token = read_token(token_file)
    if token is None:
        raise CommandFailed(
            f"celestial-ssh: error: serve needs a token: --token-file FILE or ${TOKEN_ENV} "
            "(every endpoint but /health checks it)",
            ExitCode.USAGE,
        )
    app = create_app(token, host_settings(ssh_config, accept_new_host_keys=False).connection)
    click.echo(f"celestial-ssh: serving the HTTP shim on http://{host}:{port}", err=True)
    web.run_app(app, host=host, port=port, print=None, handle_signals=True)
