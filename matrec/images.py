"""Uploaded images made ready for Claude: detected, checked, oriented, downscaled and encoded once.

The format comes from the bytes alone (magic numbers), never from a file name. A rejected upload
raises `ImageError`, whose kind says why:

    EMPTY            zero bytes
    TOO_LARGE        more than `max_bytes` (checked before decoding), or no encoding of the image
                     fits `max_payload_bytes` even when shrunk to MIN_EDGE_PX
    NOT_AN_IMAGE     unrecognised bytes, plain text, a web page (e.g. a login page saved in place
                     of the file), audio or video
    UNSUPPORTED      a recognised format that is not accepted (SVG, PDF, TIFF/RAW, BMP, AVIF, ...),
                     or an image longer than MAX_ASPECT_RATIO:1 between its sides
    CORRUPT          truncated or damaged data, including a header that claims zero width or height
    TOO_MANY_PIXELS  width x height over `max_pixels`, judged from the header before any pixel is
                     decoded (Pillow's own decompression-bomb error is reported the same way)
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import struct
from dataclasses import dataclass
from typing import Final, Literal, cast

from PIL import ExifTags, GifImagePlugin, Image, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from matrec import heif
from matrec.errors import ImageError, ImageKind

ImageFormat = Literal["jpeg", "png", "gif", "webp", "heif"]
MediaType = Literal["image/jpeg", "image/png"]

ACCEPTED_FORMATS_TEXT: Final = "JPEG, PNG, GIF, WebP or HEIC/HEIF"
MAX_EDGE_PX: Final = 1568
MAX_BYTES: Final = 25_000_000
MAX_PIXELS: Final = 100_000_000
MAX_PAYLOAD_BYTES: Final = 3_750_000
JPEG_QUALITY: Final = 85
JPEG_QUALITY_STEPS: Final = (JPEG_QUALITY, 75, 65, 50)  # tried in turn before the edge is shrunk
MAX_ASPECT_RATIO: Final = 50
MIN_EDGE_PX: Final = 32  # the payload loop stops shrinking here
MAX_SHRINK_STEP: Final = 0.9  # each shrink takes at least 10% off the long edge
RESIZE_REDUCING_GAP: Final = 3.0  # Pillow: reduce() by whole factors first, LANCZOS for the rest
SNIFF_WINDOW_BYTES: Final = 4096  # how far to look for markup (SVG, HTML) or a PDF header
BYTES_PER_MB: Final = 1_000_000
# Messages API limits on images (Anthropic's vision docs): at most 100 images per request; with
# more than 20, each must be at most 2000x2000 px; the whole request at most 32 MB, base64 included.
MAX_IMAGES_PER_REQUEST: Final = 100
MANY_IMAGES_THRESHOLD: Final = 20
MANY_IMAGES_MAX_EDGE_PX: Final = 2000
REQUEST_IMAGE_BUDGET_BYTES: Final = 22_000_000  # raw bytes: x4/3 in base64 is ~29.3 MB, the rest is text
MIN_SHARED_EDGE_PX: Final = 200  # below this, Anthropic notes, images lose detail the model needs

_FORMAT_NAMES: dict[ImageFormat, str] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "webp": "WebP",
    "heif": "HEIC/HEIF",
}
_MEDIA_TYPES: Final = ("image/jpeg", "image/png")
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
_GENERIC_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_OTHER_IMAGE_MAGIC: Final = (
    (b"II*\x00", "TIFF (or camera RAW)"),
    (b"MM\x00*", "TIFF (or camera RAW)"),
    (b"BM", "BMP"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)
_SIDEWAYS_ORIENTATIONS = frozenset({5, 6, 7, 8})
_TRANSPOSE_FOR_ORIENTATION = {  # the EXIF rule, as in PIL.ImageOps.exif_transpose
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What Pillow raises for damaged data (ImageFile turns IndexError etc. into SyntaxError); matrec.heif raises OSError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for Claude: decoded, oriented, downscaled and encoded once."""

    media_type: MediaType
    base64: str
    width: int
    height: int
    original_format: ImageFormat
    original_width: int
    original_height: int
    sha256: str

    @property
    def encoded_bytes(self) -> int:
        """Size of the payload the base64 text carries, in bytes."""
        padding = 2 if self.base64.endswith("==") else 1 if self.base64.endswith("=") else 0
        return len(self.base64) // 4 * 3 - padding

    @property
    def data(self) -> bytes:
        """The encoded image itself, as sent (for storing it and rebuilding it with `from_bytes`)."""
        return base64.b64decode(self.base64)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        media_type: str,
        width: int,
        height: int,
        original_width: int,
        original_height: int,
        original_format: str,
        sha256: str,
    ) -> PreparedImage:
        """A stored prepared image rebuilt byte-identically (so a cached prefix that carries it still matches).

        Raises ValueError for a media type or format a prepared image never has.
        """
        if media_type not in _MEDIA_TYPES:
            raise ValueError(f"a prepared image is image/jpeg or image/png, not {media_type!r}")
        if original_format not in _FORMAT_NAMES:
            raise ValueError(f"unknown original format {original_format!r}")
        return cls(
            media_type=cast("MediaType", media_type),
            base64=base64.b64encode(data).decode("ascii"),
            width=width,
            height=height,
            original_format=original_format,
            original_width=original_width,
            original_height=original_height,
            sha256=sha256,
        )


