"""What a notebook ran with, recorded as an output (mvnb/publish/_provenance.py)."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns
from publish_notebooks import display

import mvnb
from mvnb.publish import PROVENANCE_MIME, Provenance, provenance
from mvnb.publish._provenance import from_output

SANITIZE = Path(__file__).parent / "nbval-sanitize.cfg"


def version_line(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30,
                          check=True).stdout.splitlines()[0]


def test_without_a_vm_it_records_mvnb_gdb_and_now():
    record = provenance()
    assert record.mvnb == mvnb.__version__
    assert record.gdb and version_line("gdb", "--version").endswith(record.gdb)
    assert record.qemu is None and record.guest is None
    ran = datetime.fromisoformat(record.date)
    assert abs(datetime.now(UTC) - ran) < timedelta(minutes=1)


def test_any_object_with_a_qemu_binary_and_a_guest_will_do():
    guest = SimpleNamespace(name="debian-cloud-6.1.0-56-cloud-amd64", version="6.1.0-56")
    vm = SimpleNamespace(qemu="qemu-system-x86_64", guest=guest, gdb="unix")
    record = provenance(vm)
    assert f"version {record.qemu} " in version_line("qemu-system-x86_64", "--version")
    assert (record.guest, record.guest_version) == (guest.name, guest.version)
    session = SimpleNamespace(vm=vm, capabilities=SimpleNamespace(qemu=True))
    assert provenance(session).qemu == record.qemu


def test_a_missing_binary_is_no_version_not_an_error():
    vm = SimpleNamespace(qemu="/nonexistent/qemu-system-x86_64", guest=None)
    assert provenance(vm, gdb="/nonexistent/gdb").qemu is None


def test_its_display_bundle_is_valid_nbformat_and_reads_back():
    from IPython.core.formatters import DisplayFormatter

    record = Provenance(mvnb="0.1.0", qemu="7.2.22", gdb="13.1", guest="g", guest_version="1",
                        date="2025-01-02T03:04:05+00:00")
    bundle, _ = DisplayFormatter().format(record)
    assert set(bundle) == {PROVENANCE_MIME, "text/plain"}
    assert "\n" not in bundle[PROVENANCE_MIME]
    assert bundle["text/plain"] == ("mvnb provenance: mvnb 0.1.0, QEMU 7.2.22, GDB 13.1, "
                                    "guest g (1); ran 2025-01-02T03:04:05+00:00")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "provenance(vm)", outputs=[display(bundle)])])
    nbformat.validate(nb)
    assert from_output(nb.cells[0].outputs[0]) == record
    assert from_output({"data": {PROVENANCE_MIME: json.loads(record.to_json())}}) == record


def test_nbvals_sanitize_file_neutralises_versions_and_date():
    patterns = get_sanitize_patterns(SANITIZE.read_text())

    def sanitize(text: str) -> str:
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    one = Provenance(mvnb="0.1.0", qemu="7.2.22", gdb="13.1", date="2025-01-02T03:04:05+00:00")
    two = Provenance(mvnb="0.2.0", qemu="10.0.2", gdb="16.3", guest="g", guest_version="x",
                     date="2026-11-30T00:00:00+00:00")
    a, b = one._repr_mimebundle_(), two._repr_mimebundle_()
    for mime in (PROVENANCE_MIME, "text/plain"):
        assert a[mime] != b[mime]
        assert sanitize(a[mime]) == sanitize(b[mime])


@pytest.mark.live
def test_a_real_vm(guest: mvnb.Guest):
    with mvnb.Qemu(guest) as vm:  # paused at reset: enough to ask what it is
        record = provenance(vm)
    assert record.qemu and f"version {record.qemu}" in version_line(vm.qemu, "--version")
    assert record.guest == guest.name and record.guest_version == guest.version
