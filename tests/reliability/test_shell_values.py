"""Issue 13, class 1: a value is data in every shell context, by construction.

A shell command's text never holds a value: each `{{ }}` renders to a reference to an environment
variable that carries it (`plait.shell_template`). Hypothesis feeds random strings (any Unicode
but NUL and surrogates: newlines, quotes, `$`, backquotes, heredoc delimiters) and known payloads
through every context a value may stand in; each context writes what the shell saw to a file with
`printf '%s'`, and the bytes must be exactly the value's. Nothing else may run: the folder must
hold exactly the files the contexts write, and the payloads would leave a `PWNED` file.

The same script runs under /bin/sh through the shell task, and under bash when it is installed
(where /bin/sh is bash, as on macOS, arithmetic on a variable's text can run commands).
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from loguru import logger
from runtime.support import Flow, plait

from plait.tasks.base import TaskContext, get_kind
from plait.templating import ShellCommand, render_shell

pytestmark = pytest.mark.slow  # whole processes end to end: out of the quick loop (-m "not slow"), in CI

SUBJECT = "PLAIT_TEST_SUBJECT"  # the value again, as a variable the script compares with
HOME = "/plait-test-home"

# context name -> (script lines writing the file `name`, the bytes the file must hold for value v)
CONTEXTS: dict[str, tuple[str, Callable[[str], str]]] = {
    "bare": ("printf '%s' {{ v }} > bare", lambda v: v),
    "glued": ("printf '%s' a{{ v }}b > glued", lambda v: f"a{v}b"),
    "double_quotes": ("printf '%s' \"<{{ v }}>\" > double_quotes", lambda v: f"<{v}>"),
    "after_a_variable": ("printf '%s' \"$HOME{{ v }}\" > after_a_variable", lambda v: HOME + v),
    "single_quotes": ("printf '%s' '<{{ v }}>' > single_quotes", lambda v: f"<{v}>"),
    "heredoc": ("cat > heredoc <<EOF\n[{{ v }}]\nEOF", lambda v: f"[{v}]\n"),
    "heredoc_tabs": ("cat > heredoc_tabs <<-END\n\t{{ v }}\n\tEND", lambda v: f"{v}\n"),
    "comment": ("printf '%s' ok > comment # {{ v }}", lambda v: "ok"),
    "comment_line": ("# {{ v }}\nprintf '%s' ok > comment_line", lambda v: "ok"),
    "assignment": ("x=pre{{ v }}; printf '%s' \"$x\" > assignment", lambda v: f"pre{v}"),
    "case_pattern": (f"case \"${SUBJECT}\" in {{{{ v }}}}) printf match > case_pattern;; "
                     "*) printf miss > case_pattern;; esac", lambda v: "match"),
    "test_operand": (f"if [ {{{{ v }}}} = \"${SUBJECT}\" ]; then printf same > test_operand; fi", lambda v: "same"),
    "for_list": ("for a in {{ v }}; do printf '%s' \"$a\" > for_list; done", lambda v: v),
    "substitution": ("printf '%s' \"$(printf '%s' \"{{ v }}\")\" > substitution", lambda v: v.rstrip("\n")),
    "function": ("f() { printf '%s' {{ v }} > function; }; f", lambda v: v),
    "subshell": ("(printf '%s' {{ v }} > subshell)", lambda v: v),
    "sh_argument": ("sh -c 'printf \"%s\" \"$1\" > sh_argument' sh {{ v }}", lambda v: v),
    "pipe": ("printf '%s' {{ v }} | cat > pipe", lambda v: v),
    "continuation": ("printf '%s' \\\n{{ v }} > continuation", lambda v: v),
    "after_a_backslash": ("printf '%s' \\\\{{ v }} > after_a_backslash", lambda v: "\\" + v),
    "dq_after_a_backslash": ("printf '%s' \"\\\\{{ v }}\" > dq_after_a_backslash", lambda v: "\\" + v),
}
SCRIPT = "\n".join(line for line, _ in CONTEXTS.values()) + "\n"
SCRIPT_TEXT = render_shell(SCRIPT, {"v": "x"}).script

HOSTILE = ["$(touch PWNED)", "`touch PWNED`", "'; touch PWNED; '", "\"; touch PWNED; \"", "\nEOF\ntouch PWNED\n",
           "EOF", "END", "\ttouch PWNED", "a[$(touch PWNED)]", "$((1+1))", "${HOME}", "$HOME", "\\", "\\\n", "'",
           '"', "*", "-n", "!", "(", ")", ";", "&", "|", "#", "\n# x\n", "${PLAIT_V1}", "\r\n", "ÿ 名前 💥 \u202e",
           " leading and trailing ", "", "--", "a b\tc\nd", "%s%n", "\x1b[2J", "-e", "=", "~", "~root"]

VALUES = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40),
    st.sampled_from(HOSTILE),
    st.tuples(st.sampled_from(HOSTILE), st.text(max_size=5).filter(lambda t: "\x00" not in t)).map("".join),
)


def check_the_shell_saw_exactly(folder: Path, value: str) -> None:
    written = {p.name: p.read_bytes() for p in folder.iterdir()}
    expected = {name: bytes(expect(value), "utf-8") for name, (_, expect) in CONTEXTS.items()}
    assert written == expected  # nothing else ran: no PWNED, no stray file


def rendered(value: str) -> ShellCommand:
    command = render_shell(SCRIPT, {"v": value})
    assert isinstance(command, ShellCommand)
    assert command.script == SCRIPT_TEXT  # the text /bin/sh parses is the same whatever the value
    return command


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES)
@example(value="$(touch PWNED)")
@example(value="\nEOF\ntouch PWNED\n")
def test_the_shell_sees_exactly_the_value_in_every_context(value: str) -> None:
    command = rendered(value)
    with tempfile.TemporaryDirectory() as folder:
        ctx = TaskContext(workspace=Path(folder), run_id="r", step="s", node_id="s", attempt=1, retry=None,
                          logger=logger, workflow_dir=Path(folder))
        get_kind("shell").handler({"command": command, "env": {SUBJECT: value, "HOME": HOME}}, None, ctx)
        check_the_shell_saw_exactly(Path(folder), value)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@settings(max_examples=60, deadline=None)
@given(value=VALUES)
def test_bash_sees_exactly_the_value_in_every_context(value: str) -> None:
    command = rendered(value)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["bash", "-c", command.script], cwd=folder, env={"PATH": "/usr/bin:/bin", "HOME": HOME,
                       SUBJECT: value, **command.env}, check=True, timeout=30)
        check_the_shell_saw_exactly(Path(folder), value)


def test_a_list_is_one_word_per_element_bare_and_one_text_in_quotes() -> None:
    values = ["a b", "$(touch PWNED)", "", "*"]
    command = render_shell("for a in {{ l }}; do printf '<%s>' \"$a\"; done; printf '|%s|' \"{{ l }}\" {{ m }}",
                           {"l": values, "m": {"k": ["x", 1]}})
    done = subprocess.run(["/bin/sh", "-c", command.script], env=command.env, capture_output=True, text=True,
                          check=True)
    assert done.stdout == "<a b><$(touch PWNED)><><*>|a b $(touch PWNED)  *||{\"k\": [\"x\", 1]}|"


def test_values_run_through_plait_run_in_every_context(flow: Flow, tmp_path: Path) -> None:
    """The CLI end to end: hostile items, every context, the real runtime; a canary in $HOME survives."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "canary").write_text("still here")
    steps = [{"name": "contexts", "task": "shell", "items": HOSTILE, "key": "{{ index }}",
              "inputs": {"command": "mkdir -p out/{{ index }} && cd out/{{ index }} || exit 1\n" +
                         SCRIPT.replace("{{ v }}", "{{ item }}"),
                         "env": {SUBJECT: "{{ item }}", "HOME": HOME}}}]
    flow.path.write_text(yaml.safe_dump({"name": "contexts", "steps": steps}, allow_unicode=True), encoding="utf-8")
    done = plait("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-v", cwd=flow.dir,
                 env={"HOME": str(home)})
    assert done.returncode == 0, done.stderr
    for index, value in enumerate(HOSTILE):
        check_the_shell_saw_exactly(flow.ws / "out" / str(index), value)
    assert sorted(p.name for p in flow.ws.iterdir()) == [".plait", "out"]
    assert (home / "canary").read_text() == "still here"
    # the command in the log reads as a person would write it, with each value quoted in place
    log = "".join(p.read_text(encoding="utf-8") for p in (flow.ws / ".plait" / "logs").glob("*.log"))
    assert "| command: mkdir -p out/0 && cd out/0 || exit 1\nprintf '%s' '$(touch PWNED)' > bare\n" in log


