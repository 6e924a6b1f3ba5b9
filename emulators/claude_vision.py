"""What the emulated Claude "sees" in a photo: measured facts, and the nudges they give the classes.

The first image of the user turns is decoded and measured: its size, its mean colour, the mean
colour's brightness (Rec. 601 luma) and its HSV hue and saturation. Rules on those facts:

    mean colour                                        nudge                          why
    brown/orange: hue 15-50 deg, saturation >= 0.30,   wood +2 (performance)          wood grain tones
      brightness 0.15-0.85
    dark: brightness < 0.20                            composite +1, elastomer +1     carbon fibre, rubber
    light grey: saturation < 0.10, brightness 0.60-0.88 metal +1 (performance)        bare aluminium, steel
    white: saturation < 0.10, brightness >= 0.88       ceramic +2 (performance)       alumina, porcelain

A plain mid-grey photo (the tests' (120, 130, 140) JPEG: brightness 0.50, saturation 0.14) meets
none of them, so it leaves the scores alone. The answer cites the measured facts as evidence.
"""

from __future__ import annotations

import base64
import binascii
import colorsys
import io
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from PIL import Image, ImageStat, UnidentifiedImageError

from emulators.claude_nudges import Nudge

MEASURE_EDGE_PX: Final = 64  # the photo is shrunk to this before averaging: the mean barely moves
BROWN_HUE_DEG: Final = (15.0, 50.0)
BROWN_MIN_SATURATION: Final = 0.30
BROWN_BRIGHTNESS: Final = (0.15, 0.85)
DARK_MAX_BRIGHTNESS: Final = 0.20
GREY_MAX_SATURATION: Final = 0.10
LIGHT_GREY_MIN_BRIGHTNESS: Final = 0.60
WHITE_MIN_BRIGHTNESS: Final = 0.88
_LUMA: Final = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ImageFacts:
    """Measured facts about one photo."""

    width_px: int
    height_px: int
    mean_rgb: tuple[int, int, int]
    brightness: float  # 0 (black) to 1 (white)
    saturation: float  # HSV saturation of the mean colour, 0 to 1
    hue_deg: float  # HSV hue of the mean colour, 0 to 360

    def describe(self) -> str:
        """The facts as the answer cites them."""
        red, green, blue = self.mean_rgb
        return (
            f"photo {self.width_px}x{self.height_px} px, mean colour #{red:02x}{green:02x}{blue:02x}, "
            f"brightness {self.brightness:.0%}, saturation {self.saturation:.0%}"
        )


def _image_data(body: Mapping[str, Any]) -> Iterator[str]:
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) and message.get("role") == "user" else None
        for block in content if isinstance(content, list) else []:
            source = block.get("source") if isinstance(block, dict) and block.get("type") == "image" else None
            if isinstance(source, dict) and isinstance(source.get("data"), str):
                yield source["data"]


def first_image_facts(body: Mapping[str, Any]) -> ImageFacts | None:
    """Facts about the request's first image, or None when it has none (or it cannot be read)."""
    data = next(_image_data(body), None)
    return None if data is None else _measure(data)


def _measure(data: str) -> ImageFacts | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(base64.b64decode(data))) as image:
                size = image.size
                image.draft("RGB", (MEASURE_EDGE_PX, MEASURE_EDGE_PX))  # a JPEG decodes at 1/8 scale: cheap
                small = image.convert("RGB")
        except (binascii.Error, ValueError, UnidentifiedImageError, OSError, Image.DecompressionBombError):
            return None
    small.thumbnail((MEASURE_EDGE_PX, MEASURE_EDGE_PX))
    red, green, blue = (round(channel) for channel in ImageStat.Stat(small).mean[:3])
    hue, saturation, _ = colorsys.rgb_to_hsv(red / 255, green / 255, blue / 255)
    brightness = sum(weight * channel for weight, channel in zip(_LUMA, (red, green, blue), strict=True)) / 255
    return ImageFacts(int(size[0]), int(size[1]), (red, green, blue), brightness, saturation, hue * 360)


def image_nudges(facts: ImageFacts) -> list[Nudge]:
    """The nudges the photo's mean colour gives, per the rules in the module docstring."""
    low_hue, high_hue = BROWN_HUE_DEG
    low_bright, high_bright = BROWN_BRIGHTNESS
    if (
        low_hue <= facts.hue_deg <= high_hue
        and facts.saturation >= BROWN_MIN_SATURATION
        and low_bright <= facts.brightness <= high_bright
    ):
        return [Nudge("wood", +2, "performance", "brown/orange tones in the photo, like wood grain")]
    if facts.brightness < DARK_MAX_BRIGHTNESS:
        cause = "a dark surface in the photo, like carbon fibre or rubber"
        return [Nudge("composite", +1, "performance", cause), Nudge("elastomer", +1, "performance", cause)]
    if facts.saturation < GREY_MAX_SATURATION and facts.brightness >= WHITE_MIN_BRIGHTNESS:
        return [Nudge("ceramic", +2, "performance", "a white surface in the photo, like alumina")]
    if facts.saturation < GREY_MAX_SATURATION and facts.brightness >= LIGHT_GREY_MIN_BRIGHTNESS:
        return [Nudge("metal", +1, "performance", "a light grey surface in the photo, like bare metal")]
    return []
