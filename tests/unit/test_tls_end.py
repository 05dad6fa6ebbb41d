"""``--tls`` on hosts without socat: the tool each host offers, the ``tls_end.py`` commands,
and the python ends for real on loopback.

The links between every mix of socat and python ends run in test_tls_link (its helpers
are used here); this file holds what only the python end does: it outlasts strangers on
its port, ends with the coordinator's channel, refuses a stream cut short, and keeps to
the Python of the oldest hosts it may meet (3.6, RHEL 8).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from celestial_ssh import commands, host_scripts, tls_link
from celestial_ssh.errors import InvalidInput
from tests.unit.test_tls_link import (
    ALL_PAIRS,
    PYTHON,
    WORKDIR,
    Listener,
    _both_ends,
    _end,
    _kill_group,
    _land_hashed,
    _stream,
)

SCRIPT = "tls_end.py"


def _python_3_6() -> str | None:
    """A Python 3.6 with ssl, where this machine has one (pyenv's, say): RHEL 8's
    python3 is 3.6."""
    home = Path.home() / ".pyenv" / "versions"
    for candidate in [shutil.which("python3.6"), *map(str, home.glob("3.6*/bin/python3.6"))]:
        if candidate is None:
            continue
        check = "import ssl, sys; sys.exit(sys.version_info[:2] != (3, 6))"
        if subprocess.run([candidate, "-I", "-c", check], capture_output=True).returncode == 0:
            return candidate
    return None


PYTHON_3_6 = _python_3_6()


# -- which tool a host has --------------------------------------------------------------------
def _fake_bin(tmp_path: Path, programs: dict[str, str]) -> str:
    """A PATH of one directory holding ``programs``: name -> "real" (a link to this
    Python) or a shell script's body."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name, body in programs.items():
        program = directory / name
        if body == "real":
            program.symlink_to(sys.executable)
        else:
            program.write_text(f"#!/bin/sh\n{body}\n")
            program.chmod(0o755)
    return str(directory)


@pytest.mark.parametrize(
    ("programs", "printed", "tool"),
    [
        ({"socat": "exit 0", "python3": "real"}, "python3\n", "python3"),
        ({"socat": "exit 0"}, "socat\n", "socat"),
        ({"python3": "real"}, "python3\n", "python3"),
        # a python3 whose ssl does not import (or older than 3.6) is no use
        ({"python3": "exit 1"}, "", None),
        ({"python3": "exit 1", "socat": "exit 0"}, "socat\n", "socat"),
        ({}, "", None),
    ],
    ids=["both", "socat", "python", "python-without-ssl", "old-python-and-socat", "neither"],
)
def test_a_host_offers_python_else_socat(
    tmp_path: Path, programs: dict[str, str], printed: str, tool: str | None
) -> None:
    argv = tls_link.tls_tool()
    shell = shutil.which(argv[0])
    assert shell is not None
    env = {"PATH": _fake_bin(tmp_path, programs)}
    out = subprocess.run([shell, *argv[1:]], env=env, capture_output=True, text=True, check=True)
    assert out.stdout == printed
    assert tls_link.parse_tls_tool(out.stdout) == tool


@pytest.mark.parametrize(
    ("output", "tool"),
    [
        ("socat\n", "socat"),
        ("python3\n", "python3"),
        ("  python3 ", "python3"),
        ("", None),
        ("\n", None),
        ("perl\n", None),
        ("socat python3\n", None),
    ],
)
def test_the_tool_answer_is_read_strictly(output: str, tool: str | None) -> None:
    assert tls_link.parse_tls_tool(output) == tool


# -- the commands -------------------------------------------------------------------------------
def _tls_end(*args: str) -> list[str]:
    return ["python3", "-I", "-c", host_scripts.script_text(SCRIPT), *args]


@pytest.mark.parametrize(
    ("options", "argv"),
    [
        (
            {"address": "127.0.0.12", "output": f"{WORKDIR}/checkpoint.tar", "port": 4433},
            _tls_end(
                "listen",
                f"{WORKDIR}/tls-listen.log",
                f"{WORKDIR}/checkpoint.tar",
                "-",
                "360",
                "127.0.0.12",
                "4433",
                "60",
                f"{WORKDIR}/tls.pem",
                f"{WORKDIR}/tls-peer.crt",
            ),
        ),
        (
            {
                "address": "fd00:0::12",
                "output": f"{WORKDIR}/checkpoint.tar",
                "digest": f"{WORKDIR}/checkpoint.sha256",
            },
            _tls_end(
                "listen",
                f"{WORKDIR}/tls-listen.log",
                f"{WORKDIR}/checkpoint.tar",
                f"{WORKDIR}/checkpoint.sha256",
                "360",
                "fd00::12",  # no brackets: a plain address, not socat's host
                "0",
                "60",
                f"{WORKDIR}/tls.pem",
                f"{WORKDIR}/tls-peer.crt",
            ),
        ),
    ],
    ids=["ipv4", "ipv6-hashed"],
)
def test_the_python_listener_command(options: dict[str, object], argv: list[str]) -> None:
    built = tls_link.listen(
        WORKDIR,
        stall_timeout_s=300,
        accept_timeout_s=60,
        tool="python3",
        **options,  # type: ignore[arg-type]
    )
    assert built == argv


@pytest.mark.parametrize(
    ("address", "connect_timeout_s", "argv"),
    [
        (
            "10.0.0.6",
            30,
            _tls_end(
                "connect",
                "10.0.0.6",
                "4433",
                "30",
                "300",
                f"{WORKDIR}/tls.pem",
                f"{WORKDIR}/tls-peer.crt",
                "celestial-ssh-target",
                f"{WORKDIR}/link.fifo",
            ),
        ),
        (
            "::1",
            2.5,
            _tls_end(
                "connect",
                "::1",
                "4433",
                "2.5",
                "300",
                f"{WORKDIR}/tls.pem",
                f"{WORKDIR}/tls-peer.crt",
                "celestial-ssh-target",
                f"{WORKDIR}/link.fifo",
            ),
        ),
    ],
)
def test_the_python_link_command(address: str, connect_timeout_s: float, argv: list[str]) -> None:
    fifo = commands.direct_link_fifo(WORKDIR)
    built = tls_link.link(
        WORKDIR,
        address,
        4433,
        fifo,
        stall_timeout_s=300,
        connect_timeout_s=connect_timeout_s,
        tool="python3",
    )
    assert built == argv
    # the program direct_stream.sh names when the link fails is a plain word
    assert commands.DirectLink(tuple(built), program="python3").program == "python3"


@pytest.mark.parametrize("tool", ["", "openssl", "python", "Socat"])
def test_an_unknown_tool_is_a_programming_error(tool: str) -> None:
    with pytest.raises(ValueError, match="TLS tool"):
        tls_link.listen(
            WORKDIR, "::1", "/dev/null", stall_timeout_s=1, accept_timeout_s=1, tool=tool
        )
    with pytest.raises(ValueError, match="TLS tool"):
        tls_link.link(WORKDIR, "::1", 1, "/tmp/f", stall_timeout_s=1, tool=tool)


@pytest.mark.parametrize(
    "workdir", ["relative", "/tmp/a,b", "/tmp/a b", "/tmp/$(x)", "/tmp/../etc"]
)
def test_python_ends_refuse_the_paths_socat_ends_refuse(workdir: str) -> None:
    with pytest.raises(InvalidInput):
        tls_link.listen(
            workdir, "::1", "/dev/null", stall_timeout_s=1, accept_timeout_s=1, tool=PYTHON
        )
    with pytest.raises(InvalidInput):
        tls_link.link(workdir, "::1", 1, "/tmp/f", stall_timeout_s=1, tool=PYTHON)


def test_the_script_is_sent_without_its_comments_and_keeps_to_python_3_6() -> None:
    text = host_scripts.script_text(SCRIPT)
    assert host_scripts.run_python_script(SCRIPT, "a", "b") == _tls_end("a", "b")
    assert not any(line.lstrip().startswith("#") or not line.strip() for line in text.splitlines())
    compile(text, SCRIPT, "exec")
    # the grammar of the oldest Python it meets (RHEL 8's 3.6, as near as ast goes)...
    tree = ast.parse(text, feature_version=(3, 7))
    # ...and no annotation Python 3.6 to 3.8 would fail to evaluate when a function is
    # defined (``list[str]``, ``int | None``): plain names, or strings
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            arguments = node.args.args + node.args.kwonlyargs
            for annotation in [a.annotation for a in arguments] + [node.returns]:
                assert annotation is None or isinstance(
                    annotation, ast.Name | ast.Attribute | ast.Constant
                ), f"{node.name}: {ast.unparse(annotation)}"
        assert not isinstance(node, ast.NamedExpr | ast.Match)
        if isinstance(node, ast.ImportFrom):
            assert node.module != "__future__"


def test_the_script_spells_its_markers_as_the_library_reads_them() -> None:
    tree = ast.parse(host_scripts.script_text(SCRIPT))
    constants = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    assert constants["LISTENING_MARKER"] == tls_link.LISTENING_MARKER
    assert constants["HANDSHAKE_DONE"] == tls_link.HANDSHAKE_DONE
    assert constants["EXIT_CANNOT_LISTEN"] == tls_link.EXIT_TLS_LISTEN_FAILED
    assert constants["UNPRIVILEGED_USER"] == tls_link.UNPRIVILEGED_USER


# -- the python end, for real -----------------------------------------------------------------
def _landed_and_log(target_dir: str) -> tuple[Path, Path]:
    return Path(target_dir) / "checkpoint.tar", Path(target_dir) / "tls-listen.log"


def test_strangers_on_the_port_do_not_end_the_python_listener(tmp_path: Path) -> None:
    credentials, stranger = tls_link.make_credentials(), tls_link.make_credentials()
    source_dir = _end(tmp_path / "source", credentials.source, credentials.target)
    target_dir = _end(tmp_path / "target", credentials.target, credentials.source)
    # a client that knows the target's certificate but holds a key of its own
    stranger_dir = _end(tmp_path / "stranger", stranger.source, credentials.target)
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(1 << 20))
    injected = tmp_path / "injected"
    injected.write_bytes(b"injected")
    landed, log = _landed_and_log(target_dir)
    listener = Listener(target_dir, str(landed), tool=PYTHON)
    impostor = source = None
    try:
        # a scanner: plain TCP and garbage
        with socket.create_connection(("127.0.0.1", listener.port)) as scanner:
            scanner.sendall(b"GET / HTTP/1.0\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):
                assert scanner.recv(100) is not None  # answered with an alert, or reset
        # a wrong certificate: its link fails before ready (TLS 1.2)
        impostor = _stream(stranger_dir, listener.port, injected, tool=PYTHON)
        out, _ = impostor.communicate(commands.GO_LINE, timeout=15)
        assert impostor.returncode == commands.EXIT_DIRECT_LINK_FAILED
        assert b"ready" not in out
        assert listener.process.poll() is None, "a stranger ended the listener"
        # one that connects and stays silent holds no one up
        with socket.create_connection(("127.0.0.1", listener.port)):
            source = _stream(source_dir, listener.port, payload, tool=PYTHON)
            out, err = source.communicate(commands.GO_LINE, timeout=15)
            assert source.returncode == 0, err
        status, listener_err = listener.finish()
        assert status == 0, listener_err
        assert landed.read_bytes() == payload.read_bytes()
        refusals = [line for line in log.read_text().splitlines() if " refused " in line]
        # the scanner and the impostor (the silent one may be refused too, or not yet)
        assert len(refusals) >= 2, log.read_text()
        assert any("certificate" in refusal for refusal in refusals), refusals
    finally:
        listener.stop()
        for process in (impostor, source):
            if process is not None:
                _kill_group(process)


def test_the_python_listener_ends_with_the_coordinators_channel(tmp_path: Path) -> None:
    _source_dir, target_dir = _both_ends(tmp_path)
    landed, log = _landed_and_log(target_dir)
    listener = Listener(target_dir, str(landed), tool=PYTHON)
    try:
        with socket.create_connection(("127.0.0.1", listener.port)):
            deadline = time.monotonic() + 5
            while "accepting connection" not in log.read_text():
                assert time.monotonic() < deadline, "the listener never accepted"
                time.sleep(0.05)
            assert listener.process.stdin is not None
            listener.process.stdin.close()
            # one process: once it has ended nothing holds the port
            assert listener.process.wait(timeout=5) == 143
        assert "the coordinator's channel closed" in log.read_text()
    finally:
        listener.stop()


def test_a_python_listener_that_cannot_write_the_archive_fails_before_it_listens(
    tmp_path: Path,
) -> None:
    _source_dir, target_dir = _both_ends(tmp_path)
    landed, _log = _landed_and_log(target_dir)
    landed.mkdir()  # cannot be opened for writing, even as root
    argv = tls_link.listen(
        target_dir, "127.0.0.1", str(landed), stall_timeout_s=5, accept_timeout_s=5, tool=PYTHON
    )
    done = subprocess.run(argv, input=b"", capture_output=True, timeout=15)
    assert done.returncode == tls_link.EXIT_TLS_LISTEN_FAILED
    assert done.stdout == b""
    assert b"writing the archive failed" in done.stderr


def test_a_python_listener_that_cannot_bind_says_so(tmp_path: Path) -> None:
    _source_dir, target_dir = _both_ends(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        argv = tls_link.listen(
            target_dir,
            "127.0.0.1",
            "/dev/null",
            port=taken.getsockname()[1],
            stall_timeout_s=5,
            accept_timeout_s=5,
            tool=PYTHON,
        )
        done = subprocess.run(argv, input=b"", capture_output=True, timeout=15)
    assert done.returncode == tls_link.EXIT_TLS_LISTEN_FAILED
    assert b"cannot listen on 127.0.0.1" in done.stderr


def test_a_python_listener_nobody_reaches_gives_up_at_its_accept_timeout(tmp_path: Path) -> None:
    _source_dir, target_dir = _both_ends(tmp_path)
    argv = tls_link.listen(
        target_dir, "127.0.0.1", "/dev/null", stall_timeout_s=5, accept_timeout_s=1, tool=PYTHON
    )
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        started = time.monotonic()
        assert process.wait(timeout=10) == 1
        assert time.monotonic() - started < 5
        assert process.stderr is not None
        assert b"no peer with the expected certificate" in process.stderr.read()
    finally:
        _kill_group(process)


def test_a_stream_cut_without_tls_close_is_no_end_for_the_python_listener(
    tmp_path: Path,
) -> None:
    # the digest would refuse the archive anyway; the listener says why, at once
    source_dir, target_dir = _both_ends(tmp_path)
    landed, _log = _landed_and_log(target_dir)
    listener = Listener(target_dir, str(landed), tool=PYTHON)
    try:
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.minimum_version = client.maximum_version = ssl.TLSVersion.TLSv1_2
        client.load_cert_chain(f"{source_dir}/{tls_link.IDENTITY_FILE}")
        client.load_verify_locations(f"{source_dir}/{tls_link.PEER_FILE}")
        raw = socket.create_connection(("127.0.0.1", listener.port))
        with client.wrap_socket(raw, server_hostname=tls_link.TARGET_NAME) as connection:
            connection.sendall(b"half an archive")
            # closed without close_notify: a cut, not an end
            raw_copy = socket.socket(fileno=os.dup(connection.fileno()))
            raw_copy.shutdown(socket.SHUT_RDWR)
            raw_copy.close()
        status, err = listener.finish()
        assert status == 1
        assert "the connection broke after 15 bytes" in err
    finally:
        listener.stop()


def test_a_python_link_with_nothing_to_send_gives_up_at_its_idle_timeout(tmp_path: Path) -> None:
    source_dir, target_dir = _both_ends(tmp_path)
    listener = Listener(target_dir, "/dev/null", tool=PYTHON)
    fifo = commands.direct_link_fifo(source_dir)
    os.mkfifo(fifo)
    link = subprocess.Popen(
        tls_link.link(source_dir, "127.0.0.1", listener.port, fifo, stall_timeout_s=1, tool=PYTHON),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        # a writer that opens the FIFO and writes nothing
        writer = os.open(fifo, os.O_WRONLY)
        try:
            assert link.wait(timeout=10) == 1
        finally:
            os.close(writer)
        assert link.stderr is not None
        said = link.stderr.read().decode()
        assert tls_link.HANDSHAKE_DONE in said
        assert "nothing to send for 1s (after 0 bytes)" in said
    finally:
        _kill_group(link)
        listener.stop()


@pytest.mark.skipif(PYTHON_3_6 is None, reason="no Python 3.6 on this machine")
@pytest.mark.parametrize(("listen_tool", "link_tool"), ALL_PAIRS[1:])
def test_the_python_ends_run_on_python_3_6(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listen_tool: str, link_tool: str
) -> None:
    assert PYTHON_3_6 is not None
    directory = tmp_path / "python-3.6"
    directory.mkdir()
    (directory / "python3").symlink_to(PYTHON_3_6)
    # the ends run "python3": this one, for the listener and for the source's script
    monkeypatch.setenv("PATH", f"{directory}:{os.environ['PATH']}")
    version = subprocess.run(["python3", "-V"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("Python 3.6.")
    source_dir, target_dir = _both_ends(tmp_path)
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(3 << 20))
    status, listener_err, _ = _land_hashed(target_dir, source_dir, payload, listen_tool, link_tool)
    assert status == 0, listener_err
    assert (Path(target_dir) / "checkpoint.tar").read_bytes() == payload.read_bytes()
    expected = hashlib.sha256(payload.read_bytes()).hexdigest()
    assert (Path(target_dir) / "checkpoint.sha256").read_text().split()[0] == expected
    if link_tool == PYTHON:
        assert "(TLSv1.2)" in (Path(source_dir) / tls_link.LINK_LOG).read_text()
