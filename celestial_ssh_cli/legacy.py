"""``migrate-container SOURCE TARGET CONTAINER``: the older design's command, kept for scripts.

Without ``--via-http`` it runs the same SSH migration as ``celestial-ssh migrate`` and takes
the same options (``--ssh-config``, ``--json``, ...); the hosts are ssh_config aliases or
``[user@]host[:port]``, so the old ``<source-ip> <target-ip>`` arguments keep working.

With ``--via-http`` it drives an HTTP shim (``celestial-ssh serve``) the old way: one
``POST /start_migration`` to ``--shim-url`` (default ``http://TARGET:8080``, where the older
design's server ran) with the bearer token, and the shim migrates over SSH with its own
ssh_config. The answer is the ``migrate --json`` document; the exit codes are the same as for
``migrate`` (see :func:`celestial_ssh_cli.failures.exit_code_for_http`).
"""

from __future__ import annotations

import copy
import http.client
import json
import urllib.error
import urllib.request
from typing import Any

import click

from celestial_ssh.errors import InvalidInput
from celestial_ssh.hosts import HostSpec

from .boundary import Command, run
from .display import megabytes
from .failures import CommandFailed, ExitCode, exit_code_for_http
from .http_shim import TOKEN_ENV, read_token
from .main import MIGRATION_ERRORS, migrate_command

SHIM_PORT = 8080
# one request waits for the whole migration (the shim answers when it is over)
HTTP_TIMEOUT_S = 3600.0

# what a POST /start_migration can carry; every other option of `migrate` is refused with
# --via-http (the shim migrates with its own ssh_config and the default options)
_OVER_HTTP = frozenset({"source", "target", "container", "json_output", "quiet", "verbose"})


class ShimUnreachable(Exception):
    """No HTTP answer at all: refused, unresolvable, timed out, or the connection broke."""


def default_shim_url(target: str) -> str:
    """``http://TARGET:8080``: the older design sent /start_migration to the target host."""
    try:
        host = HostSpec.parse(target).host
    except InvalidInput as error:
        raise click.BadParameter(str(error).splitlines()[0], param_hint="TARGET") from None
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{SHIM_PORT}"


