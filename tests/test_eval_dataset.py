"""The evaluation dataset: the shipped example set is sound, bad rows are named by file:line, files round-trip."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from matrec.errors import BadInputError
from matrec.eval.dataset import MAX_REPORTED_ERRORS, Case, dump_cases, load_dataset
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.options import MAX_CONTEXT_CHARS

EXAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "example.jsonl"
GOOD: dict[str, Any] = {"id": "ok", "text": "bracket, 20 °C", "expected": ["metal"]}


def _write(folder: Path, *rows: dict[str, Any] | str, name: str = "cases.jsonl") -> Path:
    path = folder / name
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(BadInputError) as raised:
        load_dataset(path)
    return str(raised.value)


# -- the shipped example set ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> list[Case]:
    return load_dataset(EXAMPLE).cases


def test_the_example_set_has_at_least_40_cases_with_every_class_the_best_at_least_five_times(
    example: list[Case],
) -> None:
    assert len(example) >= 40
    best = Counter(case.expected[0] for case in example)
    assert set(best) == set(CLASS_ORDER)
    assert min(best.values()) >= 5


def test_every_example_case_is_text_with_reasoning_and_author_estimates_for_all_six_classes(
    example: list[Case],
) -> None:
    for case in example:
        assert case.image is None and 0 < len(case.text) <= MAX_CONTEXT_CHARS, case.id
        assert case.reasoning and 2 <= len(re.findall(r"[.!?](?:\s|$)", case.reasoning)) <= 4, case.id
        assert case.origin == "author estimate", case.id
        assert case.scale == (0, 10), case.id
        assert case.reference_scores is not None and set(case.reference_scores) == set(CLASS_ORDER), case.id


def test_example_scores_put_the_preferred_class_strictly_first_and_acceptable_classes_above_the_rest(
    example: list[Case],
) -> None:
    for case in example:
        scores = case.scores_0_10()
        assert scores is not None
        preferred = scores[case.expected[0]]
        assert all(score < preferred for c, score in scores.items() if c != case.expected[0]), case.id
        lowest_acceptable = min(scores[c] for c in case.expected)
        assert all(score < lowest_acceptable for c, score in scores.items() if c not in case.expected), case.id


def test_example_pairs_link_both_ways_and_the_answer_moves_between_them(example: list[Case]) -> None:
    by_id = {case.id: case for case in example}
    paired = [case for case in example if case.pair is not None]
    assert len(load_dataset(EXAMPLE).pairs()) >= 8
    for case in paired:
        assert case.pair is not None
        other = by_id[case.pair]
        assert other.pair == case.id, case.id
        assert other.text != case.text
        assert case.reference_scores is not None and other.reference_scores is not None
        largest_move = max(abs(case.reference_scores[c] - other.reference_scores[c]) for c in CLASS_ORDER)
        assert case.expected != other.expected or largest_move >= 2, case.id


def test_the_example_set_names_the_textbook_cases_of_the_issue(example: list[Case]) -> None:
    texts = " ".join(case.text.lower() for case in example)
    for scenario in ("kiln", "hot water", "quadcopter", "garden", "pump", "food-contact housing"):
        assert scenario in texts


# -- errors, each as file:line ----------------------------------------------------------------------


def test_invalid_json_is_named_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD, '{"id": "b", "text": "x",')
    assert _error(path).startswith(f"{path}:2: invalid JSON")


def test_a_row_that_is_not_an_object_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path, "[1, 2]")
    assert _error(path) == f"{path}:1: expected a JSON object, got an array"


def test_an_unknown_class_lists_the_valid_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD, {**GOOD, "id": "b", "expected": ["metal", "steel"]})
    message = _error(path)
    assert message.startswith(f"{path}:2: expected[1]: unknown class 'steel'")
    assert "valid classes: metal, polymer, ceramic, composite, elastomer, wood" in message


def test_an_unknown_class_among_the_reference_scores_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, {**GOOD, "reference_scores": {"metal": 8, "plastic": 3}})
    assert "1: reference_scores.plastic: unknown class 'plastic'" in _error(path)


def test_a_duplicate_id_points_at_the_first_use(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD, {**GOOD, "id": "b"}, GOOD)
    assert _error(path) == f"{path}:3: duplicate id 'ok' (first on line 1)"


def test_an_image_missing_on_disk_is_named_with_where_it_was_looked_for(tmp_path: Path) -> None:
    path = _write(tmp_path, {**GOOD, "image": "photos/bracket.jpg"})
    assert _error(path) == (
        f"{path}:1: image 'photos/bracket.jpg' not found (looked for {tmp_path / 'photos' / 'bracket.jpg'})"
    )


def test_a_case_with_neither_text_nor_image_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, {"id": "a", "text": "  ", "expected": ["wood"]})
    assert _error(path) == f"{path}:1: neither text nor image: give a description, an image path, or both"


def test_an_empty_expected_set_says_what_to_write(tmp_path: Path) -> None:
    path = _write(tmp_path, {**GOOD, "expected": []})
    assert _error(path).startswith(f"{path}:1: expected is empty: name at least one acceptable best class (metal,")


def test_a_missing_expected_field_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, {"id": "a", "text": "x"})
    assert _error(path) == f"{path}:1: missing field 'expected'"


def test_reference_scores_outside_the_stated_scale_are_listed(tmp_path: Path) -> None:
    path = _write(tmp_path, {**GOOD, "scale": [1, 5], "reference_scores": {"metal": 5, "wood": 0, "polymer": 6}})
    assert _error(path) == f"{path}:1: reference scores outside the scale [1, 5]: wood=0, polymer=6"


def test_a_scale_whose_minimum_is_not_below_its_maximum_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, {**GOOD, "scale": [10, 0]})
    assert "1: scale [10, 0] must be [min, max] with min < max" in _error(path)


def test_a_pair_naming_an_unknown_id_is_reported_on_the_naming_row(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD, {**GOOD, "id": "b", "pair": "nobody"})
    assert _error(path) == f"{path}:2: pair 'nobody' names no case in this file"


def test_a_case_paired_with_itself_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, {**GOOD, "pair": "ok"})
    assert _error(path) == f"{path}:1: pair names the case itself"


def test_an_unknown_field_lists_the_known_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, {**GOOD, "expect": ["metal"]})
    assert _error(path) == f"{path}:1: unknown field 'expect'; fields are: {', '.join(Case.model_fields)}"


def test_text_longer_than_the_engine_accepts_is_rejected_at_load(tmp_path: Path) -> None:
    path = _write(tmp_path, {**GOOD, "text": "x" * (MAX_CONTEXT_CHARS + 1)})
    assert f"{path}:1: text is {MAX_CONTEXT_CHARS + 1:,} characters" in _error(path)


def test_every_bad_row_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    path = _write(tmp_path, {**GOOD, "pair": "x"}, "", "not json", GOOD, {"id": "c", "expected": ["metal"]})
    lines = _error(path).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{path}:1", f"{path}:3", f"{path}:4", f"{path}:5"]


def test_reported_errors_are_capped_with_a_count_of_the_rest(tmp_path: Path) -> None:
    path = _write(tmp_path, *["nope"] * (MAX_REPORTED_ERRORS + 3))
    lines = _error(path).splitlines()
    assert len(lines) == MAX_REPORTED_ERRORS + 1
    assert lines[-1] == "... and 3 more"


def test_a_file_without_cases_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "", "   ")
    assert _error(path) == f"{path}: no cases (one JSON object per line; see datasets/README.md)"


def test_a_missing_file_and_a_binary_file_are_bad_input(tmp_path: Path) -> None:
    assert _error(tmp_path / "absent.jsonl").startswith(f"cannot read {tmp_path / 'absent.jsonl'}: ")
    binary = tmp_path / "photo.jsonl"
    binary.write_bytes(b"\xff\xd8\xff\xe0 not text")
    assert _error(binary) == f"{binary}: not UTF-8 text (one JSON object per line expected)"


def test_a_case_built_in_code_is_validated_too() -> None:
    with pytest.raises(ValidationError, match="outside the scale"):
        Case(id="a", text="x", expected=[MaterialClass.METAL], reference_scores={MaterialClass.METAL: 11})
    with pytest.raises(ValidationError, match="expected names a class twice"):
        Case(id="a", text="x", expected=[MaterialClass.METAL, MaterialClass.METAL])


# -- scale, round trip, images ----------------------------------------------------------------------


def test_reference_scores_are_mapped_linearly_onto_0_10_in_class_order() -> None:
    case = Case(
        id="a",
        text="x",
        expected=[MaterialClass.WOOD],
        scale=(1, 5),
        reference_scores={MaterialClass.WOOD: 5, MaterialClass.METAL: 1, MaterialClass.CERAMIC: 2},
    )
    assert case.scores_0_10() == {MaterialClass.METAL: 0.0, MaterialClass.CERAMIC: 2.5, MaterialClass.WOOD: 10.0}
    assert list(case.scores_0_10() or {}) == [MaterialClass.METAL, MaterialClass.CERAMIC, MaterialClass.WOOD]
    assert Case(id="b", text="x", expected=[MaterialClass.WOOD]).scores_0_10() is None


def test_dumped_cases_load_back_equal_with_defaults_left_out(tmp_path: Path) -> None:
    cases = [
        Case(id="plain", text="bracket", expected=[MaterialClass.METAL]),
        Case(
            id="full",
            text="gasket at 90 °C\u2028second line",  # a separator splitlines() would break the row at
            expected=[MaterialClass.ELASTOMER, MaterialClass.POLYMER],
            reference_scores={MaterialClass.ELASTOMER: 4.5, MaterialClass.POLYMER: 3},
            scale=(1, 5),
            origin="team vote",
            reasoning="EPDM takes hot water.",
            source="EN 681-1",
            pair="plain",
        ),
    ]
    path = tmp_path / "out.jsonl"
    dump_cases(cases, path)
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0]) == {
        "id": "plain",
        "text": "bracket",
        "expected": ["metal"],
    }
    assert load_dataset(path).cases == cases
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_the_example_set_round_trips_unchanged(tmp_path: Path, example: list[Case]) -> None:
    path = tmp_path / "copy.jsonl"
    dump_cases(example, path)
    assert path.read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")


def test_dumping_two_cases_with_one_id_is_refused(tmp_path: Path) -> None:
    case = Case(id="a", text="x", expected=[MaterialClass.METAL])
    with pytest.raises(ValueError, match="duplicate case id 'a'"):
        dump_cases([case, case], tmp_path / "out.jsonl")
    assert not list(tmp_path.iterdir())


def test_image_paths_resolve_against_the_dataset_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "team"
    (folder / "photos").mkdir(parents=True)
    (folder / "photos" / "bracket.jpg").write_bytes(b"\xff\xd8\xff")
    path = _write(folder, {"id": "p", "image": "photos/bracket.jpg", "expected": ["metal"]}, GOOD)
    monkeypatch.chdir(tmp_path)
    dataset = load_dataset(Path("team/cases.jsonl"))
    assert dataset.image_path(dataset.cases[0]) == Path("team/photos/bracket.jpg")
    assert dataset.image_path(dataset.cases[1]) is None
    assert load_dataset(path).image_path(dataset.cases[0]) == folder / "photos" / "bracket.jpg"


def test_pairs_lists_each_linked_pair_once_in_file_order(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {**GOOD, "id": "a", "pair": "b"},
        {**GOOD, "id": "b", "pair": "a"},
        {**GOOD, "id": "c"},
        {**GOOD, "id": "d", "pair": "c"},
    )
    assert [(a.id, b.id) for a, b in load_dataset(path).pairs()] == [("a", "b"), ("d", "c")]


def test_the_dataset_readme_documents_every_field_and_lists_the_example_pairs() -> None:
    readme = (EXAMPLE.parent / "README.md").read_text(encoding="utf-8")
    for field in Case.model_fields:
        assert f"| `{field}` |" in readme, field
    for first, second in load_dataset(EXAMPLE).pairs():
        assert f"| `{first.id}` / `{second.id}` |" in readme
