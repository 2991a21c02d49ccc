"""The original engine's dialect: detection, translation into plait's form, its errors and notes, migration."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from plait.compiler import WorkflowError, compile_text, compile_workflow
from plait.compiler.dialect import is_original, translate
from plait.compiler.dialect.emit import to_yaml
from plait.compiler.dialect.migrate import migrate
from plait.compiler.dialect.tree import plain
from plait.compiler.loader import load_yaml


def load(text: str) -> Any:
    return load_yaml(textwrap.dedent(text), "wf.yaml")


def errors_of(text: str, **params: Any) -> list[str]:
    with pytest.raises(WorkflowError) as caught:
        compile_text(textwrap.dedent(text), "wf.yaml", Path.cwd(), params)
    return [str(e) for e in caught.value.errors]


# --- detection -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "original"), [
    ("name: a\nsteps: [{name: s, task: shell, inputs: {command: x}}]", False),
    ("name: a\nsteps: [{name: s, task: batch, inputs: {items: [1], task: {task: shell}}}]", False),
    ("name: a\nsteps: [{name: s, task: batch, inputs: {items: [1], arg_name: n, task: {task: shell}}}]", True),
    ("name: a\nsettings: {}\nsteps: []", True),
    ("name: a\nflows: {definitions: []}\nsteps: []", True),
    ("name: a\nsteps: {s: {task: shell}}", True),
    ("name: a\nsteps: [{name: s, task: python_code}]", True),
    ("name: a\nsteps: [{name: s, task: read_file}]", True),
    ("name: a\nsteps: [{name: s, task: shell, on_error: {action: continue}}]", True),
    ("name: a\nsteps: [{name: s, task: shell, retry: 3}]", True),
    ("name: a\nparams: {x: {default: a, allowedValues: [a]}}\nsteps: []", True),
    ("name: a\nparams: {x: {required: true}}\nsteps: [{name: s, task: shell}]", True),
    ("name: a\nparams: {x: {description: any}}\nsteps: [{name: s, task: shell}]", True),
    ("name: a\nparams: {x: {description: any, type: string}}\nsteps: [{name: s, task: shell}]", False),
    ("name: a\nparams: {x: {}}\nsteps: [{name: s, task: shell}]", False),
    ("name: a\nsteps: [{name: s, task: [python_code]}]", False),
    ("[1, 2]", False),
])
def test_a_file_is_read_as_the_original_dialect_only_when_it_has_something_of_its_own(text: str,
                                                                                       original: bool) -> None:
    assert is_original(load(text)) is original


# --- translation ---------------------------------------------------------------------------------

ORIGINAL = """
    name: My ETL
    params:
      region: {type: string, default: north, allowedValues: [north, south], minLength: 2}
      rows: {type: array, default: [1, 2], items: {type: integer}}
    steps:
      - name: fetch
        task: shell
        inputs: {command: 'echo "rows of {{ args.region }}"'}
        on_error: {retry: 2, delay: 0.5}
      - name: read
        task: read_file
        inputs: {file: in.txt}
      - name: squares
        task: batch
        inputs:
          items: "{{ args.rows }}"
          arg_name: n
          chunk_size: 5
          task: {task: python_code, inputs: {code: "result = n * n"}}
      - name: report
        task: python_code
        depends_on: [squares]
        condition: "{{ args.region == 'north' }}"
        inputs:
          code: "result = [steps['read']['result']['content'], steps['squares']['result']['results']]"
      - name: notify
        task: echo
        inputs: {message: "{{ steps.read.result.content }} / {{ steps.fetch.result.return_code }}"}
        on_error: continue
