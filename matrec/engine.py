"""The engine: one part in, six specialist analyses in parallel, one recommendation out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from matrec.claude import Claude
from matrec.errors import BadInputError, MatrecError, RunTimeoutError
from matrec.images import PreparedImage, prepare_image
from matrec.limiter import Limiter
from matrec.options import MAX_CONTEXT_CHARS, Part, RunOptions
from matrec.progress import ProgressSink
from matrec.results import Recommendation
from matrec.run import Run
from matrec.settings import EngineSettings

__all__ = ["MAX_CONTEXT_CHARS", "Engine", "Part", "RunOptions"]


class Engine:
    """Runs consultations; every run made through one Engine shares its concurrency limiter."""

    def __init__(self, claude: Claude, settings: EngineSettings, limiter: Limiter | None = None) -> None:
        self.claude = claude
        self.settings = settings
        self.limiter = limiter or Limiter(settings.concurrency)

    async def evaluate(
        self, part: Part, options: RunOptions | None = None, on_progress: ProgressSink | None = None
    ) -> Recommendation:
        """Analyse one part; raises BadInputError, QuorumError or RunTimeoutError."""
        options = options or RunOptions.from_settings(self.settings)
        started = time.perf_counter()
        image = await self._prepare(part)
        prepare_s = time.perf_counter() - started
        run = Run(self, part, image, options, on_progress)
        try:
            async with asyncio.timeout(self.settings.run_timeout_s):
                return await run.execute(started, prepare_s)
        except TimeoutError:
            message = f"The consultation did not finish within {self.settings.run_timeout_s:g} s."
            run.tracker.failed(message)
            raise RunTimeoutError(message) from None

    async def evaluate_many(
        self,
        parts: Sequence[Part],
        options: RunOptions | None = None,
        on_progress: ProgressSink | None = None,
    ) -> list[Recommendation | MatrecError]:
        """Analyse several parts together under the shared bound; results in input order."""

        async def one(part: Part) -> Recommendation | MatrecError:
            try:
                return await self.evaluate(part, options, on_progress)
            except MatrecError as error:
                return error

        return list(await asyncio.gather(*(one(p) for p in parts)))

    async def _prepare(self, part: Part) -> PreparedImage | None:
        if len(part.context) > MAX_CONTEXT_CHARS:
            raise BadInputError(
                f"The description is {len(part.context):,} characters; the limit is {MAX_CONTEXT_CHARS:,}. "
                "Keep it to the part and its requirements."
            )
        if part.image is None:
            if not part.context.strip():
                raise BadInputError("Nothing to analyse: send a photo of the part, or describe it in text.")
            return None
        s = self.settings
        return await asyncio.to_thread(
            prepare_image,
            part.image,
            max_edge_px=s.max_image_edge_px,
            max_bytes=s.max_image_bytes,
            max_pixels=s.max_image_pixels,
            max_payload_bytes=s.max_image_payload_bytes,
        )