NAME = "reads the value as a variable's name, and bash evaluates a name's subscript `a[$(cmd)]`"
# command -> (message, start of the hint): places where even a reference to a value would be code
REFUSED = {
    "echo $(( {{ item }} + 1 ))": ("a {{ }} is inside shell arithmetic", "compute it in the template"),
    "echo \"$(( {{ item }} ))\"": ("a {{ }} is inside shell arithmetic", "compute it in the template"),
    "(( n = {{ item }} ))": ("a {{ }} is inside shell arithmetic", "compute it in the template"),
    "echo $[ {{ item }} ]": ("a {{ }} is inside shell arithmetic", "compute it in the template"),
    "let n={{ item }}": ("a {{ }} is code here: let evaluates its arguments as arithmetic, which bash lets run "
                         "commands", "compute it in the template"),
    "[[ {{ item }} -gt 3 ]] && echo big": ("a {{ }} is an operand of an arithmetic test in [[ ]]",
                                           "compute it in the template"),
    "a[{{ item }}]=1": ("a {{ }} is inside an array subscript, which bash evaluates as arithmetic",
                        "compute it in the template"),
    "echo ${HOME:-{{ item }}}": ("a {{ }} is inside a parameter expansion ${ … }", "assign the value first"),
    "echo `echo {{ item }}`": ("a {{ }} is inside backquotes", "write the command substitution as $( … )"),
    "echo $'{{ item }}'": ("a {{ }} is inside $'…' quoting", "close the $'…'"),
    "echo \\{{ item }}": ("a {{ }} follows a backslash, which would escape plait's quoting", "remove the backslash"),
    "echo \"\\{{ item }}\"": ("a {{ }} follows a backslash, which would escape plait's reference",
                              "remove the backslash"),
    "echo ${{ item }}": ("a {{ }} follows a `$`", "remove the `$`"),
    "cat <<{{ item }}\nx\nEOF": ("a {{ }} is a heredoc's delimiter", "write the delimiter itself"),
    "cat <<'EOF'\n{{ item }}\nEOF": ("a {{ }} is in the body of a quoted heredoc (<<'EOF'), where nothing expands",
                                     "unquote the delimiter"),
    "eval echo {{ item }}": ("a {{ }} is code here: eval runs its arguments as shell code", "pass the value as data"),
    "trap {{ item }} EXIT": ("a {{ }} is code here: trap runs its argument as shell code", "pass the value as data"),
    "sh -c \"echo {{ item }}\"": ("a {{ }} is code here: `sh -c` runs the next argument as code",
                                  "pass the value as data"),
    "sudo -u nobody bash -ec 'ls {{ item }}'": ("a {{ }} is code here: `bash -ec` runs the next argument as code",
                                                "pass the value as data"),
    "find . -exec sh -c 'cat {{ item }}' \\;": ("a {{ }} is code here: `sh -c` runs the next argument as code",
                                               "pass the value as data"),
    "python3 -c 'print(\"{{ item }}\")'": ("a {{ }} is code here: `python3 -c` runs the next argument as code",
                                           "pass the value as data"),
    "perl -ne 'print if /{{ item }}/' f": ("a {{ }} is code here: `perl -ne` runs the next argument as code",
                                           "pass the value as data"),
    "awk '{print \"{{ item }}\"}' f": ("a {{ }} is code here: `awk` runs its first argument as an awk program",
                                       "pass the value as data"),
    "sed -i 's/x/{{ item }}/' f": ("a {{ }} is code here: `sed` runs its script argument (GNU sed's `e` runs "
                                   "shell commands)", "pass the value as data"),
    "ssh host ls {{ item }}": ("a {{ }} is code here: ssh sends its command words to a remote shell as code",
                               "pass the value as data"),
    "echo \"$(echo {{ item }})\" | sh": ("a {{ }} is piped into a shell or an interpreter, which runs it as code",
                                         "pass the value as data"),
    "cat <<EOF | bash\necho {{ item }}\nEOF": ("a {{ }} is in a heredoc that a shell or an interpreter reads as code",
                                              "pass the value as data"),
    "python3 <<EOF\nprint('{{ item }}')\nEOF": ("a {{ }} is in a heredoc that a shell or an interpreter reads as "
                                                "code", "pass the value as data"),
    "bash -c \"$(printf '%s' {{ item }})\"": ("a {{ }} is code here: `bash -c` runs the next argument as code",
                                              "pass the value as data"),
    "echo $(( $(echo {{ item }}) + 1 ))": ("a {{ }} is inside shell arithmetic", "compute it in the template"),
    "for ((i = 0; i < {{ item }}; i++)); do :; done": ("a {{ }} is inside shell arithmetic",
                                                       "compute it in the template"),
    "echo ${a[\"{{ item }}\"]}": ("a {{ }} is inside a parameter expansion ${ … }", "assign the value first"),
    "declare {{ item }}": (f"a {{{{ }}}} is code here: `declare` {NAME}", "pass the value as data"),
    "declare -i n={{ item }}": ("a {{ }} is code here: `declare -i` and `declare -n` evaluate their values as "
                                "arithmetic or names", "compute it in the template"),
    "printf -v {{ item }} %s x": (f"a {{{{ }}}} is code here: `printf -v` {NAME}", "pass the value as data"),
    "read -r {{ item }} < /dev/null": (f"a {{{{ }}}} is code here: `read` {NAME}", "pass the value as data"),
    "[[ -v {{ item }} ]] || true": (f"a {{{{ }}}} is code here: `[[ -v` {NAME}", "pass the value as data"),
}
ALLOWED = ["sh -c 'echo \"$1\"' sh {{ item }}", "awk -v v={{ item }} '{print v}' /dev/null",
           "python3 -c 'import sys; print(sys.argv[1])' {{ item }}", "sed -n p {{ item }} || true",
           "[[ {{ item }} == x ]] || true", "echo {{ item }} | grep -c . || true",
           "ssh -V 2>/dev/null; echo {{ item }}", "printf '%s' {{ item }} > \"out-{{ index }}\"",
           "x=$(( 1 + 1 )); echo {{ item }} $x", "declare y={{ item }}; export Z={{ item }}",
           "read -r -p {{ item }} y < /dev/null || true", "test -n {{ item }}"]


