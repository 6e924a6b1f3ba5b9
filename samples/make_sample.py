"""Draw samples/bracket.jpg: a photo-like picture of an L-shaped aluminium pump bracket on a wooden table.

    .venv/bin/python samples/make_sample.py [OUT]

The repo has to ship a part photo for the first run (scripts/try.sh) without a camera or the
internet, so this renders one: a simple 3D model under a pinhole camera, Lambert shading, a soft
cast shadow, brushed-metal and wood-grain textures, depth of field, vignette and sensor noise.
It was run once and its output committed; it needs only Pillow and is deterministic (fixed
seed), so rerunning it reproduces the same picture.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image, ImageChops, ImageDraw, ImageFilter

OUT_PATH: Final = Path(__file__).with_name("bracket.jpg")
WIDTH_PX: Final = 2000
HEIGHT_PX: Final = 1500
SUPERSAMPLE: Final = 2  # polygons are drawn without anti-aliasing, so render at 2x and downscale
SEED: Final = 20240611
JPEG_QUALITY: Final = 86
FOCAL_PX: Final = 3300.0  # at the output size
PLATE_MM: Final = 6.0  # plate thickness
WIDTH_MM: Final = 120.0  # along x
BASE_DEPTH_MM: Final = 80.0  # along y
UPRIGHT_HEIGHT_MM: Final = 100.0  # along z
TABLE_MM_PER_TEXEL: Final = 0.5
TABLE_X_MM: Final = (-900.0, 900.0)
TABLE_Y_MM: Final = (-500.0, 1100.0)
NOISE_LEVELS: Final = 7  # peak-to-peak sensor noise, in 8-bit levels
ALUMINIUM: Final = (196, 199, 204)
WOOD_LIGHT: Final = (176, 128, 84)
WOOD_DARK: Final = (112, 72, 44)

Vec = tuple[float, float, float]
Point = tuple[float, float]
Matrix = tuple[Vec, Vec, Vec]


def _sub(a: Vec, b: Vec) -> Vec:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _dot(a: Vec, b: Vec) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _unit(a: Vec) -> Vec:
    n = math.sqrt(_dot(a, a))
    return (a[0] / n, a[1] / n, a[2] / n)


LIGHT: Final = _unit((-0.55, -0.5, 1.0))  # towards a window at the upper left, behind the camera


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking from `eye` at `target`, z up, for an image of `size` pixels."""

    eye: Vec
    target: Vec
    focal_px: float
    size: tuple[int, int]

    @property
    def axes(self) -> Matrix:
        forward = _unit(_sub(self.target, self.eye))
        right = _unit(_cross(forward, (0.0, 0.0, 1.0)))
        return right, _cross(right, forward), forward

    def project(self, p: Vec) -> Point:
        """The pixel where a point in millimetres lands."""
        right, up, forward = self.axes
        d = _sub(p, self.eye)
        depth = _dot(d, forward)
        return (
            self.size[0] / 2 + self.focal_px * _dot(d, right) / depth,
            self.size[1] / 2 - self.focal_px * _dot(d, up) / depth,
        )

    def table_homography(self) -> Matrix:
        """Maps table coordinates (x, y, 1) on z = 0 to homogeneous pixel coordinates."""
        right, up, forward = self.axes
        cx, cy = self.size[0] / 2, self.size[1] / 2
        w = (forward[0], forward[1], -_dot(self.eye, forward))
        r = (right[0], right[1], -_dot(self.eye, right))
        u = (up[0], up[1], -_dot(self.eye, up))
        return (
            (cx * w[0] + self.focal_px * r[0], cx * w[1] + self.focal_px * r[1], cx * w[2] + self.focal_px * r[2]),
            (cy * w[0] - self.focal_px * u[0], cy * w[1] - self.focal_px * u[1], cy * w[2] - self.focal_px * u[2]),
            w,
        )


