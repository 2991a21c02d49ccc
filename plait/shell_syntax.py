"""Where each value of a shell command template stands, read from the command's own text.

A shell command's values never enter its text (`plait.shell_template`): each `{{ … }}` becomes a
reference to an environment variable, and the shell expands a reference as data, whatever the
value holds. The reference must still be written to suit its place, and a few places must be
refused because the shell (or a program it starts) would read even an expanded value as code.
This module reads the command's text, with the values cut out, and says which for each value.

The one scanner of command text in plait: the shell task checks its commands with it at compile
time, and the rendering writes each reference as it says.

Places (`Slot.kind`), and how a reference is written there
- `word`: a bare word, an assignment, a redirection target, a `for` list, a case pattern, a
  comment: `"${PLAIT_V1}"`, so the value is one word, never split or globbed (a list value is
  one word per element).
- `quoted`: inside the command's own double quotes, or in the body of an unquoted heredoc:
  `${PLAIT_V1}`; the shell expands it once, as text.
- `single`: inside the command's own single quotes: `'"${PLAIT_V1}"'` closes them around it.

Refused (`Refusal`), with the reason and a way out
- shell arithmetic (`$(( ))`, `(( ))`, `$[ ]`, `let`, an arithmetic test in `[[ ]]`, an array
  subscript `a[…]`), where bash evaluates a variable's text as an expression, `a[$(cmd)]` included;
- a parameter expansion `${ … }`, backquotes, `$'…'`, a heredoc's delimiter or a quoted
  heredoc's body, and right after a backslash or a `$`, where a reference would not be a reference;
- the spots where a program reads an argument or its input as code (`plait.shell_code`): `eval`,
  `trap`, `let`, `watch`, `ssh`'s remote command, the code argument of a shell or an interpreter
  (`sh -c`, `python3 -c`, `perl -e`, …), an `awk` program or a `sed` script, a heredoc or a pipe
  feeding a shell or an interpreter (`… | sh`, `python3 <<EOF`), a variable name bash reads
  (`declare {{ x }}`, `printf -v`, `read`, `[[ -v ]]`, `declare -i`). A value inside `$( )`
  counts for every command that reads what it prints, and for the arithmetic or `${ }` around it.

The scan reads the template's literal text once, with `{% %}` tags removed (a loop's body once),
as POSIX sh and bash parse it. Where it could be wrong (text a `{% if %}` adds), the worst a
misread reference can do is split a value into words: the value is still never code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from plait.shell_code import code_argument, code_reader

__all__ = ["VALUE", "Refusal", "Slot", "place_values"]

VALUE = "\0"  # stands for a value in the text given to `place_values` (no command can hold a NUL)


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a value stands and may stand: `word`, `quoted` or `single` (see the module docstring)."""

    kind: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """A value that must not stand where it is: why, and how to write the command instead."""

    message: str
    hint: str


_ARITHMETIC_TESTS = {"-eq", "-ne", "-lt", "-le", "-gt", "-ge"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[.*\])?\+?=")  # a word that assigns a variable: `a=1`, `a[2]+=x`
_COMMAND_START = {"!", "{", "}", "then", "do", "else", "elif", "if", "while", "until", "time"}

_ARGUMENT_HINT = ("pass the value as data instead: an argument (`sh -c 'echo \"$1\"' sh {{ x }}`, "
                  "`awk -v x={{ x }} '…'`, `python3 -c '…' {{ x }}` reading sys.argv) or an `env:` variable")
_ARITHMETIC_HINT = ("compute it in the template instead (`{{ item + 1 }}`): bash evaluates a value inside "
                    "arithmetic as an expression, and `a[$(cmd)]` there runs cmd")
