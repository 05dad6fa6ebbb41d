"""Staging: put the container's image on the target (unless the very image is there)."""

from __future__ import annotations

import json

from .. import commands
from ..errors import PreflightFailed
from ..events import Phase, PhaseSkipped, TransferProgress
from ..podman_json import parse_image_id
from ..units import megabytes
from .context import MigrationContext
from .state import State


def stage_image(ctx: MigrationContext) -> None:
    info = ctx.progress.info()
    source, target = ctx.sessions()
    timeout = ctx.options.command_timeout_s
    image = info.image_name or info.image_id
    on_target = ctx.target_image  # asked during preflight
    assert on_target is not None
    if on_target.ok:
        target_id = parse_image_id(on_target.stdout)
        if target_id == info.image_id:
            ctx.emit(PhaseSkipped(Phase.STAGE_IMAGE, f"{image} already on target"))
            return
        mismatch = PreflightFailed(
            f"{ctx.target_text} has an image {image!r} with another ID "
            f"({target_id[:12]}, the container uses {info.image_id[:12]})",
            host=ctx.target_text,
            hint="Restore needs the very image the container was created from: remove "
            "or retag the target's image, or push the same image to both hosts.",
        )
        with ctx.phase(Phase.STAGE_IMAGE, image):
            raise mismatch
    with ctx.phase(Phase.STAGE_IMAGE, image) as outcome:
        size_result = source.run(commands.image_inspect(image), timeout=timeout)
        expected = _image_size(size_result.stdout) if size_result.ok else None
        ctx.progress.state = State.STAGED
        ctx.progress.staged_image_id = info.image_id
        loader = ctx.data_plane().start(target, commands.image_load())
        saver = ctx.data_plane().start(source, commands.image_save(image))
        try:
            # the image moves before the freeze, unthrottled (--bwlimit caps migrations'
            # archives)
            moved = ctx.relay(saver, loader, "image", expected, throttled=False)
        except BaseException:
            # never leave a load running behind the undo's `podman image rm`
            saver.kill()
            loader.kill()
            raise
        saved = saver.wait(timeout)
        loaded = loader.wait(timeout)
        for result, what in ((saved, "podman save"), (loaded, "podman load")):
            if not result.ok:
                raise result.failure(f"{result.host}: {what} of {image} failed")
        ctx.emit(TransferProgress("image", moved.bytes, expected, finished=True))
        ctx.report.bytes_transferred += moved.bytes
        ctx.report.image_staged = True
        outcome["detail"] = f"{image}, {megabytes(moved.bytes)}"


def _image_size(text: str) -> int | None:
    try:
        return int(json.loads(text)[0]["Size"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
