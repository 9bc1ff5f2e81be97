"""The README stays a newcomer's page, its links resolve, and its headline numbers are the results'.

- README.md has at most 200 lines (the rest lives in docs/, linked from it);
- every relative link (and image) in README.md and the guides under docs/ points to a file that
  exists, and a ``#section`` in it to a heading of that file;
- the bundled model's headline table (in README.md, and its copy in docs/results.md) quotes
  docs/results/bundled_model.json with the table's rounding, and each target's verdict agrees with
  the numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RESULTS_JSON = REPO / "docs" / "results" / "bundled_model.json"
MAX_README_LINES = 200

# The guides: docs/*.md and below, except the generated files in docs/results/.
GUIDES = sorted(p for p in (REPO / "docs").rglob("*.md") if "results" not in p.relative_to(REPO / "docs").parts[:-1])
LINKED_FILES = [README, *GUIDES]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _links(text: str) -> list[str]:
    prose = _prose(text)
    return INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for match in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", markdown.read_text()), re.M):
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_readme_is_at_most_200_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines; keep it <= {MAX_README_LINES} and move detail into docs/")


def test_the_guides_are_linked_from_the_readme():
    linked = {(README.parent / unquote(t.split("#")[0])).resolve() for t in _links(README.read_text())}
    unlinked = [str(g.relative_to(REPO)) for g in GUIDES if g.resolve() not in linked]
    assert not unlinked, f"README.md links none of: {unlinked}"


@pytest.mark.parametrize("markdown", LINKED_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_to_existing_files(markdown: Path):
    broken = []
    for target in _links(markdown.read_text()):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # a web address
        path, _, fragment = target.partition("#")
        file = (markdown.parent / unquote(path)).resolve() if path else markdown
        if not file.is_file():
            broken.append(f"{target} (no such file)")
        elif fragment and file.suffix == ".md" and fragment not in _anchors(file):
            broken.append(f"{target} (no heading #{fragment} in {file.relative_to(REPO)})")
    assert not broken, f"{markdown.relative_to(REPO)}: broken links: {broken}"


# --- the bundled model's headline table --------------------------------------------------------

TABLE_HEADER = "| | bundled (identity-preserving) | target |"
NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def _mm(x: float) -> str:
    return f"{x:.3f}"


def _pct(x: float, decimals: int = 1) -> str:
    return f"{100 * x:.{decimals}f}"


def _table(text: str) -> dict[str, tuple[str, str]]:
    """The headline table's rows: label -> (value cell, target cell)."""
    lines = text.splitlines()
    assert TABLE_HEADER in lines, f"no table headed {TABLE_HEADER!r}"
    rows = {}
    for line in lines[lines.index(TABLE_HEADER) + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 3, f"expected 3 cells in {line!r}"
        rows[cells[0]] = (cells[1], cells[2])
    return rows


def check_bundled_table(text: str, results: dict) -> None:
    """Raise AssertionError unless ``text``'s headline table quotes ``results`` as it rounds them."""
    ev = results["evaluation"]
    rob, base, fresh = ev["robustness"], ev["baselines"], results["fresh_identities"]
    mean, linear = ev["mean_error_mm"], base["linear"]
    not_below = results["per_expression_vs_do_nothing"]["not_below_do_nothing"]
    moved = [rob["translated_50mm"], rob["rotated_30deg"], rob["scaled_0.8"], rob["scaled_1.25"], rob["mirrored"]]
    fresh_seed = int(re.search(r"seed (\d+)", fresh["data"]).group(1))

    # label -> (the numbers its value cell quotes, the verdict its target deserves given the
    # target's first number t)
    expected = {
        "mean error (median)": (
            [_mm(mean), _mm(ev["median_error_mm"])], lambda t: mean <= t),
        f"do nothing / linear fitted on the model's {linear['fitted_on']['subjects']:,} training subjects": (
            [_mm(base["do_nothing"]["mean_error_mm"]), _mm(linear["mean_error_mm"])],
            lambda t: mean < linear["mean_error_mm"]),
        "pairs worse than their input": (
            [_pct(ev["worse_than_input"]), _pct(linear["worse_than_input"])],
            lambda t: 100 * ev["worse_than_input"] <= t),
        "expressions (at every intensity) not below doing nothing": (
            None, lambda t: not not_below),
        "shifted 50 mm / turned 30 degrees / scaled 0.8 or 1.25 / mirrored": (
            sorted({_mm(x) for x in moved}), lambda t: all(abs(x - mean) <= t / 100 * mean for x in moved)),
        "two expressions at once (do nothing / linear)": (
            [_mm(rob["blended_mm"]), _mm(rob["blended_do_nothing_mm"]), _mm(linear["blended_mm"]),
             _pct(rob["blended_worse_than_input"])],
            lambda t: rob["blended_mm"] < linear["blended_mm"]),
        "rank-1 (probes also moved)": (
            [_pct(ev["rank1"], 0), _pct(rob["rank1_moved_probes"], 0)],
            lambda t: min(ev["rank1"], rob["rank1_moved_probes"]) * 100 >= t),
        "a neutral face in, changed by": (
            [_mm(rob["neutral_in_mm"])], lambda t: rob["neutral_in_mm"] <= t),
        "Gaussian noise of 0.2 mm on the input": (
            [_mm(rob["noise_0.2mm"]), "+" + _mm(rob["noise_0.2mm"] - mean)],
            lambda t: rob["noise_0.2mm"] - mean <= t),
        f"fresh identities (SynthFaces seed {fresh_seed}, all {fresh['pairs']:,} pairs)": (
            [_mm(fresh["mean_error_mm"]), _pct(fresh["worse_than_input"])],
            lambda t: abs(fresh["mean_error_mm"] - mean) <= t),
    }

    intro = f"{ev['test_subjects']} unseen subjects, {ev['test_pairs']:,} pairs"
    assert intro in re.sub(r"\s+", " ", text), f"the table's introduction should say {intro!r}"

    rows = _table(text)
    assert set(rows) == set(expected), (
        f"rows differ: missing {sorted(set(expected) - set(rows))}, unexpected {sorted(set(rows) - set(expected))}")
    for label, (numbers, deserved) in expected.items():
        value, target = rows[label]
        if numbers is None:  # the expressions row names them, or says none
            quoted = "none" if not not_below else ", ".join(not_below)
            assert value == quoted, f"{label!r}: the table says {value!r}, the results {quoted!r}"
        else:
            assert NUMBER.findall(value) == numbers, (
                f"{label!r}: the table quotes {NUMBER.findall(value)}, the results round to {numbers}")
        threshold = NUMBER.findall(target)
        verdict = "met" if deserved(float(threshold[0]) if threshold else None) else "not met"
        assert target.endswith(f": {verdict}"), f"{label!r}: target {target!r} should end with ': {verdict}'"


@pytest.fixture(scope="module")
def bundled_results() -> dict:
    return json.loads(RESULTS_JSON.read_text())


@pytest.mark.parametrize("markdown", [README, REPO / "docs" / "results.md"], ids=lambda p: str(p.relative_to(REPO)))
def test_headline_table_matches_the_results_file(markdown: Path, bundled_results: dict):
    check_bundled_table(markdown.read_text(), bundled_results)


@pytest.mark.parametrize("old, new", [
    ("| **0.122 mm** (0.021) |", "| **0.123 mm** (0.021) |"),       # a number changed
    ("| 0.022 mm |", "| 0.02 mm |"),                                 # another rounding
    ("| 0.3% (linear 9.9%) |", "| 0.3% (linear 9.8%) |"),
    ("| 0.210 mm (+0.089) |", "| 0.210 mm (+0.088) |"),
    ("(2.518 / 0.490)", "(2.518 / 0.470)"),                          # linear below the model on blends
    ("/ 0.490), 1.6% worse", "/ 0.490), 1.7% worse"),
    ("| <= 0.05 mm: met |", "| <= 0.05 mm: not met |"),             # a verdict the numbers contradict
    ("all 3,600 pairs", "all 3,700 pairs"),                          # a count in a label
])
def test_the_table_check_catches_a_changed_number(old: str, new: str, bundled_results: dict):
    text = README.read_text()
    assert old in text, f"the README's table no longer contains {old!r}; update this test"
    with pytest.raises(AssertionError):
        check_bundled_table(text.replace(old, new), bundled_results)


# --- the comparison with the paper's variants ----------------------------------------------------

COMPARISON_HEADER = "| method | SynthFaces (mm) | ICT-FaceKit (mm) |"
COMPARISON_FILES = {"SynthFaces": REPO / "docs" / "results" / "paper_tables.json",
                    "ICT-FaceKit": REPO / "docs" / "results" / "ict_facekit_tables.json"}
# Rows trained again since, on the same data and split: their variants replace the first file's.
COMPARISON_UPDATES = {"SynthFaces": REPO / "docs" / "results" / "synthfaces_mixture_table.json"}


def check_comparison_table(text: str, tables: dict[str, dict]) -> None:
    """Raise AssertionError unless ``text``'s comparison table quotes each dataset's paper tables
    (``tables``: dataset label -> its JSON) as docs/results/*_tables.md round them, with "-" for a
    method not run on that dataset, and lists every method run on either."""
    from benchmarks.paper_tables import ROW_NAMES, ROW_ORDER, _cell

    expected: dict[str, list[str]] = {
        "do nothing (expressive as neutral)": [
            f"{t['datasets'][d]['baselines']['do_nothing']['mean_error_mm']:.3f}" for d, t in tables.items()],
        "linear (ridge on PCA, the same training subjects)": [
            f"{t['datasets'][d]['baselines']['linear']['mean_error_mm']:.3f}" for d, t in tables.items()]}
    for method in ROW_ORDER:
        cells = [_cell(t["datasets"][d]["variants"][method], "mean_error_mm")
                 if method in t["datasets"][d]["variants"] else "-" for d, t in tables.items()]
        if any(cell != "-" for cell in cells):
            expected[ROW_NAMES[method]] = cells
    lines = text.splitlines()
    assert COMPARISON_HEADER in lines, f"no table headed {COMPARISON_HEADER!r}"
    rows = {}
    for line in lines[lines.index(COMPARISON_HEADER) + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    assert list(rows) == list(expected), f"rows {list(rows)}, expected {list(expected)}"
    for label, cells in expected.items():
        assert rows[label] == cells, f"{label!r}: the table says {rows[label]}, the results {cells}"


@pytest.fixture(scope="module")
def paper_tables() -> dict[str, dict]:
    tables = {label: json.loads(path.read_text()) for label, path in COMPARISON_FILES.items()}
    for label, path in COMPARISON_UPDATES.items():
        updates = json.loads(path.read_text())
        settings = ("epochs", "batch_size", "seeds", "weight_init", "l1_reduction", "expression_dims", "identity_dims")
        assert {k: updates[k] for k in settings} == {k: tables[label][k] for k in settings}
        for name, update in updates["datasets"].items():
            first = tables[label]["datasets"][name]
            same = ("name", "options", "vertices", "test_subjects")
            assert {k: update[k] for k in same} == {k: first[k] for k in same}
            for baseline in ("do_nothing", "linear"):   # the same split: the same baselines
                assert update["baselines"][baseline]["mean_error_mm"] == pytest.approx(
                    first["baselines"][baseline]["mean_error_mm"], abs=5e-4)
            first["variants"].update(update["variants"])
    return tables


def test_comparison_table_matches_the_paper_tables(paper_tables: dict):
    check_comparison_table(README.read_text(), paper_tables)


def test_the_comparison_check_catches_a_changed_number(paper_tables: dict):
    text = README.read_text()
    start = text.index(COMPARISON_HEADER)
    row = text[start:].splitlines()[2]                 # the do-nothing row
    changed = row.replace(row.split("|")[2], " 9.999 ")
    with pytest.raises(AssertionError):
        check_comparison_table(text.replace(row, changed), paper_tables)


def test_the_expression_reading_quoted_is_the_results_files(bundled_results: dict):
    read = bundled_results["evaluation"]["expression_recognition"]
    text = re.sub(r"\s+", " ", (REPO / "docs" / "results.md").read_text())
    quoted = (f"over the same {read['pairs']:,} test pairs): {_pct(read['accuracy'])}% are read as their own label "
              f"at the right intensity")
    assert quoted in text, f"results.md should say {quoted!r}"
    assert f"and {_pct(read['top3_accuracy'])}% have it among the three likeliest" in text


def test_the_expression_reading_warnings_quoted_are_the_results_files(bundled_results: dict):
    read = bundled_results["evaluation"]["expression_recognition"]
    text = (REPO / "docs" / "results.md").read_text()
    flat = re.sub(r"\s+", " ", text)
    assert (f"pairs read right come back {_mm(read['error_read_right_mm'])} mm from the truth on average, pairs "
            f"read wrong {_mm(read['error_read_wrong_mm'])} mm") in flat
    lines = text.splitlines()
    header = lines.index("| confidence | share of test pairs | mean error |")
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines[header + 2:header + 6]]
    assert len(rows) == len(read["by_confidence"])
    for (label, share, error), band in zip(rows, read["by_confidence"]):
        expected = (f"below {band['to']:g}" if band["from"] == 0 else f"{band['from']:g} and above"
                    if band["to"] == 1 else f"{band['from']:g} to {band['to']:g}")
        assert label.startswith(expected), (label, expected)
        assert share == f"{_pct(band['share'])}%" and error == f"{_mm(band['mean_error_mm'])} mm", (label, band)


def test_the_neutral_and_blend_readings_quoted_are_the_results_files(bundled_results: dict):
    rob = bundled_results["evaluation"]["robustness"]
    text = re.sub(r"\s+", " ", (REPO / "docs" / "results.md").read_text())
    assert (f"A neutral face in is read as `neutral` in {_pct(rob['neutral_in_read_as_neutral'], 0)}% of the test "
            f"subjects' neutral faces, and a face doing two expressions at once as `blend` in "
            f"{_pct(rob['blended_read_as_blend'])}% of the blends") in text