@dataclass(frozen=True)
class PhotoBudget:
    """What each of several photos of one request may take: its long edge and its encoded bytes."""

    max_edge_px: int
    max_payload_bytes: int


def photo_budget(
    count: int,
    *,
    max_edge_px: int = MAX_EDGE_PX,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    request_budget_bytes: int = REQUEST_IMAGE_BUDGET_BYTES,
) -> PhotoBudget:
    """Each photo's share, so `count` of them fit one request: the payload budget divided evenly,
    and the edge shrunk with the square root of that share (bytes grow with the pixel count)."""
    count = max(count, 1)
    payload = min(max_payload_bytes, request_budget_bytes // count)
    edge = max_edge_px
    if count > MANY_IMAGES_THRESHOLD:
        edge = min(edge, MANY_IMAGES_MAX_EDGE_PX)
    if payload < max_payload_bytes:
        edge = min(edge, max(MIN_SHARED_EDGE_PX, int(max_edge_px * math.sqrt(payload / max_payload_bytes))))
    return PhotoBudget(max_edge_px=edge, max_payload_bytes=payload)


def sniff_format(data: bytes) -> ImageFormat | None:
    """The image format the bytes carry ("jpeg","png","gif","webp","heif"), or None."""
    if data.startswith(_JPEG_MAGIC):
        return "jpeg"
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if _iso_media_kind(data) == "heif":
        return "heif"
    return None


def prepare_image(
    data: bytes,
    *,
    max_edge_px: int = MAX_EDGE_PX,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> PreparedImage:
    """Validate, orient, downscale and encode an uploaded image; raises ImageError."""
    if not data:
        raise _rejection(ImageKind.EMPTY, "The file is empty (0 bytes).")
    if len(data) > max_bytes:
        raise _rejection(
            ImageKind.TOO_LARGE,
            f"The file is {_size_text(len(data), round_up=True)}, over the {_size_text(max_bytes)} limit.",
        )
    image_format = sniff_format(data)
    if image_format is None:
        raise _unrecognised(data)

    image, original_size = _decode(data, image_format, max_edge_px=max_edge_px, max_pixels=max_pixels)
    orientation = _orientation(image)
    image = _without_needless_alpha(_in_encodable_mode(image))
    image = _resized(image, _fitted_size(original_size, max_edge_px))
    if orientation in _TRANSPOSE_FOR_ORIENTATION:
        image = image.transpose(_TRANSPOSE_FOR_ORIENTATION[orientation])
    payload, (width, height) = _encode_within(image, max_payload_bytes)

    original_width, original_height = original_size
    if orientation in _SIDEWAYS_ORIENTATIONS:
        original_width, original_height = original_height, original_width
    return PreparedImage(
        media_type="image/png" if image.mode == "RGBA" else "image/jpeg",
        base64=base64.b64encode(payload).decode("ascii"),
        width=width,
        height=height,
        original_format=image_format,
        original_width=original_width,
        original_height=original_height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _rejection(kind: ImageKind, problem: str, *, advice: str = "Please send a photo of the part") -> ImageError:
    return ImageError(kind, f"{problem} {advice} as {ACCEPTED_FORMATS_TEXT}.")


def _size_text(byte_count: int, *, round_up: bool = False) -> str:
    if byte_count < BYTES_PER_MB // 10:
        return f"{byte_count:,} bytes"
    return f"{_millions(byte_count, round_up=round_up)} MB"


def _millions(count: int, *, round_up: bool = False) -> str:
    """A count in millions to one decimal; rounded up, a size just over a limit never prints equal."""
    tenths = math.ceil(count / 100_000) if round_up else round(count / 100_000)
    return f"{tenths / 10:.1f}".removesuffix(".0")


def _iso_media_kind(data: bytes) -> Literal["heif", "avif", "other"] | None:
    """For an ISO base media file (HEIF, AVIF, MP4, MOV...), which kind its ftyp brands name."""
    if len(data) < 12 or data[4:8] != b"ftyp":
        return None
    box_end = min(int.from_bytes(data[:4], "big"), len(data), 256)
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, box_end - 3, 4)}
    if data[8:12] in _AVIF_BRANDS or (brands & _AVIF_BRANDS and not brands & _HEIF_BRANDS):
        return "avif"
    if brands & (_HEIF_BRANDS | _GENERIC_HEIF_BRANDS):
        return "heif"
    return "other"


def _unrecognised(data: bytes) -> ImageError:
    """The error for bytes that are not an accepted format, as specific as their contents allow."""
    head = data[:SNIFF_WINDOW_BYTES]
    markup = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if markup.startswith((b"<svg", b"<!doctype svg")) or (markup.startswith(b"<?xml") and b"<svg" in markup):
        return _rejection(
            ImageKind.UNSUPPORTED,
            "This is an SVG drawing; SVG files are not accepted.",
            advice="Please send a photo of the part, or export the drawing,",
        )
    if markup.startswith((b"<!doctype html", b"<html")) or (markup.startswith(b"<") and b"<html" in markup):
        return _rejection(
            ImageKind.NOT_AN_IMAGE,
            "This looks like a web page (for example a login page), not an image, "
            "so the photo probably did not download.",
            advice="Please upload the photo itself again",
        )
    if b"%PDF-" in head[:1024]:
        return _rejection(ImageKind.UNSUPPORTED, "This is a PDF document; PDF files are not accepted.")
    for magic, name in _OTHER_IMAGE_MAGIC:
        if data.startswith(magic):
            return _rejection(ImageKind.UNSUPPORTED, f"{name} images are not accepted.")
    iso_kind = _iso_media_kind(data)
    if iso_kind == "avif":
        return _rejection(ImageKind.UNSUPPORTED, "AVIF images are not accepted.")
    if iso_kind == "other":
        return _rejection(ImageKind.NOT_AN_IMAGE, "This looks like a video or audio file, not a photo.")
    if _looks_like_text(head):
        return _rejection(ImageKind.NOT_AN_IMAGE, "This is a text file, not an image.")
    return _rejection(ImageKind.NOT_AN_IMAGE, "This file is not an image we recognise.")


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # a character cut at the window's end is still text
            return False
        text = head[: error.start].decode("utf-8")
    return all(char.isprintable() or char in "\t\n\r\f" for char in text)


def _open(data: bytes, image_format: Literal["jpeg", "png", "gif", "webp"]) -> ImageFile.ImageFile:
    """Read the header with the one plugin for the sniffed format; no pixels are decoded yet.

    The plugin classes are used directly rather than Image.open, whose own pixel check would warn
    (DecompressionBombWarning) between Pillow's MAX_IMAGE_PIXELS and our max_pixels.
    JpegImageFile also reads an iPhone MPO as its first (main) picture.
    """
    stream = io.BytesIO(data)
    match image_format:
        case "jpeg":
            return JpegImagePlugin.JpegImageFile(stream)
        case "png":
            return PngImagePlugin.PngImageFile(stream)
        case "gif":
            return GifImagePlugin.GifImageFile(stream)  # positioned on the first frame
        case "webp":
            return WebPImagePlugin.WebPImageFile(stream)  # first frame of an animation


def _decode(
    data: bytes, image_format: ImageFormat, *, max_edge_px: int, max_pixels: int
) -> tuple[Image.Image, tuple[int, int]]:
    """The loaded pixels, possibly already reduced, and the stored size the header declares."""
    try:
        if image_format == "heif":
            return _decode_heif(data, max_edge_px=max_edge_px, max_pixels=max_pixels)
        image = _open(data, image_format)
        _check_dimensions(image.size, max_pixels)
        original_size = image.size
        target = _fitted_size(original_size, max_edge_px)
        if target != original_size:
            image.draft(None, target)  # JPEG decodes at 1/2, 1/4 or 1/8 scale: 12 MP in ~12 MB, not ~48 MB
        image.load()  # decodes every pixel, so truncated data fails here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _rejection(
            ImageKind.TOO_MANY_PIXELS,
            "The image has too many pixels to process.",
            advice="Please send a smaller photo of the part",
        ) from error
    except _DECODE_ERRORS as error:
        raise _rejection(
            ImageKind.CORRUPT,
            f"The {_FORMAT_NAMES[image_format]} file is damaged or incomplete (it may have been cut off "
            "during upload), so it cannot be read.",
            advice="Please send the photo again",
        ) from error
    return image, original_size


