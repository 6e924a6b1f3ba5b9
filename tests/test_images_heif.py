"""HEIC/HEIF uploads: read through pillow_heif's public API only, checked before decoding, safe on threads."""

from __future__ import annotations

import ast
import copy
import inspect
import io
import random
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pillow_heif
import pytest
from PIL import Image

from matrec import heif
from matrec.errors import ImageError, ImageKind
from matrec.images import prepare_image
from tests.test_images import _UPRIGHT, RED, _difference, _encoded, _heic, _noise, _quadrants, _sent

_FORBIDDEN_MODULES = frozenset({"ctypes", "cffi", "_pillow_heif"})


def _heic_from_16_bit(mode: str, pixels: Image.Image) -> bytes:
    """A 10-bit HEIC of the 8-bit `pixels`, each sample widened to 16 bits as pillow_heif takes them."""
    samples = pixels.tobytes()
    buffer = io.BytesIO()
    wide = struct.pack(f"<{len(samples)}H", *(value << 8 for value in samples))
    pillow_heif.from_bytes(mode, pixels.size, wide).save(buffer, quality=90)
    return buffer.getvalue()


def _meta_box_end(data: bytes) -> int:
    """Where the `meta` box, which follows the 'ftyp' box in what pillow_heif writes, ends."""
    ftyp_end = int.from_bytes(data[:4], "big")
    assert data[ftyp_end + 4 : ftyp_end + 8] == b"meta"
    return ftyp_end + int.from_bytes(data[ftyp_end : ftyp_end + 4], "big")


def test_the_heif_reader_uses_only_pillow_heifs_public_api() -> None:
    # A private symbol may change shape in any pillow_heif release and corrupt memory instead of raising.
    tree = ast.parse(inspect.getsource(heif))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    attributes = [node for node in ast.walk(tree) if isinstance(node, ast.Attribute)]
    of_pillow_heif = {
        node.attr for node in attributes if isinstance(node.value, ast.Name) and node.value.id == "pillow_heif"
    }
    private = {
        node.attr
        for node in attributes
        if node.attr.startswith("_") and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    }

    assert not imported & _FORBIDDEN_MODULES
    assert of_pillow_heif <= set(pillow_heif.__all__)
    assert not private


def test_preparing_a_heic_loads_no_ctypes() -> None:
    package_root = str(Path(inspect.getfile(heif)).parents[1])  # this checkout, wherever the test runs from
    script = (
        f"import sys; sys.path.insert(0, {package_root!r}); from matrec.images import prepare_image; "
        "prepare_image(sys.stdin.buffer.read()); print(sorted({'ctypes', 'cffi'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], input=_heic(_quadrants(256, 256), 6), capture_output=True, check=True
    )

    assert result.stdout.decode().strip() == "[]"


