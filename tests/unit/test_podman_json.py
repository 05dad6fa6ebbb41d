"""Reading what podman 4.3 and CRIU print."""

from __future__ import annotations

import json

import pytest

from celestial_ssh.podman_json import (
    ContainerInfo,
    ContainerListing,
    OutputError,
    flatten_stats,
    parse_container_inspect,
    parse_container_list,
    parse_criu_version,
    parse_image_id,
    parse_podman_info,
    parse_stats,
    version_tuple,
)

CID = "8b1f6a0c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a"
IMAGE_ID = "a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6"

# `podman container inspect --format json web` (podman 4.3.1, trimmed)
INSPECT = json.dumps(
    [
        {
            "Id": CID,
            "Created": "2024-05-02T10:11:12.123456789Z",
            "Path": "/docker-entrypoint.sh",
            "Args": ["nginx", "-g", "daemon off;"],
            "State": {
                "OciVersion": "1.0.2-dev",
                "Status": "running",
                "Running": True,
                "Paused": False,
                "Pid": 4242,
                "ConmonPid": 4240,
                "ExitCode": 0,
                "Checkpointed": False,
            },
            "Image": IMAGE_ID,
            "ImageName": "docker.io/library/nginx:1.25",
            "Name": "web",
            "RestartCount": 0,
            "Driver": "overlay",
        }
    ],
    indent=4,
)

# `podman container ls --all --no-trunc --format json` (podman 4.3.1, trimmed)
LISTING = json.dumps(
    [
        {
            "AutoRemove": False,
            "Command": ["nginx", "-g", "daemon off;"],
            "Created": "2024-05-02T10:11:12.123456789Z",
            "Exited": False,
            "Id": CID,
            "Image": "docker.io/library/nginx:1.25",
            "ImageID": IMAGE_ID,
            "Names": ["web"],
            "Pid": 4242,
            "State": "running",
            "Status": "Up 3 minutes ago",
        },
        {
            "Id": "f" * 64,
            "Names": ["db", "db-alias"],
            "State": "exited",
            "Status": "Exited (0) 2 hours ago",
        },
    ]
)

# `podman info --format json` (podman 4.3.1 on Debian 12, trimmed)
INFO = json.dumps(
    {
        "host": {
            "arch": "amd64",
            "cgroupManager": "systemd",
            "cgroupVersion": "v2",
            "ociRuntime": {"name": "crun", "package": "crun_1.8.1-1", "path": "/usr/bin/crun"},
            "os": "linux",
        },
        "store": {"graphRoot": "/var/lib/containers/storage", "graphDriverName": "overlay"},
        "version": {"APIVersion": "4.3.1", "Version": "4.3.1", "GoVersion": "go1.19.8"},
    }
)

# `podman container checkpoint --print-stats` (podman 4.3.1)
CHECKPOINT_STATS = {
    "podman_checkpoint_duration": 360749,
    "container_statistics": [
        {
            "Id": CID,
            "runtime_checkpoint_duration": 337361,
            "criu_statistics": {
                "freezing_time": 1149,
                "frozen_time": 29373,
                "memdump_time": 13461,
                "memwrite_time": 5467,
                "pages_scanned": 18812,
                "pages_written": 2627,
            },
        }
    ],
}

# `podman container restore --print-stats` (podman 4.3.1)
RESTORE_STATS = {
    "podman_restore_duration": 1285460,
    "container_statistics": [
        {
            "Id": CID,
            "runtime_restore_duration": 1072830,
            "criu_statistics": {
                "forking_time": 17,
                "restore_time": 117040,
                "pages_restored": 2627,
            },
        }
    ],
}


# -- inspect ------------------------------------------------------------------------------
def test_parse_container_inspect() -> None:
    info = parse_container_inspect(INSPECT)
    assert info == ContainerInfo(
        id=CID,
        name="web",
        status="running",
        image_id=IMAGE_ID,
        image_name="docker.io/library/nginx:1.25",
        pid=4242,
    )
    assert info.is_running


