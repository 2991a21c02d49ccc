"""Which words of a shell command a program runs as code, and which commands run their input.

A value a shell expands stays data to the shell, but a program may run it: `eval`, `sh -c`,
`python3 -c`, an awk program, a sed script, ssh's remote command; and bash runs `$(cmd)` in the
subscript of a variable *name* it is given (`declare "$v"`, `printf -v "$v"`, `read "$v"`,
`[[ -v $v ]]`, `declare -i n="$v"`) when the value is `a[$(cmd)]`. These are the spots
`plait.shell_syntax` refuses a value in, found from the words of a simple command as written
(quotes removed). The tables are the programs plait knows; a program not listed gets the value
as the data it is, and what it does with it is the workflow author's to know.

Every earlier word of the command is looked at, not only the first, so a prefix (`env`, `sudo`,
`xargs`, `find -exec`, `nohup`) does not hide the program behind it; a word that merely names
such a program as data (`echo sh -c {{ x }}`) is refused too, which errs on the safe side.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

__all__ = ["code_argument", "code_reader"]

_SHELLS = re.compile(r"^(sh|bash|dash|zsh|ksh|mksh|ash|yash|posh|fish|su|runuser)$")
_INTERPRETERS = re.compile(r"^(python[0-9.]*|pypy[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|php[0-9.]*|"
                           r"lua[0-9.]*|luajit|Rscript|R|julia|osascript|tclsh|wish|pwsh|powershell)$")
_AWKS = re.compile(r"^(awk|gawk|mawk|nawk|busybox-awk)$")
_ALWAYS_CODE = {"eval": "eval runs its arguments as shell code", "trap": "trap runs its argument as shell code",
                "watch": "watch runs its arguments as a shell command line",
                "let": "let evaluates its arguments as arithmetic, which bash lets run commands"}
_SSH_OPTIONS_WITH_ARGUMENT = set("BbcDEeFIiJLlmOopQRSWw")
_DECLARES = {"declare", "typeset", "local", "readonly", "export"}  # NAME=value: the value is data after `=`
_NAMES_ONLY = {"mapfile", "readarray", "unset", "getopts"}  # every argument may be a name
_READ_OPTIONS = {"-p", "-d", "-t", "-n", "-N", "-u", "-i"}  # read's options whose argument is not a name


def _basename(word: str) -> str:
    return os.path.basename(word)


def code_reader(words: Sequence[str]) -> bool:
    """Return True when a simple command of `words` reads shell or interpreter code from its input."""
    for i, word in enumerate(words):  # the first shell or interpreter decides; later ones are its arguments
        shell = bool(_SHELLS.match(_basename(word)))
        if shell or _INTERPRETERS.match(_basename(word)):
            rest = words[i + 1:]
            options = [w for w in rest if w.startswith("-")]
            return "-s" in rest or "-" in rest or (
                len(options) == len(rest) and not any(_code_flag(w, shell) for w in options))
    return False


def _code_flag(option: str, shell: bool) -> bool:
    """An option whose next word is code: a shell's `-c` (`-ec`, `-lc`), an interpreter's `-c`, `-e`, `-r`."""
    if option.startswith("--"):
        return option in ("--command", "--eval", "--execute", "--print")
    if len(option) < 2 or not option[1:].isalpha():
        return False
    return "c" in option[1:] if shell else option[-1] in "ceEr"


def code_argument(words: Sequence[str], index: int, prefix: str = "") -> str | None:
    """Return why word `index` of a simple command is code to the command, or None when it is data.

    `prefix` is the text of word `index` before the value. Every earlier word is looked at, so a
    prefix command (`env`, `sudo`, `xargs`, `find -exec`) does not hide the program behind it.
    """
    for i, word in enumerate(words[:index]):
        name = _basename(word)
        if name in _ALWAYS_CODE:
            return _ALWAYS_CODE[name]
        why = _variable_name(name, words[i + 1:index], prefix)
        if why:
            return why
        if _SHELLS.match(name) or _INTERPRETERS.match(name):
            for j in range(i + 1, index):
                option = words[j]
                if not option.startswith("-") or option in ("-", "--"):
                    break
                if _code_flag(option, bool(_SHELLS.match(name))) and j + 1 == index:
                    return f"`{name} {option}` runs the next argument as code"
        elif _AWKS.match(name) and _program_position(words, i, "awk") == index:
            return f"`{name}` runs its first argument as an awk program"
        elif name == "sed" and index in _sed_scripts(words, i):
            return "`sed` runs its script argument (GNU sed's `e` runs shell commands)"
        elif name == "ssh" and _program_position(words, i, "ssh") <= index:
            return "ssh sends its command words to a remote shell as code"
    return None


def _variable_name(name: str, before: Sequence[str], prefix: str) -> str | None:
    """Return why bash reads the value as a variable's name (whose subscript `a[$(cmd)]` it evaluates)."""
    previous = before[-1] if before else ""
    options = "".join(w[1:] for w in before if w.startswith("-") and not w.startswith("--"))
    if name in _DECLARES and ("i" in options or "n" in options):
        return f"`{name} -i` and `{name} -n` evaluate their values as arithmetic or names"
    if (name in _DECLARES and "=" not in prefix) or name in _NAMES_ONLY or (
            name == "printf" and previous == "-v") or (name == "read" and previous not in _READ_OPTIONS) or (
            name in ("test", "[", "[[") and previous in ("-v", "-R")):
        why = "reads the value as a variable's name, and bash evaluates a name's subscript `a[$(cmd)]`"
        return f"`{name}{' ' + previous if name in ('printf', 'test', '[', '[[') else ''}` {why}"
    return None


def _program_position(words: Sequence[str], start: int, kind: str) -> int:
    """Return the index of the first operand after the options of the command at `start` (-1: none).

    For ssh, the index of the first word of its remote command (after the host). The index may be
    that of the word being read, one past the words so far.
    """
    j = start + 1
    while j < len(words):
        word = words[j]
        if word == "--":
            return j + 1
        if not word.startswith("-") or word == "-":
            return j + (1 if kind == "ssh" else 0)  # ssh: the host, then the command
        if kind == "awk" and word.startswith("-f"):
            return -1  # the program comes from a file
        takes = word[1:2] in ("F", "v") if kind == "awk" else word[-1] in _SSH_OPTIONS_WITH_ARGUMENT
        j += 2 if takes and len(word) == 2 else 1
    return j + (1 if kind == "ssh" else 0)  # the word to come is the first operand


def _sed_scripts(words: Sequence[str], start: int) -> set[int]:
    """Return the indexes of the words `sed` at `start` runs as its script."""
    scripts: set[int] = set()
    from_file = False
    j = start + 1
    while j < len(words):
        word = words[j]
        short = word.startswith("-") and not word.startswith("--")
        if word == "--expression" or (short and word[1:].isalpha() and word.endswith("e")):
            scripts.add(j + 1)  # `-e SCRIPT`, `-ne SCRIPT`
            j += 2
            continue
        if word.startswith("--expression=") or (short and "e" in word[1:2]):
            scripts.add(j)  # `-eSCRIPT`
        elif word in ("-f", "--file", "-l", "--line-length") or word.startswith(("-f", "--file=")):
            from_file |= word.startswith(("-f", "--file"))
            j += 2 if word in ("-f", "--file", "-l", "--line-length") else 1
            continue
        elif not word.startswith("-") or word == "-":
            break
        j += 1
    if not scripts and not from_file:
        scripts.add(j)  # the first operand (or the word to come) is the script
    return scripts
