"""HEIC/HEIF photos for `matrec.images`, read through pillow_heif's public API only.

libheif (through `pillow_heif.open_heif`) decodes the primary image whole, with its rotation,
mirroring and crop (irot, imir, clap) applied and 10/12-bit samples scaled to 8 bits; pillow_heif
offers no scaled or tile-by-tile decoding. The decoded pixels are reduced by a whole factor band by
band, so no second full-size copy is made, and are freed when the caller drops its `HeifPicture`.
The image returned is upright and carries no orientation (EXIF, XMP) to apply again. An embedded
thumbnail is decoded instead when one is large enough (phones store small ones, so it rarely is).

Two things libheif does not report are read from the file's boxes, before any pixel is decoded:
the largest image the file stores (its `ispe` boxes, which a crop may hide), for the
decompression-bomb check; and whether every byte the items point to (`iloc`) is there, because
libheif fills a missing grid tile with green rather than fail, so a photo cut off during upload
would pass as a photo.

Nothing here is global or mutable: `pillow_heif.options` are read, never set, so several threads
may decode at once. Damaged or unreadable data raises OSError, as Pillow's own plugins do.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, cast

from PIL import Image

if TYPE_CHECKING:
    import pillow_heif

BAND_ROWS: Final = 256  # rows of decoded pixels unpacked into Pillow at once (~3 MB at 4032 px)
MAX_SCALED_COPY_SKEW_PX: Final = 2  # a thumbnail's aspect may differ from the image's by rounding only

# pillow_heif's pixel layouts (with convert_hdr_to_8bit) as (Pillow mode, Pillow raw mode).
_PIXEL_LAYOUTS: Final[dict[str, tuple[str, str]]] = {
    "RGB": ("RGB", "RGB"),
    "RGBA": ("RGBA", "RGBA"),
    "RGBa": ("RGBA", "RGBa"),  # premultiplied alpha, unmultiplied as it is unpacked
    "L": ("L", "L"),
    "I;16": ("L", "L;16"),  # 10/12-bit grey scaled to 16 bits, little-endian: the high byte is kept
}
_BOX_HEADER: Final = struct.Struct(">I4s")
_FULL_BOX_HEADER_BYTES: Final = 4  # version and flags
_IN_THIS_FILE: Final = 0  # iloc construction method: the data lies at a file offset


@dataclass(frozen=True)
class _Layout:
    """What the boxes declare: every stored image size, and the last byte any item's data needs."""

    stored_sizes: tuple[tuple[int, int], ...]
    data_end: int


