"""Redaction rules, where they apply, and ``--check`` (mvnb/publish/redact.py)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from publish_notebooks import code, display, figure_png, markdown, notebook, result, stream, write

from mvnb.cache import cache_dir
from mvnb.cli import main
from mvnb.publish import LeakFound, PostExporter, Redactor, publish
from mvnb.publish.redact import find_local_paths

FREEBSD = "/home/alice/src/freebsd=<path-to-freebsd-source>"


def alice(*extra: str) -> Redactor:
    return Redactor.default(extra, home="/home/alice", cache="/home/alice/.cache/mvnb",
                            user="alice", host="kernelbox.lab.example", tmpdirs=["/tmp"])


@pytest.mark.parametrize(("text", "expected"), [
    ("vi /home/alice/notes.txt", "vi ~/notes.txt"),
    ("/home/alice", "~"),
    ("see /home/alice.", "see ~."),
    ("/home/alicea/x", "/home/alicea/x"),  # another account: not this home
    ("/home/alice/.cache/mvnb/debian/6.1.0-56/vmlinux", "<mvnb-cache>/debian/6.1.0-56/vmlinux"),
    ("socket /tmp/mvnb-gdb-k2j4h1/gdb.socket", "socket <tmp>/gdb.socket"),
    ("/tmp", "<tmp>"),
    ("alice@kernelbox:~$ make", "<user>@<host>:~$ make"),
    ("built by alice on kernelbox", "built by <user> on <host>"),
    ("kernelbox.lab.example says hi", "<host> says hi"),
    ("malice and alicef stay", "malice and alicef stay"),
    ("/home/alice/src/freebsd/sys/x86/x86/local_apic.c",
     "<path-to-freebsd-source>/sys/x86/x86/local_apic.c"),
    ("/home/alice/src/freebsd-old/README", "~/src/freebsd-old/README"),
])
def test_rules(text: str, expected: str):
    assert alice(FREEBSD).redact(text) == expected


def test_generic_account_and_host_names_are_redacted_only_in_context():
    redactor = Redactor.default(home="/root", cache="/root/.cache/mvnb", user="root", host="vm",
                                tmpdirs=["/tmp"])
    assert redactor.redact("console=ttyS0 root=/dev/vda1") == "console=ttyS0 root=/dev/vda1"
    assert redactor.redact("vm.close()") == "vm.close()"
    assert redactor.redact("root@vm:/# ls /root/x") == "<user>@<host>:/# ls ~/x"


def test_the_machine_defaults_cover_this_home_and_cache():
    redactor = Redactor.default()
    home = os.path.expanduser("~")
    assert redactor.redact(f"{cache_dir()}/debian") == "<mvnb-cache>/debian"
    assert redactor.redact(f"{home}/work/x.ipynb") == "~/work/x.ipynb"


def test_report_lists_what_was_replaced_and_how_often():
    redactor = alice(FREEBSD)
    redactor.redact("/home/alice/src/freebsd/a /home/alice/src/freebsd/b /home/alice/c")
    report = {(r.rule, r.found, r.replacement): r.count for r in redactor.report()}
    assert report == {("author", "/home/alice/src/freebsd", "<path-to-freebsd-source>"): 2,
                      ("home directory", "/home/alice", "~"): 1}


def test_bad_redact_argument_says_how():
    from mvnb.publish import PublishError

    with pytest.raises(PublishError, match="PATH=NAME"):
        Redactor.default(["/home/alice/src"])


def render(nb, redactor: Redactor) -> str:
    resources = {"mvnb": {"redactor": redactor, "links": "liquid",
                          "date": datetime(2025, 1, 2, tzinfo=UTC)}}
    text, resources = PostExporter().from_notebook_node(nb, resources)
    svg = [v.decode() for k, v in resources["outputs"].items() if k.endswith(".svg")]
    return text + "\n".join(svg)


def test_redaction_reaches_inputs_outputs_alt_text_front_matter_and_svg():
    path = "/home/alice/src/freebsd/sys/kern/kern_clocksource.c"
    svg = f'<svg width="100" height="50"><text>{path}</text></svg>'
    nb = notebook(
        markdown(f"Read `{path}` and {path} too."),
        code(f"# Figure from {path}\nsrc = '{path}'",
             [stream(f"{path}:12\n"), result({"text/plain": f"'{path}'"}),
              display({"text/html": f"<b>{path}</b>"}),
              display({"image/png": figure_png()}), display({"image/svg+xml": svg})]),
        title="Reading /home/alice/src/freebsd",
        description="Notes from /home/alice/notes",
    )
    text = render(nb, alice(FREEBSD))
    assert "/home/alice" not in text and "alice" not in text
    head = text.split("\n---\n")[0]
    assert 'title: "Reading <path-to-freebsd-source>"' in head
    assert 'description: "Notes from ~/notes"' in head
    # literal in code, escaped where HTML or Kramdown would read "<...>" as a tag
    assert "src = '<path-to-freebsd-source>/sys/kern/kern_clocksource.c'" in text
    assert "`<path-to-freebsd-source>/sys/kern/kern_clocksource.c`" in text
    assert "and &lt;path-to-freebsd-source&gt;/sys/kern/kern_clocksource.c too" in text
    assert "<b>&lt;path-to-freebsd-source&gt;/sys/kern" in text
    assert "![Figure from &lt;path-to-freebsd-source&gt;/sys/kern/kern_clocksource.c](" in text
    assert "<text>&lt;path-to-freebsd-source&gt;/sys/kern/kern_clocksource.c</text>" in text


def leaky_notebook(tmp_path: Path) -> Path:
    other = "/home/bob/src/linux/arch/x86/kernel/apic/apic.c"  # not this machine's home
    nb = notebook(code("print(path)", [stream(f"{other}\n")]), title="Leaky")
    return write(nb, tmp_path / "leaky.ipynb")


def test_check_refuses_a_post_with_a_local_path_and_writes_nothing(tmp_path: Path):
    site = tmp_path / "site"
    with pytest.raises(LeakFound) as caught:
        publish(leaky_notebook(tmp_path), site, check=True)
    assert any("/home/bob" in leak for leak in caught.value.leaks)
    assert "--redact" in str(caught.value)
    assert not (site / "_posts").exists()


def test_without_check_the_leak_is_reported_and_the_post_written(tmp_path: Path):
    found = publish(leaky_notebook(tmp_path), tmp_path / "site")
    assert found.post.is_file()
    assert any("/home/bob" in leak for leak in found.leaks)


def test_check_passes_once_the_author_redacts_it(tmp_path: Path):
    found = publish(leaky_notebook(tmp_path), tmp_path / "site", check=True,
                    redact=("/home/bob/src/linux=<linux>",))
    text = found.post.read_text()
    assert "<linux>/arch/x86/kernel/apic/apic.c" in text and "/home/bob" not in text
    assert found.leaks == []


@pytest.mark.parametrize("leak", ["/Users/carol/x", "/var/folders/ab/cd/T/x", r"C:\Users\dave\x",
                                  "/tmp/tmpab12cd/x", "/run/user/1000/x", "/media/usb/x"])
def test_what_looks_like_a_local_path(leak: str):
    assert find_local_paths(f"path {leak} here")
    assert not find_local_paths("/usr/lib/debug/boot/vmlinux ~/src <tmp>/x /home/<user>/x")


def test_the_command_lists_redactions_and_ends_with_the_post_path(tmp_path: Path, capsys):
    nb = notebook(code("print(p)", [stream("/home/bob/src/linux/Makefile\n")]), title="Bob")
    path = write(nb, tmp_path / "bob.ipynb")
    code_ = main(["publish", str(path), "--site", str(tmp_path / "site"), "--check",
                  "--redact", "/home/bob/src/linux=<linux>"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code_ == 0
    assert "redacted: /home/bob/src/linux -> <linux> (author, once)" in out
    assert out[-1].endswith("-bob.md") and Path(out[-1]).is_file()