_REFUSING = {  # frames inside which no value may stand: (message, hint)
    "arith": ("a {{ }} is inside shell arithmetic", _ARITHMETIC_HINT),
    "subscript": ("a {{ }} is inside an array subscript, which bash evaluates as arithmetic", _ARITHMETIC_HINT),
    "param": ("a {{ }} is inside a parameter expansion ${ … }",
              "assign the value first and expand the variable: `v={{ x }}; echo \"${v%.txt}\"`"),
    "backtick": ("a {{ }} is inside backquotes", "write the command substitution as $( … )"),
    "ansi": ("a {{ }} is inside $'…' quoting", "close the $'…' before the {{ }}"),
}


@dataclass
class _Command:
    """A command context (the top level, or inside `$( )` or `( )`): the simple command being read."""

    closer: str | None  # ")" inside $( ) or ( ), None at the top
    words: list[str] = field(default_factory=list)
    word: list[str] = field(default_factory=list)
    word_started: bool = False
    stage: list[int] = field(default_factory=list)  # the values this simple command reads
    pipeline: list[int] = field(default_factory=list)  # the values of this pipeline's earlier stages
    heredocs: list[tuple[bool, bool, bool]] = field(default_factory=list)  # (quoted, strip tabs, read as code)
    delimiters: list[str] = field(default_factory=list)
    expect_delimiter: bool = False
    strip_tabs: bool = False
    case: list[str] = field(default_factory=list)  # per open `case`: "subject", "in", "pattern", "body"
    in_test: bool = False  # inside [[ ]]
    test_values: list[tuple[int, int]] = field(default_factory=list)
    quoted_word: bool = False


@dataclass
class _Frame:
    kind: str  # "dq", "sq", "ansi", "backtick", "arith", "param", "subscript", "comment", "heredoc"
    depth: int = 0
    closer: str = ""
    delimiter: str = ""
    strip_tabs: bool = False
    quoted: bool = False
    code: bool = False
    line: list[str] = field(default_factory=list)
    line_has_value: bool = False