def post_start_migration(
    base_url: str, body: dict[str, str], token: str, timeout: float = HTTP_TIMEOUT_S
) -> tuple[int, bytes]:
    """POST ``body`` as JSON to ``base_url``/start_migration; the status and the raw answer."""
    request = urllib.request.Request(
        base_url.rstrip("/") + "/start_migration",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {token}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        with error:
            try:
                return int(error.code), error.read()
            except (OSError, http.client.HTTPException):
                return int(error.code), b""
    except urllib.error.URLError as error:
        raise ShimUnreachable(str(error.reason)) from error
    except (OSError, http.client.HTTPException) as error:
        raise ShimUnreachable(str(error) or type(error).__name__) from error


def _decode(raw: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _summary(document: dict[str, Any], url: str) -> str:
    moved = megabytes(document.get("bytes_transferred") or 0)
    downtime = document.get("downtime_s")
    total = document.get("total_s")
    name = document.get("target_container") or document.get("container")
    return (
        f"Migrated {document.get('container')} from {document.get('source')} to "
        f"{document.get('target')} as {name} via {url}: "
        f"total {f'{total:.2f} s' if isinstance(total, int | float) else 'n/a'}, "
        f"downtime {f'{downtime:.2f} s' if isinstance(downtime, int | float) else 'n/a'}, "
        f"{moved} transferred"
    )


def _failure(
    message: str,
    code: ExitCode,
    *,
    request: dict[str, str],
    answer: dict[str, Any] | None = None,
    http_status: int | None = None,
) -> CommandFailed:
    """Like ``migrate``'s: the shim's report (or the request) as the --json document."""
    report = (answer or {}).get("report")
    document: dict[str, Any] = (
        dict(report) if isinstance(report, dict) else {"status": "failed", **request}
    )
    document["status"] = "failed"
    document["error"] = message
    document["exit_code"] = int(code)
    document["http_status"] = http_status
    return CommandFailed(f"celestial-ssh: error: {message}", code, document)


def migrate_via_http(
    source: str,
    target: str,
    container: str,
    *,
    shim_url: str | None,
    token_file: str | None,
    json_output: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    url = (shim_url or default_shim_url(target)).rstrip("/")
    if not url.lower().startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="--shim-url")
    token = read_token(token_file)
    if token is None:
        raise click.UsageError(
            f"--via-http needs the shim's bearer token: --token-file FILE or ${TOKEN_ENV}"
        )
    body = {"source": source, "target": target, "container": container}
    if verbose and not json_output:
        click.echo(f"POST {url}/start_migration {json.dumps(body)}", err=True)
    try:
        status, raw = post_start_migration(url, body, token)
    except ShimUnreachable as error:
        raise _failure(
            f"cannot reach the HTTP shim at {url}: {error} (is `celestial-ssh serve` running "
            "there? --shim-url says where)",
            exit_code_for_http(None),
            request=body,
        ) from error
    except KeyboardInterrupt:
        raise CommandFailed(
            "celestial-ssh: interrupted: stopped waiting; the shim finishes (or rolls back) "
            "the migration on its own",
            ExitCode.INTERRUPTED,
        ) from None
    document = _decode(raw)
    code = exit_code_for_http(status, document)
    if code is ExitCode.OK:
        if document is None:
            raise _failure(
                f"the HTTP shim at {url} answered {status} without a JSON report",
                ExitCode.ERROR,
                request=body,
                http_status=status,
            )
        if json_output:
            click.echo(json.dumps(document, indent=2))
        elif not quiet:
            click.echo(_summary(document, url), err=True)
        if not json_output:
            for warning in document.get("warnings") or []:
                click.echo(f"warning: {warning}", err=True)
        return
    if document is not None and isinstance(document.get("error"), str):
        reason = document["error"]
    else:
        text = raw.decode(errors="replace").strip().splitlines()
        reason = text[0][:200] if text else "no message"
    if status == 401:
        message = f"token refused by the HTTP shim at {url} (HTTP 401: {reason})"
    else:
        message = f"{reason} (HTTP {status} from {url})"
    raise _failure(message, code, request=body, answer=document, http_status=status)


@click.command(
    "migrate-container",
    cls=Command,
    error_document=MIGRATION_ERRORS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--via-http",
    is_flag=True,
    help="Ask an HTTP shim (`celestial-ssh serve`) to migrate, the older design's way, "
    "instead of connecting over SSH from here.",
)
@click.option(
    "--shim-url",
    metavar="URL",
    default=None,
    help=f"The shim's base URL, with --via-http (default: http://TARGET:{SHIM_PORT}).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help=f"File holding the shim's bearer token, with --via-http (default: ${TOKEN_ENV}).",
)
@click.pass_context
def migrate_container(
    ctx: click.Context,
    /,
    via_http: bool,
    shim_url: str | None,
    token_file: str | None,
    **options: Any,
) -> None:
    """Move the running CONTAINER from SOURCE to TARGET, keeping its memory state.

    The older design's command: the same as `celestial-ssh migrate`, or with --via-http
    one POST /start_migration to an HTTP shim.
    """
    if not via_http:
        if shim_url is not None or token_file is not None:
            raise click.UsageError("--shim-url and --token-file only go with --via-http")
        callback = migrate_command.callback
        assert callback is not None
        callback(**options)
        return
    given = [
        param.opts[-1]
        for param in ctx.command.params
        if param.name in options
        and param.name not in _OVER_HTTP
        and options[param.name] != param.get_default(ctx)
    ]
    if given:
        raise click.UsageError(
            f"{', '.join(given)} cannot be used with --via-http: the shim migrates with its "
            "own ssh_config and the default options"
        )
    migrate_via_http(
        options["source"],
        options["target"],
        options["container"],
        shim_url=shim_url,
        token_file=token_file,
        json_output=options["json_output"],
        quiet=options["quiet"],
        verbose=options["verbose"],
    )


# SOURCE TARGET CONTAINER and every option of `migrate`, then the HTTP options
migrate_container.params[:0] = [copy.copy(param) for param in migrate_command.params]


def main() -> None:
    run(migrate_container, prog_name="migrate-container")
