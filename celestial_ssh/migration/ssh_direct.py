"""``--direct``: the source logs in to the target over ssh (agent forwarding or its own
keys) and streams the archive there; if it cannot, the archive is relayed instead."""

from __future__ import annotations

import time

from .. import commands
from ..data_plane import LinkMeasurement, StreamProcess
from ..errors import CelestialError
from .host_to_host import HostToHostTransfer
from .wording import one_line

DIRECT_CHECK_TIMEOUT_S = 30.0


class SSHDirectTransfer(HostToHostTransfer):
    """source -> target, over an ssh the source opens itself."""

    def prepare(self) -> bool:
        """Check, before the freeze, that the source can stream straight to the target."""
        ctx = self.ctx
        source, target = ctx.sessions()
        source_workdir, _ = ctx.progress.workdirs()
        started = time.monotonic()
        try:
            probe = ctx.data_plane().prepare_direct(
                source, target, source_workdir, timeout=DIRECT_CHECK_TIMEOUT_S
            )
            ok, why = probe.ok, probe.stderr.strip().splitlines()[-1:] or ["no reason given"]
        except CelestialError as error:
            ok, why = False, [one_line(error)]
        ctx.time_step("direct_check", started)
        if ok:
            ctx.report.transport = f"direct ({ctx.data_plane().kind} to the source)"
            return True
        ctx.warn(
            f"{ctx.source_text} cannot log in to {ctx.target_text} itself ({why[0]}); "
            "the archive is relayed through this machine instead of --direct"
        )
        return False

    def measure_link(self, probe_bytes: int) -> LinkMeasurement:
        source, target = self.ctx.sessions()
        source_workdir, _ = self.ctx.progress.workdirs()
        return self.ctx.data_plane().measure_direct(source, target, source_workdir, probe_bytes)

    def _connect(self, started: list[StreamProcess]) -> StreamProcess:
        ctx = self.ctx
        source, target = ctx.sessions()
        source_workdir, target_workdir = ctx.progress.workdirs()
        plane = ctx.data_plane()
        land = commands.land_archive(target_workdir, hashed=True, announce=True)
        checkpoint = commands.checkpoint_stream(
            ctx.progress.info().id,
            source_workdir,
            ctx.checkpoint_options(),
            hashed=True,
            announce=True,
        )
        exporter = plane.start(
            source,
            commands.direct_checkpoint_stream(
                checkpoint, source_workdir, plane.direct_link(source_workdir, target, land)
            ),
            forward_agent=True,
        )
        started.append(exporter)
        ctx.await_ready(exporter, ctx.target_text)
        self.start_landing_side(started)
        return exporter

    def await_landing(self, started: float) -> None:
        """Nothing to wait for: the source's link ends once the target has written it all."""

    def kill_receivers(self) -> None:
        """Nothing runs on the target apart from the source's own ssh (the exporter's)."""