"""


def test_each_construct_becomes_plaits_own() -> None:
    translated = translate(load(ORIGINAL), {})
    assert translated.errors == []
    assert plain(translated.tree) == {
        "name": "My_ETL",
        "params": {
            "region": {"type": "string", "default": "north", "choices": ["north", "south"]},
            "rows": {"type": "array", "default": [1, 2]},
        },
        "steps": [
            {"name": "fetch", "task": "shell",
             "inputs": {"command": 'echo "rows of {{ args.region }}"'},
             "retry": {"max_attempts": 3, "delay": 0.5, "backoff": 1, "jitter": 0, "retry_on": ["Exception"]},
             "on_error": "fail"},
            {"name": "read", "task": "file", "after": ["fetch"], "inputs": {"action": "read", "path": "in.txt"}},
            {"name": "squares", "task": "python", "after": ["read"], "items": "{{ args.rows }}",
                 "key": "{{ index }}", "inputs": {"function": "plait.tasks.original_code:python_code", "kwargs": {
                     "code": "result = n * n", "name": "My ETL", "names": {"n": "{{ item }}"}}}},
                {"name": "report", "task": "python", "depends_on": ["squares"],
                 "condition": "{{ args.region == 'north' }}",
                 "inputs": {"function": "plait.tasks.original_code:python_code", "kwargs": {
                     "code": "result = [steps['read']['result']['content'], steps['squares']['result']['results']]",
                     "names": {"steps": {
                         "read": {"result": {"content": "{{ steps.read.result }}"}},
                         "squares": {"result": {
                             "results": "{{ steps.squares.results }}", "processed": "{{ args.rows }}", "failed": [],
                             "stats": {"total": "{{ steps.squares.results | length }}",
                                       "processed": "{{ steps.squares.results | length }}", "failed": 0}}},
                     }},
                     "name": "My ETL"}}},
                {"name": "notify", "task": "echo", "after": ["report"],
             "inputs": {"message": "{{ steps.read.result }} / {{ steps.fetch.result.exit_code }}"},
             "on_error": "continue", "max_failures": "100%"},
        ],
    }
    assert [str(n).split(": note: ")[1][:37] for n in translated.notes] == [  # in file order
        "workflow name 'My ETL' becomes 'My_ET",
        "parameter 'region': minLength is chec",
        "parameter 'rows': 'items' is not chec",
        "a value that is one {{ expression }} ",
        "a failing step runs once: the origina",
        "a failed batch item fails its step (t",
        "batch items are keyed by position (`n",
        "batch chunk_size: no effect, plait di",
        "a condition runs its step when it ren",
    ]


def test_the_translation_compiles_with_positions_in_the_original_file() -> None:
    plan = compile_text(textwrap.dedent(ORIGINAL), "wf.yaml", Path.cwd())
    assert sorted(plan.graph.edges) == [
        ("fetch", "notify"), ("fetch", "read"), ("read", "notify"), ("read", "report"), ("read", "squares[0]"),
        ("read", "squares[1]"), ("report", "notify"), ("squares[0]", "report"), ("squares[1]", "report")]
    # report's code reads `read`: the steps it names are bound for it, so it depends on them
    assert [(s.name, s.loc.line, s.after, s.depends_on) for s in plan.steps.values()] == [
        ("fetch", 7, (), ()), ("read", 11, ("fetch",), ()), ("squares", 14, ("read",), ()),
        ("report", 21, (), ("squares", "read")), ("notify", 27, ("report",), ("fetch", "read"))]


@pytest.mark.parametrize(("command", "refused"), [
    ('echo "a {{ args.x }} b"', []),
    ("echo '{{ args.x }}' \"{{ args.y|length }}\"", []),
    ("echo $(( {{ args.y|length }} + 1 ))", ["wf.yaml:8:16: error: step 'fetch': a {{ }} is inside shell arithmetic: "
                                            "`{{ args.y|length }}` at column 10 of the command"]),
])
def test_a_shell_command_is_kept_as_written_and_checked_in_the_original_file(command: str,
                                                                              refused: list[str]) -> None:
    text = f"""
        name: quoted
        params: {{x: {{default: a}}, y: {{default: [1]}}}}
        steps:
          - name: fetch
            task: shell
            inputs:
              command: {json.dumps(command)}
    """
    translated = translate(load(text), {})
    assert plain(translated.tree)["steps"][0]["inputs"] == {"command": command}
    try:
        compile_text(textwrap.dedent(text), "wf.yaml", Path.cwd())
        errors = []
    except WorkflowError as err:
        errors = [str(e).split("\n")[0] for e in err.errors]
    assert errors == refused


def test_flows_pick_their_steps_in_their_order_and_the_flow_is_a_parameter() -> None:
    text = """
        name: flows
        steps:
          - {name: a, task: noop}
          - {name: b, task: noop}
          - {name: c, task: noop}
        flows:
          default: main
          definitions:
            - main: [a, b, c]
            - back: [c, a]
    """
    main = compile_text(textwrap.dedent(text), "wf.yaml", Path.cwd())
    back = compile_text(textwrap.dedent(text), "wf.yaml", Path.cwd(), {"flow": "back"})
    every = compile_text(textwrap.dedent(text), "wf.yaml", Path.cwd(), {"flow": "all"})
    assert (sorted(main.graph.edges), dict(main.params)) == ([("a", "b"), ("b", "c")], {"flow": "main"})
    assert (sorted(back.graph.edges), dict(back.params)) == ([("c", "a")], {"flow": "back"})
    assert sorted(every.graph.edges) == [("a", "b"), ("b", "c")]
    assert errors_of(text, flow="nope") == [
        "wf.yaml:7:1: error: Flow 'nope' not found\n  hint: flows: main, back, all"]


def test_an_on_error_the_original_read_as_fail_is_read_so_with_a_note() -> None:
    plan = compile_text(textwrap.dedent("""
        name: lenient
        steps:
          - {name: a, task: fail, on_error: oops}
          - {name: b, task: fail, on_error: 12345}
          - {name: c, task: fail, on_error: {retry: -5}}
          - {name: d, task: fail, on_error: {retry: lots, delay: 1}}
    """), "wf.yaml", Path.cwd())
    assert [(s.name, s.on_error, s.retry.max_attempts) for s in plan.steps.values()] == [
        ("a", "fail", 1), ("b", "fail", 1), ("c", "fail", 1), ("d", "fail", 1)]
    assert [n for n in plan.notes if "note: on_error" in n] == [
        "wf.yaml:4:37: note: on_error 'oops' is read as 'fail', as the original read it; write `on_error: continue`, "
        "or a mapping with action, retry, delay, next",
        "wf.yaml:5:37: note: on_error 12345 is read as 'fail', as the original read it; write `on_error: continue`, "
        "or a mapping with action, retry, delay, next",
        "wf.yaml:6:45: note: on_error.retry -5 is not a whole number, 0 or more: the step runs once (the original ran "
        "a negative count as none, and text as its default of 3)",
        "wf.yaml:7:45: note: on_error.retry 'lots' is not a whole number, 0 or more: the step runs once (the original "
        "ran a negative count as none, and text as its default of 3)"]


def test_parameters_read_and_checked_as_the_original_did() -> None:
    text = """
        name: params
        params:
          who: {required: true, minLength: 3}
          size: {description: any value}
        steps:
          - name: a
            task: echo
            inputs: {message: "{{ args.who }} {{ args.size }} {{ args.color | default('red') }} {{ 'args.z|d(1)' }}"}
          - {name: b, task: echo, inputs: {message: "{{ args.size | default('none') }}"}}
    """
    plan = compile_text(textwrap.dedent(text), "wf.yaml", Path.cwd(), {"who": "Ada", "size": 7})
    assert (dict(plan.params), plan.steps["a"].config["message"], plan.steps["b"].config["message"]) == (
        {"who": "Ada", "size": 7}, "Ada 7 red args.z|d(1)", 7)  # rendered at compile time: they read params only
    assert errors_of(text, who="Al") == [
        "wf.yaml:4:25: error: Parameter 'who' must be at least 3 characters long\n"
        "  hint: pass a longer --param who=VALUE"]


def test_on_error_next_skips_the_steps_between_and_runs_the_target() -> None:
    plan = compile_text(textwrap.dedent("""
        name: jump
        steps:
          - {name: a, task: noop, on_error: {action: next, next: d}}
          - {name: b, task: noop}
          - {name: c, task: noop}
          - {name: d, task: noop}
    """), "wf.yaml", Path.cwd())
    assert [(s.name, s.after, s.depends_on, s.on_error) for s in plan.steps.values()] == [
        ("a", (), (), "continue"), ("b", (), ("a",), "fail"), ("c", ("b",), ("a",), "fail"), ("d", ("c",), (), "fail")]


@pytest.mark.parametrize(("text", "messages"), [
    ("""
     name: x
     steps:
       - name: s
         task: python_code
         inputs:
           code: |
             rows = config.inputs
     """, ["wf.yaml:8:13: error: the code reads 'config', a name only the original engine gave python_code\n"
           "  hint: read `args` (the params), `env`, `steps`, `batch`, `workspace` or `context` instead"]),
    ("""
     name: x
     settings: {}
     steps:
       - {name: s, task: frobnicate, inputs: {url: x}}
     """, ["wf.yaml:5:21: error: Unknown task type: 'frobnicate'\n"
           "  hint: plait runs the original's kinds and those registered with its register_task (from "
           "yaml_workflow.tasks or plait.tasks.original); or rewrite the step with shell, python, file, template, "
           "noop or echo"]),
    ("""
     name: x
     steps:
       - {name: s, task: write_json, inputs: {file: a.json, data: [1], indent: 4}}
     """, ["wf.yaml:4:75: error: plait writes JSON indented by 2 spaces\n"
           "  hint: remove `indent`, or write the file from a python step with json.dumps"]),
    ("""
     name: x
     steps:
       - name: each
         task: batch
         inputs:
           items: [a, b]
           steps: [{name: one, task: noop}]
     """, ["wf.yaml:8:7: error: a batch of several steps per item (`inputs.steps`) is not translated: the original "
           "engine (0.9.6) did not run it either, it requires `inputs.task`\n"
           "  hint: write each inner step as a plait step: the first with `items:`, each next one with "
           "`for_each:` the one before (its nodes then follow item by item)"]),
    ("""
     name: x
     settings: {retries: 3}
     steps:
       - {name: s, task: echo, inputs: {message: "{{ settings.retries }}"}}
     """, ["wf.yaml:5:45: error: templates of the original engine saw 'settings'; plait's do not\n"
           "  hint: declare the setting as a parameter and read `args.NAME`"]),
    ("""
     name: x
     steps:
       - {name: a, task: noop}
       - {name: b, task: noop, on_error: {next: a}}
     """, ["wf.yaml:5:44: error: on_error.next jumps back to 'a'\n"
           "  hint: plait runs each step once per run; point `next` at a later step"]),
    ("""
     name: x
     params:
       who: {default: A, minLength: 2}
     steps:
       - {name: a, task: noop}
     """, ["wf.yaml:4:18: error: parameter 'who': the default 'A' breaks minLength 2\n"
           "  hint: change the default or the limit"]),
    ("""
     name: x
     steps:
       - {name: a, task: noop}
     flows:
       definitions:
         - main: [a, bb]
     """, ["wf.yaml:7:17: error: flow 'main' lists unknown step 'bb'"]),
    ("""
     name: x
     steps:
       - {name: a, task: fail, on_error: {next: nowhere}}
     """, ["wf.yaml:4:44: error: Invalid on_error.next target 'nowhere': no step has that name"]),
    ("""
     name: x
     steps:
       - {name: a, task: noop}
     flows:
       default: main
       definitions:
         - other: [a]
     """, ["wf.yaml:6:12: error: Flow 'main' not found: the default flow is not defined\n  hint: flows: other, all"]),
])
def test_what_plait_cannot_honour_is_an_error_at_its_position(text: str, messages: list[str]) -> None:
    if "flows:" in text:
        assert errors_of(text, flow="main") == messages
    else:
        assert errors_of(text) == messages


# --- migration -----------------------------------------------------------------------------------

def test_migrate_writes_the_native_form_with_comments_kept(tmp_path: Path) -> None:
    source = tmp_path / "old.yaml"
    source.write_text(textwrap.dedent("""\
        # Greets someone.
        name: greet
        params:
          who: {default: World, allowedValues: [World, Ada]}  # who to greet

        steps:
          # first, render
          - name: render
            task: template
            inputs:
              template: |
                # not a comment: the template's own text
                Hello {{ args.who }}!
              output_file: out/greeting.txt
          - name: show
            task: shell   # prints it
            inputs:
              command: cat out/greeting.txt
            on_error: {action: continue}
        # the end
        """), encoding="utf-8")
    text, notes = migrate(source)
    assert text == textwrap.dedent("""\
        # Migrated by `plait migrate` from old.yaml.
        # note: a failing step runs once: the original retried every failing step 3 times unless
        #   on_error.retry said otherwise
        # note: a value that is one {{ expression }} keeps its type, and text stays text; the original
        #   rendered every value to text and parsed it back ('007' became 7)
        # Greets someone.
        name: greet
        params:
          who:  # who to greet
            default: World
            choices: [World, Ada]
        steps:
          # first, render
          - name: render
            task: template
            inputs:
              template: |
                # not a comment: the template's own text
                Hello {{ args.who }}!
              output_file: out/greeting.txt
              whitespace: trim
          - name: show
            task: shell  # prints it
            after: [render]
            inputs:
              command: cat out/greeting.txt
            on_error: continue
            max_failures: 100%
        # the end
        """)
    assert [n.message[:25] for n in notes] == ["a failing step runs once:", "a value that is one {{ ex"]
    assert not is_original(load_yaml(text, "new.yaml"))


@pytest.mark.parametrize("value", [
    "plain", "{{ x }}", "a: b", "- x", "multi\nline\n", "no final break\nhere", "kept\n\n\n", "  leading\nspace\n",
    "tab\there\n", "ünïcode ✓\n", "yes", "123", "", "# hash", "trailing space \nline\n", 12, 1.5, True, None,
    [], {}, ["a", "b"], [{"a": [1, {"b": "c\nd"}]}], {"k": {"nested": ["x", "y"]}}, {"yes": 1, "null": 2, 3: "x"},
    "  indented\nblock\n", "x\u0085y\n z", {"k" * 2000: "long key"}, [["a\nb", {"c": " d\ne"}]],
])
def test_every_value_loads_back_as_written(value: Any) -> None:
    tree = load("name: x\nvalue: 0\n")
    tree["value"] = value
    assert yaml.safe_load(to_yaml(tree, "name: x\nvalue: 0\n", [])) == {"name": "x", "value": value}


def test_a_result_in_the_originals_shape_adds_its_names_and_keeps_plaits() -> None:
    from plait.compiler.dialect.results import as_original

    shell = {"stdout": "hi\n", "stderr": "", "exit_code": 0}
    assert [as_original("shell", shell), as_original("python_script", shell), as_original("read_file", "text"),
            as_original("echo", {"a": 1})] == [
        {**shell, "return_code": 0}, {**shell, "returncode": 0}, "text", {"a": 1}]


def test_a_noop_with_inputs_returns_the_originals_result_shape(tmp_path: Path) -> None:
    plan = compile_text(textwrap.dedent("""
        name: gather
        steps:
          - {name: keep, task: noop, inputs: {n: 2, should_fail: false}}
          - {name: placeholder, task: noop}
    """), "wf.yaml", tmp_path)
    assert (dict(plan.steps["keep"].config), dict(plan.steps["placeholder"].config)) == (
        {"should_fail": False, "processed_inputs": {"n": 2, "should_fail": False}, "task_name": "keep",
         "task_type": "noop"}, {})


@pytest.mark.parametrize(("text", "note"), [
    ("name: ok\nsteps:\n  - {name: a, task: shell, inputs: {command: x}}\n"
     "  - {name: b, task: shell, inputs: {command: y}}\n",
     "wf.yaml:2:1: note: read as a file of the original engine (yaml-workflow) because its steps have no `depends_on`: "
     "its steps run one after another, in list order. To write plait's own form instead, give each step `depends_on` "
     "(`[]` for none): steps that do not depend on each other then run at once"),
    ("steps:\n  - {name: a, task: shell, inputs: {command: x}}\n",
     "wf.yaml:1:1: note: read as a file of the original engine (yaml-workflow) because it has no `name`. To write "
     "plait's own form instead, give the workflow a name (letters, digits, - and _)"),
])
def test_a_file_read_as_the_originals_by_its_list_order_says_why_in_one_note(text: str, note: str) -> None:
    plan = compile_text(text, "wf.yaml", Path.cwd())
    assert [n for n in plan.notes if "name:" not in n and "is '" not in n] == [note]


def test_a_batchs_max_workers_is_its_steps_max_parallel(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent("""\
        name: squares
        steps:
          - name: square
            task: batch
            inputs:
              items: [1, 2, 3]
              max_workers: 2
              chunk_size: 5
              task: {task: echo, inputs: {message: "{{ batch.item }}"}}
          - name: unlimited
            task: batch
            inputs:
              items: [1, 2]
              task: {task: echo, inputs: {message: "{{ batch.item }}"}}
        """), encoding="utf-8")
    plan = compile_workflow(str(path))
    assert (plan.steps["square"].max_parallel, plan.steps["unlimited"].max_parallel) == (2, None)
    assert [n.split(": note: ", 1)[1] for n in plan.notes if "chunk_size" in n] == [
        "batch chunk_size: no effect, plait dispatches the items itself, in chunks it sizes"]
