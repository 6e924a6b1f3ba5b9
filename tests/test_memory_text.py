"""How the team's memory words an earlier consultation: who, what came of it, the statistics."""

from __future__ import annotations

from datetime import date

from bot.board_view import SimilarLink
from bot.memory import link_line, outcome_of, part_of, stats_lines, team_choice
from bot.store import Consultation, ConsultationStatus, Stats
from matrec.materials import MaterialClass as M
from tests.store_support import recommendation


def _consultation(**fields: object) -> Consultation:
    return Consultation.model_validate({"channel": "C1", "thread_ts": "1.0", "message_ts": "1.0", **fields})


def test_the_most_chosen_class_is_the_teams_choice_and_a_tie_goes_to_the_recommendation() -> None:
    assert team_choice({M.POLYMER: 2, M.METAL: 1}, M.METAL) is M.POLYMER
    assert team_choice({M.POLYMER: 1, M.METAL: 1}, M.METAL) is M.METAL
    assert team_choice({M.WOOD: 1, M.POLYMER: 1}, M.METAL) is M.POLYMER  # class order
    assert team_choice({}, M.METAL) is None


def test_the_outcome_names_the_teams_choice_before_the_recommendation() -> None:
    done = _consultation(status=ConsultationStatus.DONE, recommendation=recommendation())
    assert outcome_of(done, {M.POLYMER: 2}) == "the team chose polymer"
    assert outcome_of(done, {}) == "matrec recommended metal"
    assert outcome_of(_consultation(status=ConsultationStatus.RUNNING), {}) == "still being analysed"
    assert outcome_of(_consultation(status=ConsultationStatus.FAILED), {}) == "no recommendation"


def test_the_part_is_its_description_or_file_name_cut_short() -> None:
    assert part_of(_consultation(part_text="pump bracket", file_name="IMG_1.jpg")) == "pump bracket"
    assert part_of(_consultation(file_name="IMG_1.jpg", context="x")) == "IMG_1.jpg"
    assert len(part_of(_consultation(context="word " * 100))) <= 80


def test_a_link_line_escapes_names_and_links_only_slack_permalinks() -> None:
    link = SimilarLink(
        who="<!here> Dana",
        when=date(2026, 10, 12),
        part="bracket <http://evil|click>",
        outcome="the team chose polymer",
        link="https://acme.slack.com/archives/C1/p1",
    )
    line = link_line(link)
    assert line.startswith("<https://acme.slack.com/archives/C1/p1|&lt;!here&gt; Dana looked at bracket &lt;http")
    assert "12 Oct 2026" in line and line.endswith("; the team chose polymer")
    forged = link_line(SimilarLink("Dana", date(2026, 10, 12), "bracket", "x", "https://evil.example/a|b"))
    assert "<" not in forged and "evil" not in forged


def test_statistics_say_how_often_the_team_chose_what_matrec_recommended() -> None:
    stats = Stats(
        total=5,
        per_week=[(date(2026, 11, 23), 2), (date(2026, 11, 30), 3)],
        best={M.METAL: 4, M.POLYMER: 1},
        chosen={M.METAL: 2, M.WOOD: 1},
        with_choice=3,
        agreed=2,
    )
    text = "\n".join(stats_lines(stats))
    assert "*5* consultations in the last 2 weeks" in text
    assert "23 Nov: 2 · 30 Nov: 3" in text
    assert "Recommended: Metal 4 · Polymer 1" in text and "The team chose: Metal 2 · Wood 1" in text
    assert "in 2 of 3 consultations with a choice (67%)" in text
    empty = Stats(total=0, per_week=[], best={}, chosen={}, with_choice=0, agreed=0)
    assert stats_lines(empty) == ["No consultations in these weeks yet."]
