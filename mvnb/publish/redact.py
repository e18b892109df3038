"""Redaction: local paths, user and host names out of everything a post shows.

A post must not carry the author's home directory, mvnb's cache path, temporary directories,
the user or host name, or the paths the author names (``--redact PATH=NAME``). A
:class:`Redactor` holds the rules, applies them to any text (escaping the replacement for
the context: HTML, XML or Markdown prose) and counts what it replaced, so the command can
list it. :func:`find_local_paths` is the ``--check`` that runs after redaction.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..cache import cache_dir
from ..errors import PublishError

__all__ = ["Redaction", "Redactor", "Rule", "find_local_paths", "parse_rule"]

# A path ends where a path character does not follow ("/src/freebsd." ends a sentence).
_PATH_END = r"(?![\w-]|\.[\w-])"
# Account and machine names that are also ordinary words in kernel output and code
# ("root=/dev/vda1", "vm.close()"): only redacted in user@host and path contexts.
GENERIC_NAMES = frozenset({
    "admin", "debian", "docker", "guest", "host", "jovyan", "localhost", "root", "runner",
    "ubuntu", "user", "vagrant", "vm", "build", "test", "linux", "kernel", "qemu",
})


@dataclass(frozen=True)
class Rule:
    """One redaction: text matching ``pattern`` becomes ``replacement``."""

    name: str
    pattern: re.Pattern[str]
    replacement: str


@dataclass(frozen=True)
class Redaction:
    """What a rule replaced in a post, and how often (``PublishResult.redacted``)."""

    rule: str
    found: str
    replacement: str
    count: int

    def __str__(self) -> str:
        times = "once" if self.count == 1 else f"{self.count} times"
        return f"{self.found} -> {self.replacement} ({self.rule}, {times})"


def _path_rule(name: str, path: str, replacement: str, *, then_component: bool = False) -> Rule:
    tail = r"(?:/[^/\s'\"<>`]+)?" if then_component else ""
    pattern = re.compile(re.escape(path.rstrip("/") or "/") + tail + _PATH_END)
    return Rule(name, pattern, replacement)


def _word_rule(name: str, word: str, replacement: str) -> Rule:
    return Rule(name, re.compile(rf"(?<![\w.-]){re.escape(word)}(?![\w-]|\.[\w-])"), replacement)


def parse_rule(text: str) -> tuple[str, str]:
    """``"/home/me/src/freebsd=<path-to-freebsd-source>"`` -> (absolute path, name)."""
    path, sep, name = text.rpartition("=")
    if not sep or not path.strip() or not name.strip():
        raise PublishError(
            f"--redact takes PATH=NAME, e.g. --redact ~/src/freebsd=<path-to-freebsd-source>; "
            f"got {text!r}"
        )
    return os.path.expanduser(path.strip()).rstrip("/") or "/", name.strip()


def _variants(path: str) -> list[str]:
    """The path as given and as resolved (a symlinked home shows up both ways)."""
    out = [path]
    try:
        real = os.path.realpath(path)
    except OSError:
        real = path
    if real != path:
        out.append(real)
    return out


class Redactor:
    """Ordered rules (most specific first) and the count of what each replaced."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        self._counts: Counter[tuple[str, str, str]] = Counter()

    @classmethod
    def default(
        cls,
        extra: Iterable[tuple[str, str] | str] = (),
        *,
        home: str | None = None,
        cache: str | None = None,
        user: str | None = None,
        host: str | None = None,
        tmpdirs: Iterable[str] | None = None,
    ) -> Redactor:
        """The rules for this machine plus the author's ``PATH=NAME`` pairs.

        Keyword arguments override what is detected (tests pass their own).
        """
        rules: list[Rule] = []
        pairs = [parse_rule(e) if isinstance(e, str) else (e[0], e[1]) for e in extra]
        for path, name in sorted(pairs, key=lambda p: -len(p[0])):
            rules += [_path_rule("author", v, name) for v in _variants(path)]
        cache = cache if cache is not None else str(cache_dir())
        rules += [_path_rule("mvnb cache", v, "<mvnb-cache>") for v in _variants(cache)]
        home = home if home is not None else os.path.expanduser("~")
        if tmpdirs is None:
            tmpdirs = {tempfile.gettempdir(), "/tmp", "/var/tmp", os.environ.get("TMPDIR", "")}
        for tmp in sorted({t.rstrip("/") for t in tmpdirs if t and t.rstrip("/")}, key=len,
                          reverse=True):
            if home.rstrip("/") and home.rstrip("/").startswith(tmp + "/"):
                continue  # a home under /tmp (CI sandboxes) is the home rule's
            rules += [_path_rule("temporary directory", v, "<tmp>", then_component=True)
                      for v in _variants(tmp)]
        if home.rstrip("/"):
            rules += [_path_rule("home directory", v, "~") for v in _variants(home)]
        user = user if user is not None else _user()
        host = host if host is not None else socket.gethostname()
        if user:
            rules.append(Rule("user name", re.compile(rf"(?<![\w.-]){re.escape(user)}(?=@)"),
                              "<user>"))
            rules.append(_path_rule("user name", f"/home/{user}", "/home/<user>"))
            rules.append(_path_rule("user name", f"/Users/{user}", "/Users/<user>"))
        for name in [host, host.split(".")[0]] if host else []:
            rules.append(Rule("host name", re.compile(rf"(?<=@){re.escape(name)}(?![\w-])"),
                              "<host>"))
        for name, word, replacement in (("host name", host, "<host>"),
                                        ("host name", host.split(".")[0] if host else "",
                                         "<host>"),
                                        ("user name", user, "<user>")):
            if word and len(word) >= 4 and word.lower() not in GENERIC_NAMES:
                rules.append(_word_rule(name, word, replacement))
        return cls(rules)

    def redact(self, text: str, escape: Callable[[str], str] | None = None) -> str:
        """``text`` with every rule applied; ``escape`` quotes replacements (HTML, XML)."""
        if not text:
            return text
        for rule in self.rules:
            replacement = escape(rule.replacement) if escape else rule.replacement

            def sub(match: re.Match[str], rule: Rule = rule, replacement: str = replacement
                    ) -> str:
                self._counts[(rule.name, match.group(0), rule.replacement)] += 1
                return replacement

            text = rule.pattern.sub(sub, text)
        return text

    def report(self) -> list[Redaction]:
        """What was replaced so far, most frequent first."""
        return [Redaction(rule, found, replacement, n)
                for (rule, found, replacement), n in self._counts.most_common()]

    def targets(self) -> list[re.Pattern[str]]:
        """The patterns of every rule: none of them may match a finished post."""
        return [rule.pattern for rule in self.rules]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


# What "looks like a local path" for --check: home directories on Linux, macOS and
# Windows, temporary and per-user runtime directories, removable media.
_LOCAL_PATH = re.compile(
    r"(?<![\w.~-])(?:/home/(?!<)[\w.-]+|/Users/(?!<|Shared\b)[\w.-]+|/var/folders/\S+"
    r"|/private/var/\S+|/tmp/[\w.-]+|/var/tmp/[\w.-]+|/run/user/\d+|/media/[\w.-]+"
    r"|[A-Za-z]:\\Users\\[\w.-]+)"
)


def find_local_paths(text: str, redactor: Redactor | None = None, where: str = "post"
                     ) -> list[str]:
    """Each place in ``text`` that still looks like a local path, as ``where:line: text``."""
    patterns = [_LOCAL_PATH, *(redactor.targets() if redactor else [])]
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern in patterns:
            for match in pattern.finditer(line):
                found.append(f"{where}:{number}: {match.group(0)!r} in {line.strip()[:120]!r}")
    return list(dict.fromkeys(found))

