"""The use case file parser against crafted files (issue 14, the edge): an alias bomb, deep nesting,
a duplicate key, bytes that are not UTF-8 and an oversized file are each refused as InvalidInput
naming the file and the place, on the CLI without a traceback; and fuzzed, the parser gives a
UseCaseSpec or an InvalidInput, never another exception."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from outcomes.support import churn_data

from valueloop.errors import InvalidInput
from valueloop.examples import example_dir
from valueloop.outcomes.spec import MAX_DEPTH, MAX_FILE_BYTES, UseCaseSpec, load_spec, parse_spec, parse_yaml


def _alias_bomb() -> str:
    """Nine levels of nine aliases: 4 KB of text that would expand to 9**9 strings."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        aliases = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def _refused(tmp_path, content: bytes | str, *fragments: str) -> str:
    """Write ``content`` as a use case file and return the refusal, which names the file."""
    path = tmp_path / "valueloop.yaml"
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as refused:
        load_spec(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _example() -> str:
    return (example_dir("churn") / "valueloop.yaml").read_text()


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    bomb = _alias_bomb()
    assert len(bomb) < 4096
    _refused(tmp_path, bomb, "line 1, column 5", "anchors and aliases are not allowed (&a0)")


def test_a_single_alias_is_refused_too(tmp_path):
    """A merge key or one reused list is how a bomb starts: the loader allows none."""
    text = _example().replace("analyst: [ana]", "analyst: &team [ana]").replace(
        "expert: [eve]", "expert: *team")
    line = next(n for n, text_line in enumerate(text.splitlines(), 1) if "&team" in text_line)
    _refused(tmp_path, text, f"line {line}, column 12", "anchors and aliases are not allowed (&team)")


def test_deep_nesting_is_refused_at_its_line(tmp_path):
    deep = "name: churn\ntitle: " + "[" * 5000 + "]" * 5000 + "\n"
    _refused(tmp_path, deep, "line 2", f"nested deeper than {MAX_DEPTH} levels")
    block = "name: churn\n" + "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_DEPTH + 1)) + "x: 1\n"
    _refused(tmp_path, block, f"nested deeper than {MAX_DEPTH} levels")


def test_a_duplicate_key_names_the_key_and_both_lines(tmp_path):
    text = _example().replace("owner: olivia\n", "owner: olivia\nowner: ana\n", 1)
    line = text.splitlines().index("owner: ana") + 1
    _refused(tmp_path, text, f"line {line}", f"duplicate key 'owner' (first at line {line - 1})")
    nested = _example().replace("  analyst: [ana]", "  analyst: [ana]\n  analyst: [ana, eve]")
    _refused(tmp_path, nested, "duplicate key 'analyst'")


def test_bytes_that_are_not_utf8_are_named_with_their_offset(tmp_path):
    text = _example().encode()
    offset = text.index(b"Predict")
    latin1 = text[:offset] + "Prédire".encode("latin-1") + text[offset + len(b"Predict"):]
    _refused(tmp_path, latin1, f"not UTF-8 at byte {offset + 2}", "0xe9")


def test_an_oversized_file_is_refused_by_its_size(tmp_path):
    padding = "# " + "x" * 78 + "\n"
    text = _example() + padding * (MAX_FILE_BYTES // len(padding) + 1)
    _refused(tmp_path, text, f"larger than the limit of {MAX_FILE_BYTES} bytes")


@pytest.mark.parametrize(("text", "fragment"), [
    ("name: churn\nstart: 2020-02-30\n", "line 2, column 8: day is out of range for month"),
    ("name: churn\ntarget: 1" + "0" * 5000 + "\n", "line 2, column 9: Exceeds the limit"),
    ("? [a]\n: b\n", "found unhashable key"),
])
def test_a_value_yaml_cannot_construct_is_named_at_its_line(tmp_path, text, fragment):
    _refused(tmp_path, text, fragment)


def test_a_byte_order_mark_and_the_example_still_load(tmp_path):
    path = tmp_path / "valueloop.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(churn_data()).encode())
    assert load_spec(path).name == "churn"


def test_the_cli_refuses_a_crafted_file_without_a_traceback(settings, run_cli, tmp_path):
    for name, content in [("bomb.yaml", _alias_bomb().encode()),
                          ("latin1.yaml", "title: Prédire\n".encode("latin-1")),
                          ("deep.yaml", ("[" * 5000).encode())]:
        path = tmp_path / name
        path.write_bytes(content)
        result = run_cli(settings, "usecase", "create", str(path), as_user="olivia")
        assert result.returncode == 2, result.stderr
        assert f"{path}: " in result.stderr and "Traceback" not in result.stderr + result.stdout


FUZZ = settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
#: what YAML is made of: its indicators, quotes, escapes, spaces and line breaks, and a few letters
YAMLISH = st.text(st.sampled_from(list("-?:,[]{}#&*!|>'\"%@`\\ \t\n.0123456789eEaxz_~+") + ["é", "\x00", "\ufeff"]),
                  max_size=200)


def _parsed(content: bytes) -> None:
    """The whole path of a file: a UseCaseSpec or an InvalidInput, never another exception."""
    try:
        assert isinstance(parse_spec(parse_yaml(content, "fuzz.yaml"), "fuzz.yaml"), UseCaseSpec)
    except InvalidInput as refused:
        assert str(refused).startswith("fuzz.yaml")


@FUZZ
@given(st.one_of(YAMLISH.map(str.encode), st.binary(max_size=200)))
def test_random_yamlish_text_is_a_spec_or_invalid_input(content):
    _parsed(content)


@st.composite
def _mutated_example(draw: st.DrawFn) -> bytes:
    """The example file with a few random cuts, insertions and repeats, at bytes or at lines."""
    content = bytearray((example_dir("churn") / "valueloop.yaml").read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(content)))
        end = draw(st.integers(start, min(len(content), start + 300)))
        match draw(st.sampled_from(["cut", "insert", "repeat", "replace"])):
            case "cut":
                del content[start:end]
            case "insert":
                content[start:start] = draw(YAMLISH).encode()
            case "repeat":
                content[start:start] = content[start:end]
            case "replace":
                content[start:end] = draw(st.binary(max_size=8))
    return bytes(content)


@FUZZ
@given(_mutated_example())
def test_mutations_of_the_example_are_a_spec_or_invalid_input(content):
    _parsed(content)