def _inverse(m: Matrix) -> Matrix:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return (
        ((e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det),
        ((f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det),
        ((d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det),
    )


def _noise(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("L", size, rng.randbytes(size[0] * size[1]))


def _streaks(rng: random.Random, size: tuple[int, int], length_px: int, blur_px: float) -> Image.Image:
    """Grey noise stretched along x: brushed metal, or wood grain when long and blurred."""
    rows = _noise(rng, (max(2, size[0] // length_px), size[1])).filter(ImageFilter.GaussianBlur(blur_px))
    return rows.resize(size, Image.Resampling.BICUBIC)


def _wood_texture(rng: random.Random) -> Image.Image:
    """Planks of oiled oak, laid along x, in table coordinates (TABLE_MM_PER_TEXEL per texel)."""
    size = (
        int((TABLE_X_MM[1] - TABLE_X_MM[0]) / TABLE_MM_PER_TEXEL),
        int((TABLE_Y_MM[1] - TABLE_Y_MM[0]) / TABLE_MM_PER_TEXEL),
    )
    grain = ImageChops.add(_streaks(rng, size, 90, 1.2), _streaks(rng, size, 400, 6.0), scale=2.0)
    blotches = _noise(rng, (size[0] // 160, size[1] // 160)).resize(size, Image.Resampling.BICUBIC)
    tone = ImageChops.add(grain.point(lambda v: (v - 128) * 3 + 128), blotches, scale=2.0)
    wood = Image.composite(Image.new("RGB", size, WOOD_LIGHT), Image.new("RGB", size, WOOD_DARK), tone)
    seams = ImageDraw.Draw(wood)
    plank_texels = int(140 / TABLE_MM_PER_TEXEL)
    for y in range(rng.randrange(plank_texels), size[1], plank_texels):
        seams.line([(0, y), (size[0], y)], fill=(58, 36, 22), width=3)
    return wood


def _table(camera: Camera, rng: random.Random) -> Image.Image:
    """The table as the camera sees it, sharp near the part and softer further away."""
    texture = _wood_texture(rng)
    screen_to_table = _inverse(camera.table_homography())
    scale = 1 / TABLE_MM_PER_TEXEL
    to_texel = (
        (scale, 0.0, -TABLE_X_MM[0] * scale),
        (0.0, -scale, TABLE_Y_MM[1] * scale),  # texture rows run from the far edge to the near one
        (0.0, 0.0, 1.0),
    )
    m = [[sum(to_texel[i][k] * screen_to_table[k][j] for k in range(3)) for j in range(3)] for i in range(3)]
    coeffs = [m[i][j] / m[2][2] for i in range(3) for j in range(3)][:8]
    table = texture.transform(camera.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    far = table.filter(ImageFilter.GaussianBlur(9 * SUPERSAMPLE))
    focus = Image.linear_gradient("L").resize(camera.size).point(lambda v: max(0, 255 - v * 2))
    return Image.composite(far, table, focus)


@dataclass(frozen=True)
class Face:
    """A flat face of the part: its outline, outward normal, and any through-holes."""

    outline: Sequence[Vec]
    normal: Vec
    holes: Sequence[Sequence[Vec]] = ()  # outlines on this face
    hole_depth: Vec = (0.0, 0.0, 0.0)  # from this face to the opposite one


def _box(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> list[Face]:
    def face(normal: Vec, *corners: Vec) -> Face:
        return Face(corners, normal)

    return [
        face((1, 0, 0), (x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1)),
        face((-1, 0, 0), (x0, y0, z0), (x0, y1, z0), (x0, y1, z1), (x0, y0, z1)),
        face((0, -1, 0), (x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1)),
        face((0, 1, 0), (x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)),
        face((0, 0, 1), (x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)),
    ]


def _circle(center: Vec, radius: float, u: Vec, v: Vec, steps: int = 72) -> list[Vec]:
    out = []
    for k in range(steps):
        a = 2 * math.pi * k / steps
        c, s = math.cos(a) * radius, math.sin(a) * radius
        out.append((center[0] + c * u[0] + s * v[0], center[1] + c * u[1] + s * v[1], center[2] + c * u[2] + s * v[2]))
    return out


def _slot(cx: float, cy: float, z: float, half_length: float, radius: float) -> list[Vec]:
    """An obround slot along y on a horizontal face (for adjusting belt tension)."""
    out: list[Vec] = []
    for end, start in ((cy + half_length, 0.0), (cy - half_length, math.pi)):
        for k in range(37):
            a = start + math.pi * k / 36
            out.append((cx + radius * math.cos(a), end + radius * math.sin(a), z))
    return out


def _bracket() -> list[Face]:
    """An L bracket: a slotted base plate and an upright with a pump spigot bore and four bolt holes."""
    half, t = WIDTH_MM / 2, PLATE_MM
    back = BASE_DEPTH_MM
    base = _box(-half, half, 0, back - t, 0, t)
    upright = _box(-half, half, back - t, back, 0, UPRIGHT_HEIGHT_MM)
    base_top = base[4]
    slots = [_slot(x, 30, t, 9, 5.5) for x in (-38, 38)]
    base[4] = Face(base_top.outline, base_top.normal, slots, (0, 0, -t))
    bore_at = (0.0, back - t, 58.0)
    holes = [_circle(bore_at, 21, (1, 0, 0), (0, 0, 1))]
    for k in range(4):
        a = math.pi / 4 + k * math.pi / 2
        centre = (bore_at[0] + 34 * math.cos(a), bore_at[1], bore_at[2] + 34 * math.sin(a))
        holes.append(_circle(centre, 4.5, (1, 0, 0), (0, 0, 1), 36))
    front = upright[2]
    upright[2] = Face(front.outline, front.normal, holes, (0, t, 0))
    # Back to front for the painter: the upright's faces, then the base plate's.
    return upright + base


def _polygon_mask(size: tuple[int, int], points: Sequence[Point]) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).polygon(list(points), fill=255)
    return mask


def _metal(size: tuple[int, int], brightness: float, brushed: Image.Image, sheen: Image.Image) -> Image.Image:
    """Brushed aluminium at a given brightness, with a soft sheen across the face."""
    base = Image.new("RGB", size, tuple(min(255, int(c * brightness)) for c in ALUMINIUM))
    grain = Image.merge("RGB", [brushed.point(lambda v: (v - 128) // 5 + 128)] * 3)
    return ImageChops.add(ImageChops.add(base, grain, offset=-128), Image.merge("RGB", [sheen] * 3))


def _shadow_mask(camera: Camera, faces: Sequence[Face]) -> Image.Image:
    """Where the part's shadow falls on the table, blurred like the light from a large window."""
    mask = Image.new("L", camera.size, 0)
    draw = ImageDraw.Draw(mask)
    for face in faces:
        cast = [(p[0] - LIGHT[0] * p[2] / LIGHT[2], p[1] - LIGHT[1] * p[2] / LIGHT[2], 0.0) for p in face.outline]
        draw.polygon([camera.project(p) for p in cast], fill=255)
    soft = mask.filter(ImageFilter.GaussianBlur(14 * SUPERSAMPLE))
    footprint = Image.new("L", camera.size, 0)
    half = WIDTH_MM / 2 + 1
    ImageDraw.Draw(footprint).polygon(
        [
            camera.project(p)
            for p in ((-half, -1, 0), (half, -1, 0), (half, BASE_DEPTH_MM + 1, 0), (-half, BASE_DEPTH_MM + 1, 0))
        ],
        fill=255,
    )
    contact = footprint.filter(ImageFilter.GaussianBlur(3 * SUPERSAMPLE))
    return ImageChops.lighter(soft.point(lambda v: v * 6 // 10), contact.point(lambda v: v * 8 // 10))


def _paint_face(
    canvas: Image.Image, table: Image.Image, camera: Camera, face: Face, textures: tuple[Image.Image, Image.Image]
) -> None:
    """Paint one face if it faces the camera: shaded metal, its holes (bore wall, then the table), a lit edge."""
    brushed, sheen = textures
    to_eye = _unit(_sub(camera.eye, face.outline[0]))
    if _dot(face.normal, to_eye) <= 0:
        return  # facing away from the camera
    brightness = 0.42 + 0.62 * max(0.0, _dot(face.normal, LIGHT))
    outline = _polygon_mask(canvas.size, [camera.project(p) for p in face.outline])
    canvas.paste(_metal(canvas.size, brightness, brushed, sheen), mask=outline)
    for hole in face.holes:
        near = _polygon_mask(canvas.size, [camera.project(p) for p in hole])
        far_side = [(p[0] + face.hole_depth[0], p[1] + face.hole_depth[1], p[2] + face.hole_depth[2]) for p in hole]
        through = ImageChops.multiply(near, _polygon_mask(canvas.size, [camera.project(p) for p in far_side]))
        canvas.paste(_metal(canvas.size, brightness * 0.55, brushed, sheen), mask=near)  # the bore's wall
        canvas.paste(table.point(lambda v: v * 55 // 100), mask=through)  # the table, in the part's shade
    edge = ImageDraw.Draw(canvas)
    points = [camera.project(p) for p in face.outline]
    edge.line(
        [*points, points[0]],
        fill=tuple(min(255, int(c * (brightness + 0.25))) for c in ALUMINIUM),
        width=2 * SUPERSAMPLE,
    )


def _corner_shade(canvas: Image.Image, camera: Camera) -> Image.Image:
    """Ambient occlusion: less sky reaches the inside corner where the base meets the upright."""
    half, y, z = WIDTH_MM / 2, BASE_DEPTH_MM - PLATE_MM, PLATE_MM
    line = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(line).line(
        [camera.project((-half, y, z)), camera.project((half, y, z))], fill=255, width=16 * SUPERSAMPLE
    )
    part = Image.new("L", canvas.size, 0)
    for face in _bracket():
        ImageDraw.Draw(part).polygon([camera.project(p) for p in face.outline], fill=255)
    shade = ImageChops.multiply(line.filter(ImageFilter.GaussianBlur(16 * SUPERSAMPLE)), part)
    return ImageChops.multiply(canvas, Image.merge("RGB", [shade.point(lambda v: 255 - v * 60 // 100)] * 3))


def _finish(image: Image.Image, rng: random.Random) -> Image.Image:
    """Lens softness, vignette, warm indoor light and sensor noise, at the output size."""
    image = image.resize((WIDTH_PX, HEIGHT_PX), Image.Resampling.LANCZOS).filter(ImageFilter.GaussianBlur(0.6))
    vignette = Image.radial_gradient("L").resize(image.size).point(lambda v: 255 - max(0, v - 150) * 2 // 3)
    image = ImageChops.multiply(image, Image.merge("RGB", [vignette] * 3))
    warm = Image.new("RGB", image.size, (255, 246, 232))
    image = ImageChops.multiply(image, warm)
    noise = Image.merge("RGB", [_noise(rng, image.size).point(lambda v: v * NOISE_LEVELS // 255) for _ in range(3)])
    return ImageChops.subtract(ImageChops.add(image, noise), Image.new("RGB", image.size, (NOISE_LEVELS // 2,) * 3))


def render() -> Image.Image:
    """The whole picture."""
    rng = random.Random(SEED)  # noqa: S311 - a texture, not a secret; fixed so the picture is reproducible
    size = (WIDTH_PX * SUPERSAMPLE, HEIGHT_PX * SUPERSAMPLE)
    camera = Camera(eye=(190.0, -330.0, 270.0), target=(4.0, 42.0, 32.0), focal_px=FOCAL_PX * SUPERSAMPLE, size=size)
    table = _table(camera, rng)
    faces = _bracket()
    canvas = ImageChops.multiply(table, Image.merge("RGB", [_shadow_mask(camera, faces).point(lambda v: 255 - v)] * 3))
    brushed = _streaks(rng, size, 300, 0.8)
    sheen = Image.linear_gradient("L").rotate(35, expand=False).resize(size).point(lambda v: max(0, v - 170) // 3)
    for face in faces:
        _paint_face(canvas, table, camera, face, (brushed, sheen))
    return _finish(_corner_shade(canvas, camera), rng)


def main(argv: Sequence[str]) -> None:
    """Render and save the sample photo."""
    out = Path(argv[0]) if argv else OUT_PATH
    render().save(
        out,
        "JPEG",
        quality=JPEG_QUALITY,
        optimize=True,
        comment=b"Synthetic sample part photo rendered by samples/make_sample.py (not a real photograph).",
    )
    print(f"{out}: {out.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(sys.argv[1:])
