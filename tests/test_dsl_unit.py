"""The slice DSL and slice files, one function at a time: parse trees, every operator's
edge cases (nulls, inclusive bounds, types, empty frames) and the exact error messages
data teams see. These tests are also the ones mutation testing runs against
validator/data/slices/dsl.py and validator/data/slices/__init__.py (see tests/README.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from validator.errors import SliceError
from validator.data.slices import (ALL, SliceDef, SliceSet, assign_slices, load_slices,
                              parse_slice_file, slice_files)
from validator.data.slices.dsl import (AllOf, AnyOf, Compare, Not, check_columns, comparisons,
                                  evaluate, parse_condition, with_derived_columns)

W = "f.yaml: where"


def error(condition) -> str:
    with pytest.raises(SliceError) as info:
        parse_condition(condition, W)
    return info.value.args[0]


# -- parse_condition: the tree -------------------------------------------------------------

def test_equality_shorthand_and_single_operators_parse_to_one_comparison():
    assert parse_condition({"kind": "headline"}, W) == Compare("kind", "eq", "headline",
                                                               f"{W}.kind")
    assert parse_condition({"n": {"min": 3}}, W) == Compare("n", "min", 3, f"{W}.n.min")
    assert parse_condition({"kind": {"in": ["a", "b"]}}, W) == Compare(
        "kind", "in", ("a", "b"), f"{W}.kind.in")


def test_several_keys_or_operators_are_all_of_them():
    parsed = parse_condition({"kind": "a", "n": {"min": 1, "max": 5}}, W)
    assert parsed == AllOf((Compare("kind", "eq", "a", f"{W}.kind"),
                            AllOf((Compare("n", "min", 1, f"{W}.n.min"),
                                   Compare("n", "max", 5, f"{W}.n.max")))))


def test_combinators_nest_and_name_list_items():
    parsed = parse_condition({"any": [{"a": 1}, {"not": {"b": "x"}}]}, W)
    assert parsed == AnyOf((Compare("a", "eq", 1, f"{W}.any[0].a"),
                            Not(Compare("b", "eq", "x", f"{W}.any[1].not.b"))))
    parsed = parse_condition({"all": [{"a": True}]}, W)
    assert parsed == AllOf((Compare("a", "eq", True, f"{W}.all[0].a"),))


@pytest.mark.parametrize("value", ["headline", 3, 2.5, False])
def test_every_scalar_type_is_an_equality(value):
    assert parse_condition({"c": value}, W).value == value


# -- parse errors: exact messages ----------------------------------------------------------

@pytest.mark.parametrize("condition, message", [
    ({}, f"{W}: a condition must be a non-empty mapping, got {{}}"),
    ("text", f"{W}: a condition must be a non-empty mapping, got 'text'"),
    ({1: "a"}, f"{W}.1: keys must be column names or all, any, not"),
    ({"all": []}, f"{W}.all: 'all' takes a non-empty list of conditions"),
    ({"any": {"a": 1}}, f"{W}.any: 'any' takes a non-empty list of conditions"),
    ({"not": []}, f"{W}.not: a condition must be a non-empty mapping, got []"),
    ({"all": [{"a": 1}, "x"]}, f"{W}.all[1]: a condition must be a non-empty mapping, "
                               f"got 'x'"),
    ({"c": {}}, f"{W}.c: empty operator mapping"),
    ({"c": None}, f"{W}.c: null value; use {{is_null: true}} to select missing values"),
    ({"c": [1, 2]}, f"{W}.c: expected a value or an operator mapping, got [1, 2]"),
    ({"c": {"like": "a"}}, f"{W}.c.like: unknown operator 'like' (valid: in, not_in, min, "
                           f"max, matches, contains, is_null)"),
    ({"c": {"in": []}}, f"{W}.c.in: 'in' takes a non-empty list of values, got []"),
    ({"c": {"not_in": "a"}}, f"{W}.c.not_in: 'not_in' takes a non-empty list of values, "
                             f"got 'a'"),
    ({"c": {"in": ["a", ["b"]]}}, f"{W}.c.in: 'in' takes a non-empty list of values, "
                                  f"got ['a', ['b']]"),
    ({"c": {"min": "5"}}, f"{W}.c.min: 'min' takes a number, got '5'"),
    ({"c": {"max": True}}, f"{W}.c.max: 'max' takes a number, got True"),
    ({"c": {"contains": ""}}, f"{W}.c.contains: 'contains' takes a non-empty string, "
                              f"got ''"),
    ({"c": {"contains": 5}}, f"{W}.c.contains: 'contains' takes a non-empty string, got 5"),
    ({"c": {"is_null": "yes"}}, f"{W}.c.is_null: 'is_null' takes true or false, got 'yes'"),
])
def test_parse_errors_name_the_yaml_path_and_the_problem(condition, message):
    assert error(condition) == message


@pytest.mark.parametrize("text, key", [
    ("{score: .nan}", "score"), ("{score: {in: [1, .nan]}}", "score.in"),
    ("{score: {not_in: [.NaN]}}", "score.not_in"), ("{score: {min: .nan}}", "score.min"),
    ("{score: {max: .nan}}", "score.max"), ("{not: {score: .nan}}", "not.score")])
def test_a_nan_literal_is_refused_like_null(text, key):
    # YAML's .nan is a missing value; the documented rule is that missing values never
    # satisfy a comparison, so `not: {score: .nan}` must not select the null rows either
    import yaml
    assert error(yaml.safe_load(text)) == (f"{W}.{key}: .nan is a missing value; use "
                                           f"{{is_null: true}} to select missing values")
    assert parse_condition({"score": {"min": float("inf")}}, W).value == float("inf")


@pytest.mark.parametrize("pattern", ["", 5, None])
def test_matches_needs_a_non_empty_string(pattern):
    assert error({"t": {"matches": pattern}}).startswith(f"{W}.t.matches: 'matches' takes a "
                                                         f"non-empty regex string")


def test_regex_length_limit_is_inclusive():
    assert parse_condition({"t": {"matches": "a" * 500}}, W).value.pattern == "a" * 500
    assert error({"t": {"matches": "a" * 501}}).startswith(f"{W}.t.matches: regex longer "
                                                           f"than 500 characters")


def test_an_invalid_regex_is_a_slice_error_naming_the_pattern(capfd):
    assert error({"t": {"matches": "(unclosed"}}) == (
        f"{W}.t.matches: invalid regex '(unclosed' (missing ), unterminated subpattern at "
        f"position 0)")
    assert capfd.readouterr().err == ""  # RE2's own error log is switched off


@pytest.mark.parametrize("pattern, reason", [
    ("(a)\\1", "invalid escape sequence: \\1"),
    ("a(?=b)", "invalid perl operator: (?="),
    ("(?<!x)y", "invalid perl operator: (?<!"),
])
def test_a_regex_re2_cannot_run_is_a_slice_error_saying_why(capfd, pattern, reason):
    assert error({"t": {"matches": pattern}}) == (
        f"{W}.t.matches: regex {pattern!r} is not supported by RE2, the linear-time engine "
        f"slices use ({reason}); backreferences and lookaround are not available")
    assert capfd.readouterr().err == ""


def test_matches_searches_anywhere_in_the_text_with_re2():
    parsed = parse_condition({"t": {"matches": "o+f"}}, W)
    assert type(parsed.value).__module__.startswith("re2")
    frame = pd.DataFrame({"t": ["noofer", "of", "fo", None, "", "xof"]})
    assert evaluate(parsed, frame).tolist() == [True, True, False, False, False, True]
    assert evaluate(parse_condition({"t": {"matches": "^$"}}, W), frame).tolist() == [
        False, False, False, False, True, False]  # a missing value is not the empty text
    empty = evaluate(parsed, frame.iloc[:0])
    assert empty.dtype == bool and empty.tolist() == []


@pytest.mark.parametrize("op, arg", [("min", 1.5), ("max", -2), ("is_null", False),
                                     ("contains", "x"), ("not_in", ["a", 1])])
def test_valid_operator_arguments_parse(op, arg):
    parsed = parse_condition({"c": {op: arg}}, W)
    assert parsed.op == op and parsed.value == (tuple(arg) if isinstance(arg, list) else arg)


# -- comparisons / check_columns -----------------------------------------------------------

def test_comparisons_walk_the_whole_tree_in_order():
    parsed = parse_condition({"all": [{"a": 1}, {"any": [{"b": 2}, {"not": {"c": 3}}]}]}, W)
    assert [c.column for c in comparisons(parsed)] == ["a", "b", "c"]


def test_check_columns_names_the_first_unknown_column_and_knows_derived_ones():
    parsed = parse_condition({"all": [{"word_count": 1}, {"char_count": 2}, {"a": 1},
                                      {"zz": 1}, {"yy": 2}]}, W)
    with pytest.raises(SliceError) as info:
        check_columns(parsed, ["b", "a"])
    assert info.value.args[0] == (f"{W}.all[3].zz: unknown column 'zz' "
                                  f"(available: a, b, char_count, word_count)")
    check_columns(parse_condition({"word_count": 1}, W), [])


# -- derived columns -----------------------------------------------------------------------

def test_derived_columns_count_words_and_characters_and_zero_for_missing_text():
    frame = pd.DataFrame({"t": ["two  words", "", None, "Envío 🎉 ok", " a\tb\nc "]})
    out = with_derived_columns(frame, "t")
    assert out.word_count.tolist() == [2, 0, 0, 3, 3]
    assert out.char_count.tolist() == [10, 0, 0, 10, 7]
    assert out.word_count.dtype == "int64" and out.char_count.dtype == "int64"
    assert "word_count" not in frame.columns  # the input is not modified


def test_derived_columns_keep_a_sample_column_of_the_same_name():
    frame = pd.DataFrame({"t": ["a b c"], "word_count": [99]})
    out = with_derived_columns(frame, "t")
    assert out.word_count.tolist() == [99] and out.char_count.tolist() == [5]
    both = pd.DataFrame({"t": ["a"], "word_count": [7], "char_count": [8]})
    assert with_derived_columns(both, "t") is both


# -- evaluate: every operator with nulls and boundaries ------------------------------------

FRAME = pd.DataFrame({
    "kind": ["a", "b", None, "a", "c"],
    "n": [1, 5, 3, np.nan, 10],
    "i": [1, 2, 3, 4, 5],
    "flag": [True, False, True, False, True],
    "t": ["Free offer", "free", None, "nothing", "x+y"],
})


def mask(condition) -> list[bool]:
    return evaluate(parse_condition(condition, W), FRAME).tolist()


@pytest.mark.parametrize("condition, expected", [
    ({"kind": "a"}, [True, False, False, True, False]),
    ({"kind": {"in": ["a", "c"]}}, [True, False, False, True, True]),
    ({"kind": {"not_in": ["a"]}}, [False, True, False, False, True]),   # null never matches
    ({"n": {"min": 5}}, [False, True, False, False, True]),              # inclusive
    ({"n": {"max": 5}}, [True, True, True, False, False]),               # inclusive, NaN out
    ({"i": {"min": 2, "max": 4}}, [False, True, True, True, False]),
    ({"n": 3}, [False, False, True, False, False]),
    ({"n": {"not_in": [1, 10]}}, [False, True, True, False, False]),
    ({"flag": True}, [True, False, True, False, True]),
    ({"flag": False}, [False, True, False, True, False]),
    ({"t": {"matches": "^[Ff]ree"}}, [True, True, False, False, False]),
    ({"t": {"matches": "(?i)OFFER"}}, [True, False, False, False, False]),
    ({"t": {"contains": "+"}}, [False, False, False, False, True]),       # literal, no regex
    ({"t": {"contains": "free"}}, [False, True, False, False, False]),    # case-sensitive
    ({"kind": {"is_null": True}}, [False, False, True, False, False]),
    ({"kind": {"is_null": False}}, [True, True, False, True, True]),
    ({"not": {"kind": "a"}}, [False, True, True, False, True]),
    ({"any": [{"kind": "b"}, {"i": 5}]}, [False, True, False, False, True]),
    ({"all": [{"flag": True}, {"i": {"min": 3}}]}, [False, False, True, False, True]),
    ({"kind": "a", "i": 4}, [False, False, False, True, False]),
])
def test_operators_on_a_hand_table(condition, expected):
    assert mask(condition) == expected


def test_evaluate_returns_a_numpy_bool_mask_also_on_an_empty_frame():
    result = evaluate(parse_condition({"t": {"contains": "x"}}, W), FRAME)
    assert isinstance(result, np.ndarray) and result.dtype == bool
    empty = FRAME.iloc[:0]
    assert evaluate(parse_condition({"any": [{"kind": "a"}, {"n": {"min": 1}}]}, W),
                    empty).tolist() == []


@pytest.mark.parametrize("condition, message", [
    ({"kind": {"min": 1}}, f"{W}.kind.min: 'min' needs a numeric column, 'kind' holds text"),
    ({"flag": {"max": 1}}, f"{W}.flag.max: 'max' needs a numeric column, "
                           f"'flag' holds boolean"),
    ({"n": {"matches": "1"}}, f"{W}.n.matches: 'matches' needs a text column, "
                              f"'n' holds number"),
    ({"flag": {"contains": "T"}}, f"{W}.flag.contains: 'contains' needs a text column, "
                                  f"'flag' holds boolean"),
    ({"n": "3"}, f"{W}.n: compares column 'n' (number) with '3' (text); quote text values, "
                 f"use true/false for booleans"),
    ({"flag": 1}, f"{W}.flag: compares column 'flag' (boolean) with 1 (number); quote text "
                  f"values, use true/false for booleans"),
    ({"kind": True}, f"{W}.kind: compares column 'kind' (text) with True (boolean); quote "
                     f"text values, use true/false for booleans"),
    ({"i": {"in": [1, "2"]}}, f"{W}.i.in: compares column 'i' (number) with '2' (text); "
                              f"quote text values, use true/false for booleans"),
])
def test_type_errors_at_evaluation_name_the_column_and_both_kinds(condition, message):
    with pytest.raises(SliceError) as info:
        mask(condition)
    assert info.value.args[0] == message


# -- slice files ---------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_slice_files_expand_folders_in_name_order_and_keep_given_files(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    for name in ("b.yaml", "a.yml", "c.txt", "d.YAML"):
        write(folder / name, "slices: []\n")
    single = write(tmp_path / "x.txt", "slices: []\n")
    assert slice_files([folder, single]) == [folder / "a.yml", folder / "b.yaml", single]
    assert slice_files([single, folder]) == [single, folder / "a.yml", folder / "b.yaml"]
    with pytest.raises(SliceError) as info:
        slice_files([tmp_path / "missing"])
    assert info.value.args[0] == f"{tmp_path / 'missing'}: slice file or folder not found"


def test_a_slice_file_parses_slices_with_descriptions_and_expectations(tmp_path):
    path = write(tmp_path / "s.yaml", """