def _decode_heif(data: bytes, *, max_edge_px: int, max_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """As `_decode`, for HEIF: the stored size is checked too, as a crop may hide most of what is decoded."""
    picture = heif.HeifPicture(data)
    _check_dimensions(picture.size, max_pixels)
    _check_pixel_count(picture.stored_size, max_pixels)
    return picture.decoded(min_size=_fitted_size(picture.size, max_edge_px)), picture.size


def _check_dimensions(size: tuple[int, int], max_pixels: int) -> None:
    _check_pixel_count(size, max_pixels)
    width, height = size
    if max(size) > MAX_ASPECT_RATIO * min(size):
        raise _rejection(
            ImageKind.UNSUPPORTED,
            f"The image is {width}x{height} pixels, a strip more than {MAX_ASPECT_RATIO} times longer "
            "than it is wide, which cannot be analysed.",
        )


def _check_pixel_count(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise _rejection(
            ImageKind.TOO_MANY_PIXELS,
            f"The image is {width}x{height} pixels ({_millions(width * height, round_up=True)} "
            f"megapixels), over the {_millions(max_pixels)}-megapixel limit.",
            advice="Please send a smaller photo of the part",
        )


def _orientation(image: Image.Image) -> int:
    """The EXIF (or XMP) orientation, 1 when absent or unreadable: bad metadata costs no photo."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) else 1


def _in_encodable_mode(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when the image carries any alpha or transparency information."""
    if image.mode.startswith("I"):
        # 16-bit greyscale PNG: convert() would clip everything above 255 to white, so scale first.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        return image.convert("RGBA") if image.mode != "RGBA" else image
    return image.convert("RGB") if image.mode != "RGB" else image


def _without_needless_alpha(image: Image.Image) -> Image.Image:
    """RGB unless some pixel is actually see-through; only real transparency is worth a PNG."""
    if image.mode == "RGBA":
        per_band = cast("tuple[tuple[int, int], ...]", image.getextrema())  # one pair per band
        min_alpha, _ = per_band[3]
        if min_alpha == 255:
            return image.convert("RGB")
    return image


def _fitted_size(size: tuple[int, int], max_edge_px: int) -> tuple[int, int]:
    """The size with its long edge at most max_edge_px, aspect kept, never enlarged."""
    width, height = size
    long_edge = max(width, height)
    if long_edge <= max_edge_px:
        return size
    scale = max_edge_px / long_edge
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=RESIZE_REDUCING_GAP)


def _encoded(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    if image.mode == "RGBA":
        image.save(buffer, "PNG")
    else:
        image.save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def _encode_within(image: Image.Image, max_payload_bytes: int) -> tuple[bytes, tuple[int, int]]:
    """The encoded image and its size, stepping JPEG quality down and then the edge until it fits."""
    qualities = JPEG_QUALITY_STEPS if image.mode == "RGB" else JPEG_QUALITY_STEPS[:1]
    for quality in qualities:
        payload = _encoded(image, quality)
        if len(payload) <= max_payload_bytes:
            return payload, image.size
    long_edge = max(image.size)
    while long_edge > MIN_EDGE_PX:
        # Bytes grow roughly with the pixel count, so aim the edge at the square root of the excess.
        scale = min(MAX_SHRINK_STEP, 0.95 * math.sqrt(max_payload_bytes / len(payload)))
        long_edge = max(MIN_EDGE_PX, int(long_edge * scale))
        smaller = _resized(image, _fitted_size(image.size, long_edge))
        payload = _encoded(smaller, qualities[-1])
        if len(payload) <= max_payload_bytes:
            return payload, smaller.size
    raise _rejection(
        ImageKind.TOO_LARGE,
        f"The image cannot be compressed below the {_size_text(max_payload_bytes)} limit for sending.",
        advice="Please send a simpler or smaller photo of the part",
    )
