"""The exact commands celestial-ssh runs on a host, and what its ``sh -c`` scripts do.

The scripts are also executed here, under the local /bin/sh, against a fake ``podman`` put
first on PATH: it records its argv and behaves as each test asks (write bytes to the
``--export`` path, print stats, exit with a chosen status, never open the FIFO...).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from celestial_ssh import (
    commands,
    doctor_commands,
    host_scripts,
    podman_commands,
    stream_markers,
    tls_link,
)
from celestial_ssh.commands import CheckpointOptions
from celestial_ssh.errors import InvalidInput
from celestial_ssh.readiness_parsers import parse_cpuinfo_summary, parse_df
from celestial_ssh.shell import validate_remote_path

WORKDIR = "/var/tmp/celestial-ssh.AbC123xYz0"
CID = "3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a"
SHA = hashlib.sha256(b"checkpoint").hexdigest()


# -- exact argv of the plain builders ----------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(commands.whoami(), ["id", "-u"], id="whoami"),
        pytest.param(commands.sudo_works(), ["sudo", "-n", "true"], id="sudo_works"),
        pytest.param(commands.machine_arch(), ["uname", "-m"], id="machine_arch"),
        pytest.param(
            commands.podman_info(), ["podman", "info", "--format", "json"], id="podman_info"
        ),
        pytest.param(commands.criu_version(), ["criu", "--version"], id="criu_version"),
        pytest.param(commands.criu_check(), ["criu", "check"], id="criu_check"),
        pytest.param(
            commands.container_inspect("web"),
            ["podman", "container", "inspect", "--format", "json", "--", "web"],
            id="container_inspect-name",
        ),
        pytest.param(
            commands.container_inspect(CID),
            ["podman", "container", "inspect", "--format", "json", "--", CID],
            id="container_inspect-id",
        ),
        pytest.param(
            commands.container_list_all(),
            ["podman", "container", "ls", "--all", "--no-trunc", "--format", "json"],
            id="container_list_all",
        ),
        pytest.param(
            commands.image_inspect("docker.io/library/nginx:1.25"),
            [
                "podman",
                "image",
                "inspect",
                "--format",
                "json",
                "--",
                "docker.io/library/nginx:1.25",
            ],
            id="image_inspect",
        ),
        pytest.param(
            commands.image_save("docker.io/library/nginx:1.25"),
            ["podman", "image", "save", "--", "docker.io/library/nginx:1.25"],
            id="image_save",
        ),
        pytest.param(
            commands.image_load(), ["podman", "image", "load", "--quiet"], id="image_load"
        ),
        pytest.param(
            commands.image_remove("sha256:abc"),
            ["podman", "image", "rm", "--", "sha256:abc"],
            id="image_remove",
        ),
        pytest.param(
            commands.container_remove(CID),
            ["podman", "container", "rm", "--", CID],
            id="container_remove",
        ),
        pytest.param(
            commands.container_remove(CID, force=True),
            ["podman", "container", "rm", "--force", "--time", "0", "--", CID],
            id="container_remove-force",
        ),
        pytest.param(
            commands.restore_local(CID),
            ["podman", "container", "restore", "--print-stats", "--", CID],
            id="restore_local",
        ),
        pytest.param(
            commands.container_stats(CID),
            ["podman", "stats", "--no-stream", "--format", "json", "--", CID],
            id="container_stats-one",
        ),
        pytest.param(
            commands.remove_workdir(WORKDIR), ["rm", "-rf", "--", WORKDIR], id="remove_workdir"
        ),
    ],
)
def test_builder_argv(argv: list[str], expected: list[str]) -> None:
    assert argv == expected


# the one-line scripts: constant text, every value a positional parameter
ONE_LINERS = [
    pytest.param(
        commands.make_workdir(),
        'umask 077 && mktemp -d "${TMPDIR:-/var/tmp}/$1"',
        ["make-workdir", "celestial-ssh.XXXXXXXXXX"],
        id="make_workdir",
    ),
    pytest.param(
        commands.make_workdir(CID),
        'umask 077 && mktemp -d "${TMPDIR:-/var/tmp}/$1"',
        ["make-workdir", "celestial-ssh.3f1c2a9b8d7e.XXXXXXXXXX"],
        id="make_workdir-tagged",
    ),
    pytest.param(
        commands.write_private_file(f"{WORKDIR}/known_hosts", "pinned ssh-ed25519 AAAA\n"),
        'umask 077 && printf \'%s\' "$1" > "$2"',
        ["write-private-file", "pinned ssh-ed25519 AAAA\n", f"{WORKDIR}/known_hosts"],
        id="write_private_file",
    ),
    pytest.param(
        commands.receive_private_files(WORKDIR),
        'umask 077 && exec tar -x --no-same-owner --no-same-permissions -C "$1" -f -',
        ["receive-private-files", WORKDIR],
        id="receive_private_files",
    ),
    pytest.param(
        commands.receive_file(f"{WORKDIR}/pre.tar"),
        'umask 077 && exec cat > "$1"',
        ["receive-file", f"{WORKDIR}/pre.tar"],
        id="receive_file",
    ),
    pytest.param(
        commands.probe_receiver(),
        "echo ready && exec cat > /dev/null",
        ["probe-receiver"],
        id="probe_receiver",
    ),
]


@pytest.mark.parametrize(("argv", "line", "parameters"), ONE_LINERS)
def test_one_line_script_argv(argv: list[str], line: str, parameters: list[str]) -> None:
    assert argv == ["sh", "-c", line, *parameters]


def test_values_never_become_shell_text() -> None:
    content = "it's $(reboot) `x`\n"
    assert commands.write_private_file(f"{WORKDIR}/f", content)[2:] == [
        'umask 077 && printf \'%s\' "$1" > "$2"',
        "write-private-file",
        content,
        f"{WORKDIR}/f",
    ]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(CheckpointOptions(), ["--compress", "none", "--print-stats"], id="default"),
        pytest.param(
            CheckpointOptions(compression="zstd", tcp_established=True),
            ["--compress", "zstd", "--print-stats", "--tcp-established"],
            id="zstd-tcp",
        ),
        pytest.param(
            CheckpointOptions(compression="gzip", tcp_established=True, file_locks=True),
            ["--compress", "gzip", "--print-stats", "--tcp-established", "--file-locks"],
            id="gzip-tcp-locks",
        ),
    ],
)
def test_checkpoint_options_argv(options: CheckpointOptions, expected: list[str]) -> None:
    assert commands.checkpoint_options_argv(options) == expected


@pytest.mark.parametrize(
    ("path", "container", "options", "expected"),
    [
        pytest.param(
            "/tmp/celestial-shim-x/export.tar",
            "web",
            CheckpointOptions(),
            [
                "container",
                "checkpoint",
                "--export",
                "/tmp/celestial-shim-x/export.tar",
                "--compress",
                "none",
                "--print-stats",
                "--",
                "web",
            ],
            id="uncompressed",
        ),
        pytest.param(
            "/var/tmp/a b/export.tar",
            CID,
            CheckpointOptions(compression="zstd", tcp_established=True, file_locks=True),
            [
                "container",
                "checkpoint",
                "--export",
                "/var/tmp/a b/export.tar",
                "--compress",
                "zstd",
                "--print-stats",
                "--tcp-established",
                "--file-locks",
                "--",
                CID,
            ],
            id="zstd-tcp-locks-local-path-as-one-word",
        ),
    ],
)
def test_checkpoint_export(
    path: str, container: str, options: CheckpointOptions, expected: list[str]
) -> None:
    assert commands.checkpoint_export(path, container, options) == expected


def test_checkpoint_options_refuse_unknown_compression() -> None:
    with pytest.raises(ValueError, match="compression must be one of none, zstd, gzip"):
        CheckpointOptions(compression="xz")


# -- refusals ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("workdir", "error"),
    [
        pytest.param("/var/tmp/other", ValueError, id="not-ours"),
        pytest.param("/", ValueError, id="root"),
        pytest.param("/var/tmp/celestial-ssh.abc/sub", ValueError, id="subdirectory"),
        pytest.param("/var/tmp/celestial-ssh.abc/.", ValueError, id="trailing-dot"),
        pytest.param("var/tmp/celestial-ssh.abc", InvalidInput, id="relative"),
        pytest.param("/var/tmp/celestial-ssh.abc/..", InvalidInput, id="dotdot-end"),
        pytest.param("/var/tmp/../celestial-ssh.abc", InvalidInput, id="dotdot-middle"),
        pytest.param("/var/tmp/celestial-ssh.a b", InvalidInput, id="space"),
        pytest.param("/var/tmp/celestial-ssh.$(reboot)", InvalidInput, id="substitution"),
        pytest.param("/var/tmp/celestial-ssh.a;b", InvalidInput, id="semicolon"),
        pytest.param("", InvalidInput, id="empty"),
    ],
)
def test_remove_workdir_refuses(workdir: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        commands.remove_workdir(workdir)


def test_remove_workdir_refuses_names_that_only_contain_the_prefix() -> None:
    with pytest.raises(ValueError):
        commands.remove_workdir("/etc/not-celestial-ssh.d")


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: commands.container_inspect("a;b"), id="container_inspect"),
        pytest.param(lambda: commands.container_remove("-rf"), id="container_remove"),
        pytest.param(lambda: commands.restore_local("$(x)"), id="restore_local"),
        pytest.param(
            lambda: commands.checkpoint_export("/tmp/f", "-rf", CheckpointOptions()),
            id="checkpoint_export-container",
        ),
        pytest.param(
            lambda: commands.checkpoint_stream("a b", WORKDIR, CheckpointOptions()),
            id="checkpoint_stream-container",
        ),
        pytest.param(
            lambda: commands.checkpoint_stream("web", "/tmp/x y", CheckpointOptions()),
            id="checkpoint_stream-workdir",
        ),
        pytest.param(lambda: commands.land_archive("relative"), id="land_archive-workdir"),
        pytest.param(
            lambda: commands.restore_import(
                WORKDIR, expected_bytes=1, expected_sha256=SHA, name="--privileged"
            ),
            id="restore_import-name",
        ),
        pytest.param(
            lambda: commands.restore_import("/tmp/`x`", expected_bytes=1, expected_sha256=SHA),
            id="restore_import-workdir",
        ),
        pytest.param(
            lambda: commands.wait_for_checkpoint_end("/tmp/$(x)", timeout_s=1),
            id="wait_for_checkpoint_end-workdir",
        ),
        pytest.param(
            lambda: commands.wait_for_restore_end("/tmp/a b", timeout_s=1),
            id="wait_for_restore_end-workdir",
        ),
        pytest.param(
            lambda: commands.hold_migration_lock("x/../../etc/passwd"), id="hold_migration_lock"
        ),
        pytest.param(lambda: commands.hold_migration_lock('a"b'), id="hold_migration_lock-quote"),
        pytest.param(lambda: commands.make_workdir("a/../b"), id="make_workdir-tag"),
        pytest.param(lambda: commands.make_workdir("*"), id="make_workdir-glob"),
        pytest.param(lambda: commands.list_workdirs("*"), id="list_workdirs-glob"),
        pytest.param(lambda: commands.container_stats("web", "$(reboot)"), id="container_stats"),
        pytest.param(lambda: commands.list_workdirs("$(reboot)"), id="list_workdirs-substitution"),
        pytest.param(lambda: commands.list_workdirs(""), id="list_workdirs-empty"),
    ],
)
def test_builders_refuse_invalid_input(build) -> None:
    with pytest.raises(InvalidInput):
        build()


@pytest.mark.parametrize(
    "digest",
    [
        pytest.param(SHA.upper(), id="uppercase"),
        pytest.param(SHA[:-1], id="63-digits"),
        pytest.param(SHA + "0", id="65-digits"),
        pytest.param("g" * 64, id="not-hex"),
        pytest.param(SHA[:-1] + ";", id="metachar"),
    ],
)
def test_restore_import_refuses_malformed_digest(digest: str) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex digits"):
        commands.restore_import(WORKDIR, expected_bytes=1, expected_sha256=digest)


def test_restore_import_refuses_non_integer_size() -> None:
    with pytest.raises(ValueError):
        commands.restore_import(WORKDIR, expected_bytes="1; reboot", expected_sha256=SHA)  # type: ignore[arg-type]


# -- the scripts and their parameters ------------------------------------------------------
SCRIPTS_DIR = Path(host_scripts.__file__).parent / host_scripts.SCRIPTS_DIR
SCRIPT_FILES = sorted(p.name for p in SCRIPTS_DIR.iterdir() if p.suffix in (".sh", ".awk"))
SH_SCRIPTS = [name for name in SCRIPT_FILES if name.endswith(".sh")]
CHECKPOINT = ["container", "checkpoint", "--export", f"{WORKDIR}/checkpoint.fifo"]
RESTORE = ["podman", "container", "restore", "--import", f"{WORKDIR}/checkpoint.tar"]
ZEROS = ["timeout", "-s", "INT", "10", "dd", "if=/dev/zero", "bs=1M", "iflag=count_bytes"]
TLS_LINK = commands.DirectLink(
    ("socat", "-", "OPENSSL:t:1"),
    ready_log=f"{WORKDIR}/link.log",
    ready_pattern="done",
    program="socat",
)


@pytest.mark.parametrize(
    ("argv", "script", "parameters"),
    [
        pytest.param(
            commands.make_landing_workdir(CID, 1000 * 1024 + 1),
            "make_landing_workdir.sh",
            # KiB on the tmpfs, rounded up; twice that in memory, and a reserve
            [f"celestial-ssh.{CID[:12]}.XXXXXXXXXX", "1001", str(2 * 1001 + (256 << 10))],
            id="make_landing_workdir",
        ),
        pytest.param(
            commands.list_workdirs(CID),
            "list_workdirs.sh",
            [f"celestial-ssh.{CID[:12]}.*", "names"],
            id="list_workdirs",
        ),
        pytest.param(
            commands.list_workdirs(sizes=True),
            "list_workdirs.sh",
            ["celestial-ssh.*", "sizes"],
            id="list_workdirs-all-sizes",
        ),
        pytest.param(
            commands.checkpoint_stream(
                "web", WORKDIR, CheckpointOptions(compression="zstd", tcp_established=True)
            ),
            "checkpoint_stream.sh",
            [
                WORKDIR,
                "no-gated",
                "no-hashed",
                "no-announce",
                "podman",
                *CHECKPOINT,
                "--compress",
                "zstd",
                "--print-stats",
                "--tcp-established",
                "--",
                "web",
            ],
            id="checkpoint_stream",
        ),
        pytest.param(
            commands.checkpoint_stream("web", WORKDIR, CheckpointOptions(), announce=True),
            "checkpoint_stream.sh",
            [
                WORKDIR,
                "no-gated",
                "no-hashed",
                "announce",
                "podman",
                "--log-level=debug",
                *CHECKPOINT,
                "--compress",
                "none",
                "--print-stats",
                "--",
                "web",
            ],
            id="checkpoint_stream-announce",
        ),
        pytest.param(
            # relayed: its stdout is the archive, so it announces on stderr
            commands.checkpoint_stream(
                CID, WORKDIR, CheckpointOptions(), gated=True, hashed=True, announce_on_stderr=True
            ),
            "checkpoint_stream.sh",
            [
                WORKDIR,
                "gated",
                "hashed",
                "announce-on-stderr",
                "podman",
                "--log-level=debug",
                *CHECKPOINT,
                "--compress",
                "none",
                "--print-stats",
                "--",
                CID,
            ],
            id="checkpoint_stream-announce-on-stderr",
        ),
        pytest.param(
            commands.checkpoint_stream(
                CID,
                WORKDIR,
                CheckpointOptions(),
                podman=("sudo", "-n", "--", "podman"),
                gated=True,
                hashed=True,
            ),
            "checkpoint_stream.sh",
            [
                WORKDIR,
                "gated",
                "hashed",
                "no-announce",
                "sudo",
                "-n",
                "--",
                "podman",
                *CHECKPOINT,
                "--compress",
                "none",
                "--print-stats",
                "--",
                CID,
            ],
            id="checkpoint_stream-gated-hashed-sudo",
        ),
        pytest.param(
            commands.direct_checkpoint_stream(["cat", "x"], WORKDIR, ["ssh", "lab-b", "land"]),
            "direct_stream.sh",
            ["checkpoint", WORKDIR, "ssh", "", "", "ssh lab-b land", "cat", "x"],
            id="direct_checkpoint_stream-ssh",
        ),
        pytest.param(
            commands.direct_checkpoint_stream(["cat", "x"], WORKDIR, TLS_LINK),
            "direct_stream.sh",
            [
                "checkpoint",
                WORKDIR,
                "socat",
                f"{WORKDIR}/link.log",
                "done",
                "socat - OPENSSL:t:1",
                "cat",
                "x",
            ],
            id="direct_checkpoint_stream-tls",
        ),
        pytest.param(
            commands.direct_probe(3 << 20, 10, WORKDIR, ["ssh", "lab-b"]),
            "direct_stream.sh",
            [
                "probe",
                WORKDIR,
                "ssh",
                "",
                "",
                "ssh lab-b",
                *ZEROS,
                "count=3145728",
                f"of={WORKDIR}/probe.fifo",
            ],
            id="direct_probe",
        ),
        pytest.param(
            commands.probe_sender(3 << 20, 10),
            "probe_sender.sh",
            [*ZEROS, "count=3145728"],
            id="probe_sender",
        ),
        pytest.param(
            commands.land_archive(WORKDIR), "land_archive.sh", [WORKDIR, "hashed", "no-announce"]
        ),
        pytest.param(
            commands.land_archive(WORKDIR, hashed=False, announce=True),
            "land_archive.sh",
            [WORKDIR, "no-hashed", "announce"],
            id="land_archive-direct",
        ),
        pytest.param(
            commands.restore_import(WORKDIR, expected_bytes=4096, expected_sha256=SHA),
            "restore_import.sh",
            [WORKDIR, "now", "4096", SHA, *RESTORE, "--print-stats"],
            id="restore_import",
        ),
        pytest.param(
            commands.restore_import(WORKDIR, expected_bytes=4096, expected_sha256=None),
            "restore_import.sh",
            [WORKDIR, "now", "4096", "-", *RESTORE, "--print-stats"],
            id="restore_import-no-digest",
        ),
        pytest.param(
            commands.restore_import(
                WORKDIR,
                expected_bytes=4096,
                expected_sha256=SHA,
                name="web2",
                options=CheckpointOptions(tcp_established=True, file_locks=True),
            ),
            "restore_import.sh",
            [
                WORKDIR,
                "now",
                "4096",
                SHA,
                *RESTORE,
                "--print-stats",
                "--name",
                "web2",
                "--tcp-established",
                "--file-locks",
            ],
            id="restore_import-name-tcp-locks",
        ),
        pytest.param(
            commands.gated_restore_import(
                WORKDIR, import_previous=f"{WORKDIR}/pre.tar", podman=("sudo", "podman")
            ),
            "restore_import.sh",
            [
                WORKDIR,
                "gated",
                "-",
                "-",
                "sudo",
                *RESTORE,
                "--import-previous",
                f"{WORKDIR}/pre.tar",
                "--print-stats",
            ],
            id="gated_restore_import",
        ),
        pytest.param(
            commands.landed_bytes_watch(WORKDIR, 0.25, 600),
            "landed_bytes_watch.sh",
            [f"{WORKDIR}/checkpoint.tar", "0.25", "600"],
            id="landed_bytes_watch",
        ),
        pytest.param(
            commands.wait_for_checkpoint_end(WORKDIR, timeout_s=900),
            "wait_for_checkpoint_end.sh",
            [WORKDIR, "900", "5"],
            id="wait_for_checkpoint_end",
        ),
        pytest.param(
            commands.wait_for_restore_end(WORKDIR, timeout_s=60),
            "wait_for_restore_end.sh",
            [WORKDIR, "60"],
            id="wait_for_restore_end",
        ),
        pytest.param(
            # a root-only directory, never the host's (world-writable) TMPDIR
            commands.hold_migration_lock(CID),
            "hold_migration_lock.sh",
            ["/run/celestial-ssh", f"/run/celestial-ssh/lock.{CID}"],
            id="hold_migration_lock",
        ),
        pytest.param(doctor_commands.cpu_summary(), "cpu_summary.sh", [], id="cpu_summary"),
        pytest.param(doctor_commands.landing_disk(), "landing_space.sh", ["disk"], id="disk"),
        pytest.param(doctor_commands.landing_tmpfs(), "landing_space.sh", ["tmpfs"], id="tmpfs"),
    ],
)
def test_script_argv(argv: list[str], script: str, parameters: list[str]) -> None:
    """Each script runs as ``sh -c TEXT NAME PARAMETER...``: the text is the file's."""
    name = script.removesuffix(".sh").replace("_", "-")
    assert argv == ["sh", "-c", host_scripts.script_text(script), name, *parameters]


