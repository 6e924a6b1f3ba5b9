"""The engine: one part in, six specialist analyses in parallel, one recommendation out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence

from matrec import followup
from matrec.admission import Admission
from matrec.claude import Claude
from matrec.errors import BadInputError, ImageError, MatrecError, RunTimeoutError, unexpected
from matrec.followup import FollowUpEvent, PriorTurn
from matrec.images import PhotoBudget, PreparedImage, photo_budget, prepare_image
from matrec.limiter import Limiter
from matrec.options import MAX_CONTEXT_CHARS, Part, RunOptions
from matrec.progress import ProgressSink
from matrec.results import Recommendation
from matrec.retry import Caller
from matrec.run import Run
from matrec.settings import EngineSettings

__all__ = ["MAX_CONTEXT_CHARS", "Engine", "Part", "PartLoader", "RunOptions"]

PartLoader = Callable[[], Part]  # called when the part's turn comes; may raise BadInputError

log = logging.getLogger(__name__)


class Engine:
    """Runs consultations; every run made through one Engine shares its bounds.

    `limiter` bounds Claude calls in flight (a limiter given a shared budget bounds them across
    processes, and learns the rate-limit headers of every response), `admission` the consultations
    running at once (callers that download before evaluating, like the bot, take a ticket
    themselves; so does `evaluate_many`), and image decodes are bounded too, since each holds a
    full-size bitmap.
    """

    def __init__(self, claude: Claude, settings: EngineSettings, limiter: Limiter | None = None) -> None:
        self.claude = claude
        self.settings = settings
        self.limiter = limiter or Limiter(settings.concurrency)
        claude.watch_rate_limits(self.limiter.observe)
        self.caller = Caller(claude, self.limiter, max_retries=settings.max_retries)
        self.admission = Admission(settings.max_consultations)
        self._decodes = asyncio.Semaphore(settings.max_decodes)
        self.decoding = 0
        self.decodes_peak = 0

    async def evaluate(
        self,
        part: Part,
        options: RunOptions | None = None,
        on_progress: ProgressSink | None = None,
        *,
        prepared: Sequence[PreparedImage] | None = None,
    ) -> Recommendation:
        """Analyse one part; raises BadInputError, QuorumError or RunTimeoutError.

        With `prepared` (from `prepare`, or rebuilt from storage) the photos are not decoded again
        and `part.images` is ignored; every branch carries every one of them.
        """
        options = options or RunOptions.from_settings(self.settings)
        started = time.perf_counter()
        if prepared is None:
            images = await self.prepare(part)
        else:
            images = tuple(prepared)
            self._check_input(part, len(images))
        prepare_s = time.perf_counter() - started
        run = Run(self, part, images, options, on_progress)
        try:
            async with asyncio.timeout(self.settings.run_timeout_s):
                return await run.execute(started, prepare_s)
        except TimeoutError:
            message = f"The consultation did not finish within {self.settings.run_timeout_s:g} s."
            run.tracker.failed(message)
            raise RunTimeoutError(message) from None

    def follow_up(
        self,
        *,
        images: Sequence[PreparedImage],
        consultation: str,
        history: Sequence[PriorTurn],
        question: str,
        asker: str | None = None,
    ) -> AsyncIterator[FollowUpEvent]:
        """Answer a question about a finished consultation, streamed: Started, TextDeltas, Finished.

        `consultation` is `render_consultation(rec)`; `images` the photos it was made from (stored
        and rebuilt with `PreparedImage.from_bytes`, so the cached prefix matches). Raises
        BadInputError, or ModelCallError (retried inside only before the first words). See
        matrec.followup.
        """
        return followup.follow_up(
            self, images=images, consultation=consultation, history=history, question=question, asker=asker
        )

    async def evaluate_many(
        self,
        parts: Sequence[Part | PartLoader],
        options: RunOptions | None = None,
        on_progress: ProgressSink | None = None,
    ) -> list[Recommendation | MatrecError]:
        """Analyse several parts under the shared bounds; results in input order, one failure never stops the rest.

        A `PartLoader` (e.g. reading a file) is called only when its consultation's turn comes, in a
        thread, so waiting consultations hold no image; it may raise BadInputError.
        """

        async def one(item: Part | PartLoader) -> Recommendation | MatrecError:
            try:
                async with self.admission.ticket():
                    part = item if isinstance(item, Part) else await asyncio.to_thread(item)
                    return await self.evaluate(part, options, on_progress)
            except MatrecError as error:
                return error
            except Exception as error:  # isolation boundary: this part fails, the others go on; logged
                log.exception("a consultation of the batch failed unexpectedly")
                return MatrecError(unexpected(error))

        return list(await asyncio.gather(*(one(p) for p in parts)))

    async def prepare(self, part: Part) -> tuple[PreparedImage, ...]:
        """Decode, check and downscale every photo of `part`, each within its share of one request.

        Raises BadInputError (ImageError naming the photo when one is rejected). Decodes are bounded
        across the engine, since each holds a full-size bitmap; the photos of one part share the bound.
        """
        self._check_input(part, len(part.images))
        if not part.images:
            return ()
        s = self.settings
        budget = photo_budget(
            len(part.images),
            max_edge_px=s.max_image_edge_px,
            max_payload_bytes=s.max_image_payload_bytes,
            request_budget_bytes=s.max_request_image_bytes,
        )
        try:
            async with asyncio.TaskGroup() as group:  # one rejected photo stops the others' decodes
                tasks = [
                    group.create_task(self._decode(data, budget, index, len(part.images)))
                    for index, data in enumerate(part.images)
                ]
        except* BadInputError as rejected:
            raise rejected.exceptions[0] from None
        return tuple(task.result() for task in tasks)

    def _check_input(self, part: Part, photos: int) -> None:
        if len(part.context) > MAX_CONTEXT_CHARS:
            raise BadInputError(
                f"The description is {len(part.context):,} characters; the limit is {MAX_CONTEXT_CHARS:,}. "
                "Keep it to the part and its requirements."
            )
        if photos > self.settings.max_photos:
            raise BadInputError(
                f"That is {photos} photos of one part; the limit is {self.settings.max_photos}. "
                "Send the few that show the part best."
            )
        if photos == 0 and not part.context.strip():
            raise BadInputError("Nothing to analyse: send a photo of the part, or describe it in text.")

    async def _decode(self, data: bytes, budget: PhotoBudget, index: int, count: int) -> PreparedImage:
        s = self.settings
        async with self._decodes:
            self.decoding += 1
            self.decodes_peak = max(self.decodes_peak, self.decoding)
            try:
                return await asyncio.to_thread(
                    prepare_image,
                    data,
                    max_edge_px=budget.max_edge_px,
                    max_bytes=s.max_image_bytes,
                    max_pixels=s.max_image_pixels,
                    max_payload_bytes=budget.max_payload_bytes,
                )
            except ImageError as error:
                if count == 1:
                    raise
                raise ImageError(error.kind, f"Photo {index + 1} of {count}: {error}") from error
            finally:
                self.decoding -= 1
