"""Image memory benchmark: `python -m bench.image_memory`.

Prepares 12-megapixel photos (4032x3024, as a phone takes them) with `prepare_image`, each in a
fresh process, and prints the peak growth of resident memory (RSS) over the RSS just before the
call, and the time it took: the median of a few runs. Each process first prepares a small image of
the same kind, so that loading and starting the codecs is not counted. The target is under 60 MiB
per photo. iPhones store photos as HEIC in 512 px tiles, which are decoded one at a time; a HEIC
stored as one untiled frame can only be decoded whole, and is shown for comparison.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import pillow_heif
from PIL import Image

from matrec.images import prepare_image

PHOTO_PX = (4032, 3024)
WARM_UP_PX = (1024, 512)  # two 512 px tiles when tiled
TARGET_MIB = 60
RUNS = 3
BYTES_PER_MIB = 1024 * 1024
HEIC_FAST = {"enc_params": {"preset": "ultrafast"}}  # encoding time is not what is measured
_HEADER = struct.Struct("<QQ")  # lengths of the warm-up image and of the photo sent to a run


@dataclass(frozen=True)
class Case:
    """One kind of input: its name, its content and how it is encoded."""

    name: str
    noisy: bool
    image_format: str
    params: dict[str, Any]


CASES = (
    Case("HEIC, 512 px tiles (as iPhones store it), smooth", False, "HEIF", {"tile_size": 512, "quality": 90}),
    Case("HEIC, 512 px tiles, noisy", True, "HEIF", {"tile_size": 512, "quality": 40}),
    Case("HEIC, one untiled frame, smooth", False, "HEIF", {"quality": 90}),
    Case("HEIC, one untiled frame, noisy", True, "HEIF", {"quality": 40}),
    Case("JPEG, smooth", False, "JPEG", {"quality": 90}),
    Case("JPEG, noisy", True, "JPEG", {"quality": 75}),
)


def photo(size: tuple[int, int], *, noisy: bool) -> Image.Image:
    """A smooth photo-like gradient, or pure noise: the worst case for a codec (~8 MB as HEIC)."""
    if noisy:
        return Image.frombytes("RGB", size, random.Random(7).randbytes(size[0] * size[1] * 3))
    ramp = Image.linear_gradient("L").resize(size)
    return Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.ROTATE_180), Image.new("L", size, 90)))


def encoded(image: Image.Image, case: Case) -> bytes:
    """The image encoded as the case says."""
    buffer = io.BytesIO()
    image.save(buffer, case.image_format, **case.params, **(HEIC_FAST if case.image_format == "HEIF" else {}))
    return buffer.getvalue()


def memory_mib(field: str) -> float:
    """A memory figure of this process from Linux's /proc/self/status: VmRSS now, VmHWM its peak.

    VmHWM is used, not ru_maxrss: Linux carries the parent's peak over exec into ru_maxrss.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024 / BYTES_PER_MIB
    raise LookupError(f"{field} is not in /proc/self/status")


def measure_one() -> None:
    """In a fresh process: read the warm-up image and the photo from stdin, print the photo's figures."""
    stdin = sys.stdin.buffer
    warm_up_length, photo_length = _HEADER.unpack(stdin.read(_HEADER.size))
    prepare_image(stdin.read(warm_up_length))
    data = stdin.read(photo_length)  # read whole, as an upload is, before the baseline
    before_mib = memory_mib("VmRSS")
    started = time.perf_counter()
    prepare_image(data)
    elapsed_s = time.perf_counter() - started
    growth_mib = max(0.0, memory_mib("VmHWM") - before_mib)
    print(json.dumps({"peak_mib": growth_mib, "ms": elapsed_s * 1000}))


def run(warm_up: bytes, data: bytes) -> tuple[float, float]:
    """Peak RSS growth (MiB) and time (ms) of preparing `data` in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.image_memory", "--measure-one"],
        input=_HEADER.pack(len(warm_up), len(data)) + warm_up + data,
        capture_output=True,
        check=True,
    )
    figures = json.loads(result.stdout)
    return float(figures["peak_mib"]), float(figures["ms"])


def main() -> None:
    """Measure every case and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs per input, median shown (default {RUNS})")
    parser.add_argument("--measure-one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_one:
        measure_one()
        return
    pillow_heif.register_heif_opener()
    photos = {noisy: photo(PHOTO_PX, noisy=noisy) for noisy in (False, True)}
    print(f"12 MP photos ({PHOTO_PX[0]}x{PHOTO_PX[1]}), median of {args.runs} runs, target < {TARGET_MIB} MiB")
    print(f"{'input':<50} {'bytes':>11} {'peak RSS growth MiB':>20} {'time ms':>8}")
    for case in CASES:
        data = encoded(photos[case.noisy], case)
        warm_up = encoded(photo(WARM_UP_PX, noisy=case.noisy), case)
        runs = [run(warm_up, data) for _ in range(args.runs)]
        peak_mib = statistics.median(peak for peak, _ in runs)
        elapsed_ms = statistics.median(ms for _, ms in runs)
        verdict = "" if peak_mib < TARGET_MIB else "  over target"
        print(f"{case.name:<50} {len(data):>11,} {peak_mib:>20.1f} {elapsed_ms:>8.0f}{verdict}")


if __name__ == "__main__":
    main()