@pytest.mark.parametrize(
    ("script", "spelled"),
    [
        pytest.param(
            "checkpoint_stream.sh",
            [
                f'"{commands.SOURCE_BYTES_MARKER} ',
                f'"{commands.EXPORTED_MARKER} ',
                f">&{commands.ANNOUNCE_FD}\n",
                f"exec {commands.ANNOUNCE_FD}>&2\n",
                f"exit {commands.EXIT_NOT_STARTED}\n",
                f"exit {commands.EXIT_FIFO_FAILED}\n",
                f"/{commands.FIFO_NAME}\n",
                f"/{commands.CHECKPOINT_STATS_NAME}\n",
                f"/{commands.CHECKPOINT_STARTED_NAME}\n",
                f"/{commands.CHECKPOINT_STATUS_NAME}\n",
            ],
        ),
        pytest.param(
            "direct_stream.sh",
            [
                f'"{commands.LINK_ENDED_MARKER} ',
                f'"{commands.PROBE_RESULT_MARKER} ',
                f'"$@" {commands.ANNOUNCE_FD}>&1 ',
                f"exit {commands.EXIT_NOT_STARTED}\n",
                f"exit {commands.EXIT_FIFO_FAILED}\n",
                f"exit {commands.EXIT_DIRECT_LINK_FAILED}\n",
                commands.direct_link_fifo("/w").replace("/w", "$workdir") + "\n",
                commands.direct_probe_fifo("/w").replace("/w", "$workdir") + "\n",
            ],
        ),
        pytest.param(
            "restore_import.sh",
            [
                f"exit {commands.EXIT_NOT_STARTED}",
                f"exit {commands.EXIT_ARCHIVE_SIZE_MISMATCH}\n",
                f"exit {commands.EXIT_ARCHIVE_CHECKSUM_MISMATCH}\n",
                f"/{commands.ARCHIVE_NAME}\n",
                f"/{commands.SUM_NAME}\n",
                f'/{commands.RESTORE_PID_NAME}"',
            ],
        ),
        pytest.param("land_archive.sh", [f"/{commands.ARCHIVE_NAME}\n", f"/{commands.SUM_NAME}\n"]),
        pytest.param(
            "wait_for_checkpoint_end.sh",
            [f"/{commands.CHECKPOINT_STARTED_NAME} ", f"/{commands.CHECKPOINT_STATUS_NAME} "],
        ),
        pytest.param("wait_for_restore_end.sh", [f"/{commands.RESTORE_PID_NAME} "]),
        pytest.param("probe_sender.sh", [f"exit {commands.EXIT_NOT_STARTED}\n"]),
        pytest.param("hold_migration_lock.sh", [f"-E {commands.LOCK_HELD_EXIT} "]),
        pytest.param(
            "make_landing_workdir.sh",
            [
                f'"{commands.TMPFS_DIR}"',
                f'"{commands.DISK_DIR}/',
                f"echo {commands.LANDING_TMPFS}\n",
                f"echo {commands.LANDING_DISK}\n",
            ],
        ),
        pytest.param("list_workdirs.sh", [f'"{commands.TMPFS_DIR}"', f'"{commands.DISK_DIR}"']),
        pytest.param(
            "landing_space.sh", [f'd="{commands.TMPFS_DIR}"\n', f'd="{commands.DISK_DIR}"\n']
        ),
        pytest.param(
            "tls_listen.sh",
            [
                f"unprivileged=,su={tls_link.UNPRIVILEGED_USER}\n",
                f"id -u {tls_link.UNPRIVILEGED_USER} ",
                f"exit {tls_link.EXIT_TLS_LISTEN_FAILED}\n",
                f'echo "{tls_link.LISTENING_MARKER} $port"',
                f"grep -q '{tls_link.SOCAT_LISTENING}' ",
                f"s/.*{tls_link.SOCAT_LISTENING} .*:",
            ],
        ),
    ],
)
def test_scripts_spell_what_the_coordinator_expects(script: str, spelled: list[str]) -> None:
    """Markers, exit statuses and file names are spelled in the scripts and in Python."""
    text = host_scripts.script_text(script)
    for words in spelled:
        assert words in text, words


@pytest.mark.parametrize("script", SH_SCRIPTS)
def test_every_script_is_valid_sh(script: str) -> None:
    """``sh -n`` reads each file, and the text sent without its comments, without error."""
    on_disk = subprocess.run(["sh", "-n", str(SCRIPTS_DIR / script)], capture_output=True)
    assert on_disk.returncode == 0, on_disk.stderr
    sent = subprocess.run(["sh", "-n", "-c", host_scripts.script_text(script)], capture_output=True)
    assert sent.returncode == 0, sent.stderr


@pytest.mark.parametrize(("argv", "line", "parameters"), ONE_LINERS)
def test_every_one_line_script_is_valid_sh(
    argv: list[str], line: str, parameters: list[str]
) -> None:
    checked = subprocess.run(["sh", "-n", "-c", line], capture_output=True)
    assert checked.returncode == 0, checked.stderr


# `make deps` installs shellcheck (lab/install-deps.sh), and `make test` runs it first: a
# missing shellcheck is a failure, not a skip, unless this says it is known to be missing
NO_SHELLCHECK = "CELESTIAL_SSH_NO_SHELLCHECK"