@pytest.mark.parametrize(
    ("state", "status", "running"),
    [
        pytest.param(
            {"Status": "exited", "Running": False, "Pid": 0}, "exited", False, id="exited"
        ),
        pytest.param({"Status": "paused", "Pid": 77}, "paused", False, id="paused"),
        pytest.param({"Status": "Running", "Pid": 5}, "running", True, id="case-folded"),
        pytest.param({"Status": "created", "Pid": None}, "created", False, id="pid-null"),
        pytest.param({}, "unknown", False, id="no-status"),
        pytest.param(None, "unknown", False, id="state-null"),
    ],
)
def test_parse_container_inspect_states(state: dict | None, status: str, running: bool) -> None:
    text = json.dumps([{"Id": CID, "Name": "/web", "State": state}])
    info = parse_container_inspect(text)
    assert info.status == status
    assert info.is_running is running
    assert info.name == "web"  # a docker-style leading slash is dropped
    assert (info.image_id, info.image_name) == ("", "")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[]", id="empty-list"),
        pytest.param("{}", id="object"),
        pytest.param("Error: no such container web", id="not-json"),
        pytest.param("", id="empty"),
    ],
)
def test_parse_container_inspect_refuses(text: str) -> None:
    with pytest.raises(OutputError):
        parse_container_inspect(text)


def test_parse_container_inspect_error_quotes_the_output() -> None:
    with pytest.raises(OutputError, match="no such container"):
        parse_container_inspect("Error: no such container web")


# -- ls -----------------------------------------------------------------------------------
def test_parse_container_list() -> None:
    assert parse_container_list(LISTING) == [
        ContainerListing(id=CID, names=("web",), state="running"),
        ContainerListing(id="f" * 64, names=("db", "db-alias"), state="exited"),
    ]


@pytest.mark.parametrize("text", ["", "\n", "  \n"])
def test_parse_container_list_of_nothing(text: str) -> None:
    assert parse_container_list(text) == []


def test_parse_container_list_empty_json() -> None:
    assert parse_container_list("[]") == []


def test_parse_container_list_names_null() -> None:
    assert parse_container_list('[{"Id": "abc", "Names": null}]') == [
        ContainerListing(id="abc", names=(), state="")
    ]


@pytest.mark.parametrize("text", ['{"Id": "abc"}', "not json"])
def test_parse_container_list_refuses(text: str) -> None:
    with pytest.raises(OutputError):
        parse_container_list(text)


# -- image --------------------------------------------------------------------------------
def test_parse_image_id() -> None:
    text = json.dumps([{"Id": IMAGE_ID, "Digest": "sha256:0d17", "Size": 191_000_000}])
    assert parse_image_id(text) == IMAGE_ID


@pytest.mark.parametrize("text", ["[]", "{}", "Error: docker.io/x: image not known"])
def test_parse_image_id_refuses(text: str) -> None:
    with pytest.raises(OutputError):
        parse_image_id(text)


# -- info ---------------------------------------------------------------------------------
def test_parse_podman_info() -> None:
    info = parse_podman_info(INFO)
    assert info.version == "4.3.1"
    assert info.arch == "amd64"
    assert info.runtime == "crun"
    assert info.cgroup_version == "v2"
    assert info.graph_root == "/var/lib/containers/storage"


def test_parse_podman_info_tolerates_missing_sections() -> None:
    info = parse_podman_info("{}")
    assert (info.version, info.arch, info.runtime, info.cgroup_version, info.graph_root) == (
        "",
        "",
        "",
        "",
        "",
    )


def test_parse_podman_info_refuses_garbage() -> None:
    with pytest.raises(OutputError):
        parse_podman_info("Error: cannot connect to Podman")


