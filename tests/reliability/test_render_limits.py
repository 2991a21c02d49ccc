"""Issue 13, class 3: every render is bounded in memory and time, and failures are located errors.

The sandbox bounds what any operation builds (`plait.template_limits`): a template asking for
gigabytes is refused before it allocates them, in a `plait compile` process capped at 1 GiB of
address space, with `file:line:col: error:` and a hint, never a traceback. A render has a deadline,
checked in every loop, call and output chunk, so two nested `range(100000)` loops end on time; the
runtime passes a node's own timeout with `render_limits(seconds)`.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime.support import Flow, error

from plait import template_limits
from plait.templating import TemplateTimeout, render, render_limits, render_text
from reliability.harness import ENV, rows, run

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

GIB = 1 << 30


def one_gib() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (GIB, GIB))


# expression -> the start of the error it gives (after "inputs.v does not render: ")
HUGE = {
    "'%3000000000s' % 'x'": "a template tried to build formatted text of 3,000,000,000 characters",
    "'x' | center(3000000000)": "a template tried to build a value with center() of 3,000,000,000 characters",
    "'x'.ljust(3000000000)": "a template tried to build a value with ljust() of 3,000,000,000 characters",
    "'x' | indent(3000000000)": "a template tried to build a value with indent() of 3,000,000,001 characters",
    "'{:>3000000000}'.format('x')": "a template tried to build formatted text of 3,000,000,000 characters",
    "lipsum(3000000)": "a template tried to build a value with generate_lorem_ipsum() of 3,600,000,000 characters",
    "10 ** 5000": "a template tried to compute a number of about 5,000 digits (at most 4,300)",
    "[{'a': 1}] | map(attribute='nmae') | list": "'dict object' has no attribute 'nmae'",
    "[{'a': 1}] | map(attribute='nmae')": "'dict object' has no attribute 'nmae'",
    # beyond the issue's
    "'%*s' % (3000000000, 'x')": "a template tried to build formatted text of 3,000,000,000 characters",
    "'{:>{w}}'.format('x', w=3000000000)": "a template tried to build formatted text of 3,000,000,000 characters",
    "'%.3000000000f' % 1.5": "a template tried to build formatted text of 3,000,000,000 characters",
    "'%3000000000s' | format('x')": "a template tried to build formatted text of 3,000,000,000 characters",
    "('x' * 9000000).replace('x', 'yyyyy')": "a template tried to build a value with replace() of 45,000,004",
    "('x' * 9000000) | replace('x', 'yy')": "a template tried to build a value with replace() of 18,000,001",
    "'y' * 10000000 ~ 'y' * 10000000": "a template tried to build text with ~ of 20,000,000 characters",
    "[1] * 3000000": "a template tried to build a value of 3,000,000 characters or items (at most 2,000,000)",
    "(10 ** 3000) * (10 ** 3000)": "a template tried to compute a number of more than 4,300 digits",
    "('\\t' * 1000000).expandtabs(100)": "a template tried to build a value with expandtabs() of 100,000,000",
    "('x\\n' * 5000000) | indent(100)": "a template tried to build a value with indent() of 510,000,100",
    "('x' * 9000000) | wordwrap(1, wrapstring='yy')": "a template tried to build a value with wordwrap() of",
    "range(10) | batch(3000000000, 'x') | list": "a template tried to build a value with batch() of 3,000,000,000",
    "('a' * 5000000).join(['b'] * 100)": "a template tried to build a value with join() of 500,000,100",
    "range(100000) | join('x' * 1000)": "a template tried to build a value with join() of 100,000,000",
    "namespace(s='x').s * 3000000000": "a template tried to build a value of 3,000,000,000 characters",
    # a constant expression: Jinja's optimizer would fold it as it compiles, a gigabyte of Python source
    "((('x' | batch(1000000, 'z') | list | string) | truncate(1000000)) | batch(1, 'z') | list | string)":
        "a template tried to build the text of a value of 10,000,001 characters",
}
LOOPS = {  # statements: each builds its way past a bound step by step
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}":
        "a template tried to build text with ~ of 16,777,216 characters",
    "{% set x = [1] %}{% for i in range(64) %}{{ x.extend(x) }}{% endfor %}":
        "a template built 2,097,152 items (at most 2,000,000)",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ 'x' * 1000 }}{% endfor %}{% endfor %}":
        "a template's output grew past 10,000,000 characters",
}


def workflow(values: list[str]) -> str:
    steps = [{"name": f"s{n}", "task": "noop", "depends_on": [], "inputs": {"v": value}}
             for n, value in enumerate(values)]  # plait's own form: the original's noop nests its inputs
    return json.dumps({"name": "huge", "steps": steps}, indent=1)


def located(stderr: str) -> dict[int, str]:
    """Return {step number: message} from `workflow.yaml:L:C: error: step 'sN': inputs.v does not render: …`."""
    found = {}
    lines = stderr.splitlines()
    for line, hint in zip(lines, [*lines[1:], ""]):
        match = re.match(r"^workflow\.yaml:\d+:\d+: error: step 's(\d+)': inputs\.v does not render: (.*)$", line)
        if match:
            assert hint.startswith("  hint: "), line
            found[int(match[1])] = match[2]
    return found


def test_templates_that_would_take_gigabytes_are_located_errors_in_a_1_gib_process(tmp_path: Path) -> None:
    values = [f"{{{{ {expr} }}}}" for expr in HUGE] + list(LOOPS)
    (tmp_path / "workflow.yaml").write_text(workflow(values), encoding="utf-8")
    done = run("compile", "workflow.yaml", cwd=tmp_path, timeout=60, preexec_fn=one_gib)  # the timeout: a hang
    assert (done.returncode, "Traceback" in done.stderr, done.stdout) == (2, False, ""), done.stderr
    expected = [*HUGE.values(), *LOOPS.values()]
    found = located(done.stderr)
    deadline = f"the template ran past its time budget of {template_limits.DEFAULT_SECONDS:g} s"
    loops = range(len(HUGE), len(values))  # a loop builds step by step: on a loaded machine its deadline may come first
    assert {n: m for n, m in found.items()
            if not m.startswith(expected[n]) and not (n in loops and m == deadline)} == {}
    assert sorted(found) == list(range(len(values)))


def test_a_5000_digit_integer_in_yaml_is_an_error_at_its_position(tmp_path: Path) -> None:
    (tmp_path / "workflow.yaml").write_text(f"name: n\nparams:\n  n: {'7' * 5000}\nsteps: []\n", encoding="utf-8")
    done = run("compile", "workflow.yaml", cwd=tmp_path, timeout=30)
    assert (done.returncode, done.stderr) == (2, "workflow.yaml:3:6: error: an integer of 5,000 digits is longer "
                                                 "than plait handles (4,300 digits)\n"
                                                 "  hint: quote it to keep it as text: \"123...\"\n")


def test_a_render_that_spins_ends_at_its_deadline_in_any_thread() -> None:
    spins = {
        "nested ranges": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "nested loops over a list": "{% for a in xs %}{% for b in xs %}{% for c in xs %}{% endfor %}{% endfor %}"
                                    "{% endfor %}",
        "exponential macro": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
                             "{{ f(60) }}",
        "filters over a long list": "{% for i in range(100000) %}{{ xs | map('string') | join | length }}"
                                    "{% endfor %}",
        "recursive loop": "{% for x in xs recursive %}{% if loop.depth < 4 %}{{ loop(xs) }}{% endif %}{% endfor %}",
    }
    context = {"xs": list(range(3000))}
    outcome: dict[str, tuple[str, float]] = {}

    def attempt(name: str, source: str) -> None:
        start = time.monotonic()
        with render_limits(0.3):
            try:
                render(source, context)
                outcome[name] = ("rendered", time.monotonic() - start)
            except TemplateTimeout as err:
                outcome[name] = (str(err), time.monotonic() - start)
            except RecursionError:
                outcome[name] = ("recursion", time.monotonic() - start)

    threads = [threading.Thread(target=attempt, args=item) for item in spins.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert {name: text for name, (text, _) in outcome.items()} == {
        name: "the template ran past its time budget of 0.3 s" for name in spins}
    assert max(seconds for _, seconds in outcome.values()) < 5  # 0.3 s each, on a loaded 2-core machine


def test_without_render_limits_each_render_has_the_default_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template_limits, "DEFAULT_SECONDS", 0.2)
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    for call in (lambda: render(loop, {}), lambda: render(f"{{{{ 1 }}}}{loop}", {}), lambda: render_text(loop, {})):
        start = time.monotonic()
        with pytest.raises(TemplateTimeout, match=r"^the template ran past its time budget of 0\.2 s$"):
            call()
        assert time.monotonic() - start < 5


def test_a_node_whose_template_is_too_large_fails_alone_and_the_run_goes_on(flow: Flow) -> None:
    flow.write("""
        name: sized
        steps:
          - name: write
            task: file
            items: [1, 3000000000]
            key: "{{ index }}"
            on_error: continue
            max_failures: 50%
            inputs: {action: write, path: "out-{{ index }}.txt", content: "{{ 'x' | center(item) }}"}
    """)
    done = run("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q", cwd=flow.dir,
               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (2 * GIB, 2 * GIB)))
    assert (done.returncode, "Traceback" in done.stderr) == (0, False), done.stderr
    message = "a template tried to build a value with center() of 3,000,000,000 characters or items (at most " \
              "10,000,000)"
    assert rows(flow.ws) == {
        "write[0]": ("succeeded", 1, {"path": "out-0.txt", "bytes": 1}, None),
        "write[1]": ("failed", 1, None, error("write[1]", "TemplateTooLarge", message, item=3000000000)),
    }


# `plait compile` in a process whose default deadline is 1 s, not 10 s (the test above shows the default is used)
SHORT_DEADLINE = ("import sys; from plait import template_limits; template_limits.DEFAULT_SECONDS = 1.0; "
                  "from plait.cli import main; sys.exit(main())")


def test_plait_compile_ends_a_spinning_template_at_the_default_deadline(tmp_path: Path) -> None:
    (tmp_path / "workflow.yaml").write_text(workflow([LOOPS_SPIN]), encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", SHORT_DEADLINE, "compile", "workflow.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=ENV, preexec_fn=one_gib)
    assert (done.returncode, located(done.stderr)) == (2, {0: "the template ran past its time budget of 1 s"}), \
        done.stderr


LOOPS_SPIN = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"

# Operations that grow what they are given, with sizes from small to absurd.
_SIZES = st.sampled_from([0, 1, 7, 1000, 10 ** 6, 10 ** 7, 3 * 10 ** 9, 10 ** 12])
_STEPS = st.one_of(
    _SIZES.map(lambda n: f" * {n}"), _SIZES.map(lambda n: f" | center({n})"), _SIZES.map(lambda n: f".ljust({n})"),
    _SIZES.map(lambda n: f" | indent({n})"), _SIZES.map(lambda n: f" | replace('x', 'x' * {min(n, 10 ** 6)})"),
    st.just(" ~ v"), _SIZES.map(lambda n: f" | wordwrap(5, wrapstring='y' * {min(n, 10 ** 6)})"),
    _SIZES.map(lambda n: f" | batch({n}, 'z') | list | string"), _SIZES.map(lambda n: f" | truncate({n})"),
    _SIZES.map(lambda n: f" | format() ~ ('%{n}s' % 'q')"), st.just(" | list | join(v)"),
)
CHILD = """
import json, sys
from plait.templating import RENDER_ERRORS, render, TemplateTooLarge
limit = int(sys.argv[1])
for source in json.loads(sys.stdin.read()):
    try:
        value = render(source, {})
        print("ok" if len(value) <= limit else f"too-big:{len(value)}")
    except TemplateTooLarge:
        print("refused")
    except MemoryError:
        print("out-of-memory")
    except RENDER_ERRORS as err:  # an argument a filter refuses (`truncate(0)`): a located error in plait
        print("error")
"""


@pytest.mark.soak  # 12 processes of 20 renders each
@pytest.mark.slow
@settings(max_examples=12, deadline=None)
@given(chains=st.lists(st.lists(_STEPS, min_size=1, max_size=4), min_size=20, max_size=20))
def test_chains_of_growing_operations_stay_within_the_bound_or_are_refused(chains: list[list[str]]) -> None:
    sources = []
    for chain in chains:
        expression = "'x'"
        for step in chain:
            expression = f"({expression}{step})" if "v" not in step else f"({expression}{step.replace('v', 'x')})"
        sources.append(f"{{% set x = 'x' %}}{{{{ {expression} }}}}")
    done = subprocess.run([sys.executable, "-c", CHILD, str(template_limits.MAX_CHARS)], input=json.dumps(sources),
                          capture_output=True, text=True, timeout=120, env=ENV, preexec_fn=one_gib)
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = done.stdout.split()
    assert len(outcomes) == len(sources) and set(outcomes) <= {"ok", "refused", "error"}, done.stdout