slices:
  - name: head-lines_2
    description: Headlines
    where: {kind: {in: [a, b]}, n: {min: 2}}
  - name: other
    where: {kind: c}
  - name: free-shipping
    where: {any: [{text: {contains: Envío gratis}}, {text: {contains: livraison gratuite}},
                  {text: {contains: kostenloser Versand}}]}
expectations:
  - type: expect_column_values_to_not_be_null
    kwargs: {column: kind}
""")
    slices, expectations = parse_slice_file(path)
    assert [s.name for s in slices] == ["head-lines_2", "other", "free-shipping"]
    first = slices[0]
    assert (first.description, first.file, first.where) == (
        "Headlines", str(path), f"{path}: slices[0].where")
    assert first.where_yaml == "{kind: {in: [a, b]}, n: {min: 2}}"
    assert first.condition == parse_condition({"kind": {"in": ["a", "b"]}, "n": {"min": 2}},
                                              f"{path}: slices[0].where")
    assert slices[1].description == "" and slices[1].where == f"{path}: slices[1].where"
    assert slices[2].where_yaml == ("{any: [{text: {contains: Envío gratis}}, "
                                    "{text: {contains: livraison gratuite}}, "
                                    "{text: {contains: kostenloser Versand}}]}")
    assert [e.type for e in expectations] == ["expect_column_values_to_not_be_null"]


def test_a_file_with_only_expectations_or_only_slices(tmp_path):
    only_expectations = write(tmp_path / "e.yaml", "expectations: []\n")
    assert parse_slice_file(only_expectations) == ([], [])
    only_slices = write(tmp_path / "s.yaml", "slices:\n  - {name: a, where: {k: 1}}\n")
    slices, expectations = parse_slice_file(only_slices)
    assert [s.name for s in slices] == ["a"] and expectations == []


@pytest.mark.parametrize("text, message", [
    ("slices: [", "line 1, column 10: not valid YAML: expected the node content, but found "
                  "'<stream end>' (while parsing a flow node)"),
    ("slices:\n  - {name: a, where: {k: 1}}\n  bad: [\n", "line 3, column 3: not valid YAML: "
                                                          "expected <block end>"),
    ("", "a slice file is a mapping with the keys 'slices' (a list) and/or 'expectations' "
         "(a list)"),
    ("[1]", "a slice file is a mapping"),
    ("{}", "a slice file is a mapping"),
    ("slices: []\nextra: 1\n", "a slice file is a mapping"),
    ("slices: {a: 1}\n", "'slices' must be a list"),
    ("slices: [x]\n", "slices[0]: each slice must be a mapping with name, description, where"),
    ("slices:\n  - {name: a, where: {k: 1}, colour: red, alpha: 1}\n",
     "slices[0].alpha: unknown key (valid: name, description, where)"),
    ("slices:\n  - {name: Bad, where: {k: 1}}\n",
     "slices[0].name: a slice needs a name of lowercase letters, digits, '_' or '-', "
     "got 'Bad'"),
    ("slices:\n  - {name: _x, where: {k: 1}}\n", "slices[0].name: a slice needs a name"),
    ("slices:\n  - {where: {k: 1}}\n", "slices[0].name: a slice needs a name of lowercase "
                                       "letters, digits, '_' or '-', got None"),
    ("slices:\n  - {name: all, where: {k: 1}}\n",
     "slices[0].name: 'all' is reserved (it is always every gate row)"),
    ("slices:\n  - {name: a}\n", "slices[0].where: required key is missing"),
    ("slices:\n  - {name: a, description: [x], where: {k: 1}}\n",
     "slices[0].description: must be text"),
    ("slices:\n  - {name: a, where: {k: {bad: 1}}}\n",
     "slices[0].where.k.bad: unknown operator 'bad'"),
    ("slices: []\nexpectations: {a: 1}\n", "'expectations' must be a list"),
])
def test_slice_file_errors_name_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path / "s.yaml", text)
    with pytest.raises(SliceError) as info:
        parse_slice_file(path)
    assert info.value.args[0].startswith(f"{path}: {message}")


def test_an_unreadable_slice_file_is_a_slice_error(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(SliceError) as info:
        parse_slice_file(path)
    assert info.value.args[0] == (f"{path}: cannot read the slice file: not UTF-8 text "
                                  f"(invalid start byte at byte 0, line 1)")


def test_load_slices_puts_all_first_and_refuses_duplicates_across_files(tmp_path):
    a = write(tmp_path / "a.yaml", "slices:\n  - {name: x, where: {k: 1}}\n"
                                   "expectations:\n  - {type: expect_column_to_exist, "
                                   "kwargs: {column: k}}\n")
    b = write(tmp_path / "b.yaml", "slices:\n  - {name: y, where: {k: 2}}\n")
    slice_set = load_slices([a, b])
    assert slice_set.names == [ALL, "x", "y"]
    everything = slice_set.slices[0]
    assert everything == SliceDef(ALL, "Every gate row", None, "(built in)", "")
    assert len(slice_set.expectations) == 1
    duplicate = write(tmp_path / "c.yaml", "slices:\n  - {name: z, where: {k: 3}}\n"
                                           "  - {name: x, where: {k: 4}}\n")
    with pytest.raises(SliceError) as info:
        load_slices([a, duplicate])
    assert info.value.args[0] == (f"{duplicate}: slices[1].name: slice 'x' is already "
                                  f"defined in {a}")


def test_assign_slices_checks_columns_and_returns_one_bool_column_per_slice(tmp_path):
    path = write(tmp_path / "s.yaml", "slices:\n  - {name: as, where: {kind: a}}\n"
                                      "  - {name: big, where: {i: {min: 4}}}\n")
    frame = FRAME.set_index(pd.Index([10, 11, 12, 13, 14]))
    masks = assign_slices(load_slices([path]), frame)
    assert list(masks.columns) == [ALL, "as", "big"]
    assert list(masks.index) == [10, 11, 12, 13, 14]
    assert masks.dtypes.tolist() == [bool, bool, bool]
    assert masks[ALL].tolist() == [True] * 5
    assert masks["as"].tolist() == [True, False, False, True, False]
    assert masks["big"].tolist() == [False, False, False, True, True]
    bad = write(tmp_path / "bad.yaml", "slices:\n  - {name: q, where: {nope: 1}}\n")
    with pytest.raises(SliceError, match=r"slices\[0\]\.where\.nope: unknown column 'nope'"):
        assign_slices(load_slices([bad]), frame)
    empty = assign_slices(SliceSet((load_slices([]).slices[0],)), frame.iloc[:0])
    assert empty.shape == (0, 1) and empty.dtypes.tolist() == [bool]
