"""The local lab: commands on its hosts, the wait for end-to-end tests, the workload image,
the containers and files the benchmark makes, and the ssh-agent lent to celestial-ssh."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from .settings import LAB_CONFIG, MEMTICK_SOURCE, REPO, SCRATCH, SOURCE, TARGET, log


def ssh_argv(host: str, command: Sequence[str], config: Path) -> list[str]:
    return ["ssh", "-F", str(config), host, "--", shlex.join(command)]


def on_host(
    host: str,
    command: Sequence[str],
    *,
    config: Path = LAB_CONFIG,
    timeout: float = 120,
    check: bool = True,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        ssh_argv(host, command, config),
        input=input_bytes,
        stdin=None if input_bytes is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{host}: {shlex.join(command)} failed ({result.returncode}): "
            f"{result.stderr.decode(errors='replace').strip()}"
        )
    return result


def text_of(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode(errors="replace")


def e2e_running() -> list[str]:
    """Command lines of pytest runs that include the end-to-end tests (`make test`/`make e2e`)."""
    found = subprocess.run(["pgrep", "-af", "pytest"], capture_output=True, text=True, check=False)
    busy = []
    for line in found.stdout.splitlines():
        pid, _, command = line.partition(" ")
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        words = command.split()
        if any(w.rstrip("/") == "tests" or "tests/e2e" in w for w in words):
            busy.append(line)
    return busy


def wait_for_quiet_lab() -> float:
    """Never measure while end-to-end tests run on the same lab; returns the seconds waited."""
    started = time.monotonic()
    noted = 0.0
    while busy := e2e_running():
        if time.monotonic() - noted > 120:
            log(f"end-to-end tests are running ({busy[0]}); waiting for them to finish")
            noted = time.monotonic()
        time.sleep(10)
    return time.monotonic() - started


def ssh_options_of(host: str, config: Path) -> dict[str, list[str]]:
    out = subprocess.run(
        ["ssh", "-G", "-F", str(config), host], capture_output=True, text=True, check=True
    ).stdout
    options: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key.lower(), []).append(value)
    return options


def sshd_address(host: str) -> tuple[str, int]:
    """Where ``host``'s sshd listens, as the lab's ssh_config says."""
    options = ssh_options_of(host, LAB_CONFIG)
    return options["hostname"][0], int(options["port"][0])


def image_name() -> str:
    """A bench-private image named after memtick.c's hash, so edits get their own image.

    The lab's own localhost/memtick:latest is built once by lab.sh and left alone: rebuilding it
    would give it a new ID and break everybody else's migrations of it (the target's copy
    would no longer match).
    """
    digest = hashlib.sha256(MEMTICK_SOURCE.read_bytes()).hexdigest()[:12]
    return f"localhost/bench-memtick:{digest}"


def image_id(host: str, image: str) -> str | None:
    result = on_host(
        host, ["podman", "image", "inspect", "--format", "{{.Id}}", image], check=False
    )
    if result.returncode != 0:
        return None
    return text_of(result).strip() or None


def ensure_image(image: str) -> None:
    """Build the image on lab-a the way lab/lab.sh does, and load the same one on lab-b.

    lab-b gets it before any run, so every mode restores onto a host that has the image (the
    tool would stage it otherwise, the baselines could not restore at all).
    """
    if image_id(SOURCE, image) is None:
        with tempfile.TemporaryDirectory(prefix="bench-build-", dir="/var/tmp") as build:
            subprocess.run(
                ["gcc", "-O2", "-static", "-o", f"{build}/memtick", str(MEMTICK_SOURCE)], check=True
            )
            subprocess.run(
                ["tar", "-C", build, "-cf", f"{build}/rootfs.tar", "memtick"], check=True
            )
            tarball = Path(build, "rootfs.tar").read_bytes()
        on_host(
            SOURCE,
            ["podman", "import", "--quiet", "--change", 'ENTRYPOINT ["/memtick"]', "-", image],
            input_bytes=tarball,
        )
        log(f"built {image} on {SOURCE} from {MEMTICK_SOURCE.relative_to(REPO)}")
    wanted = image_id(SOURCE, image)
    present = image_id(TARGET, image)
    if present == wanted:
        return
    if present is not None:
        on_host(TARGET, ["podman", "image", "rm", "--force", image])
    pipeline = (
        f"{shlex.join(ssh_argv(SOURCE, ['podman', 'image', 'save', image], LAB_CONFIG))} | "
        f"{shlex.join(ssh_argv(TARGET, ['podman', 'image', 'load', '--quiet'], LAB_CONFIG))}"
    )
    subprocess.run(["sh", "-c", pipeline], check=True, capture_output=True, timeout=300)
    if image_id(TARGET, image) != wanted:
        raise RuntimeError(f"{TARGET}: loading {image} did not keep its ID")
    log(f"loaded {image} on {TARGET}")


class Lab:
    """Every container and file the benchmark makes, so that it can remove all of them."""

    def __init__(self) -> None:
        self.containers: set[str] = set()
        self.files: set[str] = set()
        # the environment of every celestial-ssh run (with the bench's ssh-agent)
        self.tool_env: dict[str, str] | None = None

    def new_name(self, *parts: object) -> str:
        name = "-".join(["bench", *(str(p) for p in parts), uuid.uuid4().hex[:6]])
        self.containers.add(name)
        return name

    def new_file(self, directory: str, stem: str, suffix: str) -> str:
        path = f"{directory}/{stem}-{uuid.uuid4().hex[:8]}{suffix}"
        self.files.add(path)
        return path

    def remove_container(self, name: str) -> None:
        for host in (SOURCE, TARGET):
            on_host(host, ["podman", "rm", "--force", "--time", "0", name], check=False)
        self.containers.discard(name)

    def remove_files(self, *paths: str) -> None:
        # the lab hosts share this machine's filesystem, so the files are removed here
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self.files.discard(path)

    def clean_up(self) -> None:
        for name in sorted(self.containers):
            with contextlib.suppress(Exception):
                self.remove_container(name)
        self.remove_files(*sorted(self.files))


@contextlib.contextmanager
def ssh_agent(lab: Lab) -> Iterator[None]:
    """A bench-private ssh-agent holding the lab's key, lent to every celestial-ssh run.

    ``--direct`` makes the source log in to the target with the coordinator's forwarded
    agent; without one it falls back to relaying and the row would measure nothing new.
    The lab's ssh_config says IdentitiesOnly, so the agent changes nothing else.
    """
    keys = ssh_options_of(SOURCE, LAB_CONFIG).get("identityfile", [])
    socket_path = f"{SCRATCH}/bench-agent-{uuid.uuid4().hex[:8]}.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", socket_path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(socket_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": socket_path}
        added = subprocess.run(
            ["ssh-add", "-q", *(os.path.expanduser(k) for k in keys)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode == 0:
            lab.tool_env = env
        else:
            log(f"no ssh-agent for --direct ({added.stderr.strip()}); it may fall back to relaying")
        yield
    finally:
        lab.tool_env = None
        agent.terminate()
        try:
            agent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