# -- stats --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        pytest.param(json.dumps(CHECKPOINT_STATS), id="bare"),
        pytest.param(json.dumps(CHECKPOINT_STATS, indent=4), id="indented"),
        pytest.param(
            'time="2024-05-02T10:11:12Z" level=warning msg="cgroup v1 is deprecated"\n'
            + json.dumps(CHECKPOINT_STATS, indent=2)
            + "\n"
            + CID
            + "\n",
            id="noise-around",
        ),
    ],
)
def test_parse_stats(text: str) -> None:
    assert parse_stats(text) == CHECKPOINT_STATS


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param(CID + "\n", id="only-an-id"),
        pytest.param("Error: checkpointing failed }{", id="braces-backwards"),
        pytest.param('{"podman_checkpoint_duration": ', id="truncated"),
        pytest.param("{not json}", id="not-json"),
        pytest.param("[{}]", id="list"),
    ],
)
def test_parse_stats_of_garbage_is_empty(text: str) -> None:
    assert parse_stats(text) == {}


def test_flatten_checkpoint_stats() -> None:
    assert flatten_stats(CHECKPOINT_STATS) == {
        "podman_checkpoint_duration": 360749,
        "runtime_checkpoint_duration": 337361,
        "freezing_time": 1149,
        "frozen_time": 29373,
        "memdump_time": 13461,
        "memwrite_time": 5467,
        "pages_scanned": 18812,
        "pages_written": 2627,
    }


def test_flatten_restore_stats() -> None:
    flat = flatten_stats(RESTORE_STATS)
    assert flat == {
        "podman_restore_duration": 1285460,
        "runtime_restore_duration": 1072830,
        "forking_time": 17,
        "restore_time": 117040,
        "pages_restored": 2627,
    }
    assert "Id" not in flat  # strings are not numbers


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({}, id="empty"),
        pytest.param({"container_statistics": None}, id="null-list"),
        pytest.param({"container_statistics": [{"Id": CID, "criu_statistics": None}]}, id="null"),
    ],
)
def test_flatten_stats_of_nothing(document: dict) -> None:
    assert flatten_stats(document) == {}


def test_flatten_stats_keeps_floats() -> None:
    assert flatten_stats({"podman_checkpoint_duration": 1.5}) == {"podman_checkpoint_duration": 1.5}


def test_parse_then_flatten_round_trip_of_noisy_output() -> None:
    text = "WARN[0000] something\n" + json.dumps(RESTORE_STATS) + "\n"
    assert flatten_stats(parse_stats(text))["restore_time"] == 117040


# -- CRIU ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "version"),
    [
        pytest.param("Version: 3.17.1\n", "3.17.1", id="3.17.1"),
        pytest.param("Version: 4.0\nGitID: v4.0-23-gd0b5d5e2b\n", "4.0", id="with-gitid"),
        pytest.param("Warn: something\nVersion:   3.11\n", "3.11", id="noise-first"),
        pytest.param("criu: command not found\n", None, id="not-installed"),
        pytest.param("", None, id="empty"),
        pytest.param("  Version: 3.17\n", None, id="indented-is-not-a-version-line"),
    ],
)
def test_parse_criu_version(text: str, version: str | None) -> None:
    assert parse_criu_version(text) == version


@pytest.mark.parametrize(
    ("version", "parts"),
    [
        pytest.param("3.17.1", (3, 17, 1), id="three"),
        pytest.param("4.0", (4, 0), id="two"),
        pytest.param("3.19-rc1", (3, 19), id="rc"),
        pytest.param("4.1+dfsg", (4, 1), id="debian"),
        pytest.param("3.11~beta", (3, 11), id="tilde"),
        pytest.param("v3.11", (), id="leading-v"),
        pytest.param("", (), id="empty"),
    ],
)
def test_version_tuple(version: str, parts: tuple[int, ...]) -> None:
    assert version_tuple(version) == parts


def test_version_tuples_order_like_versions() -> None:
    assert version_tuple("3.9") < (3, 11) <= version_tuple("3.11") < version_tuple("3.17.1")
    assert version_tuple("4.0") > version_tuple("3.19")