class _Scanner:
    def __init__(self, text: str):
        self.text = text
        self.values: list[Slot | Refusal] = []
        self.stack: list[_Command | _Frame] = [_Command(None)]
        self.pending: Refusal | None = None  # the refusal of the value that comes next

    # -- the scan ---------------------------------------------------------------------------------

    def run(self) -> list[Slot | Refusal]:
        i = 0
        text = self.text
        while i < len(text):
            top = self.stack[-1]
            if text[i] == VALUE:
                self._value(top)
                i += 1
            elif isinstance(top, _Command):
                i = self._command(top, text, i)
            else:
                i = self._frame(top, text, i)
        for frame in reversed(self.stack):  # the end of the text ends every open command
            if isinstance(frame, _Command):
                self._end_command(frame, pipeline_ends=True)
        return self.values

    def _command(self, cmd: _Command, text: str, i: int) -> int:
        char = text[i]
        if char == "\\":
            if text.startswith("\\\n", i):
                return i + 2
            if i + 1 < len(text) and text[i + 1] == VALUE:
                self._refuse_next("a {{ }} follows a backslash, which would escape plait's quoting",
                                  "remove the backslash: the value arrives as one literal word")
                return i + 1
            cmd.word.append(text[i + 1:i + 2])
            cmd.word_started = cmd.quoted_word = True
            return i + 2
        if char in " \t":
            self._end_word(cmd)
            return i + 1
        if char == "\n":
            self._end_word(cmd)
            self._end_command(cmd, pipeline_ends=True)
            self._start_heredocs(cmd)
            return i + 1
        if char == "#" and not cmd.word_started:
            self.stack.append(_Frame("comment"))
            return i + 1
        if char in "'\"`":
            cmd.word_started = True
            cmd.quoted_word = True
            self.stack.append(_Frame({"'": "sq", '"': "dq", "`": "backtick"}[char]))
            return i + 1
        if char == "$":
            cmd.word_started = True
            return self._dollar(text, i, cmd)
        if char == "[" and not cmd.expect_delimiter and _NAME.match("".join(cmd.word)) and all(
                _ASSIGNMENT.match(word) for word in cmd.words):  # `a[…]=` is an assignment; `echo a[…]` a pattern
            cmd.word.append(char)
            self.stack.append(_Frame("subscript", closer="]"))
            return i + 1
        if char in "<>" or text.startswith("&>", i):
            self._end_word(cmd)
            if text.startswith("<<<", i):
                return i + 3
            if text.startswith("<<", i):
                cmd.expect_delimiter = True
                cmd.strip_tabs = text.startswith("<<-", i)
                return i + (3 if cmd.strip_tabs else 2)
            if text[i + 1:i + 2] in ("&", ">", "|") or text.startswith("&>", i):
                return i + 2  # >&2, >>, >|, &>: a redirection, not a new command
            return i + 1
        if char in ";&|":
            self._end_word(cmd)
            op = text[i:i + 2] if text[i:i + 2] in (";;", "&&", "||", ";&", "|&") else char
            if op in (";;", ";&") and cmd.case:
                cmd.case[-1] = "pattern"
            piped = op in ("|", "|&")
            self._end_command(cmd, pipeline_ends=not piped)
            return i + len(op)
        if char == "(":
            self._end_word(cmd)
            if text.startswith("((", i) and (not cmd.words or cmd.words == ["for"]):
                self.stack.append(_Frame("arith", closer="))"))
                return i + 2
            if cmd.case and cmd.case[-1] == "pattern":
                return i + 1  # `(a|b)` pattern syntax
            self.stack.append(_Command(")"))
            return i + 1
        if char == ")":
            self._end_word(cmd)
            if cmd.case and cmd.case[-1] == "pattern":
                cmd.case[-1] = "body"
                cmd.words.clear()
                return i + 1
            if cmd.closer == ")":
                self._end_command(cmd, pipeline_ends=True)
                self.stack.pop()
                self._close_substitution()
            return i + 1
        cmd.word.append(char)
        cmd.word_started = True
        return i + 1

    def _dollar(self, text: str, i: int, cmd: _Command | None) -> int:
        """Read a `$` construct at `i`; push its frame. Return the index after its opening."""
        nxt = text[i + 1:i + 2]
        if nxt == VALUE:
            self._refuse_next("a {{ }} follows a `$`", "remove the `$`: write `{{ x }}`, not `${{ x }}`")
            return i + 1
        if text.startswith("$((", i):
            self.stack.append(_Frame("arith", closer="))"))
            return i + 3
        if nxt == "(":
            self.stack.append(_Command(")"))
            return i + 2
        if nxt == "{":
            self.stack.append(_Frame("param", closer="}"))
            return i + 2
        if nxt == "[":
            self.stack.append(_Frame("arith", closer="]"))
            return i + 2
        if nxt == "'" and cmd is not None:
            self.stack.append(_Frame("ansi"))
            return i + 2
        if cmd is not None:
            cmd.word.append("$")
        return i + 1

    def _frame(self, frame: _Frame, text: str, i: int) -> int:
        char = text[i]
        kind = frame.kind
        if kind == "sq":
            if char == "'":
                self.stack.pop()
            else:
                self._command_of().word.append(char)
            return i + 1
        if kind == "comment":
            if char == "\n":
                self.stack.pop()
                return i  # the newline ends the command too
            return i + 1
        if kind == "heredoc":
            return self._heredoc(frame, text, i)
        if char == "\\":
            if i + 1 < len(text) and text[i + 1] == VALUE:
                self._refuse_next("a {{ }} follows a backslash, which would escape plait's reference",
                                  "remove the backslash: the value arrives as literal text")
                return i + 1
            if kind == "dq" and text[i + 1:i + 2] in ('"', "\\", "$", "`"):
                self._command_of().word.append(text[i + 1])
            return i + 2
        if kind == "dq":
            if char == '"':
                self.stack.pop()
                return i + 1
            if char == "$":
                return self._dollar(text, i, None)
            if char == "`":
                self.stack.append(_Frame("backtick"))
                return i + 1
            self._command_of().word.append(char)
            return i + 1
        if kind in ("ansi", "backtick"):
            if char == ("'" if kind == "ansi" else "`"):
                self.stack.pop()
            return i + 1
        # arith, param, subscript: nesting until the closer
        if kind == "param" and char in "'\"":
            self.stack.append(_Frame("sq" if char == "'" else "dq"))
            return i + 1
        if char == "$":
            return self._dollar(text, i, None)
        if frame.depth == 0 and text.startswith(frame.closer, i):
            self.stack.pop()
            return i + len(frame.closer)
        if char in "({[":
            frame.depth += 1
        elif char in ")}]":
            frame.depth = max(frame.depth - 1, 0)
        return i + 1

    def _heredoc(self, frame: _Frame, text: str, i: int) -> int:
        char = text[i]
        if char == "\n":
            line = "".join(frame.line)
            if not frame.line_has_value and (line.lstrip("\t") if frame.strip_tabs else line) == frame.delimiter:
                self.stack.pop()
            frame.line.clear()
            frame.line_has_value = False
            return i + 1
        frame.line.append(char)
        if frame.quoted:
            return i + 1
        if char == "\\":
            if i + 1 < len(text) and text[i + 1] == VALUE:
                self._refuse_next("a {{ }} follows a backslash in a heredoc, which would escape plait's reference",
                                  "remove the backslash: the value arrives as literal text")
                return i + 1
            frame.line.append(text[i + 1:i + 2].replace("\n", ""))
            return i + 2
        if char == "$":
            return self._dollar(text, i, None)
        if char == "`":
            self.stack.append(_Frame("backtick"))
        return i + 1

    # -- words, commands, heredocs ----------------------------------------------------------------

    def _command_of(self) -> _Command:
        return next(f for f in reversed(self.stack) if isinstance(f, _Command))

    def _end_word(self, cmd: _Command) -> None:
        if not cmd.word_started:
            return
        word = "".join(cmd.word)
        cmd.word.clear()
        cmd.word_started = False
        quoted, cmd.quoted_word = cmd.quoted_word, False
        if cmd.expect_delimiter:
            cmd.expect_delimiter = False
            cmd.heredocs.append((quoted, cmd.strip_tabs, False))
            cmd.delimiters.append(word)
            return
        if cmd.case and cmd.case[-1] == "subject":
            cmd.case[-1] = "in"
            return
        if cmd.case and cmd.case[-1] == "in" and word == "in":
            cmd.case[-1] = "pattern"
            cmd.words.clear()
            return
        if not cmd.words and not quoted:
            if word == "case":
                cmd.case.append("subject")
                return
            if word == "esac" and cmd.case:
                cmd.case.pop()
                return
            if word in _COMMAND_START:
                return
            if word == "[[":
                cmd.in_test = True
        if cmd.in_test and word == "]]" and not quoted:
            self._end_test(cmd)
        cmd.words.append(word)

    def _end_test(self, cmd: _Command) -> None:
        """At `]]`: refuse the values that are operands of an arithmetic comparison."""
        operators = {i for i, w in enumerate(cmd.words) if w in _ARITHMETIC_TESTS}
        for value, index in cmd.test_values:
            if index - 1 in operators or index + 1 in operators:
                self.values[value] = Refusal("a {{ }} is an operand of an arithmetic test in [[ ]]", _ARITHMETIC_HINT)
        cmd.in_test = False
        cmd.test_values.clear()

    def _end_command(self, cmd: _Command, pipeline_ends: bool) -> None:
        """End a simple command: queue its heredocs' code flag, and judge its pipeline."""
        self._end_word(cmd)
        if cmd.in_test:
            self._end_test(cmd)
        if code_reader(cmd.words):
            for value in cmd.pipeline:
                self.values[value] = Refusal("a {{ }} is piped into a shell or an interpreter, which runs it as code",
                                             _ARGUMENT_HINT)
            cmd.heredocs = [(quoted, tabs, True) for quoted, tabs, _ in cmd.heredocs]
        cmd.pipeline = [] if pipeline_ends else cmd.pipeline + cmd.stage
        cmd.stage = []
        cmd.words.clear()

    def _start_heredocs(self, cmd: _Command) -> None:
        """At a newline: the bodies of the heredocs read on this line start, the first on top."""
        for (quoted, tabs, code), delimiter in reversed(list(zip(cmd.heredocs, cmd.delimiters))):
            self.stack.append(_Frame("heredoc", delimiter=delimiter, strip_tabs=tabs, quoted=quoted, code=code))
        cmd.heredocs.clear()
        cmd.delimiters.clear()

    def _close_substitution(self) -> None:
        """After `$( … )` closes: its output is part of the enclosing word."""
        outer = self._command_of()
        outer.word_started = True

    # -- values -----------------------------------------------------------------------------------

    def _refuse_next(self, message: str, hint: str) -> None:
        self.pending = Refusal(message, hint)

    def _value(self, top: _Command | _Frame) -> None:
        index = len(self.values)
        slot = self._place(top)
        # A value anywhere inside arithmetic, `${ }`, backquotes or `$'…'` (through `$( )` or quotes
        # too: what a substitution prints flows into the outer construct) is refused for it.
        outer = next((f for f in self.stack if isinstance(f, _Frame) and f.kind in _REFUSING), None)
        if outer is not None:
            slot = Refusal(*_REFUSING[outer.kind])
        if self.pending is not None:
            slot, self.pending = self.pending, None
        self.values.append(slot)
        if isinstance(slot, Refusal) or (isinstance(top, _Frame) and top.kind == "comment"):
            return
        heredocs = [i for i, f in enumerate(self.stack) if isinstance(f, _Frame) and f.kind == "heredoc"]
        if heredocs and self.stack[heredocs[-1]].code:
            self.values[index] = Refusal("a {{ }} is in a heredoc that a shell or an interpreter reads as code",
                                         _ARGUMENT_HINT)
            return
        # Every command enclosing the value reads it: as an argument, or as the output of a substitution.
        commands = [f for f in self.stack[heredocs[-1] + 1 if heredocs else 0:] if isinstance(f, _Command)]
        for cmd in commands:
            why = code_argument(cmd.words, len(cmd.words), "".join(cmd.word))
            if why:
                hint = _ARITHMETIC_HINT if "arithmetic" in why else _ARGUMENT_HINT
                self.values[index] = Refusal(f"a {{{{ }}}} is code here: {why}", hint)
                return
            cmd.stage.append(index)
            if cmd.in_test:
                cmd.test_values.append((index, len(cmd.words)))

    def _place(self, top: _Command | _Frame) -> Slot | Refusal:
        if isinstance(top, _Command):
            top.word_started = True
            if top.expect_delimiter:
                return Refusal("a {{ }} is a heredoc's delimiter", "write the delimiter itself: `<<EOF`")
            return Slot("word")
        kind = top.kind
        if kind == "heredoc":
            top.line_has_value = True
            if top.quoted:
                return Refusal("a {{ }} is in the body of a quoted heredoc (<<'EOF'), where nothing expands",
                               "unquote the delimiter (<<EOF): plait's values stay text in any heredoc")
            return Slot("quoted")
        if kind == "dq":
            return Slot("quoted")
        if kind == "sq":
            return Slot("single")
        if kind == "comment":
            return Slot("word")
        return Refusal(*_REFUSING[kind])


def place_values(text: str) -> list[Slot | Refusal]:
    """Return, for each value (a NUL in `text`, the command's literal text), its Slot or its Refusal."""
    return _Scanner(text).run()
