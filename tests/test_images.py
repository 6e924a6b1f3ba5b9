"""Uploaded images: each accepted format in, an upright, bounded JPEG or PNG out; bad uploads named."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from typing import Any

import pillow_heif
import pytest
from PIL import Image, ImageChops, ImageFile, ImageStat

from matrec.errors import ImageError, ImageKind
from matrec.images import ACCEPTED_FORMATS_TEXT, MAX_EDGE_PX, PreparedImage, prepare_image, sniff_format

RED = (220, 30, 30)
BLUE = (30, 30, 220)
GREEN = (30, 200, 30)
YELLOW = (230, 200, 40)
_UPRIGHT: dict[int, Image.Transpose] = {  # the EXIF rule: what turns a stored image upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _encoded(image: Image.Image, image_format: str, **params: Any) -> bytes:
    if image_format == "HEIF":
        pillow_heif.register_heif_opener()  # the tests write HEIC; reading it is the module's job
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def _photo(width: int, height: int) -> Image.Image:
    """A smooth, photo-like RGB image that is cheap to build."""
    ramp = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.ROTATE_180), Image.new("L", ramp.size, 90)))


def _noise(width: int, height: int, mode: str = "RGB") -> Image.Image:
    channels = Image.getmodebands(mode)
    return Image.frombytes(mode, (width, height), random.Random(7).randbytes(width * height * channels))


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def _png_header_only(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A PNG that declares a size but carries no pixels: a decompression bomb costs nothing to build."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )


def _quadrants(width: int, height: int) -> Image.Image:
    """Four colours, one to a quadrant: each of the eight orientations lays them out differently."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height // 2))
    image.paste(GREEN, (0, height // 2, width // 2, height))
    image.paste(YELLOW, (width // 2, height // 2, width, height))
    return image


def _heic(stored: Image.Image, orientation: int = 1, *, tile_px: int | None = 128) -> bytes:
    """A HEIC, by default stored as a grid of tiles, as phones store photos (in 512 px tiles)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    tiles = {"tile_size": tile_px} if tile_px else {}
    return _encoded(stored, "HEIF", quality=90, exif=exif.tobytes(), **tiles)


def _difference(sent: Image.Image, expected: Image.Image) -> float:
    """The mean difference per pixel of the worst channel, after scaling `expected` to `sent`."""
    scaled = expected.convert("RGB").resize(sent.size, Image.Resampling.BOX)
    return max(ImageStat.Stat(ImageChops.difference(sent.convert("RGB"), scaled)).mean)


def _sideways(image_format: str) -> bytes:
    """400x200 as stored, red in the stored top-left corner, tagged 'rotate 90° clockwise to view'."""
    stored = Image.new("RGB", (400, 200), BLUE)
    stored.paste(RED, (0, 0, 100, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encoded(stored, image_format, exif=exif.tobytes())


def _sent(prepared: PreparedImage) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(prepared.base64)))
    image.load()
    return image


def _near(pixel: Any, colour: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, colour, strict=False))


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 48), colour) for colour in (RED, BLUE, GREEN)]
    return _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


@pytest.mark.parametrize(
    ("image_format", "expected"),
    [("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"), ("WEBP", "webp"), ("HEIF", "heif")],
)
def test_each_accepted_format_is_recognised_from_its_bytes_alone(image_format: str, expected: str) -> None:
    data = _encoded(_photo(320, 240), image_format)

    prepared = prepare_image(data)

    assert sniff_format(data) == expected
    assert prepared.original_format == expected
    assert prepared.media_type == "image/jpeg"
    assert (prepared.width, prepared.height) == (320, 240)


def test_a_heic_photo_is_decoded_to_its_own_colours() -> None:
    prepared = prepare_image(_encoded(Image.new("RGB", (640, 480), RED), "HEIF", quality=90))

    assert _near(_sent(prepared).getpixel((320, 240)), RED)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_tiled_heic_is_downscaled_and_sent_as_its_orientation_says(orientation: int) -> None:
    stored = _quadrants(1024, 640)
    upright = stored.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else stored

    prepared = prepare_image(_heic(stored, orientation), max_edge_px=256)

    sent = _sent(prepared)
    assert (prepared.original_width, prepared.original_height) == upright.size
    assert sent.size == (prepared.width, prepared.height) == (upright.width // 4, upright.height // 4)
    assert _difference(sent, upright) < 4


@pytest.mark.parametrize(("orientation", "max_edge_px"), [(1, MAX_EDGE_PX), (6, MAX_EDGE_PX), (8, 250)])
def test_an_odd_sized_heic_is_cropped_to_its_own_size(orientation: int, max_edge_px: int) -> None:
    # HEVC codes whole blocks of pixels; the file then carries a crop to the odd size.
    stored = _quadrants(1001, 601)
    upright = stored.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else stored

    prepared = prepare_image(_heic(stored, orientation, tile_px=None), max_edge_px=max_edge_px)

    sent = _sent(prepared)
    assert (prepared.original_width, prepared.original_height) == upright.size
    assert max(sent.size) == min(max_edge_px, 1001)
    assert _difference(sent, upright) < 4


def test_a_heic_with_transparent_pixels_stays_a_png_with_its_transparency() -> None:
    image = Image.new("RGBA", (256, 128), (*RED, 255))
    image.paste((0, 0, 0, 0), (0, 0, 64, 64))

    prepared = prepare_image(_encoded(image, "HEIF", quality=90))

    sent = _sent(prepared)
    assert prepared.media_type == "image/png"
    assert _near(sent.getpixel((10, 10)), (0, 0, 0, 0), tolerance=8)
    assert _near(sent.getpixel((200, 100)), (*RED, 255))


def test_a_10_bit_heic_is_sent_with_its_colours() -> None:
    pixels = Image.new("RGB", (128, 96), RED).tobytes()
    buffer = io.BytesIO()
    sixteen_bit = struct.pack(f"<{len(pixels)}H", *(value << 8 for value in pixels))
    pillow_heif.from_bytes("RGB;16", (128, 96), sixteen_bit).save(buffer, quality=90)

    prepared = prepare_image(buffer.getvalue())

    assert _near(_sent(prepared).getpixel((64, 48)), RED)


def test_a_greyscale_heic_is_sent_with_its_grey() -> None:
    prepared = prepare_image(_encoded(Image.new("L", (128, 96), 128), "HEIF", quality=90))

    assert _near(_sent(prepared).getpixel((64, 48)), (128, 128, 128), tolerance=8)


def test_only_the_first_frame_of_an_animated_gif_is_sent() -> None:
    prepared = prepare_image(_animated_gif())

    assert prepared.original_format == "gif"
    assert _near(_sent(prepared).getpixel((32, 24)), RED)


@pytest.mark.parametrize("image_format", ["JPEG", "HEIF"])
def test_a_photo_stored_sideways_is_sent_upright(image_format: str) -> None:
    prepared = prepare_image(_sideways(image_format))

    sent = _sent(prepared)
    assert (prepared.original_width, prepared.original_height) == (200, 400)
    assert sent.size == (200, 400)
    assert _near(sent.getpixel((190, 10)), RED)  # the stored top-left is now the top-right
    assert _near(sent.getpixel((10, 10)), BLUE)
    assert _near(sent.getpixel((190, 390)), BLUE)


def test_a_large_jpeg_is_downscaled_to_the_long_edge_limit() -> None:
    prepared = prepare_image(_encoded(_photo(4000, 3000), "JPEG", quality=90))

    assert (prepared.width, prepared.height) == (MAX_EDGE_PX, 1176)
    assert (prepared.original_width, prepared.original_height) == (4000, 3000)
    assert _sent(prepared).size == (MAX_EDGE_PX, 1176)


def test_a_large_sideways_jpeg_is_downscaled_and_sent_upright() -> None:
    stored = Image.new("RGB", (3200, 1600), BLUE)
    stored.paste(RED, (0, 0, 800, 800))
    exif = Image.Exif()
    exif[0x0112] = 6

    prepared = prepare_image(_encoded(stored, "JPEG", exif=exif.tobytes()))

    sent = _sent(prepared)
    assert (prepared.original_width, prepared.original_height) == (1600, 3200)
    assert (prepared.width, prepared.height) == sent.size == (784, MAX_EDGE_PX)
    assert _near(sent.getpixel((770, 15)), RED)
    assert _near(sent.getpixel((15, 15)), BLUE)


def test_a_small_image_is_never_upscaled() -> None:
    prepared = prepare_image(_encoded(_photo(120, 90), "PNG"), max_edge_px=1000)

    assert (prepared.width, prepared.height) == (120, 90)


def test_a_png_with_transparent_pixels_stays_a_png_with_its_transparency() -> None:
    image = Image.new("RGBA", (200, 100), (*RED, 255))
    image.paste((0, 0, 0, 0), (0, 0, 50, 50))

    prepared = prepare_image(_encoded(image, "PNG"))

    sent = _sent(prepared)
    assert prepared.media_type == "image/png"
    assert sent.mode == "RGBA"
    assert sent.getpixel((10, 10)) == (0, 0, 0, 0)
    assert sent.getpixel((150, 80)) == (*RED, 255)


def test_a_palette_png_with_a_transparent_colour_stays_a_png() -> None:
    image = Image.new("P", (64, 64), 1)
    image.putpalette([0, 0, 0, *RED])
    image.paste(0, (0, 0, 32, 32))

    prepared = prepare_image(_encoded(image, "PNG", transparency=0))

    assert prepared.media_type == "image/png"
    assert _sent(prepared).getpixel((5, 5)) == (0, 0, 0, 0)


def test_an_opaque_png_is_sent_as_a_jpeg_even_with_an_alpha_channel() -> None:
    prepared = prepare_image(_encoded(_photo(300, 200).convert("RGBA"), "PNG"))

    assert prepared.media_type == "image/jpeg"
    assert _sent(prepared).format == "JPEG"


def test_a_16_bit_greyscale_png_keeps_its_mid_tones() -> None:
    image = Image.new("I;16", (64, 64), 32768)

    prepared = prepare_image(_encoded(image, "PNG"))

    assert _near(_sent(prepared).getpixel((32, 32)), (128, 128, 128), tolerance=4)


def test_a_cmyk_jpeg_is_sent_as_rgb() -> None:
    prepared = prepare_image(_encoded(Image.new("RGB", (100, 100), RED).convert("CMYK"), "JPEG"))

    sent = _sent(prepared)
    assert sent.mode == "RGB"
    assert _near(sent.getpixel((50, 50)), RED)


def test_a_small_payload_cap_is_met_by_lowering_quality_then_size() -> None:
    prepared = prepare_image(_encoded(_noise(800, 600), "PNG"), max_payload_bytes=30_000)

    assert prepared.media_type == "image/jpeg"
    assert prepared.encoded_bytes <= 30_000
    assert prepared.width < 800
    assert _sent(prepared).size == (prepared.width, prepared.height)


def test_a_transparent_png_over_the_payload_cap_is_shrunk_and_stays_a_png() -> None:
    prepared = prepare_image(_encoded(_noise(600, 400, "RGBA"), "PNG"), max_payload_bytes=100_000)

    assert prepared.media_type == "image/png"
    assert prepared.encoded_bytes <= 100_000
    assert prepared.width < 600


def test_a_payload_cap_no_image_can_meet_is_reported_as_too_large() -> None:
    with pytest.raises(ImageError) as caught:
        prepare_image(_encoded(_noise(200, 200), "PNG"), max_payload_bytes=50)

    assert caught.value.kind is ImageKind.TOO_LARGE


def test_the_digest_is_of_the_original_bytes_and_encoded_bytes_is_the_payload_size() -> None:
    for width in (301, 302, 303):  # payload lengths with each base64 padding
        data = _encoded(_photo(width, 200), "PNG")

        prepared = prepare_image(data)

        assert prepared.sha256 == hashlib.sha256(data).hexdigest()
        assert prepared.encoded_bytes == len(base64.b64decode(prepared.base64))


def _gif_first_frame_bomb() -> bytes:
    """A 1x1 GIF whose first frame claims 65535x65535: Pillow's own bomb check trips."""
    screen = struct.pack("<HHBBB", 1, 1, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0)
    return b"GIF89a" + screen + frame + b"\x02\x02\x4c\x01\x00;"


def _first_half(make: Callable[[], bytes]) -> Callable[[], bytes]:
    def half() -> bytes:
        data = make()
        return data[: len(data) // 2]

    return half


_LOGIN_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><title>Sign in | Slack</title></head>
<body><form action="/signin" method="post"><input name="email"></form></body></html>"""

_BAD_UPLOADS: list[tuple[str, Callable[[], bytes], ImageKind, str]] = [
    ("empty", lambda: b"", ImageKind.EMPTY, "empty"),
    ("random-bytes", lambda: random.Random(1).randbytes(5000), ImageKind.NOT_AN_IMAGE, "not an image"),
    ("plain-text", lambda: "Steel bracket, 3 mm, painted. ✓\n".encode() * 20, ImageKind.NOT_AN_IMAGE, "text"),
    ("html-login-page", lambda: _LOGIN_PAGE, ImageKind.NOT_AN_IMAGE, "web page"),
    ("html-no-doctype", lambda: b"\n  <html><body>Sign in</body></html>", ImageKind.NOT_AN_IMAGE, "web page"),
    ("svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg"/>', ImageKind.UNSUPPORTED, "SVG"),
    ("svg-with-prolog", lambda: b'<?xml version="1.0"?>\n<svg/>', ImageKind.UNSUPPORTED, "SVG"),
    ("pdf", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", ImageKind.UNSUPPORTED, "PDF"),
    ("tiff", lambda: _encoded(_photo(32, 32), "TIFF"), ImageKind.UNSUPPORTED, "TIFF"),
    ("bmp", lambda: _encoded(_photo(32, 32), "BMP"), ImageKind.UNSUPPORTED, "BMP"),
    (
        "avif",
        lambda: b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64),
        ImageKind.UNSUPPORTED,
        "AVIF",
    ),
    (
        "mp4",
        lambda: b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64),
        ImageKind.NOT_AN_IMAGE,
        "video",
    ),
    ("truncated-jpeg", _first_half(lambda: _encoded(_noise(300, 200), "JPEG")), ImageKind.CORRUPT, "damaged"),
    (
        "truncated-large-jpeg",
        _first_half(lambda: _encoded(_photo(4000, 3000), "JPEG")),
        ImageKind.CORRUPT,
        "damaged",
    ),
    ("truncated-png", _first_half(lambda: _encoded(_noise(300, 200), "PNG")), ImageKind.CORRUPT, "damaged"),
    ("truncated-gif", _first_half(lambda: _encoded(_noise(300, 200), "GIF")), ImageKind.CORRUPT, "damaged"),
    ("truncated-webp", _first_half(lambda: _encoded(_noise(300, 200), "WEBP")), ImageKind.CORRUPT, "damaged"),
    ("truncated-heic", _first_half(lambda: _encoded(_noise(300, 200), "HEIF")), ImageKind.CORRUPT, "damaged"),
    ("truncated-tiled-heic", _first_half(lambda: _heic(_noise(512, 384))), ImageKind.CORRUPT, "damaged"),
    ("zero-width-png", lambda: _png_header_only(0, 100), ImageKind.CORRUPT, "damaged"),
    ("png-bomb", lambda: _png_header_only(30_000, 30_000), ImageKind.TOO_MANY_PIXELS, "30000x30000"),
    ("gif-frame-bomb", _gif_first_frame_bomb, ImageKind.TOO_MANY_PIXELS, "too many pixels"),
    ("thin-strip", lambda: _encoded(_photo(2600, 50), "PNG"), ImageKind.UNSUPPORTED, "50 times"),
]


@pytest.mark.parametrize(
    ("make", "kind", "phrase"),
    [pytest.param(make, kind, phrase, id=name) for name, make, kind, phrase in _BAD_UPLOADS],
)
def test_each_bad_upload_is_named_and_told_what_is_accepted(
    make: Callable[[], bytes], kind: ImageKind, phrase: str
) -> None:
    with pytest.raises(ImageError) as caught:
        prepare_image(make())

    assert caught.value.kind is kind
    assert phrase in str(caught.value)
    assert ACCEPTED_FORMATS_TEXT in str(caught.value)


def test_a_truncated_jpeg_is_corrupt_without_tolerating_truncation_globally() -> None:
    data = _encoded(_noise(300, 200), "JPEG")

    with pytest.raises(ImageError) as caught:
        prepare_image(data[: len(data) * 2 // 3])

    assert caught.value.kind is ImageKind.CORRUPT
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_an_upload_over_the_byte_cap_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(ImageError) as caught:
        prepare_image(random.Random(2).randbytes(2_600_000), max_bytes=2_500_000)

    assert caught.value.kind is ImageKind.TOO_LARGE
    assert "2.6 MB, over the 2.5 MB limit" in str(caught.value)


def test_the_pixel_cap_is_judged_from_the_header() -> None:
    with pytest.raises(ImageError) as caught:
        prepare_image(_encoded(_photo(2000, 1000), "PNG"), max_pixels=1_000_000)

    assert caught.value.kind is ImageKind.TOO_MANY_PIXELS
    assert "2000x1000 pixels (2 megapixels), over the 1-megapixel limit" in str(caught.value)


def test_the_pixel_cap_of_a_heic_is_judged_from_its_header() -> None:
    with pytest.raises(ImageError) as caught:
        prepare_image(_heic(_photo(1000, 500), 6), max_pixels=400_000)

    assert caught.value.kind is ImageKind.TOO_MANY_PIXELS
    assert "500x1000 pixels" in str(caught.value)


def test_an_image_above_pillows_warning_threshold_but_within_our_cap_raises_no_warning() -> None:
    # 90 MP sits between Pillow's MAX_IMAGE_PIXELS (~89.5 MP) and our 100 MP; warnings are errors here.
    # 1-bit, so the pixel buffer Pillow reserves is never written and costs no real memory.
    with pytest.raises(ImageError) as caught:
        prepare_image(_png_header_only(10_000, 9_000, bit_depth=1, colour_type=0))

    assert caught.value.kind is ImageKind.CORRUPT


def test_importing_the_module_registers_no_heif_opener() -> None:
    script = "import matrec, matrec.images; from PIL import Image; Image.init(); print('HEIF' in Image.OPEN)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"
