"""HEIC/HEIF photos for `matrec.images`: the header read by pillow_heif, the pixels decoded tile by tile.

iPhones and most Android phones store a photo as a grid of 512x512 HEVC tiles. pillow_heif decodes
a 12 MP photo whole, holding its YCbCr planes and a 37 MB RGB copy at once. libheif's C API, which
pillow_heif does not expose, decodes one tile at a time, so only the reduced image (a quarter of
that) grows. It is bound with ctypes on first use; where it cannot be, pillow_heif decodes the
whole image. Errors are Pillow's: damaged data raises OSError, SyntaxError or ValueError.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import itertools
from collections.abc import Callable
from types import SimpleNamespace
from typing import IO, Any, Final, cast

from PIL import Image, ImageFile

BAND_ROWS: Final = 256  # rows of a decoded tile copied into Pillow at once (~4 MB at 4032 px)

_COLORSPACE_RGB: Final = 1
_CHROMA_RGB: Final = 10
_CHROMA_RGBA: Final = 11
_CHANNEL_INTERLEAVED: Final = 10
_PROPERTY_ROTATION: Final = int.from_bytes(b"irot", "big")
_PROPERTY_MIRROR: Final = int.from_bytes(b"imir", "big")
_PROPERTY_CROP: Final = int.from_bytes(b"clap", "big")
_MIRROR_VERTICAL: Final = 0  # flips top and bottom
_TRANSPOSE_FOR_CCW_ANGLE = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


class _Error(ctypes.Structure):
    _fields_ = (("code", ctypes.c_int), ("subcode", ctypes.c_int), ("message", ctypes.c_char_p))


class _Tiling(ctypes.Structure):
    _fields_ = (
        ("version", ctypes.c_int),
        ("num_columns", ctypes.c_uint32),
        ("num_rows", ctypes.c_uint32),
        ("tile_width", ctypes.c_uint32),
        ("tile_height", ctypes.c_uint32),
        ("rest", ctypes.c_uint8 * 256),  # later fields, with room for what newer versions add
    )


class _DecodingOptionsHead(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint8), ("ignore_transformations", ctypes.c_uint8))


_P = ctypes.c_void_p
_ID = ctypes.c_uint32
_INT_OUT = ctypes.POINTER(ctypes.c_int)
# Every libheif function called here, as (return type, argument types) from libheif's headers. Only
# these are bound, so calling any other is an AttributeError rather than an undeclared call.
_SIGNATURES: Final[dict[str, tuple[Any, tuple[Any, ...]]]] = {
    "heif_context_alloc": (_P, ()),
    "heif_context_free": (None, (_P,)),
    "heif_context_read_from_memory_without_copy": (_Error, (_P, ctypes.c_char_p, ctypes.c_size_t, _P)),
    "heif_context_get_primary_image_handle": (_Error, (_P, ctypes.POINTER(_P))),
    "heif_image_handle_release": (None, (_P,)),
    "heif_image_handle_get_item_id": (_ID, (_P,)),
    "heif_image_handle_get_ispe_width": (ctypes.c_int, (_P,)),
    "heif_image_handle_get_ispe_height": (ctypes.c_int, (_P,)),
    "heif_image_handle_get_image_tiling": (_Error, (_P, ctypes.c_int, ctypes.POINTER(_Tiling))),
    "heif_decoding_options_alloc": (_P, ()),
    "heif_decoding_options_free": (None, (_P,)),
    "heif_image_handle_decode_image_tile": (
        _Error,
        (_P, ctypes.POINTER(_P), ctypes.c_int, ctypes.c_int, _P, ctypes.c_uint32, ctypes.c_uint32),
    ),
    "heif_image_get_plane_readonly": (_P, (_P, ctypes.c_int, _INT_OUT)),
    "heif_image_get_width": (ctypes.c_int, (_P, ctypes.c_int)),
    "heif_image_get_height": (ctypes.c_int, (_P, ctypes.c_int)),
    "heif_image_release": (None, (_P,)),
    "heif_item_get_transformation_properties": (ctypes.c_int, (_P, _ID, ctypes.POINTER(_ID), ctypes.c_int)),
    "heif_item_get_property_type": (ctypes.c_int, (_P, _ID, _ID)),
    "heif_item_get_property_transform_rotation_ccw": (ctypes.c_int, (_P, _ID, _ID)),
    "heif_item_get_property_transform_mirror": (ctypes.c_int, (_P, _ID, _ID)),
    "heif_item_get_property_transform_crop_borders": (
        None,
        (_P, _ID, _ID, ctypes.c_int, ctypes.c_int, _INT_OUT, _INT_OUT, _INT_OUT, _INT_OUT),
    ),
}


def open_heif(stream: IO[bytes]) -> ImageFile.ImageFile:
    """The HEIF image's header, read by pillow_heif's Pillow plugin; no pixels are decoded yet."""
    import pillow_heif  # loads libheif, so only on first use

    # The plugin class is used directly: registering it would change Image.open for the whole process.
    # (Typed here because pillow_heif leaves its constructor unannotated.)
    plugin: Callable[[IO[bytes]], ImageFile.ImageFile] = pillow_heif.HeifImageFile
    return plugin(stream)


def decode_heif(
    data: bytes,
    header: ImageFile.ImageFile,
    *,
    min_size: tuple[int, int],
    check_stored_size: Callable[[tuple[int, int]], None],
) -> Image.Image:
    """The pixels of `header` (opened from `data`), reduced by a whole factor while still covering `min_size`."""
    libheif = _libheif()
    if libheif is None:
        header.load()
        return header
    context = libheif.heif_context_alloc()
    if not context:
        raise MemoryError("libheif could not allocate a context")
    handle = ctypes.c_void_p()
    try:
        # Without copy: `data` outlives the context, which is freed below.
        _checked(libheif.heif_context_read_from_memory_without_copy(context, data, len(data), None))
        _checked(libheif.heif_context_get_primary_image_handle(context, ctypes.byref(handle)))
        # The stored size, before any rotation or crop; a crop may hide most of it, so check it too.
        stored = (
            libheif.heif_image_handle_get_ispe_width(handle),
            libheif.heif_image_handle_get_ispe_height(handle),
        )
        check_stored_size(stored)
        scale = min(header.size[0] // min_size[0], header.size[1] // min_size[1])
        rawmode = header.mode if header.mode in ("RGBA", "RGBa") else "RGB"  # RGBa: premultiplied alpha
        reduced, factor = _reduced(libheif, handle, stored, scale, rawmode)
        item = libheif.heif_image_handle_get_item_id(handle)
        reduced = _transformed(libheif, context, item, reduced, stored, factor)
    finally:
        if handle:
            libheif.heif_image_handle_release(handle)
        libheif.heif_context_free(context)
    reduced.info = header.info  # EXIF, XMP and colour profile, as pillow_heif reads them
    return reduced


@functools.cache
def _libheif() -> SimpleNamespace | None:
    """The libheif pillow_heif is linked with, its functions bound as _SIGNATURES says; None where it cannot be.

    The symbols are looked up through pillow_heif's extension, whose dependencies the loader
    searches too (as on Linux), so no second copy of libheif is loaded. Where they are not found
    (another platform, or a libheif older than 1.19, without tile decoding) pillow_heif decodes
    the whole image.
    """
    spec = importlib.util.find_spec("_pillow_heif")
    if spec is None or spec.origin is None:
        return None
    functions = {}
    try:
        library = ctypes.CDLL(spec.origin)
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(library, name)
            function.restype, function.argtypes = restype, argtypes
            functions[name] = function
    except (OSError, AttributeError):
        return None
    return SimpleNamespace(**functions)


def _checked(error: _Error) -> None:
    if error.code:
        message = error.message.decode(errors="replace") if error.message else "unknown error"
        raise OSError(f"libheif: {message}")


def _reduced(
    libheif: SimpleNamespace, handle: ctypes.c_void_p, stored: tuple[int, int], scale: int, rawmode: str
) -> tuple[Image.Image, int]:
    """The image as stored (not yet rotated), each tile reduced as it is decoded; and the factor."""
    tiling = _Tiling()
    _checked(libheif.heif_image_handle_get_image_tiling(handle, 0, ctypes.byref(tiling)))
    tiled = tiling.num_columns * tiling.num_rows > 1
    # Reducing by a factor that divides the tile size gives what reducing the whole would: no seams.
    factor = max(
        f for f in range(1, scale + 1) if not tiled or (tiling.tile_width % f == 0 and tiling.tile_height % f == 0)
    )
    mode, chroma = ("RGB", _CHROMA_RGB) if rawmode == "RGB" else ("RGBA", _CHROMA_RGBA)
    reduced: Image.Image | None = None
    options = libheif.heif_decoding_options_alloc()
    if not options:
        raise MemoryError("libheif could not allocate decoding options")
    try:
        # Rotations, mirrorings and crops are applied afterwards, to the reduced image.
        ctypes.cast(options, ctypes.POINTER(_DecodingOptionsHead)).contents.ignore_transformations = 1
        for row, column in itertools.product(range(tiling.num_rows), range(tiling.num_columns)):
            tile = ctypes.c_void_p()
            try:
                _checked(
                    libheif.heif_image_handle_decode_image_tile(
                        handle, ctypes.byref(tile), _COLORSPACE_RGB, chroma, options, column, row
                    )
                )
                if reduced is None:  # made after the first decode: an untiled image's peak stays lower
                    reduced = Image.new(mode, _reduced_size(stored, factor))
                origin = column * tiling.tile_width, row * tiling.tile_height
                _paste_reduced(libheif, tile, reduced, origin, stored, factor, rawmode)
            finally:
                if tile:
                    libheif.heif_image_release(tile)
    finally:
        libheif.heif_decoding_options_free(options)
    if reduced is None:
        raise OSError("libheif: the image has no tiles")
    return reduced, factor


def _reduced_size(size: tuple[int, int], factor: int) -> tuple[int, int]:
    return -(-size[0] // factor), -(-size[1] // factor)  # as Image.reduce: a partial block counts


def _paste_reduced(
    libheif: SimpleNamespace,
    tile: ctypes.c_void_p,
    reduced: Image.Image,
    origin: tuple[int, int],
    stored: tuple[int, int],
    factor: int,
    rawmode: str,
) -> None:
    """Copy one decoded tile into `reduced`, band by band; nothing refers to its memory afterwards."""
    stride = ctypes.c_int()
    address = libheif.heif_image_get_plane_readonly(tile, _CHANNEL_INTERLEAVED, ctypes.byref(stride))
    if not address:
        raise OSError("libheif: a decoded tile has no pixels")
    tile_height = libheif.heif_image_get_height(tile, _CHANNEL_INTERLEAVED)
    x, y = origin
    width = min(libheif.heif_image_get_width(tile, _CHANNEL_INTERLEAVED), stored[0] - x)
    height = min(tile_height, stored[1] - y)  # tiles on the right and bottom edges overhang
    pixels = memoryview((ctypes.c_uint8 * (stride.value * tile_height)).from_address(address))
    band_rows = max(1, BAND_ROWS // factor) * factor
    for top in range(0, height, band_rows):
        rows = min(band_rows, height - top)
        window = cast("bytes", pixels[top * stride.value : (top + rows) * stride.value])  # a view: no copy
        band = Image.frombuffer(reduced.mode, (width, rows), window, "raw", rawmode, stride.value, 1)
        reduced.paste(band.reduce(factor) if factor > 1 else band, (x // factor, (y + top) // factor))


def _transformed(
    libheif: SimpleNamespace, context: int, item: int, image: Image.Image, stored: tuple[int, int], factor: int
) -> Image.Image:
    """The image rotated, mirrored and cropped as the file's properties say, in their order."""
    count = libheif.heif_item_get_transformation_properties(context, item, None, 0)
    properties = (ctypes.c_uint32 * count)()
    libheif.heif_item_get_transformation_properties(context, item, properties, count)
    width, height = stored  # full scale, as the crop borders are computed from it
    for prop in properties:
        kind = libheif.heif_item_get_property_type(context, item, prop)
        if kind == _PROPERTY_ROTATION:
            angle = libheif.heif_item_get_property_transform_rotation_ccw(context, item, prop)
            if angle in _TRANSPOSE_FOR_CCW_ANGLE:
                image = image.transpose(_TRANSPOSE_FOR_CCW_ANGLE[angle])
                width, height = (width, height) if angle == 180 else (height, width)
        elif kind == _PROPERTY_MIRROR:
            vertical = libheif.heif_item_get_property_transform_mirror(context, item, prop) == _MIRROR_VERTICAL
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM if vertical else Image.Transpose.FLIP_LEFT_RIGHT)
        elif kind == _PROPERTY_CROP:
            borders = [ctypes.c_int() for _ in range(4)]
            libheif.heif_item_get_property_transform_crop_borders(
                context, item, prop, width, height, *(ctypes.byref(border) for border in borders)
            )
            left, top, right, bottom = (border.value for border in borders)
            box = (left // factor, top // factor, -(-(width - right) // factor), -(-(height - bottom) // factor))
            image = image.crop(box)
            width, height = width - left - right, height - top - bottom
    return image
