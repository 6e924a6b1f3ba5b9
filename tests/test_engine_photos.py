"""Several photos of one part: every branch sees every photo, within one request's limits."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from emulators.claude import ClaudeEmulator
from matrec.choices import CacheStrategy
from matrec.engine import Part
from matrec.errors import BadInputError, ImageError
from matrec.images import MANY_IMAGES_MAX_EDGE_PX, PreparedImage, photo_budget
from tests.engine_support import jpeg_bytes, running_engine

CONTEXT = "Wall bracket for a 20 kg pump, indoors, 500 per year."
THREE = Part(
    images=(jpeg_bytes(), jpeg_bytes(800, 600, (150, 150, 160)), jpeg_bytes(480, 640, (90, 100, 110))),
    context=CONTEXT,
    label="bracket",
)


def _noise_jpeg(width: int, height: int, seed: int) -> bytes:
    """A photo that does not compress: random pixels."""
    pixels = random.Random(seed).randbytes(width * height * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _rebuilt(image: PreparedImage) -> PreparedImage:
    return PreparedImage.from_bytes(
        image.data,
        image.media_type,
        image.width,
        image.height,
        image.original_width,
        image.original_height,
        image.original_format,
        image.sha256,
    )


def test_one_image_is_the_one_photo_form_of_images() -> None:
    photo = jpeg_bytes()
    assert Part(image=photo) == Part(images=(photo,))
    assert Part(image=photo).image == photo
    assert Part(context="text only").image is None and Part(image=None).images == ()


async def test_every_branch_carries_every_photo_and_the_aggregator_none(claude: ClaudeEmulator) -> None:
    async with running_engine(claude) as engine:
        rec = await engine.evaluate(THREE)
    branches = [r for r in claude.requests if r.kind.kind == "branch"]
    assert len(branches) == 6
    assert all(r.image_sizes == [(640, 480), (800, 600), (480, 640)] for r in branches)
    assert all("3 photos above show the same part" in str(r.body["messages"]) for r in branches)
    (aggregation,) = [r for r in claude.requests if r.kind.kind == "aggregate"]
    assert aggregation.image_sizes == []
    assert [i.width for i in rec.images] == [640, 800, 480]
    assert rec.image == rec.images[0]


async def test_the_cached_prefix_is_the_same_bytes_in_every_branch_and_is_read(claude: ClaudeEmulator) -> None:
    async with running_engine(claude, cache=CacheStrategy.PRIME) as engine:
        rec = await engine.evaluate(THREE)
    branches = [r.body for r in claude.requests if r.kind.kind == "branch"]
    prefixes = {(str(b["system"]), str(b["messages"][0]["content"][:-1])) for b in branches}
    assert len(prefixes) == 1
    assert branches[0]["messages"][0]["content"][3]["cache_control"] == {"type": "ephemeral"}
    reads = sorted(b.usage.cache_read_tokens for b in rec.branches)
    assert reads[0] == 0 and all(read > 0 for read in reads[1:])


async def test_the_payload_budget_is_divided_between_the_photos(claude: ClaudeEmulator) -> None:
    photos = tuple(_noise_jpeg(1200, 900, seed) for seed in range(3))
    async with running_engine(claude, max_request_image_bytes=300_000, max_image_payload_bytes=300_000) as engine:
        alone = await engine.prepare(Part(images=photos[:1]))
        together = await engine.prepare(Part(images=photos))
    assert alone[0].encoded_bytes > 100_000
    assert all(image.encoded_bytes <= 100_000 for image in together)
    assert max(together[0].width, together[0].height) < max(alone[0].width, alone[0].height)


def test_over_twenty_photos_each_edge_is_capped_at_2000_px() -> None:
    assert photo_budget(20, max_edge_px=4000, max_payload_bytes=10**9, request_budget_bytes=10**12).max_edge_px == 4000
    many = photo_budget(21, max_edge_px=4000, max_payload_bytes=10**9, request_budget_bytes=10**12)
    assert many.max_edge_px == MANY_IMAGES_MAX_EDGE_PX
    shared = photo_budget(100)
    assert shared.max_payload_bytes * 100 * 4 / 3 < 32 * 1024 * 1024  # base64 of all of them fits 32 MB


async def test_more_photos_than_the_limit_are_refused_before_any_call(claude: ClaudeEmulator) -> None:
    async with running_engine(claude, max_photos=3) as engine:
        with pytest.raises(BadInputError, match="4 photos of one part; the limit is 3"):
            await engine.evaluate(Part(images=(jpeg_bytes(),) * 4))
    assert claude.requests == []


async def test_a_broken_photo_among_several_is_named(claude: ClaudeEmulator) -> None:
    async with running_engine(claude) as engine:
        with pytest.raises(ImageError, match=r"^Photo 2 of 3: The file is empty"):
            await engine.evaluate(Part(images=(jpeg_bytes(), b"", jpeg_bytes())))
    assert claude.requests == []


async def test_prepared_photos_rebuilt_from_bytes_are_sent_unchanged_without_decoding(claude: ClaudeEmulator) -> None:
    async with running_engine(claude) as engine:
        prepared = await engine.prepare(THREE)
    rebuilt = tuple(_rebuilt(image) for image in prepared)
    assert rebuilt == prepared
    async with running_engine(claude) as engine:
        rec = await engine.evaluate(Part(context=CONTEXT, label="bracket"), prepared=rebuilt)
        assert engine.decodes_peak == 0
    sent = [
        [block["source"]["data"] for block in r.body["messages"][0]["content"] if block["type"] == "image"]
        for r in claude.requests
        if r.kind.kind == "branch"
    ]
    assert all(data == [image.base64 for image in prepared] for data in sent)
    assert len(rec.images) == 3


def test_a_stored_image_with_a_media_type_never_prepared_is_refused() -> None:
    with pytest.raises(ValueError, match="image/jpeg or image/png"):
        PreparedImage.from_bytes(b"x", "image/gif", 1, 1, 1, 1, "gif", "0" * 64)
