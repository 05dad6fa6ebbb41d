"""The exact commands celestial-ssh runs on a host, and what its ``sh -c`` scripts do.

The scripts are also executed here, under the local /bin/sh, against a fake ``podman`` put
first on PATH: it records its argv and behaves as each test asks (write bytes to the
``--export`` path, print stats, exit with a chosen status, never open the FIFO...).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from celestial_ssh import commands
from celestial_ssh.commands import CheckpointOptions
from celestial_ssh.errors import InvalidInput

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
            commands.make_workdir(),
            [
                "sh",
                "-c",
                'umask 077 && mktemp -d "${TMPDIR:-/var/tmp}/celestial-ssh.XXXXXXXXXX"',
            ],
            id="make_workdir",
        ),
        pytest.param(
            commands.remove_workdir(WORKDIR), ["rm", "-rf", "--", WORKDIR], id="remove_workdir"
        ),
    ],
)
def test_builder_argv(argv: list[str], expected: list[str]) -> None:
    assert argv == expected


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


# -- the script texts ----------------------------------------------------------------------
def test_checkpoint_stream_script_text() -> None:
    argv = commands.checkpoint_stream(
        "web", WORKDIR, CheckpointOptions(compression="zstd", tcp_established=True)
    )
    assert argv[:2] == ["sh", "-c"]
    assert len(argv) == 3
    script = argv[2].splitlines()
    fifo = f"{WORKDIR}/checkpoint.fifo"
    assert script[0] == f"mkfifo -m 600 {fifo} || exit 96"
    assert script[1] == f"cat {fifo} &"
    assert (
        f"podman container checkpoint --export {fifo} --compress zstd --print-stats "
        f"--tcp-established -- web > {WORKDIR}/checkpoint-stats.json"
    ) in script
    assert script[-1] == 'exit "$status"'


def test_checkpoint_stream_uses_the_podman_prefix() -> None:
    script = commands.checkpoint_stream(
        CID, WORKDIR, CheckpointOptions(), podman=("sudo", "-n", "--", "podman")
    )[2]
    assert f"sudo -n -- podman container checkpoint --export {WORKDIR}/checkpoint.fifo" in script
    assert f"-- {CID} >" in script


def test_land_archive_script_text() -> None:
    argv = commands.land_archive(WORKDIR)
    assert argv[:2] == ["sh", "-c"]
    script = argv[2]
    archive, digest = f"{WORKDIR}/checkpoint.tar", f"{WORKDIR}/checkpoint.sha256"
    assert script.startswith("umask 077\n")
    # openssl when the host has it, coreutils otherwise; tee's own status kept in a file
    assert "then hasher='openssl dgst -sha256 -r'; else hasher=sha256sum; fi" in script
    status = f"{WORKDIR}/tee.status"
    assert f"{{ tee {archive}; echo $? > {status}; }} | $hasher > {digest}" in script
    assert script.endswith(f'[ "$(cat {status})" = 0 ]')


@pytest.mark.parametrize(
    ("kwargs", "podman_tail"),
    [
        pytest.param({}, "--print-stats", id="plain"),
        pytest.param({"name": "web2"}, "--print-stats --name web2", id="name"),
        pytest.param(
            {"options": CheckpointOptions(tcp_established=True)},
            "--print-stats --tcp-established",
            id="tcp",
        ),
        pytest.param(
            {"name": "web2", "options": CheckpointOptions(tcp_established=True, file_locks=True)},
            "--print-stats --name web2 --tcp-established --file-locks",
            id="name-tcp-locks",
        ),
    ],
)
def test_restore_import_script_text(kwargs: dict, podman_tail: str) -> None:
    argv = commands.restore_import(WORKDIR, expected_bytes=4096, expected_sha256=SHA, **kwargs)
    assert argv[:2] == ["sh", "-c"]
    script = argv[2]
    assert f"size=$(wc -c < {WORKDIR}/checkpoint.tar) || exit 98" in script
    assert 'if [ "$size" -ne 4096 ]; then' in script
    assert f"sum=$(cut -d ' ' -f 1 < {WORKDIR}/checkpoint.sha256)" in script
    assert f'if [ "$sum" != {SHA} ]; then' in script
    assert script.splitlines()[-1] == (
        f"exec podman container restore --import {WORKDIR}/checkpoint.tar {podman_tail}"
    )


def test_scripts_quote_paths_they_did_not_make() -> None:
    # validate_remote_path allows '+', which is harmless, but the value is still passed
    # through quote(): the script must hold exactly the path, as one word
    workdir = "/var/tmp/celestial-ssh.a+b"
    script = commands.land_archive(workdir)[2]
    assert f"tee {workdir}/checkpoint.tar" in script


# -- executing the scripts against a fake podman ---------------------------------------------
FAKE_PODMAN = r"""#!/bin/sh
# a fake podman: records its argv (one per line), then does what FAKE_* asks
: > "$FAKE_PODMAN_ARGV"
for arg in "$@"; do printf '%s\n' "$arg" >> "$FAKE_PODMAN_ARGV"; done
export_path=
previous=
for arg in "$@"; do
  if [ "$previous" = --export ]; then export_path=$arg; fi
  previous=$arg
