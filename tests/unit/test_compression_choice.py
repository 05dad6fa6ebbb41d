"""``--compress auto``: the memory sampler, the compressibility estimate, the choice, the probe
and ``--bwlimit`` parsing.

The sampler script is executed here under the local /bin/sh against a fake proc directory
(regular files standing in for maps, smaps, pagemap and mem), so the exact blocks it reads
are pinned; one test also samples a real child process when running as root.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from celestial_ssh import bandwidth
from celestial_ssh import compression_choice as cc
from celestial_ssh.compression_choice import (
    GZIP_BYTES_PER_S,
    ZSTD_BYTES_PER_S,
    CompressibilityEstimate,
    CompressionChoice,
    choose_compression,
    compressibility,
    parse_rate,
    sample_memory_command,
)
from celestial_ssh.errors import InvalidInput
from celestial_ssh.host_scripts import script_text

PID = 4242
BLOCK = 4096
PRESENT = 1 << 63
SWAPPED = 1 << 62


# -- a fake /proc/PID ----------------------------------------------------------------------
def map_line(first: int, blocks: int, perms: str = "rw-p", inode: int = 0, path: str = "") -> str:
    start, end = first * BLOCK, (first + blocks) * BLOCK
    dev = "00:00" if inode == 0 else "08:01"
    line = f"{start:012x}-{end:012x} {perms} 00000000 {dev} {inode}"
    return f"{line:<73}{path}".rstrip() if path else line


def smaps_entry(line: str, rss_kb: int, swap_kb: int = 0) -> str:
    return "\n".join(
        [
            line,
            f"Size:             {999999} kB",
            f"Rss:              {rss_kb} kB",
            f"Pss:              {rss_kb} kB",
            f"Swap:             {swap_kb} kB",
            "SwapPss:          77777 kB",
            "VmFlags: rd wr mr mw me ac sd",
        ]
    )


def fake_proc(
    root: Path,
    *,
    maps: list[str] | None = None,
    smaps: list[str] | None = None,
    pagemap: dict[int, int] | None = None,
    mem_blocks: int = 0,
) -> Path:
    """A fake proc directory; block b of ``mem`` starts with its number b (8 bytes)."""
    proc = root / "proc"
    d = proc / str(PID)
    d.mkdir(parents=True)
    if maps is not None:
        (d / "maps").write_text("".join(f"{line}\n" for line in maps))
    if smaps is not None:
        (d / "smaps").write_text("".join(f"{entry}\n" for entry in smaps))
    if pagemap is not None:
        with (d / "pagemap").open("wb") as f:
            for block, entry in pagemap.items():
                f.seek(block * 8)
                f.write(struct.pack("=Q", entry))
    with (d / "mem").open("wb") as f:
        for block in range(mem_blocks):
            f.write(struct.pack("=Q", block) + bytes([block % 251 + 1]) * (BLOCK - 8))
    return proc


def run_sampler(proc: Path, **kwargs: int) -> bytes:
    argv = sample_memory_command(PID, proc=str(proc), **kwargs)
    result = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    return result.stdout


def blocks_read(output: bytes) -> list[int]:
    assert len(output) % BLOCK == 0
    return [struct.unpack("=Q", output[i : i + 8])[0] for i in range(0, len(output), BLOCK)]


# -- sample_memory_command ---------------------------------------------------------------
def test_sampler_is_one_sh_script_with_the_pid_paths() -> None:
    # 16 samples of 64 blocks, 8 candidates each; the awk programs travel as parameters
    assert sample_memory_command(123) == [
        "sh",
        "-c",
        script_text("sample_memory.sh"),
        "sample-memory",
        "/proc/123",
        "128",
        "64",
        "1024",
        "4096",
        script_text("select_chunks.awk"),
        script_text("present_runs.awk"),
    ]
    assert sample_memory_command(7, samples=2, sample_bytes=8192, proc="/fake/")[4:9] == [
        "/fake/7",
        "16",
        "2",
        "4",
        "4096",
    ]
    assert "exit 0" in script_text("sample_memory.sh").splitlines()[-1]


@pytest.mark.parametrize("pid", [0, -1, True, 1.5, "12", "1; rm -rf /"])
def test_sampler_refuses_a_bad_pid(pid: object) -> None:
    with pytest.raises(ValueError, match="pid"):
        sample_memory_command(pid)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"samples": 0}, "samples"),
        ({"samples": -3}, "samples"),
        ({"sample_bytes": 0}, "sample_bytes"),
        ({"sample_bytes": 1000}, "sample_bytes"),
        ({"sample_bytes": 4096 + 1}, "sample_bytes"),
    ],
)
def test_sampler_refuses_bad_sizes(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sample_memory_command(1, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("proc", ["relative", "/tmp/x; reboot", "/tmp/$(reboot)", "/a/../b"])
def test_sampler_refuses_a_proc_path_with_shell_syntax(proc: str) -> None:
    with pytest.raises(InvalidInput, match="unexpected remote path"):
        sample_memory_command(1, proc=proc)


def test_sampler_reads_only_private_anonymous_writable_mappings(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        maps=[
            map_line(16, 2, "r-xp", inode=1234, path="/usr/bin/app"),
            map_line(18, 1, "rw-p", inode=1234, path="/usr/bin/app"),  # .data: file-backed
            map_line(19, 3),  # anonymous (.bss and friends)
            map_line(22, 2, path="[heap]"),
            map_line(24, 1, "rw-s", path="/dev/shm/x (deleted)"),
            map_line(25, 2, "---p"),  # guard region
            map_line(27, 2, "r--p"),
            map_line(29, 1, path="[anon:arena]"),
            map_line(30, 2, path="[stack]"),
            map_line(32, 1, "r--p", path="[vvar]"),
        ],
        mem_blocks=40,
    )
    got = blocks_read(run_sampler(proc))
    assert sorted(got) == [19, 20, 21, 22, 23, 29, 30, 31]
    # whole mappings, each read at once, in spread order (bit-reversed: 0, 2, 1, 3)
    assert got == [19, 20, 21, 29, 22, 23, 30, 31]


def test_sampler_caps_the_total_and_spreads_chunks_by_size(tmp_path: Path) -> None:
    # 48 blocks then 16: of 32 candidate chunks of 2 blocks, 24 fall in the first mapping
    # and 8 in the second; the first 4 in spread order are read, 3 and 1
    proc = fake_proc(tmp_path, maps=[map_line(100, 48), map_line(200, 16)], mem_blocks=216)
    got = blocks_read(run_sampler(proc, samples=4, sample_bytes=2 * BLOCK))
    assert got == [100, 101, 132, 133, 116, 117, 200, 201]


def test_sampler_stops_at_the_byte_budget_even_inside_a_chunk(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, maps=[map_line(100, 1000)], mem_blocks=1100)
    assert len(run_sampler(proc, samples=3, sample_bytes=4 * BLOCK)) == 12 * BLOCK
    # a run of present pages longer than what is left is cut
    pagemap = {b: PRESENT for b in range(100, 110)}
    proc = fake_proc(tmp_path / "b", maps=[map_line(100, 10)], pagemap=pagemap, mem_blocks=110)
    assert blocks_read(run_sampler(proc, samples=1, sample_bytes=3 * BLOCK)) == [100, 101, 102]


def test_sampler_chunks_never_overlap_in_a_small_mapping(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, maps=[map_line(50, 5)], mem_blocks=60)
    got = blocks_read(run_sampler(proc, samples=16, sample_bytes=2 * BLOCK))
    assert sorted(got) == [50, 51, 52, 53, 54]


def test_sampler_weights_by_resident_size_from_smaps(tmp_path: Path) -> None:
    # a large reserved region nobody touched (Rss 0) gets no samples; the small busy
    # one gets them all; Swap counts as resident, SwapPss is not Swap
    proc = fake_proc(
        tmp_path,
        smaps=[
            smaps_entry(map_line(64, 4000), rss_kb=0),
            smaps_entry(map_line(10, 8), rss_kb=16, swap_kb=16),
            smaps_entry(map_line(30, 8, "r-xp", inode=99, path="/lib/x.so"), rss_kb=32),
        ],
        maps=[map_line(64, 4000)],  # smaps wins when both exist
        mem_blocks=70,
    )
    got = blocks_read(run_sampler(proc, samples=4, sample_bytes=2 * BLOCK))
    assert sorted(got) == list(range(10, 18))


def test_sampler_reads_only_pages_present_or_swapped(tmp_path: Path) -> None:
    pagemap = {b: 0 for b in range(40, 56)}
    pagemap |= {41: PRESENT | 123, 42: PRESENT, 43: SWAPPED | 5, 47: PRESENT, 55: PRESENT}
    pagemap[50] = 1 << 61  # file-page / shared-anon bit alone: not dumped as private memory
    proc = fake_proc(tmp_path, maps=[map_line(40, 16)], pagemap=pagemap, mem_blocks=60)
    assert blocks_read(run_sampler(proc, samples=1, sample_bytes=16 * BLOCK)) == [
        41,
        42,
        43,
        47,
        55,
    ]


def test_sampler_finds_the_resident_part_of_a_mostly_untouched_mapping(tmp_path: Path) -> None:
    # heaps reserve far more than they touch, and adjacent mmaps merge: only the last
    # eighth of this mapping is resident, yet the budget is met from it
    pagemap = {b: PRESENT for b in range(1000 + 7 * 128, 2024)}
    proc = fake_proc(tmp_path, maps=[map_line(1000, 1024)], pagemap=pagemap, mem_blocks=2024)
    got = blocks_read(run_sampler(proc, samples=4, sample_bytes=4 * BLOCK))
    assert len(got) == 16 and len(set(got)) == 16
    assert all(b >= 1000 + 7 * 128 for b in got)


def test_sampler_with_nothing_readable_writes_nothing_and_succeeds(tmp_path: Path) -> None:
    empty = tmp_path / "proc"
    empty.mkdir()
    assert run_sampler(empty) == b""  # the process has gone
    no_anon = fake_proc(tmp_path / "b", maps=[map_line(1, 2, "r-xp", 7, "/bin/x")])
    assert run_sampler(no_anon) == b""
    # a mapping whose memory cannot be read (mem shorter than the maps say)
    short = fake_proc(tmp_path / "c", maps=[map_line(100, 4)], mem_blocks=2)
    assert run_sampler(short) == b""


@pytest.mark.skipif(os.geteuid() != 0, reason="reading another process's memory needs root")
def test_sampler_reads_a_real_process(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "data = os.urandom(32 << 20)\n"  # written: present, incompressible
            "spare = bytes(256 << 20)\n"  # calloc'd by mmap, never touched
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        argv = sample_memory_command(child.pid)
        result = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    finally:
        child.kill()
        child.wait()
    assert result.returncode == 0
    sample = result.stdout
    assert 0 < len(sample) <= 16 * 256 * 1024 and len(sample) % BLOCK == 0
    estimate = compressibility(sample)
    # the untouched 256 MiB would be all zeros if it were sampled; the random 32 MiB and
    # the interpreter's own heap are what is resident
    assert estimate.zero_block_fraction < 0.5
    assert estimate.ratio > 0.5


# -- compressibility -----------------------------------------------------------------------
def test_compressibility_of_nothing_is_one_with_a_note() -> None:
    estimate = compressibility(b"")
    assert (estimate.ratio, estimate.gzip_ratio, estimate.sample_bytes) == (1.0, 1.0, 0)
    assert estimate.note == "no memory could be sampled"
    tiny = compressibility(b"\0" * 100)
    assert tiny.ratio == 1.0 and tiny.note is not None and "100 bytes" in tiny.note


def test_compressibility_of_zeros_random_and_mixed() -> None:
    zeros = compressibility(bytes(1 << 20))
    assert zeros.ratio < 0.01 and zeros.zero_block_fraction == 1.0 and zeros.note is None
    noise = compressibility(os.urandom(1 << 20))
    assert 0.99 < noise.ratio <= 1.1 and noise.zero_block_fraction == 0.0
    mixed = compressibility(os.urandom(1 << 19) + bytes(1 << 19))
    assert 0.45 < mixed.ratio < 0.55 and mixed.zero_block_fraction == 0.5


def test_compressibility_ratios_are_zlib_levels_1_and_6() -> None:
    sample = b"".join(f"key{i}=value{i * 7919 % 1000};".encode() for i in range(50_000))
    estimate = compressibility(sample)
    assert estimate.ratio == len(zlib.compress(sample, 1)) / len(sample)
    assert estimate.gzip_ratio == len(zlib.compress(sample, 6)) / len(sample)
    assert estimate.gzip_ratio <= estimate.ratio < 0.5
    assert estimate.to_dict()["sample_bytes"] == len(sample)
    with pytest.raises(FrozenInstanceError):
        estimate.ratio = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("sample", "chosen"),
    [
        pytest.param(b"", "none", id="no-sample"),
        pytest.param(os.urandom(1 << 16), "none", id="incompressible"),
        pytest.param(bytes(1 << 16), "zstd", id="compressible"),
    ],
)
def test_compressibility_feeds_choose_compression(sample: bytes, chosen: str) -> None:
    # on a slow link (1 MB/s) only the estimate's ratios decide whether compression pays
    estimate = compressibility(sample)
    archive, link = 1 << 30, 1e6
    choice = choose_compression(
        link_bytes_per_s=link,
        ratio=estimate.ratio,
        gzip_ratio=estimate.gzip_ratio,
        archive_bytes_estimate=archive,
    )
    assert choice.compression == chosen
    assert choice.predicted_s["zstd"] == max(
        archive / ZSTD_BYTES_PER_S, archive * estimate.ratio / link
    )
    assert choice.predicted_s["gzip"] == max(
        archive / GZIP_BYTES_PER_S, archive * estimate.gzip_ratio / link
    )


# -- choose_compression ----------------------------------------------------------------------
GB = 1_000_000_000


def choose(link: float, ratio: float, archive: int = GB, **kwargs: float) -> CompressionChoice:
    # the model's arithmetic, pinned with round speeds (the defaults are measured figures)
    speeds = {"zstd_bytes_per_s": 250e6, "gzip_bytes_per_s": 40e6, **kwargs}
    return choose_compression(
        link_bytes_per_s=link, ratio=ratio, archive_bytes_estimate=archive, **speeds
    )


def test_the_defaults_are_the_speeds_measured_on_our_machines() -> None:
    assert (ZSTD_BYTES_PER_S, GZIP_BYTES_PER_S) == (80e6, 70e6)


@pytest.mark.parametrize(
    ("link", "ratio", "expected"),
    [
        pytest.param(125e6, 0.14, "none", id="1gbit-compressible"),  # measured: none won
        pytest.param(6.25e6, 0.14, "zstd", id="50mbit-compressible"),  # measured: zstd won
        pytest.param(6.25e6, 1.0, "none", id="50mbit-random"),
        pytest.param(50e6, 0.14, "zstd", id="400mbit-compressible"),
    ],
)
def test_the_default_speeds_reproduce_the_benchmark(
    link: float, ratio: float, expected: str
) -> None:
    chosen = choose_compression(link_bytes_per_s=link, ratio=ratio, archive_bytes_estimate=GB)
    assert chosen.compression == expected


def test_fast_link_skips_compression() -> None:
    choice = choose(1e9, 0.3)
    assert choice.compression == "none"
    assert choice.predicted_s == {"none": 1.0, "zstd": 4.0, "gzip": 25.0}
    assert "1000.0 MB/s" in choice.reason and "250.0 MB/s" in choice.reason
    assert choice.reason.startswith("none: ")


def test_slow_link_compresses_with_zstd() -> None:
    choice = choose(10e6, 0.3)
    assert choice.compression == "zstd"
    assert choice.predicted_s == {"none": 100.0, "zstd": 30.0, "gzip": 30.0}
    assert choice.reason.startswith("zstd: link 10.0 MB/s")
    assert "30%" in choice.reason and "30.00 s" in choice.reason and "100.00 s" in choice.reason


def test_incompressible_memory_is_sent_as_is() -> None:
    choice = choose(1e6, 1.0)
    assert choice.compression == "none"
    assert "less than 15%" in choice.reason


def test_compression_must_beat_none_by_the_margin() -> None:
    # none 100 s; zstd 75 s is exactly margin * none: accepted; a hair worse is refused
    assert choose(1e6, 0.75, archive=100_000_000, margin=0.75).compression == "zstd"
    assert choose(1e6, 0.76, archive=100_000_000, margin=0.75).compression == "none"
    # with the default margin 0.85, 20% saved is enough and 10% is not
    assert choose(1e6, 0.8).compression == "zstd"
    assert choose(1e6, 0.9).compression == "none"


def test_compression_bound_by_the_cpu_counts_its_cpu_time() -> None:
    # link 400 MB/s, ratio 0.1: zstd would send in 0.25 s but compresses in 4 s (vs 2.5 s)
    choice = choose(400e6, 0.1)
    assert choice.predicted_s["zstd"] == 4.0 and choice.compression == "none"
    assert "no faster than the link" in choice.reason
    # with a faster compressor it pays: max(1 s, 0.25 s) vs 2.5 s
    assert choose(400e6, 0.1, zstd_bytes_per_s=1e9).compression == "zstd"
    # link 200 MB/s: compressing at 250 MB/s (4 s) beats sending raw (5 s) by the margin
    assert choose(200e6, 0.1).compression == "zstd"


def test_gzip_only_when_it_beats_zstd_too() -> None:
    # very slow link, gzip squeezes more: max(25, 300) vs max(4, 500) vs 1000 s
    choice = choose(1e6, 0.5, gzip_ratio=0.3)
    assert choice.compression == "gzip"
    assert choice.predicted_s == {"none": 1000.0, "zstd": 500.0, "gzip": 300.0}
    assert "gzip" in choice.reason and "30%" in choice.reason
    # equal prediction: zstd, cheaper on the CPU
    assert choose(1e6, 0.3, gzip_ratio=0.3).compression == "zstd"
    # gzip compresses better but too slowly for this link
    assert choose(30e6, 0.5, gzip_ratio=0.3).compression == "zstd"


def test_choice_is_frozen_and_serialisable() -> None:
    choice = choose(10e6, 0.3)
    assert choice.to_dict() == {
        "compression": "zstd",
        "reason": choice.reason,
        "predicted_s": choice.predicted_s,
    }
    with pytest.raises(FrozenInstanceError):
        choice.compression = "gzip"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"link_bytes_per_s": 0}, "link_bytes_per_s"),
        ({"link_bytes_per_s": -1e6}, "link_bytes_per_s"),
        ({"link_bytes_per_s": float("nan")}, "link_bytes_per_s"),
        ({"link_bytes_per_s": float("inf")}, "link_bytes_per_s"),
        ({"ratio": 0}, "ratio"),
        ({"ratio": -0.5}, "ratio"),
        ({"ratio": 1.2}, "ratio"),
        ({"ratio": float("nan")}, "ratio"),
        ({"gzip_ratio": 2.0}, "gzip_ratio"),
        ({"archive_bytes_estimate": 0}, "archive_bytes_estimate"),
        ({"archive_bytes_estimate": -5}, "archive_bytes_estimate"),
        ({"archive_bytes_estimate": 1.5}, "archive_bytes_estimate"),
        ({"zstd_bytes_per_s": 0}, "zstd_bytes_per_s"),
        ({"gzip_bytes_per_s": -1}, "gzip_bytes_per_s"),
        ({"margin": 0}, "margin"),
        ({"margin": 1.01}, "margin"),
    ],
)
def test_choose_compression_validates_its_inputs(kwargs: dict[str, float], match: str) -> None:
    arguments: dict[str, float] = {
        "link_bytes_per_s": 1e6,
        "ratio": 0.5,
        "archive_bytes_estimate": GB,
    }
    arguments |= kwargs
    with pytest.raises(ValueError, match=match):
        choose_compression(**arguments)  # type: ignore[arg-type]


def test_ratio_slightly_above_one_is_accepted() -> None:
    # zlib grows random data a little: that is a measurement, not a mistake
    assert choose(1e6, 1.004).compression == "none"


# -- parse_rate --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50M", 50e6),
        ("50Mbit", 6.25e6),
        ("50mbit/s", 6.25e6),
        ("50Mbits/s", 6.25e6),
        ("50Mbps", 6.25e6),
        ("6.25MB/s", 6.25e6),
        ("6.25MBps", 6.25e6),
        ("1G", 1e9),
        ("1gbit", 125e6),
        ("800k", 800e3),
        ("800K", 800e3),
        ("800KB", 800e3),
        ("10MiB/s", 10 * 1024**2),
        ("10MIB", 10 * 1024**2),
        ("1GiB", 1024**3),
        ("8Kibit", 1024.0),
        ("2T", 2e12),
        ("1000", 1000.0),
        ("1000B", 1000.0),
        ("1000B/s", 1000.0),
        ("64/s", 64.0),
        ("0.5M", 500e3),
        (".5M", 500e3),
        ("5.M", 5e6),
        (" 50 Mbit ", 6.25e6),
        ("100 MB/s", 100e6),
    ],
)
def test_parse_rate(text: str, expected: float) -> None:
    assert parse_rate(text) == pytest.approx(expected, rel=1e-12)


def test_parse_rate_bits_and_bytes_agree() -> None:
    assert parse_rate("400Mbit") == parse_rate("50M") == parse_rate("50MB/s")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "invalid rate"),
        ("   ", "invalid rate"),
        ("fast", "invalid rate"),
        ("M", "invalid rate"),
        ("-5M", "invalid rate"),
        ("+5M", "invalid rate"),
        ("1e6", "unknown unit"),
        ("50X", "unknown unit"),
        ("50Mbytes", "unknown unit"),
        ("50i", "unknown unit"),
        ("50 M B", "unknown unit"),
        ("50M /s", "unknown unit"),
        ("5,5M", "unknown unit"),
        ("nan", "invalid rate"),
        ("inf", "invalid rate"),
        ("0", "greater than zero"),
        ("0.0M", "greater than zero"),
        ("0Mbit", "greater than zero"),
        ("50Mb", "ambiguous"),
        ("50mb/s", "ambiguous"),
        ("50b", "ambiguous"),
        ("10mib", "ambiguous"),
    ],
)
def test_parse_rate_refuses(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_rate(text)


def test_module_exports_what_the_cli_needs() -> None:
    assert cc.parse_rate is bandwidth.parse_rate
    assert not hasattr(cc, "COMPRESSION_OPTIONS")  # used by nothing but its test
    assert isinstance(compressibility(b""), CompressibilityEstimate)
