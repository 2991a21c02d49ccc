"""libyaml reads workflows faster; what plait makes of a text, and says of a bad one, must not depend on it.

`load_yaml` hands the text to libyaml where PyYAML was built with it and to PyYAML's own parser
where it was not (or where libyaml refuses the text). Each test reads the same texts both ways:
`pure` is `load_yaml` with libyaml taken away, as on a PyYAML built without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.compiler import WorkflowError, loader
from plait.compiler.loader import YamlList, YamlMap, load_yaml

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(p for folder in ("examples", "tests/fixtures", "docs") for pattern in ("*.yaml", "*.yml")
               for p in (ROOT / folder).rglob(pattern))

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML was built without libyaml: one parser only")


def pure(text: str, filename: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(loader, "CParser", None)
        return load_yaml(text, filename)


def positioned(value: Any) -> Any:
    """Return the value with every position it carries, as plain data to compare whole."""
    if isinstance(value, YamlMap):
        return ("map", str(value.loc), [(key, str(value.key_locs[key]), str(value.value_locs[key]),
                                         positioned(item)) for key, item in value.items()])
    if isinstance(value, YamlList):
        return ("list", str(value.loc), [(str(loc), positioned(item)) for loc, item in zip(value.item_locs, value)])
    return type(value).__name__, value


def outcome(read: Any) -> Any:
    try:
        return positioned(read())
    except WorkflowError as err:
        return "error", str(err)


def test_there_are_workflows_to_read() -> None:
    assert len(FILES) > 50, FILES


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_workflow_here_reads_the_same_with_and_without_libyaml(path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    text = path.read_text(encoding="utf-8")
    assert outcome(lambda: load_yaml(text, path.name)) == outcome(lambda: pure(text, path.name, monkeypatch))


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(st.characters(blacklist_categories=["Cs"]), max_size=12))
DATA = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                    max_leaves=20)
STYLES = st.sampled_from([{"default_flow_style": False}, {"default_flow_style": True},
                          {"default_flow_style": None}, {"default_style": '"'}, {"default_style": "'"},
                          {"default_flow_style": False, "allow_unicode": True, "width": 20}])


@settings(max_examples=60, deadline=None)
@given(data=DATA, style=STYLES, anchors=st.booleans())
def test_any_data_dumped_in_any_style_reads_the_same_with_and_without_libyaml(data: Any, style: dict[str, Any],
                                                                              anchors: bool) -> None:
    shared = [data, data] if anchors else data  # the same object twice: PyYAML writes an anchor and an alias
    text = yaml.safe_dump({"value": shared}, sort_keys=False, **style)
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, slow = outcome(lambda: load_yaml(text, "wf.yaml")), outcome(lambda: pure(text, "wf.yaml", monkeypatch))
    assert fast == slow, text


BAD = {
    "a tab for indentation": "a:\n\t- 1\n",
    "an unclosed quote": 'name: "x\nsteps: []\n',
    "a second document": "name: x\n---\nname: y\n",
    "a control character": "name: x\x07\n",
    "an unclosed flow list": "steps: [1, 2\n",
    "a key twice": "name: x\nname: y\n",
    "a deep nest": "a: " + "[" * 150 + "]" * 150 + "\n",
    "a python tag": "a: !!python/object:os.system x\n",
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_text_gets_the_same_error_with_and_without_libyaml(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = BAD[name]
    fast, slow = outcome(lambda: load_yaml(text, "wf.yaml")), outcome(lambda: pure(text, "wf.yaml", monkeypatch))
    assert fast[0] == "error", fast
    assert fast == slow


def test_a_text_libyaml_refuses_but_yaml_allows_is_read() -> None:
    text = 'value: "\\ud83d\\udca5"\n'  # a surrogate pair written as two escapes, as JSON writes it
    with pytest.raises(yaml.YAMLError):
        yaml.compose(text, Loader=yaml.CSafeLoader)
    assert load_yaml(text, "wf.yaml") == {"value": "\U0001f4a5"}