def shellcheck(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    if shutil.which("shellcheck") is None:
        if os.environ.get(NO_SHELLCHECK) == "1":
            pytest.skip(f"shellcheck is missing and {NO_SHELLCHECK}=1")
        pytest.fail(f"shellcheck is missing: run `make deps`, or set {NO_SHELLCHECK}=1")
    return subprocess.run(
        ["shellcheck", "-s", "sh", *map(str, paths)], capture_output=True, text=True
    )


def test_every_script_is_shellcheck_clean() -> None:
    checked = shellcheck([SCRIPTS_DIR / name for name in SH_SCRIPTS])
    assert checked.returncode == 0, checked.stdout


def test_every_one_line_script_is_shellcheck_clean(tmp_path: Path) -> None:
    paths = []
    for each in ONE_LINERS:
        _argv, line, _parameters = each.values
        paths.append(tmp_path / f"{each.id}.sh")
        paths[-1].write_text(f"#!/bin/sh\n{line}\n")
    checked = shellcheck(paths)
    assert checked.returncode == 0, checked.stdout


def test_the_text_sent_leaves_out_comments_only() -> None:
    """... and puts each included fragment where its include line stands."""
    for script in SCRIPT_FILES:
        code = []
        for line in (SCRIPTS_DIR / script).read_text().splitlines():
            if line.startswith("# include: "):
                code += host_scripts.script_text(line.removeprefix("# include: ")).splitlines()
            elif line.strip() and not line.lstrip().startswith("#"):
                code.append(line)
        assert host_scripts.script_text(script).splitlines() == code, script
    assert host_scripts.script_text("checkpoint_stream.sh").startswith("workdir=$1 ")


@pytest.mark.parametrize("script", SH_SCRIPTS)
def test_leaving_out_comments_changes_no_command(script: str) -> None:
    """The shell's own reading of the file and of the text sent is the same program: a
    '#' line inside a multi-line string would be data, and leaving it out would show here
    (bash --pretty-print drops comments, keeps data). Blank lines it keeps between
    commands are not compared; no script has a here-document, whose blank lines would be."""

    def pretty(text: str) -> str:
        printed = subprocess.run(
            ["bash", "--pretty-print"], input=text, capture_output=True, text=True, check=True
        )
        return "\n".join(line for line in printed.stdout.splitlines() if line.strip())

    lines = []
    for line in (SCRIPTS_DIR / script).read_text().splitlines():
        if line.startswith("# include: "):
            line = (SCRIPTS_DIR / line.removeprefix("# include: ")).read_text()
        lines.append(line)
    assert pretty(host_scripts.script_text(script)) == pretty("\n".join(lines))
    assert "<<" not in host_scripts.script_text(script)


@pytest.mark.parametrize("script", ["checkpoint_stream.sh", "land_archive.sh", "tls_listen.sh"])
def test_hash_stdin_is_written_once_and_sent_with_each_script_that_hashes(script: str) -> None:
    defined = [name for name in SH_SCRIPTS if "hash_stdin() {" in (SCRIPTS_DIR / name).read_text()]
    assert defined == ["lib_hash_stdin.sh"]
    text = host_scripts.script_text(script)
    assert text.count("hash_stdin() {") == 1
    assert text.index("hash_stdin() {") < text.index("hash_stdin ")


def test_a_missing_script_is_an_error() -> None:
    with pytest.raises(FileNotFoundError):
        host_scripts.script_text("no_such_script.sh")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("celestial-ssh-exported 1234", 1234),
        ("celestial-ssh-exported 0", 0),
        ("celestial-ssh-exported ", None),
        ("celestial-ssh-exported 12x", None),
        ("celestial-ssh-exported 1 2", None),
        ("x celestial-ssh-exported 1", None),
        ("", None),
    ],
)
def test_parse_exported(line: str, expected: int | None) -> None:
    assert commands.parse_exported(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"celestial-ssh-exported 1234 {SHA}", (1234, SHA)),
        (f"celestial-ssh-exported 1234 {SHA}\n", (1234, SHA)),
        ("celestial-ssh-exported 1234", (1234, None)),  # a source that does not hash
        (f"celestial-ssh-exported 1234 {SHA.upper()}", None),
        (f"celestial-ssh-exported 1234 {SHA[:-1]}", None),
        (f"celestial-ssh-exported x {SHA}", None),
        (f"celestial-ssh-exported 1234 {SHA} more", None),
        (f"celestial-ssh-link-ended 0 {SHA}", None),
    ],
)
def test_parse_exported_archive(line: str, expected: tuple[int, str | None] | None) -> None:
    assert commands.parse_exported_archive(line) == expected
    assert commands.parse_exported(line) == (expected[0] if expected else None)


def test_values_reach_the_scripts_as_single_words() -> None:
    # validate_remote_path allows '+', which is harmless; the value is one argument, as is
    # a TLS link's command line, which the script hands to eval whole
    workdir = "/var/tmp/celestial-ssh.a+b"
    assert commands.land_archive(workdir)[4] == workdir
    argv = commands.direct_checkpoint_stream(["cat"], workdir, TLS_LINK)
    assert argv[9] == "socat - OPENSSL:t:1"


def test_hold_migration_lock_reads_the_lock_directory_when_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(podman_commands, "LOCK_DIR", "/srv/locks")
    assert commands.hold_migration_lock("web")[4:] == ["/srv/locks", "/srv/locks/lock.web"]
    assert commands.LOCK_HELD_EXIT == 75


# -- executing the scripts against a fake podman ---------------------------------------------
FAKE_PODMAN = r"""#!/bin/sh
# a fake podman: records its argv (one per line), then does what FAKE_* asks
: > "$FAKE_PODMAN_ARGV"
echo $$ > "$FAKE_PODMAN_ARGV.pid"
for arg in "$@"; do printf '%s\n' "$arg" >> "$FAKE_PODMAN_ARGV"; done
export_path=
previous=
for arg in "$@"; do
  if [ "$previous" = --export ]; then export_path=$arg; fi
  previous=$arg
done
case " $* " in
  *" --log-level=debug "*)
    echo 'time="t" level=info msg="podman filtering at log level debug"' >&2
    echo 'time="t" level=debug msg="Called checkpoint"' >&2;;
esac
if [ -n "$FAKE_PODMAN_PAYLOAD" ]; then
  # like the real one, FAKE_PODMAN_RDWR opens the export read-write: no SIGPIPE, ever
  if [ -n "$FAKE_PODMAN_RDWR" ]; then cat "$FAKE_PODMAN_PAYLOAD" 1<> "$export_path"
  else cat "$FAKE_PODMAN_PAYLOAD" > "$export_path"; fi
fi
# at debug level the real one says so once its export has succeeded, then tidies up
case " $* " in
  *" --log-level=debug "*)
    if [ -z "$FAKE_PODMAN_SILENT" ]; then
      echo 'time="t" level=debug msg="Checkpointed container 0123456789ab"' >&2
    fi
    echo 'time="t" level=warning msg="a warning is kept"' >&2;;
esac
if [ -n "$FAKE_PODMAN_SLEEP" ]; then sleep "$FAKE_PODMAN_SLEEP"; fi
if [ -n "$FAKE_PODMAN_STDOUT" ]; then printf '%s\n' "$FAKE_PODMAN_STDOUT"; fi
if [ -n "$FAKE_PODMAN_STDERR" ]; then printf '%s\n' "$FAKE_PODMAN_STDERR" >&2; fi
: > "$FAKE_PODMAN_ARGV.done"
exit "${FAKE_PODMAN_STATUS:-0}"
"""


@dataclass
class Finished:
    status: int
    stdout: bytes
    stderr: str