done
if [ -n "$FAKE_PODMAN_PAYLOAD" ]; then cat "$FAKE_PODMAN_PAYLOAD" > "$export_path"; fi
if [ -n "$FAKE_PODMAN_STDOUT" ]; then printf '%s\n' "$FAKE_PODMAN_STDOUT"; fi
if [ -n "$FAKE_PODMAN_STDERR" ]; then printf '%s\n' "$FAKE_PODMAN_STDERR" >&2; fi
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

    def run(self, argv: list[str], stdin: bytes = b"", timeout: float = 10) -> Finished:
        """Run ``argv`` in its own process group; kill the group if it hangs."""
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            start_new_session=True,
        )
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


# what the scripts may use on a host, besides podman and the shell's builtins
TOOLS = ("sh", "tee", "sha256sum", "cat", "wc", "cut", "mkfifo", "rm", "mktemp", "env")


def make_host(tmp_path: Path, *, openssl: bool) -> FakeHost:
    """A host whose PATH holds only the fake podman and TOOLS (and openssl if asked)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (*TOOLS, "openssl") if openssl else TOOLS:
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"needs {tool}")
        (bin_dir / tool).symlink_to(found)
    podman = bin_dir / "podman"
    podman.write_text(FAKE_PODMAN)
    podman.chmod(0o755)
    workdir = tmp_path / "celestial-ssh.work"
    workdir.mkdir(mode=0o700)
    commands.validate_remote_path(str(workdir))  # tmp_path must be a path the builders take
    env = {"PATH": str(bin_dir), "FAKE_PODMAN_ARGV": str(tmp_path / "podman-argv"), "LC_ALL": "C"}
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
    missing = f"{host.root}/celestial-ssh.missing"
    finished = host.run(commands.checkpoint_stream("web", missing, CheckpointOptions()))
    assert finished.status == commands.EXIT_FIFO_FAILED == 96
    assert host.podman_argv is None, "podman must not run without the FIFO"


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


def test_restore_import_runs_podman_when_size_and_digest_match(hashing_host: FakeHost) -> None:
    host = hashing_host
    payload = b"a checkpoint archive\n" * 100
    land(host, payload)
    host.env["FAKE_PODMAN_STDOUT"] = '{"podman_restore_duration": 99}'

    finished = host.run(
        commands.restore_import(
            str(host.workdir),
            expected_bytes=len(payload),
            expected_sha256=hashlib.sha256(payload).hexdigest(),
            name="web2",
            options=CheckpointOptions(tcp_established=True),
        )
    )

    assert finished.status == 0, finished.stderr
    assert finished.stdout.decode().strip() == '{"podman_restore_duration": 99}'
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


def test_restore_import_passes_podman_status(host: FakeHost) -> None:
    payload = b"archive"
    land(host, payload)
    host.env.update(FAKE_PODMAN_STATUS="125", FAKE_PODMAN_STDERR="Error: name in use")
    finished = host.run(
        commands.restore_import(
            str(host.workdir),
            expected_bytes=len(payload),
            expected_sha256=hashlib.sha256(payload).hexdigest(),
        )
    )
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
    finished = host.run(
        commands.restore_import(
            str(host.workdir),
            expected_bytes=len(payload),
            expected_sha256=hashlib.sha256(payload).hexdigest(),
        )
    )
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