def test_importing_the_image_module_loads_no_libheif() -> None:
    package_root = str(Path(inspect.getfile(heif)).parents[1])
    script = (
        f"import sys; sys.path.insert(0, {package_root!r}); import matrec.images; print('pillow_heif' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_an_odd_sized_tiled_heic_is_sent_upright_at_its_own_size(orientation: int) -> None:
    stored = _quadrants(1001, 601)
    upright = stored.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else stored

    prepared = prepare_image(_heic(stored, orientation), max_edge_px=400)

    assert (prepared.original_width, prepared.original_height) == upright.size
    assert max(prepared.width, prepared.height) == 400
    assert _difference(_sent(prepared), upright) < 4


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_band_by_band_reduction_gives_the_pixels_reducing_the_whole_image_gives(factor: int) -> None:
    data = _heic(_noise(1000, 700), tile_px=None)  # taller than several bands
    whole = pillow_heif.open_heif(data).to_pillow().reduce(factor)

    decoded = heif.HeifPicture(data).decoded(min_size=(1000 // factor, 700 // factor))

    assert decoded.size == whole.size
    assert decoded.tobytes() == whole.tobytes()


def test_a_10_bit_heic_with_transparent_pixels_stays_a_png_with_its_transparency() -> None:
    image = Image.new("RGBA", (128, 96), (*RED, 255))
    image.paste((0, 0, 0, 0), (0, 0, 32, 32))

    prepared = prepare_image(_heic_from_16_bit("RGBA;16", image))

    sent = _sent(prepared)
    assert prepared.media_type == "image/png"
    assert sent.getpixel((5, 5))[3] == 0  # type: ignore[index]
    assert _difference(sent.convert("RGB").crop((64, 48, 128, 96)), Image.new("RGB", (64, 48), RED)) < 8


def test_a_10_bit_greyscale_heic_keeps_its_grey() -> None:
    prepared = prepare_image(_heic_from_16_bit("L;16", Image.new("L", (128, 96), 100)))

    assert _difference(_sent(prepared), Image.new("RGB", (128, 96), (100, 100, 100))) < 4


def test_the_stored_size_a_crop_hides_is_held_to_the_pixel_cap_before_decoding() -> None:
    # HEVC codes an even size; the file stores 1002x602 and crops it (clap) to 1001x601.
    data = _heic(_quadrants(1001, 601), tile_px=None)

    with pytest.raises(ImageError) as caught:
        prepare_image(data, max_pixels=602_000)

    assert caught.value.kind is ImageKind.TOO_MANY_PIXELS
    assert "1002x602 pixels" in str(caught.value)


def _cut(data: bytes, where: str) -> bytes:
    match where:
        case "last-byte":
            return data[:-1]
        case "last-kilobyte":
            return data[:-1000]
        case "half":
            return data[: len(data) // 2]
        case _:  # all pixel data, right after the header: a clean cut at a box boundary
            return data[: _meta_box_end(data)]


@pytest.mark.parametrize("tile_px", [128, None], ids=["tiled", "untiled"])
@pytest.mark.parametrize("where", ["last-byte", "last-kilobyte", "half", "after-the-header"])
def test_a_heic_cut_off_anywhere_is_damaged_not_a_photo_with_blank_tiles(tile_px: int | None, where: str) -> None:
    # libheif itself fills a missing grid tile with green and reports no error (when no EXIF block,
    # which pillow_heif reads on opening, lies after the tiles).
    data = _encoded(_noise(512, 384), "HEIF", quality=50, **({"tile_size": tile_px} if tile_px else {}))

    with pytest.raises(ImageError) as caught:
        prepare_image(_cut(data, where))

    assert caught.value.kind is ImageKind.CORRUPT
    assert "damaged or incomplete" in str(caught.value)


def test_a_heic_whose_image_declares_no_size_is_damaged() -> None:
    # Without its 'ispe' (size) box libheif reports the image as 0x0 rather than fail.
    data = _heic(_quadrants(300, 200), tile_px=None).replace(b"ispe", b"ispX", 1)

    with pytest.raises(ImageError) as caught:
        prepare_image(data)

    assert caught.value.kind is ImageKind.CORRUPT


def _damaged_headers() -> list[Any]:
    photo = _noise(300, 200)
    exif = Image.Exif()
    exif[0x0112] = 6
    sources = {
        "untiled": _encoded(photo, "HEIF", quality=50, exif=exif.tobytes()),
        "tiled": _encoded(photo, "HEIF", quality=50, tile_size=64, exif=exif.tobytes()),
        "thumbnails": _encoded(photo, "HEIF", quality=50, thumbnails=[64, 128]),
    }
    cases = []
    for name, data in sources.items():
        header_end = _meta_box_end(data)
        for seed in range(60):
            rng = random.Random(seed)
            damaged = bytearray(data)
            for _ in range(rng.choice((1, 2, 4))):
                damaged[rng.randrange(header_end)] = rng.randrange(256)
            cases.append(pytest.param(bytes(damaged), id=f"{name}-{seed}"))
    return cases


@pytest.mark.parametrize("data", _damaged_headers())
def test_a_heic_with_damaged_header_bytes_is_either_read_or_rejected_as_an_image_error(data: bytes) -> None:
    try:
        prepared = prepare_image(data)
    except ImageError:
        return
    assert _sent(prepared).size == (prepared.width, prepared.height)


def _with_thumbnails(orientation: int = 1) -> tuple[bytes, Image.Image]:
    stored = _quadrants(1024, 768)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encoded(stored, "HEIF", quality=90, thumbnails=[256, 512], exif=exif.tobytes())
    return data, stored.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else stored


def test_an_embedded_thumbnail_that_covers_the_size_needed_is_decoded_instead_of_the_photo() -> None:
    data, _ = _with_thumbnails()

    decoded = heif.HeifPicture(data).decoded(min_size=(300, 225))

    assert decoded.size == (512, 384)  # the larger thumbnail, not the photo reduced by 3 (342x256)


def test_an_embedded_thumbnail_smaller_than_the_size_needed_is_not_used() -> None:
    data, _ = _with_thumbnails()

    decoded = heif.HeifPicture(data).decoded(min_size=(600, 450))

    assert decoded.size == (1024, 768)


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_heic_with_thumbnails_is_sent_upright_however_small(orientation: int) -> None:
    data, upright = _with_thumbnails(orientation)

    for max_edge_px in (200, 400, 1000):
        prepared = prepare_image(data, max_edge_px=max_edge_px)

        assert max(prepared.width, prepared.height) == max_edge_px
        assert _difference(_sent(prepared), upright) < 4


def _outcome(data: bytes) -> str:
    try:
        return prepare_image(data, max_edge_px=300).base64
    except ImageError as error:
        return f"rejected: {error.kind}"


def test_photos_prepared_on_several_threads_at_once_match_those_prepared_one_at_a_time() -> None:
    uploads = [
        _heic(_quadrants(1024, 640), 6),
        _heic(_quadrants(1001, 601), 8, tile_px=None),
        _heic_from_16_bit("RGB;16", _quadrants(320, 240)),
        _encoded(Image.new("RGBA", (256, 128), (*RED, 128)), "HEIF", quality=90),
        _heic(_noise(512, 384))[:-1000],
        _encoded(_quadrants(1200, 900), "JPEG"),
        _encoded(_quadrants(600, 400), "PNG"),
    ]
    one_at_a_time = [_outcome(data) for data in uploads]

    with ThreadPoolExecutor(max_workers=len(uploads)) as pool:
        at_once = list(pool.map(_outcome, uploads * 3))

    assert at_once == one_at_a_time * 3


def test_preparing_a_heic_leaves_pillow_heifs_options_as_they_were() -> None:
    # They are process-wide: setting one for a call would race with other threads' decodes.
    before = copy.deepcopy({name: value for name, value in vars(pillow_heif.options).items() if name.isupper()})

    prepare_image(_heic(_quadrants(512, 256), 6))

    assert {name: value for name, value in vars(pillow_heif.options).items() if name.isupper()} == before
