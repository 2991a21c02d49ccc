"""Every bad workflow in tests/fixtures/bad/ fails `plait compile` with exactly the message beside it.

Each `NAME.yaml` has a `NAME.expected` holding the whole of stderr. The CLI runs in-process with
the fixtures folder as the current directory, so messages read `NAME.yaml:LINE:COL: error: ...`.
`{here}` in an expected file stands for the fixtures folder's absolute path.

An expected file states the message plait *should* print. Where plait prints something wrong today,
the fixture is listed in `KNOWN_BUGS` and its case is a strict xfail: fixing the bug turns it into
an unexpected pass, which is the reminder to delete the entry.
"""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bad"
CASES = sorted(p.stem for p in FIXTURES.glob("*.yaml"))

KNOWN_BUGS: dict[str, str] = {}


def test_every_fixture_has_an_expected_message() -> None:
    assert CASES, f"no fixtures found in {FIXTURES}"
    expected = sorted(p.stem for p in FIXTURES.glob("*.expected"))
    assert expected == CASES
    assert set(KNOWN_BUGS) <= set(CASES)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[n])) if n in KNOWN_BUGS else n
     for n in CASES],
)
def test_bad_workflow_message(name: str, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    expected = (FIXTURES / f"{name}.expected").read_text(encoding="utf-8").replace("{here}", str(FIXTURES))

    result = cli("compile", f"{name}.yaml")

    assert "Traceback" not in result.err
    assert (result.code, result.out, result.err) == (2, "", expected)
