"""The data plane: plain OpenSSH next to `celestial-ssh probe`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from .lab import ssh_argv, wait_for_quiet_lab
from .processes import measured
from .runs import help_text, unsupported
from .settings import CLI, PROBES, SOURCE, TARGET, log
from .summary import median, summarise_rates
from .tables import size_text


def measure_pipeline(shell: str, count: int, runs: int) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        wait_for_quiet_lab()
        result = measured(["sh", "-c", shell], timeout=600)
        samples.append(
            {
                "ok": result.ok,
                "seconds": round(result.wall_s, 3),
                "bytes_per_s": round(count / result.wall_s) if result.ok else None,
                "cpu_s": round(result.cpu_s, 3),
                "error": None if result.ok else result.stderr.strip()[-300:],
            }
        )
    return summarise_rates(samples)


def data_plane(count: int, runs: int, config: Path, env: dict[str, str] | None) -> dict[str, Any]:
    cfg = shlex.quote(str(config))
    section: dict[str, Any] = {"bytes": count, "notes": []}
    log(f"data plane: plain OpenSSH, {size_text(count)}, {runs} runs each")
    section["openssh_push"] = {
        "what": f"head -c {count} /dev/zero | ssh {TARGET} 'cat >/dev/null' (here -> {TARGET})",
        **measure_pipeline(
            f"head -c {count} /dev/zero | ssh -F {cfg} {TARGET} 'cat >/dev/null'", count, runs
        ),
    }
    section["openssh_relay"] = {
        "what": f"ssh {SOURCE} 'head -c N /dev/zero' | ssh {TARGET} 'cat >/dev/null' "
        f"({SOURCE} -> here -> {TARGET}, the path of a relayed migration)",
        **measure_pipeline(
            f"ssh -F {cfg} {SOURCE} 'head -c {count} /dev/zero' | "
            f"ssh -F {cfg} {TARGET} 'cat >/dev/null'",
            count,
            runs,
        ),
    }
    connects = []
    for _ in range(runs):
        result = measured(ssh_argv(TARGET, ["true"], config), timeout=60)
        if result.ok:
            connects.append(result.wall_s)
    section["ssh_connect_s"] = median(connects)
    if section["ssh_connect_s"] is not None:
        section["notes"].append(
            f"an ssh connection's set-up (`ssh {TARGET} true`) takes "
            f"{section['ssh_connect_s']:.2f} s here; *w/o connect* takes it off the OpenSSH rows"
        )
    baseline = section["openssh_push"]["median_bytes_per_s"]
    probe_help = help_text("probe")
    section["probe"] = []
    if probe_help is None:
        section["notes"].append("celestial-ssh has no `probe` command: tool data plane skipped")
        return section
    for row in PROBES:
        why = unsupported(row.args, probe_help)
        if why:
            section["notes"].append(f"{row.label} skipped: {why}")
            continue
        log(f"data plane: {row.label}")
        samples = []
        for _ in range(runs):
            wait_for_quiet_lab()
            argv = [str(CLI), "probe", "-F", str(config), "--json", "--bytes", str(count)]
            result = measured([*argv, *row.args, SOURCE, TARGET], timeout=600, env=env)
            sample: dict[str, Any] = {
                "ok": False,
                "seconds": None,
                "bytes_per_s": None,
                "cpu_s": round(result.cpu_s, 3),
                "peak_rss_kib": result.maxrss_kib,
                "error": None,
            }
            try:
                document = json.loads(result.stdout)
                sample.update(
                    ok=result.ok,
                    seconds=document["seconds"],
                    bytes_per_s=document["bytes_per_s"],
                    report=document,
                )
            except (ValueError, KeyError, TypeError):
                sample["error"] = (result.stderr or result.stdout).strip()[-300:]
            samples.append(sample)
        summary = summarise_rates(samples)
        rate = summary["median_bytes_per_s"]
        section["probe"].append(
            {
                "label": row.label,
                "args": list(row.args),
                **summary,
                "ratio_to_openssh": round(rate / baseline, 3) if rate and baseline else None,
            }
        )
    return section