class HeifPicture:
    """The primary image of a HEIF file: its header read and found complete, no pixel decoded yet."""

    def __init__(self, data: bytes) -> None:
        layout = _layout(data)
        if layout.data_end > len(data):
            raise OSError(f"HEIF: the file is cut off at {len(data):,} bytes; its images need {layout.data_end:,}")
        import pillow_heif  # loads libheif (~6 MiB, ~35 ms), so only when a HEIF photo arrives

        with _as_os_error():
            heif_file = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        if len(heif_file) == 0:
            raise OSError("HEIF: the file holds no image")
        # The image marked primary, else the first, as pillow_heif's own HeifFile.size and .data choose it.
        self._image = next((image for image in heif_file if image.info.get("primary")), heif_file[0])
        self.size: tuple[int, int] = self._image.size
        """Width and height as displayed: after rotation, mirroring and crop."""
        if 0 in self.size:  # libheif reports an image without `ispe` box as 0x0 rather than fail
            raise OSError("HEIF: the image declares no size")
        self.stored_size: tuple[int, int] = max(layout.stored_sizes, key=_area, default=self.size)
        """The largest image the file stores, before any crop: what decoding may allocate."""

    def decoded(self, min_size: tuple[int, int]) -> Image.Image:
        """The pixels as displayed, reduced by a whole factor while still covering `min_size`."""
        source = _thumbnail_covering(self._image, min_size) or self._image
        width, height = source.size
        reduced = _reduced(source, max(1, min(width // min_size[0], height // min_size[1])))
        # Only the colour profile is carried over: the EXIF or XMP orientation only repeats the
        # rotation libheif has applied, and must not be applied again.
        icc_profile = self._image.info.get("icc_profile")
        reduced.info = {"icc_profile": icc_profile} if icc_profile else {}
        return reduced


@contextlib.contextmanager
def _as_os_error() -> Iterator[None]:
    """pillow_heif's documented errors for bad data, raised as the OSError Pillow uses for it."""
    try:
        yield
    except (ValueError, EOFError, SyntaxError, RuntimeError) as error:
        raise OSError(f"HEIF: {error}") from error


def _area(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def _thumbnail_covering(image: pillow_heif.HeifImage, min_size: tuple[int, int]) -> pillow_heif.HeifThumbnail | None:
    """The smallest embedded thumbnail that covers `min_size` and is a scaled copy of the image."""
    width, height = image.size
    candidates = []
    thumbnail_ids = image.info.get("thumbnails")
    for index in range(len(thumbnail_ids) if isinstance(thumbnail_ids, list) else 0):
        with _as_os_error():
            thumbnail = image.get_thumbnail(index)
        thumb_width, thumb_height = thumbnail.size
        if (
            thumbnail.mode == image.mode
            and thumb_width >= min_size[0]
            and thumb_height >= min_size[1]
            and _area(thumbnail.size) < _area(image.size)
            # Another aspect ratio means another crop or a quarter turn: not the same picture.
            and abs(thumb_width * height - thumb_height * width) <= MAX_SCALED_COPY_SKEW_PX * max(width, height)
        ):
            candidates.append(thumbnail)
    return min(candidates, key=lambda thumbnail: _area(thumbnail.size), default=None)


def _reduced(source: pillow_heif.HeifImage | pillow_heif.HeifThumbnail, factor: int) -> Image.Image:
    """The decoded pixels, unpacked and reduced by `factor` a band of rows at a time."""
    if source.mode not in _PIXEL_LAYOUTS:
        raise OSError(f"HEIF: pixels of mode {source.mode} cannot be read")
    mode, rawmode = _PIXEL_LAYOUTS[source.mode]
    with _as_os_error():
        pixels = memoryview(source.data)  # decodes; a view, so slicing it below copies nothing
    stride = source.stride
    width, height = source.size  # read after decoding, which may change it
    if stride * height > len(pixels):
        raise OSError("HEIF: the decoded image is smaller than its size")
    reduced = Image.new(mode, (-(-width // factor), -(-height // factor)))  # as Image.reduce: ceil
    band_rows = max(1, BAND_ROWS // factor) * factor  # whole blocks, so bands reduce as the whole would
    for top in range(0, height, band_rows):
        rows = min(band_rows, height - top)
        window = cast("bytes", pixels[top * stride : (top + rows) * stride])  # Pillow takes any buffer
        band = Image.frombuffer(mode, (width, rows), window, "raw", rawmode, stride, 1)
        reduced.paste(band.reduce(factor) if factor > 1 else band, (0, top // factor))
    return reduced


def _layout(data: bytes) -> _Layout:
    """The stored sizes (`ispe`) and the end of the item data (`iloc`) the file's `meta` box declares."""
    stored_sizes: list[tuple[int, int]] = []
    data_end = 0
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind != b"meta":
            continue
        for child, child_start, child_end in _boxes(data, start + _FULL_BOX_HEADER_BYTES, end):
            if child == b"iloc":
                data_end = max(data_end, _item_data_end(_Cursor(data, child_start, child_end)))
            elif child == b"iprp":
                stored_sizes.extend(_stored_sizes(data, child_start, child_end))
        break
    return _Layout(tuple(stored_sizes), data_end)


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of each box in data[start:end]; OSError for one that runs past `end`."""
    position = start
    while end - position >= _BOX_HEADER.size:
        size, kind = _BOX_HEADER.unpack_from(data, position)
        payload = position + _BOX_HEADER.size
        if size == 1:  # a 64-bit size follows the type
            size = _Cursor(data, payload, end).uint(8)
            payload += 8
        elif size == 0:  # the box runs to the end of its container
            size = end - position
        if size < payload - position or position + size > end:
            raise OSError(f"HEIF: the {kind!r} box runs past the end of the file (cut off?)")
        yield kind, payload, position + size
        position += size


def _stored_sizes(data: bytes, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Width and height of every `ispe` (image spatial extents) property in an `iprp` box."""
    for kind, container_start, container_end in _boxes(data, start, end):
        if kind == b"ipco":
            for prop, prop_start, prop_end in _boxes(data, container_start, container_end):
                if prop == b"ispe":
                    cursor = _Cursor(data, prop_start + _FULL_BOX_HEADER_BYTES, prop_end)
                    yield cursor.uint(4), cursor.uint(4)


def _item_data_end(cursor: _Cursor) -> int:
    """The furthest byte of the file any item's data reaches, as an `iloc` box (ISO 14496-12 8.11.3) says."""
    version = cursor.uint(1)
    cursor.uint(3)  # flags
    offset_size, length_size = divmod(cursor.uint(1), 16)
    base_offset_size, index_size = divmod(cursor.uint(1), 16)
    if version not in (1, 2):
        index_size = 0  # reserved in version 0
    wide = version == 2
    data_end = 0
    for _ in range(cursor.uint(4 if wide else 2)):
        cursor.uint(4 if wide else 2)  # item ID
        method = cursor.uint(2) & 0xF if version in (1, 2) else _IN_THIS_FILE
        data_reference = cursor.uint(2)  # 0: this file
        in_this_file = method == _IN_THIS_FILE and data_reference == 0
        base_offset = cursor.uint(base_offset_size)
        for _ in range(cursor.uint(2)):
            cursor.uint(index_size)
            offset, length = cursor.uint(offset_size), cursor.uint(length_size)
            if in_this_file:
                data_end = max(data_end, base_offset + offset + length)
    return data_end


class _Cursor:
    """Reads big-endian unsigned integers from data[position:end]; OSError past the end."""

    def __init__(self, data: bytes, position: int, end: int) -> None:
        self._data, self._position, self._end = data, position, end

    def uint(self, byte_count: int) -> int:
        start, self._position = self._position, self._position + byte_count
        if self._position > self._end:
            raise OSError("HEIF: a box ends in the middle of a field (cut off?)")
        return int.from_bytes(self._data[start : self._position], "big")
