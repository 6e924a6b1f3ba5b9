"""The score chart: a PNG a phone can read, with alt text that names every class's score."""

from __future__ import annotations

import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from bot.chart import DPI, HEIGHT_IN, WIDTH_IN, score_chart
from matrec.choices import Mode, Strategy
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.results import Recommendation, Timing, TokenUsage, UsageReport
from matrec.schema import ScreenedOut
from tests.factories import failed, ok

M = MaterialClass


def _rec(**update: Any) -> Recommendation:
    usage = UsageReport(branches=TokenUsage(), aggregation=TokenUsage(), total=TokenUsage(), cost_usd=0.01, calls=7)
    fields: dict[str, Any] = {
        "part": "bracket.jpg",
        "best": M.METAL,
        "runner_up": M.POLYMER,
        "rationale": "Metal carries the load.",
        "confidence": "high",
        "scores": {M.METAL: 8.0, M.POLYMER: 6.5, M.CERAMIC: 2.0, M.COMPOSITE: 6.0, M.ELASTOMER: 1.0, M.WOOD: None},
        "screened_out": [ScreenedOut(material=M.CERAMIC, reason="brittle")],
        "strategy": Strategy.CLAUDE,
        "mode": Mode.PARALLEL,
        "branches": [ok(m, 6) for m in CLASS_ORDER[:5]] + [failed(M.WOOD)],
        "missing": [M.WOOD],
        "usage": usage,
        "timing": Timing(wall_s=1.0, slowest_branch_s=1.0, aggregation_s=0.1, prepare_s=0.1),
    }
    return Recommendation.model_validate(fields | update)


def test_the_chart_is_a_png_sized_for_a_phone() -> None:
    chart = score_chart(_rec())
    image = Image.open(io.BytesIO(chart.png))
    image.load()
    assert image.format == "PNG"
    assert image.size == (int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI)) == (900, 600)
    assert len(chart.png) < 200_000


def test_the_best_class_bar_is_drawn_in_the_highlight_colour() -> None:
    image = Image.open(io.BytesIO(score_chart(_rec()).png)).convert("RGB")
    colours = {colour for _, colour in image.getcolors(maxcolors=1_000_000) or []}
    assert (0x2E, 0x7D, 0x32) in colours  # the best bar
    assert (0xE5, 0x73, 0x73) in colours  # the screened-out bar
    no_screen = Image.open(io.BytesIO(score_chart(_rec(screened_out=[])).png)).convert("RGB")
    assert (0xE5, 0x73, 0x73) not in {c for _, c in no_screen.getcolors(maxcolors=1_000_000) or []}


def test_the_alt_text_names_every_class_and_its_score() -> None:
    chart = score_chart(_rec())
    assert chart.alt_text == (
        "Bar chart of calibrated suitability scores (0 to 10) for bracket.jpg: Metal 8 of 10 (best); "
        "Polymer 6.5 of 10 (runner-up); Ceramic 2 of 10 (screened out); Composite 6 of 10; Elastomer 1 of 10; "
        "Wood no score. Best: Metal."
    )
    assert chart.title == "Scores for bracket.jpg: best Metal"


def test_a_flagged_pick_is_said_in_the_alt_text_and_long_parts_are_clipped() -> None:
    rec = _rec(part="p" * 5_000, screened_out=[ScreenedOut(material=M.METAL, reason="corrodes")])
    chart = score_chart(rec)
    assert "Metal 8 of 10 (best, although screened out)" in chart.alt_text
    assert len(chart.alt_text) <= 1_000
    assert len(chart.title) <= 120


def test_importing_the_chart_module_does_not_import_matplotlib() -> None:
    code = "import sys, bot.chart; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "False"


def test_charts_drawn_in_threads_side_by_side_match_one_drawn_alone() -> None:
    alone = score_chart(_rec()).png
    other = _rec(best=M.COMPOSITE, runner_up=M.METAL)
    with ThreadPoolExecutor(max_workers=4) as pool:
        pngs = list(pool.map(score_chart, [_rec(), other, _rec(), other]))
    assert [chart.png == alone for chart in pngs] == [True, False, True, False]
