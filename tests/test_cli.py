"""The ``mvnb`` command: plain help text, every option explained, the demo on your kernel."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from mvnb.cli import build_parser, main

MARKUP = re.compile(r"``|:(func|class|mod|meth):|\.\. ")


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["guest", "fetch", "--help"]])
def test_help_is_plain_text(argv):
    # Before: `mvnb --help` printed the module docstring's ``mvnb`` markup.
    out = subprocess.run([sys.executable, "-m", "mvnb.cli", *argv], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.startswith("usage: mvnb")
    assert not MARKUP.search(out), out


def test_every_option_has_help():
    parser = build_parser()
    seen = set()
    for p in _parsers(parser):
        assert p.description and not MARKUP.search(p.description), p.prog
        for action in p._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help and not MARKUP.search(action.help), (p.prog, action.dest)
            seen.add(action.dest)
    assert {"abi", "refresh", "kernel", "symbols", "cmdline", "timeout"} <= seen


def test_demo_takes_kernel_symbols_cmdline():
    # Before: `mvnb demo --kernel ...` was refused by argparse (exit status 2).
    args = build_parser().parse_args(["demo", "--kernel", "k", "--symbols", "s",
                                      "--cmdline", "console=ttyS0 quiet"])
    assert (args.kernel, args.symbols, args.cmdline) == ("k", "s", "console=ttyS0 quiet")


def test_demo_says_what_is_missing(tmp_path, capsys):
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(b"x")
    assert main(["demo", "--kernel", str(kernel)]) == 1
    assert "--kernel needs --symbols" in capsys.readouterr().err
    assert main(["demo", "--symbols", str(kernel)]) == 1
    assert "--symbols needs --kernel" in capsys.readouterr().err
    assert main(["demo", "--kernel", str(tmp_path / "nope"), "--symbols", str(kernel)]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.live
def test_demo_on_own_kernel_finds_hz_without_config(tmp_path, guest, capsys):
    """Debian's files under a build tree's names: no config-* beside them, HZ from vmlinux."""
    (tmp_path / "bzImage").symlink_to(guest.kernel)
    (tmp_path / "vmlinux").symlink_to(guest.symbols)
    status = main(["demo", "--kernel", str(tmp_path / "bzImage"),
                   "--symbols", str(tmp_path / "vmlinux"),
                   "--cmdline", "console=ttyS0 loglevel=7", "--timeout", "60"])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert "command line: console=ttyS0 loglevel=7 nokaslr" in out.out
    assert "HZ=250" in out.out and "lapic_cal_handler" in out.out