@dataclass
class FakeHost:
    """A work directory and a PATH whose first entry holds the fake podman."""

    root: Path
    workdir: Path
    argv_log: Path
    env: dict[str, str]

    def start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` in its own process group, with pipes for stdin, stdout, stderr."""
        refuse_the_real_lock_dir(argv)
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            start_new_session=True,
        )

    def run(self, argv: list[str], stdin: bytes = b"", timeout: float = 10) -> Finished:
        """Run ``argv`` in its own process group; kill the group if it hangs."""
        process = self.start(argv)
        try:
            out, err = process.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"{argv[:2]} did not end within {timeout} s")
        return Finished(process.returncode, out, err.decode(errors="replace"))

    @property
    def podman_argv(self) -> list[str] | None:
        """The argv the fake podman got, or None when it never ran."""
        if not self.argv_log.exists():
            return None
        return self.argv_log.read_text().splitlines()


def refuse_the_real_lock_dir(argv: list[str]) -> None:
    """Executed scripts never touch /run/celestial-ssh: a lab may be using it right now."""
    assert "/run/celestial-ssh" not in " ".join(argv), "use the lock_dir fixture"


# what the scripts may use on a host, besides podman and the shell's builtins (sleep: the
# checkpoint script's and the rollback's wait loops)
TOOLS = (
    "sh",
    "tee",
    "sha256sum",
    "cat",
    "wc",
    "cut",
    "mkfifo",
    "rm",
    "mktemp",
    "env",
    "sleep",
    "dd",
    "tail",
    "timeout",
    "date",
    "stat",
)


def make_host(
    tmp_path: Path,
    *,
    openssl: bool,
    extra: tuple[str, ...] = (),
    without: tuple[str, ...] = (),
) -> FakeHost:
    """A host whose PATH holds only the fake podman, TOOLS but ``without``, openssl if asked,
    and ``extra``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = [tool for tool in TOOLS if tool not in without]
    for tool in (*tools, *(("openssl",) if openssl else ()), *extra):
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"needs {tool}")
        (bin_dir / tool).symlink_to(found)
    podman = bin_dir / "podman"
    podman.write_text(FAKE_PODMAN)
    podman.chmod(0o755)
    workdir = tmp_path / "celestial-ssh.work"
    workdir.mkdir(mode=0o700)
    validate_remote_path(str(workdir))  # tmp_path must be a path the builders take
    env = {"PATH": str(bin_dir), "FAKE_PODMAN_ARGV": str(tmp_path / "podman-argv"), "LC_ALL": "C"}
    # never this machine's /dev/shm: a test that wants a tmpfs makes one there itself
    env["CELESTIAL_SSH_TMPFS"] = str(tmp_path / "no-tmpfs")
    return FakeHost(tmp_path, workdir, tmp_path / "podman-argv", env)


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return make_host(tmp_path, openssl=False)


@pytest.fixture(params=["openssl", "sha256sum"])
def hashing_host(tmp_path: Path, request: pytest.FixtureRequest) -> FakeHost:
    """Both ways land_archive hashes: with openssl on PATH, and with coreutils only."""
    return make_host(tmp_path, openssl=request.param == "openssl")


def test_make_workdir_creates_a_private_directory(host: FakeHost) -> None:
    host.env["TMPDIR"] = str(host.root)
    finished = host.run(commands.make_workdir())
    assert finished.status == 0, finished.stderr
    made = Path(finished.stdout.decode().strip())
    assert made.parent == host.root
    assert made.name.startswith("celestial-ssh.") and len(made.name) == len("celestial-ssh.") + 10
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    # what make_workdir prints is what remove_workdir accepts, and removes
    assert host.run(commands.remove_workdir(str(made))).status == 0
    assert not made.exists()


def test_write_private_file_writes_the_content_as_given(host: FakeHost) -> None:
    path = host.workdir / "known_hosts"
    content = "it's $(touch /tmp/x) `y` \\n %s\n"
    finished = host.run(commands.write_private_file(str(path), content))
    assert finished.status == 0, finished.stderr
    assert path.read_text() == content
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_receive_file_writes_stdin_privately(host: FakeHost) -> None:
    path = host.workdir / "pre.tar"
    finished = host.run(commands.receive_file(str(path)), stdin=b"archive")
    assert finished.status == 0, finished.stderr
    assert path.read_bytes() == b"archive"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_landing_space_prints_the_directory_then_df(tmp_path: Path) -> None:
    host = make_host(tmp_path, openssl=False, extra=("df",))
    host.env["TMPDIR"] = str(host.root)
    host.env["CELESTIAL_SSH_TMPFS"] = str(host.workdir)
    disk = host.run(doctor_commands.landing_disk())
    assert disk.status == 0, disk.stderr
    parsed = parse_df(disk.stdout.decode())
    assert parsed is not None and parsed[0] == str(host.root)
    tmpfs = host.run(doctor_commands.landing_tmpfs()).stdout.decode().splitlines()
    assert tmpfs[0] == str(host.workdir)
    assert (
        tmpfs[1]
        == subprocess.run(
            ["stat", "-f", "-c", "%T", str(host.workdir)], capture_output=True, text=True
        ).stdout.strip()
    )
    assert tmpfs[2].startswith("Filesystem")


def test_cpu_summary_reads_this_machines_cpus(tmp_path: Path) -> None:
    if not Path("/proc/cpuinfo").is_file():
        pytest.skip("needs /proc/cpuinfo")
    host = make_host(tmp_path, openssl=False, extra=("grep", "awk"))
    finished = host.run(doctor_commands.cpu_summary())
    assert finished.status == 0, finished.stderr
    lines = finished.stdout.decode().splitlines()
    assert re.fullmatch(r"processors\t: [1-9][0-9]*", lines[0])
    keys = [line.partition(":")[0].rstrip() for line in lines[1:]]
    assert len(keys) == len(set(keys)), "one line of each kind"
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    processors = sum(line.startswith("processor") for line in cpuinfo)
    assert parse_cpuinfo_summary(finished.stdout.decode())["processors"] == processors


def test_make_workdir_tags_the_directory_with_the_container_id(host: FakeHost) -> None:
    host.env["TMPDIR"] = str(host.root)
    finished = host.run(commands.make_workdir(CID))
    assert finished.status == 0, finished.stderr
    made = Path(finished.stdout.decode().strip())
    assert made.parent == host.root
    prefix = f"celestial-ssh.{CID[:12]}."
    assert made.name.startswith(prefix) and len(made.name) == len(prefix) + 10
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    # the tagged name is still one the other builders take
    commands.wait_for_checkpoint_end(str(made), timeout_s=1)
    commands.wait_for_restore_end(str(made), timeout_s=1)
    assert host.run(commands.remove_workdir(str(made))).status == 0
    assert not made.exists()


def made_workdir(host: FakeHost, container_id: str | None) -> str:
    finished = host.run(commands.make_workdir(container_id))
    assert finished.status == 0, finished.stderr
    return finished.stdout.decode().strip()


def test_list_workdirs_lists_only_that_containers_directories(host: FakeHost) -> None:
    host.env["TMPDIR"] = str(host.root)
    other = "3f1c2a9b8d7f" + CID[12:]  # differs in the 12th digit only
    ours = sorted(made_workdir(host, CID) for _ in range(2))
    others = {
        made_workdir(host, other),
        made_workdir(host, None),  # an untagged one, as older versions made
        made_workdir(host, "web"),
    }
    # a file (not a directory) with a matching name, and a tag with no dot after it
    (host.root / f"celestial-ssh.{CID[:12]}.file").write_text("")
    (host.root / f"celestial-ssh.{CID[:12]}x").mkdir()
    finished = host.run(commands.list_workdirs(CID))
    assert finished.status == 0, finished.stderr
    assert sorted(finished.stdout.decode().splitlines()) == ours
    # the full ID or only its first 12 digits list the same directories
    short = host.run(commands.list_workdirs(CID[:12]))
    assert sorted(short.stdout.decode().splitlines()) == ours
    # every listed directory is one remove_workdir takes, and removes
    for workdir in ours:
        assert host.run(commands.remove_workdir(workdir)).status == 0
    assert host.run(commands.list_workdirs(CID)).stdout == b""
    left = {str(path) for path in host.root.glob("celestial-ssh.*") if path.is_dir()}
    assert left == {*others, str(host.workdir), f"{host.root}/celestial-ssh.{CID[:12]}x"}


def test_list_workdirs_of_every_container_with_sizes(tmp_path: Path) -> None:
    host = make_host(tmp_path, openssl=False, extra=("du",))
    tmpfs = tmp_path / "shm"
    tmpfs.mkdir()
    host.env |= {"TMPDIR": str(host.root), "CELESTIAL_SSH_TMPFS": str(tmpfs)}
    on_disk = {made_workdir(host, CID), made_workdir(host, None)}
    on_tmpfs = tmpfs / f"celestial-ssh.{CID[:12]}.TmPfS00000"
    on_tmpfs.mkdir()
    (on_tmpfs / "checkpoint.tar").write_bytes(b"x" * 300_000)
    (host.root / "celestial-ssh.file").write_text("")  # not a directory
    finished = host.run(commands.list_workdirs(sizes=True))
    assert finished.status == 0, finished.stderr
    found = dict(commands.parse_workdir_sizes(finished.stdout.decode()))
    assert set(found) == {*on_disk, str(host.workdir), str(on_tmpfs)}
    assert found[str(on_tmpfs)] >= 292  # KiB: the archive is in it


@pytest.mark.parametrize("output", ["/no/size\n", "12 /spaces/not/a/tab\n", "12\trelative\n"])
def test_workdir_sizes_that_are_no_du_output_are_refused(output: str) -> None:
    with pytest.raises(ValueError, match="not a size and a path"):
        commands.parse_workdir_sizes(output)


@pytest.fixture
def tmpfs_dir() -> Iterator[Path]:
    """A fresh directory on this machine's /dev/shm (a tmpfs), removed afterwards."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("needs /dev/shm")
    made = Path(tempfile.mkdtemp(prefix="celestial-ssh-test.", dir="/dev/shm"))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def landing_host(tmp_path: Path) -> FakeHost:
    return make_host(tmp_path, openssl=False, extra=("df", "awk"))


def made_landing(host: FakeHost, archive_bytes: int) -> tuple[Path, str]:
    finished = host.run(commands.make_landing_workdir(CID, archive_bytes))
    assert finished.status == 0, finished.stderr
    workdir, landing = commands.parse_landing_workdir(finished.stdout.decode())
    assert stat.S_IMODE(Path(workdir).stat().st_mode) == 0o700
    assert Path(workdir).name.startswith(f"celestial-ssh.{CID[:12]}.")
    return Path(workdir), landing


def test_an_archive_that_fits_in_memory_lands_on_tmpfs(tmp_path: Path, tmpfs_dir: Path) -> None:
    host = landing_host(tmp_path)
    host.env |= {"TMPDIR": str(host.root), "CELESTIAL_SSH_TMPFS": str(tmpfs_dir)}
    workdir, landing = made_landing(host, 64 << 20)
    assert (workdir.parent, landing) == (tmpfs_dir, commands.LANDING_TMPFS)
    # recover finds it there, and remove_workdir takes it
    listed = host.run(commands.list_workdirs(CID)).stdout.decode().split()
    assert listed == [str(workdir)]
    assert host.run(commands.remove_workdir(str(workdir))).status == 0
    assert not workdir.exists()


def test_an_archive_bigger_than_the_tmpfs_lands_on_disk(tmp_path: Path, tmpfs_dir: Path) -> None:
    host = landing_host(tmp_path)
    host.env |= {"TMPDIR": str(host.root), "CELESTIAL_SSH_TMPFS": str(tmpfs_dir)}
    free = shutil.disk_usage(tmpfs_dir).free
    workdir, landing = made_landing(host, free + (1 << 30))
    assert (workdir.parent, landing) == (host.root, commands.LANDING_DISK)
    assert list(tmpfs_dir.iterdir()) == []


def test_memory_for_the_restore_is_kept_free_beside_the_archive(
    tmp_path: Path, tmpfs_dir: Path
) -> None:
    host = landing_host(tmp_path)
    host.env |= {"TMPDIR": str(host.root), "CELESTIAL_SSH_TMPFS": str(tmpfs_dir)}
    available_kib = int(re.findall(r"MemAvailable:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
    free = shutil.disk_usage(tmpfs_dir).free
    # fits on the tmpfs, but not twice (plus the reserve) in the memory available
    archive = min(free - (64 << 20), available_kib * 1024 // 2)
    if archive <= 0:
        pytest.skip("this machine's /dev/shm is too small for the check")
    workdir, landing = made_landing(host, archive)
    assert (workdir.parent, landing) == (host.root, commands.LANDING_DISK)


@pytest.mark.parametrize("kind", ["not a tmpfs", "missing"])
def test_no_tmpfs_means_landing_on_disk(tmp_path: Path, kind: str) -> None:
    host = landing_host(tmp_path)
    elsewhere = tmp_path / "plain-dir"
    if kind == "not a tmpfs":
        elsewhere.mkdir()
        assert (
            subprocess.run(
                ["stat", "-f", "-c", "%T", str(elsewhere)], capture_output=True, text=True
            ).stdout.strip()
            != "tmpfs"
        )
    host.env |= {"TMPDIR": str(host.root), "CELESTIAL_SSH_TMPFS": str(elsewhere)}
    workdir, landing = made_landing(host, 1 << 20)
    assert (workdir.parent, landing) == (host.root, commands.LANDING_DISK)


def test_landing_without_df_or_awk_lands_on_disk(tmp_path: Path, tmpfs_dir: Path) -> None:
    host = make_host(tmp_path, openssl=False)  # no df, no awk on PATH
    host.env |= {"TMPDIR": str(host.root), "CELESTIAL_SSH_TMPFS": str(tmpfs_dir)}
    workdir, landing = made_landing(host, 1 << 20)
    assert (workdir.parent, landing) == (host.root, commands.LANDING_DISK)


def test_list_workdirs_lists_both_places_once_each(tmp_path: Path, tmpfs_dir: Path) -> None:
    host = landing_host(tmp_path)
    host.env |= {"TMPDIR": str(host.root), "CELESTIAL_SSH_TMPFS": str(tmpfs_dir)}
    on_tmpfs, _ = made_landing(host, 1 << 20)
    on_disk = Path(made_workdir(host, CID))
    listed = host.run(commands.list_workdirs(CID)).stdout.decode().split()
    assert sorted(listed) == sorted([str(on_tmpfs), str(on_disk)])
    # TMPDIR on the tmpfs itself: each directory once
    host.env["TMPDIR"] = str(tmpfs_dir)
    assert host.run(commands.list_workdirs(CID)).stdout.decode().split() == [str(on_tmpfs)]


@pytest.mark.parametrize(
    "output",
    ["/var/tmp/celestial-ssh.x\n", "/var/tmp/celestial-ssh.x\nram\n", "", "a\nb\ndisk\n"],
)
def test_unexpected_landing_output_is_refused(output: str) -> None:
    with pytest.raises(ValueError, match="landing directory"):
        commands.parse_landing_workdir(output)


def test_landing_sizes() -> None:
    assert commands.parse_landing_workdir("/dev/shm/celestial-ssh.a\ntmpfs\n") == (
        "/dev/shm/celestial-ssh.a",
        "tmpfs",
    )
    # a quarter more than the memory in use, and 64 MiB for metadata and file changes
    assert commands.archive_size_estimate(256 << 20) == (320 << 20) + (64 << 20)
    # (the sizes make_landing_workdir passes are pinned by test_script_argv)
    with pytest.raises(ValueError):
        commands.make_landing_workdir(CID, 0)
    with pytest.raises(InvalidInput):
        commands.make_landing_workdir("$(reboot)", 1)


def test_list_workdirs_with_none_left_prints_nothing_and_succeeds(host: FakeHost) -> None:
    host.env["TMPDIR"] = str(host.root / "empty")
    (host.root / "empty").mkdir()
    finished = host.run(commands.list_workdirs(CID))
    assert (finished.status, finished.stdout, finished.stderr) == (0, b"", "")


def test_list_workdirs_takes_a_tmpdir_with_spaces(host: FakeHost) -> None:
    spaced = host.root / "tmp dir"
    spaced.mkdir()
    host.env["TMPDIR"] = str(spaced)
    made = made_workdir(host, CID)
    assert made.startswith(f"{spaced}/celestial-ssh.{CID[:12]}.")
    finished = host.run(commands.list_workdirs(CID))
    assert (finished.status, finished.stdout.decode()) == (0, made + "\n")


def test_checkpoint_stream_copies_the_fifo_to_stdout(host: FakeHost) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)  # bigger than any pipe buffer
    (host.root / "payload").write_bytes(payload)
    stats = '{"podman_checkpoint_duration": 1234}'
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_STDOUT=stats)

    finished = host.run(
        commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions("zstd"))
    )

    assert finished.status == 0, finished.stderr
    assert finished.stdout == payload
    fifo = f"{host.workdir}/checkpoint.fifo"
    assert host.podman_argv == [
        "container",
        "checkpoint",
        "--export",
        fifo,
        "--compress",
        "zstd",
        "--print-stats",
        "--",
        "web",
    ]
    assert (host.workdir / "checkpoint-stats.json").read_text().strip() == stats
    assert not Path(fifo).exists(), "the FIFO is removed at the end"


@pytest.mark.parametrize("status", [1, 125])
def test_checkpoint_stream_ends_when_podman_fails_before_opening_the_fifo(
    host: FakeHost, status: int
) -> None:
    host.env.update(FAKE_PODMAN_STATUS=str(status), FAKE_PODMAN_STDERR="Error: no such container")

    finished = host.run(commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions()))

    assert finished.status == status
    assert finished.stdout == b""
    assert "Error: no such container" in finished.stderr
    assert host.podman_argv is not None
    assert not (host.workdir / "checkpoint.fifo").exists()


def test_checkpoint_stream_passes_podman_status_after_a_partial_export(host: FakeHost) -> None:
    (host.root / "payload").write_bytes(b"half an archive")
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_STATUS="125")

    finished = host.run(commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions()))

    assert finished.status == 125
    # the reader is killed as soon as podman fails, so what got through is racy; it is
    # never more than podman wrote, and the engine discards it on a non-zero status
    assert b"half an archive".startswith(finished.stdout)


def broken_connection(host: FakeHost, argv: list[str], *, read: int = 0) -> int:
    """Run ``argv``, read ``read`` bytes of its stdout, then close stdout and stderr as a
    lost SSH connection does; return its exit status (10 s at most)."""
    refuse_the_real_lock_dir(argv)
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=host.env,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stderr is not None
    if read:
        assert len(process.stdout.read(read)) == read
    process.stdout.close()
    process.stderr.close()
    try:
        return process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"{argv[:2]} hung once its connection was gone")


def test_checkpoint_stream_lets_podman_finish_when_its_stdout_breaks(host: FakeHost) -> None:
    # podman (which never notices that the FIFO's reader died) must still finish its
    # checkpoint instead of blocking on a full FIFO, holding the container's lock
    (host.root / "payload").write_bytes(os.urandom(4 * 1024 * 1024))
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_RDWR="1")
    argv = commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions())
    # (its exit status is nobody's to read: its last line, to the broken stderr, may end
    # the shell with SIGPIPE; what counts is that it ended and what it left for a rollback)
    broken_connection(host, argv, read=64 * 1024)
    assert (host.root / "podman-argv.done").exists(), "podman ran to its end"
    assert (host.workdir / "checkpoint.status").read_text() == "0\n"
    assert not (host.workdir / "checkpoint.fifo").exists()


def test_checkpoint_stream_keeps_podman_output_off_the_channel(host: FakeHost) -> None:
    host.env.update(FAKE_PODMAN_STDOUT="web", FAKE_PODMAN_STDERR="Error: criu failed")
    host.env["FAKE_PODMAN_STATUS"] = "125"
    finished = host.run(commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions()))
    assert finished.status == 125
    assert finished.stdout == b"", "only the archive goes to stdout"
    assert (host.workdir / "checkpoint-stats.json").read_text() == "web\n"
    assert (host.workdir / "checkpoint.err").read_text() == "Error: criu failed\n"
    # podman's errors still reach the engine, after podman has ended, then the digest of
    # what went to stdout (nothing here)
    assert finished.stderr.splitlines() == [
        "Error: criu failed",
        "celestial-ssh-source-bytes 0",
    ]


def test_checkpoint_stream_reports_the_size_of_what_it_streamed(host: FakeHost) -> None:
    payload = os.urandom(2 * 1024 * 1024 + 5)
    (host.root / "payload").write_bytes(payload)
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_STDERR="note")
    finished = host.run(commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions()))
    assert finished.status == 0, finished.stderr
    assert finished.stdout == payload
    assert finished.stderr.splitlines() == ["note", f"celestial-ssh-source-bytes {len(payload)}"]
    assert commands.parse_source_bytes(finished.stderr) == len(payload)


# dash takes descriptors 0-9 only in a redirection; the pipe's may be higher
BASH = shutil.which("bash") or "bash"


def start_announcing(
    host: FakeHost, *, hashed: bool = False
) -> tuple[subprocess.Popen[bytes], int]:
    """Start an announcing checkpoint stream of "web" with descriptor 5 open for writing;
    return it and the read end."""
    argv = commands.checkpoint_stream(
        "web", str(host.workdir), CheckpointOptions(), hashed=hashed, announce=True
    )
    refuse_the_real_lock_dir(argv)
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [BASH, "-c", f'exec "$@" 5>&{write_end} {write_end}>&-', "announcing", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=host.env,
        pass_fds=(write_end,),
        start_new_session=True,
    )
    os.close(write_end)
    return process, read_end


def read_line(fd: int, timeout: float) -> str:
    """One line from ``fd`` within ``timeout`` seconds ('' at its end or on a timeout)."""
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return ""
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    return line.decode()


def test_announcing_checkpoint_stream_says_the_size_before_podman_has_ended(
    host: FakeHost,
) -> None:
    payload = os.urandom(40_000)  # less than a pipe buffer: stdout is read at the end
    (host.root / "payload").write_bytes(payload)
    # podman's tidying up after the export takes its time
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_SLEEP="3")
    process, announced = start_announcing(host)
    try:
        line = read_line(announced, timeout=2.5)
        assert commands.parse_exported(line) == len(payload), line
        # the whole archive, and the end of stdout, come before podman has ended
        assert process.stdout is not None
        assert process.stdout.read() == payload
        assert not (host.root / "podman-argv.done").exists(), "podman had not ended yet"
        out, err = process.communicate(timeout=10)
    finally:
        os.close(announced)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, err
    assert out == b""
    assert host.podman_argv is not None and host.podman_argv[0] == "--log-level=debug"
    # podman's debug output stays out of what the engine is shown; the rest is kept
    assert (host.workdir / "checkpoint.err").read_text() == (
        'time="t" level=warning msg="a warning is kept"\n'
    )
    assert err.decode().splitlines()[-1] == f"celestial-ssh-source-bytes {len(payload)}"
    assert sorted(p.name for p in host.workdir.iterdir() if p.name.endswith(".fifo")) == []


def test_a_hashed_announcing_checkpoint_stream_says_the_digest_with_the_size(
    hashing_host: FakeHost,
) -> None:
    # host to host, the target checks this digest before it restores: it comes with the
    # early announcement, taken as the archive streamed (no second read)
    host = hashing_host
    payload = os.urandom(3 * 1024 * 1024 + 7)
    (host.root / "payload").write_bytes(payload)
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_SLEEP="3")
    process, announced = start_announcing(host, hashed=True)
    digest = hashlib.sha256(payload).hexdigest()
    try:
        assert process.stdout is not None
        streamed = process.stdout.read()  # its end comes with the last byte
        line = read_line(announced, timeout=2.5)
        assert line == f"celestial-ssh-exported {len(payload)} {digest}\n"
        assert commands.parse_exported_archive(line) == (len(payload), digest)
        assert not (host.root / "podman-argv.done").exists(), "podman had not ended yet"
        _, err = process.communicate(timeout=10)
    finally:
        os.close(announced)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, err
    assert streamed == payload
    assert commands.parse_source_sum(err.decode()) == digest  # and at the end, as before
    left = sorted(p.name for p in host.workdir.iterdir())
    assert not [name for name in left if name.endswith((".fifo", ".sha256.done"))]


def test_a_relayed_checkpoint_stream_announces_on_stderr_before_podman_has_ended(
    hashing_host: FakeHost,
) -> None:
    # relayed, stdout is the archive and nobody opens descriptor 5: the announcement goes to
    # stderr, and still comes before podman (here tidying up for 3 s) has ended
    host = hashing_host
    payload = os.urandom(2 * 1024 * 1024 + 3)
    (host.root / "payload").write_bytes(payload)
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_SLEEP="3")
    argv = commands.checkpoint_stream(
        "web",
        str(host.workdir),
        CheckpointOptions(),
        gated=True,
        hashed=True,
        announce_on_stderr=True,
    )
    process = host.start(argv)
    digest = hashlib.sha256(payload).hexdigest()
    assert process.stdin is not None and process.stdout is not None
    assert process.stderr is not None
    try:
        assert process.stdout.readline() == b"ready\n"
        process.stdin.write(b"go\n")
        process.stdin.flush()
        streamed = process.stdout.read()  # its end comes with the last byte
        line = read_line(process.stderr.fileno(), timeout=2.5)
        assert line == f"celestial-ssh-exported {len(payload)} {digest}\n"
        assert not (host.root / "podman-argv.done").exists(), "podman had not ended yet"
        assert process.wait(timeout=10) == 0
        rest = process.stderr.read().decode()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert streamed == payload
    assert host.podman_argv is not None and host.podman_argv[0] == "--log-level=debug"
    # podman's debug output stays out; the script's last line is its marker, as before
    assert rest.splitlines() == [
        'time="t" level=warning msg="a warning is kept"',
        f"celestial-ssh-source-bytes {len(payload)} {digest}",
    ]
    assert stream_markers.without_markers(line + rest) == rest.splitlines()[:1]


def test_a_relayed_checkpoint_stream_says_nothing_early_if_podman_never_says_it(
    host: FakeHost,
) -> None:
    # no "Checkpointed container" (an older podman, or one that failed in its export): no
    # announcement, so the engine waits for the script's end, whose status decides
    (host.root / "payload").write_bytes(b"an archive")
    host.env.update(
        FAKE_PODMAN_PAYLOAD=str(host.root / "payload"),
        FAKE_PODMAN_SILENT="1",
        FAKE_PODMAN_STATUS="125",
    )
    argv = commands.checkpoint_stream(
        "web", str(host.workdir), CheckpointOptions(), hashed=True, announce_on_stderr=True
    )
    finished = host.run(argv)
    assert finished.status == 125
    assert finished.stdout == b"an archive"
    assert commands.EXPORTED_MARKER not in finished.stderr
    assert commands.parse_source_bytes(finished.stderr) == len(b"an archive")


def test_a_hashed_announcement_without_a_hasher_says_the_size_only(tmp_path: Path) -> None:
    # no openssl, no sha256sum: the size alone, which the engine will not restore with
    host = make_host(tmp_path, openssl=False, without=("sha256sum",))
    (host.root / "payload").write_bytes(b"an archive")
    host.env["FAKE_PODMAN_PAYLOAD"] = str(host.root / "payload")
    process, announced = start_announcing(host, hashed=True)
    try:
        line = read_line(announced, timeout=5)
        _, err = process.communicate(timeout=10)
    finally:
        os.close(announced)
    assert process.returncode == 0, err
    assert commands.parse_exported_archive(line) == (len(b"an archive"), None)
    assert commands.parse_source_sum(err.decode()) is None


@pytest.mark.parametrize("status", [0, 125], ids=["succeeds", "fails"])
def test_announcing_checkpoint_stream_says_nothing_if_podman_never_says_it(
    host: FakeHost, status: int
) -> None:
    # an older or newer podman without the words, or one that failed before its export was
    # complete: the coordinator waits for the script's end instead
    (host.root / "payload").write_bytes(b"an archive")
    host.env.update(
        FAKE_PODMAN_PAYLOAD=str(host.root / "payload"),
        FAKE_PODMAN_SILENT="1",
        FAKE_PODMAN_STATUS=str(status),
    )
    process, announced = start_announcing(host)
    try:
        _, err = process.communicate(timeout=10)
        # the script has ended: its end of the pipe is closed, and nothing was said
        assert read_line(announced, timeout=1) == ""
    finally:
        os.close(announced)
    assert process.returncode == status, err
    assert commands.parse_source_bytes(err.decode()) == len(b"an archive")


def test_a_podman_failing_after_its_export_is_announced_and_its_status_passed_on(
    host: FakeHost,
) -> None:
    # podman said its export succeeded, then failed tidying up: the archive is complete
    # (announced), and the script still ends with podman's status for the engine to report
    (host.root / "payload").write_bytes(b"an archive")
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_STATUS="125")
    process, announced = start_announcing(host)
    try:
        line = read_line(announced, timeout=5)
        _, err = process.communicate(timeout=10)
    finally:
        os.close(announced)
    assert commands.parse_exported(line) == len(b"an archive")
    assert process.returncode == 125, err


def test_a_reader_that_could_not_copy_the_archive_announces_nothing(host: FakeHost) -> None:
    # stdout broke (the link died): dd fails and the rest is drained, so podman's export
    # succeeds, but what it said is not on its way to the target
    (host.root / "payload").write_bytes(os.urandom(1 << 20))
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_RDWR="1")
    process, announced = start_announcing(host)
    try:
        assert process.stdout is not None
        process.stdout.close()
        process.wait(timeout=10)
        assert read_line(announced, timeout=1) == ""
    finally:
        os.close(announced)
    assert (host.root / "podman-argv.done").exists(), "podman ran to its end"
    assert (host.workdir / "checkpoint.status").read_text() == "0\n"
    assert not (host.workdir / "dd.ok").exists()


def test_a_process_holding_podmans_stderr_does_not_hold_the_script(host: FakeHost) -> None:
    # something podman started outlives it with podman's stderr open: the loop reading it
    # never sees its end, and is stopped 2 s after podman has ended
    (host.root / "payload").write_bytes(b"an archive")
    host.env.update(
        FAKE_PODMAN_PAYLOAD=str(host.root / "payload"),
        FAKE_PODMAN_STDERR="left behind",
    )
    fake_podman = Path(host.env["PATH"].split(":")[0]) / "podman"
    fake_podman.write_text(
        fake_podman.read_text().replace('exit "${FAKE_PODMAN_STATUS:-0}"', "sleep 30 &\nexit 0")
    )
    started = time.monotonic()
    process, announced = start_announcing(host)
    try:
        out, err = process.communicate(timeout=15)
    finally:
        os.close(announced)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, err
    assert out == b"an archive"
    assert time.monotonic() - started < 10
    assert (host.workdir / "checkpoint.status").read_text() == "0\n"


def test_announcing_checkpoint_stream_lets_podman_finish_when_nobody_listens(
    host: FakeHost,
) -> None:
    # the coordinator's connection is gone before the announcement: the loop that reads
    # podman's stderr must go on reading, or podman would die of SIGPIPE with its lock
    (host.root / "payload").write_bytes(b"an archive")
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_SLEEP="0.3")
    process, announced = start_announcing(host)
    os.close(announced)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert out == b"an archive"
    assert (host.root / "podman-argv.done").exists()
    assert (host.workdir / "checkpoint.status").read_text() == "0\n"
    assert "level=warning" in (host.workdir / "checkpoint.err").read_text()


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        pytest.param("celestial-ssh-source-bytes 1234\n", 1234, id="alone"),
        pytest.param("Error: x\ncelestial-ssh-source-bytes 7\n", 7, id="after-errors"),
        pytest.param("celestial-ssh-source-bytes 5\ncelestial-ssh-source-bytes 7", 7, id="last"),
        pytest.param("celestial-ssh-source-bytes 0\n", 0, id="empty-archive"),
        pytest.param("celestial-ssh-source-bytes \n", None, id="dd-said-nothing"),
        pytest.param("celestial-ssh-source-bytes 12x\n", None, id="not-a-number"),
        pytest.param("celestial-ssh-source-bytes 1 2\n", 1, id="size-and-a-bad-digest"),
        pytest.param(f"celestial-ssh-source-bytes 9 {SHA}\n", 9, id="size-and-digest"),
        pytest.param(f"celestial-ssh-source-bytes 9 {SHA} x\n", None, id="three-fields"),
        pytest.param("x celestial-ssh-source-bytes 3\n", None, id="not-at-line-start"),
        pytest.param("", None, id="nothing"),
    ],
)
def test_parse_source_bytes(stderr: str, expected: int | None) -> None:
    assert commands.parse_source_bytes(stderr) == expected


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        pytest.param(f"celestial-ssh-source-bytes 9 {SHA}\n", SHA, id="digest"),
        pytest.param("celestial-ssh-source-bytes 9\n", None, id="unhashed-stream"),
        pytest.param(f"celestial-ssh-source-bytes 9 {SHA[:-1]}\n", None, id="63-digits"),
        pytest.param(f"celestial-ssh-source-bytes 9 {SHA.upper()}\n", None, id="uppercase"),
        pytest.param("celestial-ssh-source-bytes 9 \n", None, id="empty-digest-file"),
    ],
)
def test_parse_source_sum(stderr: str, expected: str | None) -> None:
    assert commands.parse_source_sum(stderr) == expected


def test_hashed_checkpoint_stream_reports_size_and_digest(hashing_host: FakeHost) -> None:
    host = hashing_host
    payload = os.urandom(2 * 1024 * 1024 + 5)
    (host.root / "payload").write_bytes(payload)
    host.env["FAKE_PODMAN_PAYLOAD"] = str(host.root / "payload")
    argv = commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions(), hashed=True)
    finished = host.run(argv)
    assert finished.status == 0, finished.stderr
    assert finished.stdout == payload
    assert commands.parse_source_bytes(finished.stderr) == len(payload)
    assert commands.parse_source_sum(finished.stderr) == hashlib.sha256(payload).hexdigest()
    assert not (host.workdir / "hash.fifo").exists()


def test_hashed_stream_lets_podman_finish_when_its_stdout_breaks(host: FakeHost) -> None:
    (host.root / "payload").write_bytes(os.urandom(4 * 1024 * 1024))
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_RDWR="1")
    argv = commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions(), hashed=True)
    broken_connection(host, argv, read=64 * 1024)
    assert (host.root / "podman-argv.done").exists(), "podman ran to its end"
    assert (host.workdir / "checkpoint.status").read_text() == "0\n"


def test_hashed_stream_without_a_hasher_still_streams_everything(tmp_path: Path) -> None:
    host = make_host(tmp_path, openssl=False, without=("sha256sum",))
    payload = os.urandom(2 * 1024 * 1024)
    (host.root / "payload").write_bytes(payload)
    host.env["FAKE_PODMAN_PAYLOAD"] = str(host.root / "payload")
    argv = commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions(), hashed=True)
    finished = host.run(argv)
    assert finished.status == 0
    assert finished.stdout == payload
    assert commands.parse_source_sum(finished.stderr) is None  # the engine warns


def test_direct_stream_lands_the_archive_through_the_link(host: FakeHost) -> None:
    payload = os.urandom(1024 * 1024 + 3)
    (host.root / "payload").write_bytes(payload)
    host.env["FAKE_PODMAN_PAYLOAD"] = str(host.root / "payload")
    landed = host.workdir / "landed"
    checkpoint = commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions())
    # the "ssh to the target" is a local command here: what matters is the plumbing
    link = ["sh", "-c", f"echo ready; cat > {landed}"]
    finished = host.run(
        commands.direct_checkpoint_stream(checkpoint, str(host.workdir), link), stdin=b"go\n"
    )
    assert finished.status == 0, finished.stderr
    # the target's greeting comes back through the link, then the link's end
    assert finished.stdout == b"ready\ncelestial-ssh-link-ended 0\n"
    assert landed.read_bytes() == payload
    assert commands.parse_source_bytes(finished.stderr) == len(payload)


def test_an_announcing_direct_stream_says_complete_and_landed_before_podman_has_ended(
    host: FakeHost,
) -> None:
    payload = os.urandom(1024 * 1024 + 3)
    (host.root / "payload").write_bytes(payload)
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_SLEEP="3")
    landed = host.workdir / "landed"
    checkpoint = commands.checkpoint_stream(
        "web", str(host.workdir), CheckpointOptions(), announce=True
    )
    link = ["sh", "-c", f"echo ready; cat > {landed}"]
    process = host.start(commands.direct_checkpoint_stream(checkpoint, str(host.workdir), link))
    try:
        assert process.stdout is not None and process.stdin is not None
        out = process.stdout.fileno()
        assert read_line(out, timeout=5) == "ready\n"
        process.stdin.write(b"go\n")
        process.stdin.flush()
        said = commands.StreamAnnouncements(link_must_end=True)
        while said.restorable_size is None:
            line = read_line(out, timeout=2.5)
            assert line, "the stream said nothing more before podman ended"
            said.add(line)
        assert said.restorable_size == len(payload)
        assert landed.read_bytes() == payload
        assert not (host.root / "podman-argv.done").exists(), "podman had not ended yet"
        _, err = process.communicate(timeout=10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, err


@pytest.mark.parametrize(
    ("lines", "must_end", "size", "failed"),
    [
        pytest.param(["celestial-ssh-exported 9"], False, 9, False, id="tls-exported"),
        pytest.param([], False, None, False, id="tls-nothing"),
        pytest.param(["celestial-ssh-exported 9"], True, None, False, id="ssh-not-landed"),
        pytest.param(
            ["celestial-ssh-exported 9", "celestial-ssh-link-ended 0"], True, 9, False, id="ssh"
        ),
        pytest.param(
            ["celestial-ssh-link-ended 0", "celestial-ssh-exported 9"],
            True,
            9,
            False,
            id="ssh-landed-first",
        ),
        pytest.param(
            ["celestial-ssh-exported 9", "celestial-ssh-link-ended 255"],
            True,
            None,
            True,
            id="ssh-broken-link",
        ),
        pytest.param(
            ["ready", "noise", "celestial-ssh-exported x"], False, None, False, id="noise"
        ),
    ],
)
def test_stream_announcements(
    lines: list[str], must_end: bool, size: int | None, failed: bool
) -> None:
    said = commands.StreamAnnouncements(link_must_end=must_end)
    for line in lines:
        said.add(line)
    assert (said.restorable_size, said.link_failed) == (size, failed)


@pytest.mark.parametrize(
    ("lines", "size", "digest"),
    [
        pytest.param([f"celestial-ssh-exported 9 {SHA}"], 9, SHA, id="with-digest"),
        pytest.param(["celestial-ssh-exported 9"], None, None, id="size-only"),
        pytest.param(
            [f"celestial-ssh-exported 9 {SHA}", "celestial-ssh-link-ended 0"],
            9,
            SHA,
            id="landed-over-ssh",
        ),
    ],
)
def test_announcements_that_must_carry_the_digest(
    lines: list[str], size: int | None, digest: str | None
) -> None:
    # host to host, the restore goes early only with the source's digest to check
    said = commands.StreamAnnouncements(link_must_end=False, digest_required=True)
    for line in lines:
        said.add(line)
    assert (said.restorable_size, said.exported_sha256) == (size, digest)


@pytest.mark.parametrize("damaged", [False, True], ids=["intact", "a-byte-flipped"])
def test_a_direct_archive_is_checked_against_the_sources_digest_before_the_restore(
    tmp_path: Path, damaged: bool
) -> None:
    """--direct as the engine chains it: the source hashes as it streams and announces the
    digest; the target hashes what lands; the gated restore compares them (97: never
    restored)."""
    host = make_host(tmp_path, openssl=True, extra=("tr",))
    payload = bytearray(os.urandom(1024 * 1024 + 3))
    payload[4321] = 0  # at least one byte the damaging link changes
    (host.root / "payload").write_bytes(payload)
    host.env["FAKE_PODMAN_PAYLOAD"] = str(host.root / "payload")
    target = host.root / "celestial-ssh.target"
    target.mkdir()
    checkpoint = commands.checkpoint_stream(
        "web", str(host.workdir), CheckpointOptions(), hashed=True, announce=True
    )
    # the "ssh to the target" is a local command here, its remote command the real lander;
    # a damaging link changes bytes on the way, after the source's hash
    link = commands.land_archive(str(target), hashed=True, announce=True)
    if damaged:
        link = ["sh", "-c", 'tr "\\000" "\\001" | "$@"', "damage", *link]
    streamed = host.run(
        commands.direct_checkpoint_stream(checkpoint, str(host.workdir), link), stdin=b"go\n"
    )
    assert streamed.status == 0, streamed.stderr
    said = commands.StreamAnnouncements(link_must_end=True, digest_required=True)
    for line in streamed.stdout.decode().splitlines():
        said.add(line)
    assert said.restorable_size == len(payload)
    assert said.exported_sha256 == hashlib.sha256(payload).hexdigest()
    assert commands.parse_source_sum(streamed.stderr) == said.exported_sha256
    assert ((target / "checkpoint.tar").read_bytes() == payload) is not damaged
    del host.env["FAKE_PODMAN_PAYLOAD"]
    (host.root / "podman-argv").unlink()
    restored = host.run(
        commands.gated_restore_import(str(target)),
        stdin=commands.restore_go_line(len(payload), said.exported_sha256),
    )
    if damaged:
        assert restored.status == commands.EXIT_ARCHIVE_CHECKSUM_MISMATCH, restored.stderr
        assert host.podman_argv is None, "podman never saw the damaged archive"
    else:
        assert restored.status == 0, restored.stderr
        assert host.podman_argv is not None and "--import" in host.podman_argv


def test_direct_stream_reports_a_broken_link(host: FakeHost) -> None:
    (host.root / "payload").write_bytes(os.urandom(4 * 1024 * 1024))
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_RDWR="1")
    checkpoint = commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions())
    link = ["sh", "-c", "echo 'ssh: connect to host 10.0.0.2 port 22: refused' >&2; exit 255"]
    finished = host.run(
        commands.direct_checkpoint_stream(checkpoint, str(host.workdir), link), stdin=b"go\n"
    )
    assert finished.status == commands.EXIT_DIRECT_LINK_FAILED
    assert "refused" in finished.stderr
    assert "(ssh exit 255)" in finished.stderr
    assert finished.stdout == b"celestial-ssh-link-ended 255\n"
    # podman still finished, so a rollback can restore the source from its checkpoint
    assert (host.workdir / "checkpoint.status").read_text() == "0\n"


def test_direct_stream_reports_a_failed_checkpoint_first(host: FakeHost) -> None:
    host.env.update(FAKE_PODMAN_STDERR="Error: criu failed", FAKE_PODMAN_STATUS="125")
    checkpoint = commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions())
    link = ["sh", "-c", "cat > /dev/null"]
    finished = host.run(
        commands.direct_checkpoint_stream(checkpoint, str(host.workdir), link), stdin=b"go\n"
    )
    assert finished.status == 125
    assert "criu failed" in finished.stderr


@pytest.mark.parametrize("stdin", [b"", b"stop\n"], ids=["connection-closed", "not-go"])
def test_direct_stream_never_told_to_go_checkpoints_nothing(host: FakeHost, stdin: bytes) -> None:
    checkpoint = commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions())
    link = ["sh", "-c", "echo ready; cat > /dev/null"]
    finished = host.run(
        commands.direct_checkpoint_stream(checkpoint, str(host.workdir), link), stdin=stdin
    )
    assert finished.status == commands.EXIT_NOT_STARTED
    assert host.podman_argv is None, "podman never ran"
    assert not (host.workdir / "link.fifo").exists()


@pytest.mark.parametrize("stdin", [b"", b"later\n"], ids=["connection-closed", "not-go"])
def test_gated_checkpoint_stream_waits_for_go(host: FakeHost, stdin: bytes) -> None:
    argv = commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions(), gated=True)
    finished = host.run(argv, stdin=stdin)
    assert finished.status == commands.EXIT_NOT_STARTED
    assert finished.stdout == commands.READY_LINE
    assert host.podman_argv is None
    assert not (host.workdir / "checkpoint.started").exists(), "a rollback sees never-started"


def test_gated_checkpoint_stream_streams_after_go(host: FakeHost) -> None:
    (host.root / "payload").write_bytes(b"archive bytes")
    host.env["FAKE_PODMAN_PAYLOAD"] = str(host.root / "payload")
    argv = commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions(), gated=True)
    finished = host.run(argv, stdin=commands.GO_LINE)
    assert finished.status == 0, finished.stderr
    assert finished.stdout == commands.READY_LINE + b"archive bytes"


@pytest.mark.parametrize("hashed", [True, False])
def test_announcing_lander_says_ready_then_lands(host: FakeHost, hashed: bool) -> None:
    finished = host.run(
        commands.land_archive(str(host.workdir), hashed=hashed, announce=True), stdin=b"abc"
    )
    assert finished.status == 0, finished.stderr
    assert finished.stdout == commands.READY_LINE
    assert (host.workdir / "checkpoint.tar").read_bytes() == b"abc"


def test_checkpoint_stream_with_a_podman_prefix(host: FakeHost) -> None:
    # podman given as a path, as the `podman` argument allows (e.g. a sudo prefix)
    (host.root / "payload").write_bytes(b"archive")
    host.env["FAKE_PODMAN_PAYLOAD"] = str(host.root / "payload")
    (host.root / "bin" / "podman").rename(host.root / "podman")  # not on PATH any more
    finished = host.run(
        commands.checkpoint_stream(
            "web",
            str(host.workdir),
            CheckpointOptions(),
            podman=("env", str(host.root / "podman")),
        )
    )
    assert finished.status == 0, finished.stderr
    assert finished.stdout == b"archive"


def test_checkpoint_stream_exits_96_when_the_fifo_cannot_be_made(host: FakeHost) -> None:
    (host.workdir / "checkpoint.fifo").mkdir()  # mkfifo cannot make it, even as root
    finished = host.run(commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions()))
    assert finished.status == commands.EXIT_FIFO_FAILED == 96
    assert host.podman_argv is None, "podman must not run without the FIFO"
    assert not (host.workdir / "checkpoint.status").exists()


def test_checkpoint_stream_without_its_work_directory_never_runs_podman(host: FakeHost) -> None:
    missing = f"{host.root}/celestial-ssh.missing"
    finished = host.run(commands.checkpoint_stream("web", missing, CheckpointOptions()))
    assert finished.status != 0
    assert "checkpoint.started" in finished.stderr
    assert host.podman_argv is None, "podman must not run without the FIFO"


def test_checkpoint_stream_exits_96_without_its_work_directory(host: FakeHost) -> None:
    # the start marker is written with 'true', a regular builtin: its failed redirection
    # does not end the shell (as ':' would, with the shell's own status), so '|| exit 96' runs
    missing = f"{host.root}/celestial-ssh.missing"
    finished = host.run(commands.checkpoint_stream("web", missing, CheckpointOptions()))
    assert finished.status == commands.EXIT_FIFO_FAILED == 96
    assert finished.stdout == b""
    assert host.podman_argv is None
    assert not Path(missing).exists()


def test_checkpoint_stream_exits_96_when_the_start_marker_cannot_be_written(
    host: FakeHost,
) -> None:
    (host.workdir / "checkpoint.started").mkdir()  # cannot be opened for writing, even as root
    finished = host.run(commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions()))
    assert finished.status == 96
    assert host.podman_argv is None
    assert not (host.workdir / "checkpoint.fifo").exists(), "it stopped before the FIFO"
    assert not (host.workdir / "checkpoint.status").exists()


@pytest.mark.parametrize("status", [0, 125])
def test_checkpoint_stream_marks_its_start_and_podman_status(host: FakeHost, status: int) -> None:
    (host.root / "payload").write_bytes(b"archive")
    host.env.update(FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_STATUS=str(status))
    finished = host.run(commands.checkpoint_stream("web", str(host.workdir), CheckpointOptions()))
    assert finished.status == status
    assert (host.workdir / "checkpoint.started").read_bytes() == b""
    assert (host.workdir / "checkpoint.status").read_text() == f"{status}\n"
    # what the rollback's wait then reports, at once
    waited = host.run(commands.wait_for_checkpoint_end(str(host.workdir), timeout_s=5))
    assert (waited.status, waited.stdout) == (0, f"{status}\n".encode())


def test_land_archive_stores_and_hashes_stdin(hashing_host: FakeHost) -> None:
    host = hashing_host
    payload = os.urandom(200_000)
    finished = host.run(commands.land_archive(str(host.workdir)), stdin=payload)
    assert finished.status == 0, finished.stderr
    assert finished.stdout == b""
    archive = host.workdir / "checkpoint.tar"
    assert archive.read_bytes() == payload
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    digest = (host.workdir / "checkpoint.sha256").read_text()
    assert digest.split()[0] == hashlib.sha256(payload).hexdigest()


def test_land_archive_fails_when_the_archive_cannot_be_written(hashing_host: FakeHost) -> None:
    host = hashing_host
    (host.workdir / "checkpoint.tar").mkdir()  # tee cannot open it, even as root
    finished = host.run(commands.land_archive(str(host.workdir)), stdin=b"data")
    assert finished.status != 0


def land(host: FakeHost, payload: bytes) -> None:
    finished = host.run(commands.land_archive(str(host.workdir)), stdin=payload)
    assert finished.status == 0, finished.stderr


def restore_of(host: FakeHost, payload: bytes, **options: Any) -> list[str]:
    """``restore_import`` of ``payload``, landed on ``host``, with its size and digest."""
    return commands.restore_import(
        str(host.workdir),
        expected_bytes=len(payload),
        expected_sha256=hashlib.sha256(payload).hexdigest(),
        **options,
    )


def test_restore_import_runs_podman_when_size_and_digest_match(hashing_host: FakeHost) -> None:
    host = hashing_host
    payload = b"a checkpoint archive\n" * 100
    land(host, payload)
    host.env["FAKE_PODMAN_STDOUT"] = '{"podman_restore_duration": 99}'

    finished = host.run(
        restore_of(host, payload, name="web2", options=CheckpointOptions(tcp_established=True))
    )

    assert finished.status == 0, finished.stderr
    assert finished.stdout.decode().strip() == '{"podman_restore_duration": 99}'
    # the PID the script wrote is podman's own: it execs podman
    podman_pid = (host.root / "podman-argv.pid").read_text()
    assert (host.workdir / "restore.pid").read_text() == podman_pid
    assert host.podman_argv == [
        "container",
        "restore",
        "--import",
        f"{host.workdir}/checkpoint.tar",
        "--print-stats",
        "--name",
        "web2",
        "--tcp-established",
    ]


def test_restore_import_keeps_podman_output_in_files(host: FakeHost) -> None:
    payload = b"archive"
    land(host, payload)
    host.env.update(FAKE_PODMAN_STDOUT='{"restore_time": 5}', FAKE_PODMAN_STDERR="a warning")
    finished = host.run(restore_of(host, payload))
    assert finished.status == 0, finished.stderr
    assert (host.workdir / "restore.out").read_text() == '{"restore_time": 5}\n'
    assert (host.workdir / "restore.err").read_text() == "a warning\n"
    # and passes them on once podman has ended
    assert finished.stdout == b'{"restore_time": 5}\n'
    assert finished.stderr == "a warning\n"


def test_restore_import_survives_a_broken_connection(host: FakeHost) -> None:
    # the connection dies while podman restores: podman must still run to its end
    payload = b"archive"
    land(host, payload)
    host.env.update(FAKE_PODMAN_SLEEP="0.5", FAKE_PODMAN_STDOUT='{"restore_time": 5}')
    host.env["FAKE_PODMAN_STDERR"] = "done"
    argv = restore_of(host, payload)
    assert broken_connection(host, argv) == 0
    assert (host.root / "podman-argv.done").exists(), "podman ran to its end"
    assert (host.workdir / "restore.out").read_text() == '{"restore_time": 5}\n'
    podman_pid = (host.root / "podman-argv.pid").read_text()
    assert (host.workdir / "restore.pid").read_text() == podman_pid


def test_restore_import_passes_podman_status(host: FakeHost) -> None:
    payload = b"archive"
    land(host, payload)
    host.env.update(FAKE_PODMAN_STATUS="125", FAKE_PODMAN_STDERR="Error: name in use")
    finished = host.run(restore_of(host, payload))
    assert finished.status == 125
    assert "Error: name in use" in finished.stderr


@pytest.mark.parametrize("sent", [0, 6, 8, 1 << 40])
def test_restore_import_exits_98_on_a_size_mismatch(host: FakeHost, sent: int) -> None:
    payload = b"archive"  # 7 bytes landed
    land(host, payload)
    finished = host.run(
        commands.restore_import(
            str(host.workdir),
            expected_bytes=sent,
            expected_sha256=hashlib.sha256(payload).hexdigest(),
        )
    )
    assert finished.status == commands.EXIT_ARCHIVE_SIZE_MISMATCH == 98
    assert f"archive on this host has 7 bytes, {sent} were sent" in finished.stderr
    assert host.podman_argv is None


def test_restore_import_exits_98_when_nothing_landed(host: FakeHost) -> None:
    finished = host.run(
        commands.restore_import(str(host.workdir), expected_bytes=7, expected_sha256=SHA)
    )
    assert finished.status == 98
    assert host.podman_argv is None


def test_restore_import_exits_97_on_a_checksum_mismatch(hashing_host: FakeHost) -> None:
    host = hashing_host
    payload = b"archive"
    land(host, payload)
    wrong = hashlib.sha256(b"archivE").hexdigest()
    finished = host.run(
        commands.restore_import(
            str(host.workdir), expected_bytes=len(payload), expected_sha256=wrong
        )
    )
    assert finished.status == commands.EXIT_ARCHIVE_CHECKSUM_MISMATCH == 97
    assert hashlib.sha256(payload).hexdigest() in finished.stderr
    assert wrong in finished.stderr
    assert host.podman_argv is None


def test_restore_import_exits_97_when_the_digest_file_is_missing(host: FakeHost) -> None:
    payload = b"archive"
    land(host, payload)
    (host.workdir / "checkpoint.sha256").unlink()
    finished = host.run(restore_of(host, payload))
    assert finished.status == 97
    assert host.podman_argv is None


def test_stream_land_restore_end_to_end(host: FakeHost) -> None:
    """The three scripts chained as the engine chains them, with a local pipe as 'SSH'."""
    payload = os.urandom(1024 * 1024)
    (host.root / "payload").write_bytes(payload)
    host.env["FAKE_PODMAN_PAYLOAD"] = str(host.root / "payload")
    source = host.workdir
    target = host.root / "celestial-ssh.target"
    target.mkdir()

    streamed = host.run(commands.checkpoint_stream("web", str(source), CheckpointOptions()))
    assert streamed.status == 0
    del host.env["FAKE_PODMAN_PAYLOAD"]
    landed = host.run(commands.land_archive(str(target)), stdin=streamed.stdout)
    assert landed.status == 0
    restored = host.run(
        commands.restore_import(
            str(target),
            expected_bytes=len(streamed.stdout),
            expected_sha256=hashlib.sha256(streamed.stdout).hexdigest(),
        )
    )
    assert restored.status == 0, restored.stderr
    assert (target / "checkpoint.tar").read_bytes() == payload


# -- the rollback's waits and the migration lock, executed ---------------------------------------
@pytest.fixture
def waiting_host(tmp_path: Path) -> FakeHost:
    return make_host(tmp_path, openssl=False)


def timed(host: FakeHost, argv: list[str]) -> tuple[Finished, float]:
    started = time.monotonic()
    finished = host.run(argv)
    return finished, time.monotonic() - started


def test_wait_for_checkpoint_end_without_the_start_marker(waiting_host: FakeHost) -> None:
    host = waiting_host
    finished, seconds = timed(
        host, commands.wait_for_checkpoint_end(str(host.workdir), timeout_s=5, start_grace_s=1)
    )
    assert (finished.status, finished.stdout) == (0, b"never-started\n")
    # it gives a script that was just forked a grace second to write its start marker
    assert 1 <= seconds < 2


def test_wait_for_checkpoint_end_sees_a_start_marker_that_comes_late(
    waiting_host: FakeHost,
) -> None:
    host = waiting_host

    def script_starts_then_ends() -> None:
        time.sleep(0.4)
        (host.workdir / "checkpoint.started").touch()
        time.sleep(0.4)
        (host.workdir / "checkpoint.status").write_text("0\n")

    writer = threading.Thread(target=script_starts_then_ends)
    writer.start()
    finished, _ = timed(
        host, commands.wait_for_checkpoint_end(str(host.workdir), timeout_s=5, start_grace_s=2)
    )
    writer.join()
    assert (finished.status, finished.stdout) == (0, b"0\n")


def test_wait_for_checkpoint_end_waits_for_the_status(waiting_host: FakeHost) -> None:
    host = waiting_host
    (host.workdir / "checkpoint.started").touch()

    def podman_ends() -> None:  # the checkpoint script writing its status, 0.5 s later
        (host.workdir / "status.tmp").write_text("125\n")
        (host.workdir / "status.tmp").rename(host.workdir / "checkpoint.status")

    writer = threading.Timer(0.5, podman_ends)
    writer.start()
    try:
        finished, seconds = timed(
            host, commands.wait_for_checkpoint_end(str(host.workdir), timeout_s=5)
        )
    finally:
        writer.join()
    assert (finished.status, finished.stdout) == (0, b"125\n"), finished.stderr
    assert 0.4 < seconds < 3


def test_wait_for_checkpoint_end_exits_1_on_timeout(waiting_host: FakeHost) -> None:
    host = waiting_host
    (host.workdir / "checkpoint.started").touch()  # started, and never ends
    finished, seconds = timed(
        host, commands.wait_for_checkpoint_end(str(host.workdir), timeout_s=1)
    )
    assert (finished.status, finished.stdout) == (1, b"")
    assert 0.9 < seconds < 4


def test_wait_for_restore_end_without_a_pid_file(waiting_host: FakeHost) -> None:
    host = waiting_host
    finished, seconds = timed(host, commands.wait_for_restore_end(str(host.workdir), timeout_s=5))
    assert finished.status == 0
    assert seconds < 1


def test_wait_for_restore_end_when_the_restore_is_gone(waiting_host: FakeHost) -> None:
    host = waiting_host
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its PID names no process any more
    (host.workdir / "restore.pid").write_text(f"{gone.pid}\n")
    finished, seconds = timed(host, commands.wait_for_restore_end(str(host.workdir), timeout_s=5))
    assert finished.status == 0, finished.stderr
    assert seconds < 1


def running(seconds: int) -> subprocess.Popen[bytes]:
    """A process standing in for podman restore, reaped as soon as it ends (no zombie)."""
    process = subprocess.Popen(["sleep", str(seconds)])
    threading.Thread(target=process.wait, daemon=True).start()
    return process


def test_wait_for_restore_end_waits_while_the_restore_runs(waiting_host: FakeHost) -> None:
    host = waiting_host
    restore = running(1)
    (host.workdir / "restore.pid").write_text(f"{restore.pid}\n")
    finished, seconds = timed(host, commands.wait_for_restore_end(str(host.workdir), timeout_s=5))
    assert finished.status == 0, finished.stderr
    assert restore.poll() is not None, "it returned only once the restore had ended"
    assert 0.5 < seconds < 3


def test_wait_for_restore_end_fails_on_timeout(waiting_host: FakeHost) -> None:
    host = waiting_host
    restore = running(30)
    try:
        (host.workdir / "restore.pid").write_text(f"{restore.pid}\n")
        finished, seconds = timed(
            host, commands.wait_for_restore_end(str(host.workdir), timeout_s=1)
        )
    finally:
        restore.kill()
    assert finished.status == 1
    assert 0.9 < seconds < 4


@pytest.fixture
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LOCK_DIR moved under tmp_path: /run/celestial-ssh is a real, shared system path."""
    moved = tmp_path / "run-here" / "celestial-ssh"
    monkeypatch.setattr(podman_commands, "LOCK_DIR", str(moved))
    assert commands.hold_migration_lock(CID)[4] == str(moved)
    return moved


@pytest.fixture
def locking_host(tmp_path: Path, lock_dir: Path) -> FakeHost:
    host = make_host(tmp_path, openssl=False, extra=("flock", "mkdir"))
    host.env["TMPDIR"] = str(tmp_path / "tmp")  # must play no part any more
    return host


def hold(host: FakeHost, argv: list[str]) -> subprocess.Popen[bytes]:
    """Start the lock holder and wait (5 s at most) for the line it prints."""
    refuse_the_real_lock_dir(argv)
    holder = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=host.env,
        start_new_session=True,
    )
    assert holder.stdout is not None
    ready, _, _ = select.select([holder.stdout], [], [], 5)
    if not ready:
        os.killpg(holder.pid, signal.SIGKILL)
        pytest.fail("the lock holder printed nothing within 5 s")
    return holder


def release(holder: subprocess.Popen[bytes]) -> int:
    """Close its stdin, as closing the SSH channel does, and return its exit status."""
    assert holder.stdin is not None
    holder.stdin.close()
    try:
        return holder.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        pytest.fail("the lock holder did not end when its stdin closed")


def test_hold_migration_lock_is_exclusive_while_stdin_stays_open(
    locking_host: FakeHost, lock_dir: Path
) -> None:
    host = locking_host
    argv = commands.hold_migration_lock(CID)
    assert not lock_dir.exists()
    first = hold(host, argv)
    try:
        assert first.stdout is not None
        assert first.stdout.readline() == b"locked\n"
        # the lock directory is made on first use, private to its owner (root on a host)
        assert stat.S_IMODE(lock_dir.stat().st_mode) == 0o700
        assert (lock_dir / f"lock.{CID}").is_file()
        assert sorted(path.name for path in lock_dir.iterdir()) == [f"lock.{CID}"]
        # a second migration of the same container is refused at once, printing nothing
        second, seconds = timed(host, argv)
        assert (second.status, second.stdout) == (commands.LOCK_HELD_EXIT, b"")
        assert seconds < 2
        # another container's lock is independent
        other = hold(host, commands.hold_migration_lock("web"))
        assert other.stdout is not None and other.stdout.readline() == b"locked\n"
        assert release(other) == 0
        assert first.poll() is None, "the first one still holds its lock"
    finally:
        assert release(first) == 0
    # closing the first one's stdin released it
    third = hold(host, argv)
    assert third.stdout is not None and third.stdout.readline() == b"locked\n"
    assert release(third) == 0


def test_hold_migration_lock_keeps_an_existing_lock_directory(
    locking_host: FakeHost, lock_dir: Path
) -> None:
    lock_dir.mkdir(parents=True, mode=0o700)
    (lock_dir / "lock.web").touch()  # left by an earlier migration: harmless, reused
    holder = hold(locking_host, commands.hold_migration_lock("web"))
    assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
    assert release(holder) == 0
    assert sorted(path.name for path in lock_dir.iterdir()) == ["lock.web"]


def test_hold_migration_lock_fails_when_the_lock_directory_cannot_be_made(
    locking_host: FakeHost, lock_dir: Path
) -> None:
    lock_dir.parent.write_text("")  # a file where the parent directory should be
    finished = locking_host.run(commands.hold_migration_lock(CID))
    # neither "locked" nor 75 nor 127: the engine reports a failed lock command
    assert finished.status not in (0, commands.LOCK_HELD_EXIT, 127)
    assert finished.stdout == b""
    assert "mkdir" in finished.stderr


def test_hold_migration_lock_without_flock_exits_127(tmp_path: Path, lock_dir: Path) -> None:
    # the engine warns and migrates without a lock on exit 127 (flock(1) is not installed)
    host = make_host(tmp_path, openssl=False, extra=("mkdir",))
    finished = host.run(commands.hold_migration_lock(CID))
    assert (finished.status, finished.stdout) == (127, b"")
    assert "flock" in finished.stderr
    assert lock_dir.is_dir(), "it got as far as flock"


# -- the link probe -------------------------------------------------------------------------
def test_probe_sender_waits_for_go_then_sends_zeros(host: FakeHost) -> None:
    finished = host.run(commands.probe_sender(3 << 20, 10), stdin=commands.GO_LINE)
    assert finished.stdout == commands.READY_LINE + bytes(3 << 20)


def test_probe_sender_without_go_sends_nothing(host: FakeHost) -> None:
    finished = host.run(commands.probe_sender(3 << 20, 10), stdin=b"")
    assert finished.status == commands.EXIT_NOT_STARTED
    assert finished.stdout == commands.READY_LINE


def test_probe_sender_stops_after_its_time(host: FakeHost) -> None:
    # 1 TiB of zeros cannot be read in 0.2 s: the probe ends on time, not on size
    started = time.monotonic()
    process = subprocess.Popen(
        commands.probe_sender(1 << 40, 0.2),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=host.env,
        start_new_session=True,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(commands.GO_LINE)
    process.stdin.close()
    received = 0
    while chunk := process.stdout.read(1 << 20):
        received += len(chunk)
    assert process.wait(10) is not None
    assert received > len(commands.READY_LINE)
    assert time.monotonic() - started < 5


def test_direct_probe_times_zeros_through_the_link(host: FakeHost) -> None:
    link = ["sh", "-c", "echo ready; exec cat > /dev/null"]
    finished = host.run(
        commands.direct_probe(2 << 20, 10, str(host.workdir), link), stdin=commands.GO_LINE
    )
    assert finished.status == 0, finished.stderr
    assert finished.stdout.startswith(commands.READY_LINE)
    measured = commands.parse_probe_result(finished.stdout.decode())
    assert measured is not None
    assert measured[0] == 2 << 20 and measured[1] > 0
    assert not (host.workdir / "probe.fifo").exists()


def test_direct_probe_never_told_to_go_ends_cleanly(host: FakeHost) -> None:
    link = ["sh", "-c", "echo ready; exec cat > /dev/null"]
    finished = host.run(commands.direct_probe(2 << 20, 10, str(host.workdir), link), stdin=b"")
    assert finished.status == commands.EXIT_NOT_STARTED
    assert not (host.workdir / "probe.fifo").exists()


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("ready\ncelestial-ssh-probe 1000 500000\n", (1000, 0.5)),
        ("celestial-ssh-probe 1000 0\n", None),
        ("celestial-ssh-probe x 5\n", None),
        ("celestial-ssh-probe 1000\n", None),
        ("", None),
    ],
)
def test_parse_probe_result(stdout: str, expected: tuple[int, float] | None) -> None:
    assert commands.parse_probe_result(stdout) == expected


# -- the gated restore ------------------------------------------------------------------------
def test_restore_go_line() -> None:
    assert commands.restore_go_line(4096, SHA) == f"go 4096 {SHA}\n".encode()
    assert commands.restore_go_line(4096, None) == b"go 4096 -\n"
    with pytest.raises(ValueError):
        commands.restore_go_line(4096, SHA.upper())
    with pytest.raises(ValueError):
        commands.restore_go_line("4096; reboot", None)  # type: ignore[arg-type]


def test_gated_restore_runs_podman_only_after_go(hashing_host: FakeHost) -> None:
    host = hashing_host
    payload = b"the archive"
    (host.workdir / "checkpoint.tar").write_bytes(payload)
    (host.workdir / "checkpoint.sha256").write_text(hashlib.sha256(payload).hexdigest() + " *-\n")
    host.env["FAKE_PODMAN_STDOUT"] = '{"stats": 1}'
    argv = commands.gated_restore_import(str(host.workdir))
    go = commands.restore_go_line(len(payload), hashlib.sha256(payload).hexdigest())
    finished = host.run(argv, stdin=go)
    assert finished.status == 0, finished.stderr
    assert finished.stdout == commands.READY_LINE + b'{"stats": 1}\n'
    assert host.podman_argv is not None and "--import" in host.podman_argv


@pytest.mark.parametrize(
    ("stdin", "status"),
    [
        pytest.param(b"", commands.EXIT_NOT_STARTED, id="connection-closed"),
        pytest.param(b"stop 11 -\n", commands.EXIT_NOT_STARTED, id="not-go"),
        pytest.param(b"go 11; -\n", commands.EXIT_NOT_STARTED, id="size-not-a-number"),
        pytest.param(b"go 11 $(reboot)\n", commands.EXIT_NOT_STARTED, id="digest-not-hex"),
        pytest.param(b"go 12 -\n", commands.EXIT_ARCHIVE_SIZE_MISMATCH, id="wrong-size"),
        pytest.param(b"go 11 " + b"0" * 64 + b"\n", 97, id="wrong-digest"),
    ],
)
def test_gated_restore_refuses_without_a_valid_go(
    hashing_host: FakeHost, stdin: bytes, status: int
) -> None:
    host = hashing_host
    (host.workdir / "checkpoint.tar").write_bytes(b"the archive")
    (host.workdir / "checkpoint.sha256").write_text("f" * 64 + " *-\n")
    finished = host.run(commands.gated_restore_import(str(host.workdir)), stdin=stdin)
    assert finished.status == status
    assert host.podman_argv is None, "podman never ran"


# -- the landing watch of a --direct stream --------------------------------------------------
def test_the_landing_watch_says_ready_then_the_size_as_it_grows(tmp_path: Path) -> None:
    archive = tmp_path / commands.ARCHIVE_NAME
    watch = subprocess.Popen(
        commands.landed_bytes_watch(str(tmp_path), 0.05, 30), stdout=subprocess.PIPE
    )
    try:
        assert watch.stdout is not None
        assert watch.stdout.readline() == commands.READY_LINE
        assert watch.stdout.readline() == b"0\n"  # nothing has landed yet
        archive.write_bytes(b"x" * 1234)
        while (line := watch.stdout.readline()) == b"0\n":
            pass
        assert line == b"1234\n"
        # its reader gone, it ends at its next line (SIGPIPE) instead of running on
        watch.stdout.close()
        assert watch.wait(timeout=5) != 0
    finally:
        watch.kill()


def test_the_landing_watch_ends_at_its_limit(tmp_path: Path) -> None:
    started = time.monotonic()
    finished = subprocess.run(
        commands.landed_bytes_watch(str(tmp_path), 0.2, 1), capture_output=True, timeout=10
    )
    assert finished.returncode == 0 and time.monotonic() - started < 5
    assert finished.stdout.startswith(commands.READY_LINE)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (b"", (None, b"")),
        (b"ready\n", (None, b"")),
        (b"0\n4096\n", (4096, b"")),
        (b"0\n4096\n81", (4096, b"81")),  # an unfinished line waits for its end
        (b"12\nstat: garbage\n", (12, b"")),
    ],
)
def test_landed_sizes_are_read_from_complete_lines(
    output: bytes, expected: tuple[int | None, bytes]
) -> None:
    assert commands.parse_landed_sizes(output) == expected


def test_a_landing_watch_needs_a_positive_interval_and_limit() -> None:
    with pytest.raises(ValueError):
        commands.landed_bytes_watch("/var/tmp/celestial-ssh.abc", 0, 10)
    with pytest.raises(InvalidInput):
        commands.landed_bytes_watch("/var/tmp/x; rm -rf /", 0.25, 10)
