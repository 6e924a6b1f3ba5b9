"""Photos for benchmarks: noise over a gradient, as JPEG, like a phone's picture of a part."""

from __future__ import annotations

import io
import random
from typing import Final

from PIL import Image

BENCH_PHOTO_PX: Final = (2016, 1512)  # a 3-megapixel photo, as the engine benchmark has always used
PHONE_PHOTO_PX: Final = (4032, 3024)  # 12 megapixels, as a phone takes it
NOISE_SHARE: Final = 0.25  # how much of each pixel is noise: enough that no two photos compress alike
JPEG_QUALITY: Final = 88


def photo(seed: int = 0, size: tuple[int, int] = BENCH_PHOTO_PX) -> bytes:
    """A distinct photo per seed, as JPEG (a 12-megapixel one is several MB)."""
    rng = random.Random(seed)
    width, height = size
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    buffer = io.BytesIO()
    Image.blend(image, noise, NOISE_SHARE).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