def test_every_place_where_a_value_would_be_code_is_refused_at_compile_with_its_position(flow: Flow) -> None:
    steps = [{"name": f"s{n}", "task": "shell", "items": ["x"], "inputs": {"command": command}}
             for n, command in enumerate([*REFUSED, *ALLOWED])]
    flow.path.write_text(json.dumps({"name": "refused", "steps": steps}, indent=1), encoding="utf-8")
    done = plait("compile", "workflow.yaml", cwd=flow.dir)
    assert (done.returncode, "Traceback" in done.stderr) == (2, False), done.stderr
    lines = done.stderr.splitlines()
    found = {}
    for first, second in itertools.pairwise(lines):
        match = re.match(r"^workflow\.yaml:\d+:\d+: error: step 's(\d+)': (.*): `\{\{ item \}\}` at "
                         r"(?:line \d+, )?column \d+ of the command$", first)
        if match:
            assert second.startswith("  hint: "), first
            found[[*REFUSED, *ALLOWED][int(match[1])]] = (match[2], second[len("  hint: "):])
    assert {c: m for c, (m, _) in found.items()} == {c: m for c, (m, _) in REFUSED.items()}
    assert [c for c, (_, hint) in found.items() if not hint.startswith(REFUSED[c][1])] == []
    assert len([line for line in lines if ": error: " in line]) == len(REFUSED)


def test_the_allowed_commands_run_and_the_position_of_a_refusal_is_exact(flow: Flow) -> None:
    steps = [{"name": f"s{n}", "task": "shell", "items": ["$(touch PWNED)"], "inputs": {"command": command}}
             for n, command in enumerate(ALLOWED)]
    flow.path.write_text(json.dumps({"name": "allowed", "steps": steps}, indent=1), encoding="utf-8")
    done = plait("run", "workflow.yaml", "--workspace", str(flow.ws), "--backend", "sequential", "-q", cwd=flow.dir)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in flow.ws.iterdir()) == [".plait", "out-0"]
    assert (flow.ws / "out-0").read_text() == "$(touch PWNED)"
    flow.path.write_text("name: where\nsteps:\n  - name: s\n    task: shell\n    items: [1]\n    inputs:\n"
                         "      command: |\n        echo start\n        echo $(( 2 * {{ item }} ))\n",
                         encoding="utf-8")
    done = plait("compile", "workflow.yaml", cwd=flow.dir)
    assert done.stderr.splitlines()[0] == ("workflow.yaml:7:16: error: step 's': a {{ }} is inside shell arithmetic: "
                                           "`{{ item }}` at line 2, column 14 of the command")
