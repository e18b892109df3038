"""Spec files: the built-ins are complete and referenced; the loader names file and register."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import mvnb
import mvnb.regs as regs
from mvnb.errors import SpecError
from mvnb.regs import RegisterSpec, get, load
from mvnb.regs.registry import builtin_specs

ISSUE_NAMES = [
    "LAPIC_ID", "LAPIC_VERSION", "TPR", "APR", "PPR", "EOI", "RRD", "LDR", "DFR", "SVR",
    "ISR", "TMR", "IRR", "ESR", "LVT_CMCI", "ICR", "LVT_TIMER", "LVT_THERMAL", "LVT_PERF",
    "LVT_LINT0", "LVT_LINT1", "LVT_ERROR", "TIMER_ICR", "TIMER_CCR", "TIMER_DCR",
    "IA32_APIC_BASE", "IA32_TSC_DEADLINE", "IA32_EFER", "RFLAGS", "CR0", "CR3", "CR4",
    "CPUID_1_EDX", "CPUID_1_ECX", "CPUID_6_EAX", "CPUID_80000007_EDX",
    "CPUID_40000000_EAX", "CPUID_40000000_EBX", "CPUID_40000000_ECX", "CPUID_40000000_EDX",
    "CPUID_40000010_EAX", "CPUID_40000010_EBX", "IOAPIC_REDTBL",
    "X2APIC_ID", "X2APIC_LDR", "X2APIC_ICR",  # issue 11: the x2APIC layouts
]  # fmt: skip

HEAD = """\
family: test
reference: {document: Test manual, edition: "1st edition, 2024", section: "1.1"}
registers:
"""


def write_spec(tmp_path, body: str):
    path = tmp_path / "mine.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(body), "  "))
    return path


def test_every_register_the_issue_names_is_built_in_and_a_module_constant():
    specs = builtin_specs()
    assert sorted(specs) == sorted(ISSUE_NAMES)
    for name in ISSUE_NAMES:
        spec = getattr(regs, name)
        assert isinstance(spec, RegisterSpec) and spec is get(name) and name in regs.__all__
        assert hash(spec) == hash(get(name.lower()))


def test_constants_carry_what_the_sampler_reads():
    ccr = regs.TIMER_CCR
    assert (ccr.name, ccr.mmio_offset, ccr.msr, ccr.width, ccr.volatile) == (
        "TIMER_CCR",
        0x390,
        0x839,
        32,
        True,
    )
    assert ccr.cpuid is None and ccr.gdb_register is None
    assert regs.CPUID_1_EDX.cpuid.leaf == 1 and regs.CPUID_1_EDX.cpuid.reg == "edx"
    assert regs.RFLAGS.gdb_register == "eflags" and regs.CR3.gdb_register == "cr3"
    assert {regs.TIMER_CCR: "ccr"}[get("timer_ccr")] == "ccr"


def test_every_builtin_reference_names_document_edition_and_place():
    for spec in builtin_specs().values():
        ref = spec.reference
        assert ref.document and ref.edition, spec.name
        assert ref.section or ref.figure or ref.table, spec.name
        if ref.document.startswith("Intel SDM"):
            assert "2536" in ref.edition, spec.name  # an order number, so chapters are unambiguous


def test_lapic_x2apic_msrs_follow_the_offset_rule():
    for spec in builtin_specs().values():
        if spec.family == "lapic" and spec.msr is not None:
            assert spec.msr == 0x800 + (spec.mmio_offset >> 4), spec.name
    assert regs.ICR.width == 64 and regs.ICR.msr == 0x830 and regs.ICR.mmio_words == (0x300, 0x310)
    assert regs.DFR.msr is None and regs.APR.msr is None and regs.RRD.msr is None
    assert regs.ISR.width == 256 and len(regs.ISR.mmio_words) == 8
    assert regs.IRR.mmio_words[-1] == 0x270


def test_x2apic_layouts_replace_the_xapic_ones_where_bits_differ():
    """SDM Vol. 3A 10.12.9 (ICR), 10.12.10.1 (LDR), Table 10-6 (ID): same place, new bits."""
    from mvnb.regs.lapic import X2APIC_LAYOUTS, layout

    for xapic, x2apic in X2APIC_LAYOUTS.items():
        old, new = get(xapic), get(x2apic)
        assert (new.msr, new.mmio_offset, new.width) == (old.msr, old.mmio_offset, old.width)
        assert layout(xapic, x2apic=True) is new and layout(xapic, x2apic=False) is old
        assert new.access == "ro" or new.name == "X2APIC_ICR"
    assert layout("LVT_TIMER", x2apic=True) is regs.LVT_TIMER
    assert regs.X2APIC_ID.decode(0x10)["x2apic_id"] == 16 and regs.LAPIC_ID.decode(0x10)["id"] == 0
    ldr = regs.X2APIC_LDR.decode(0x0001_0001)  # x2APIC ID 16: cluster 1, bit 0
    assert (ldr["cluster_id"], ldr["logical_id"]) == (1, 1)
    icr = regs.X2APIC_ICR.decode(0x0000_0010_0000_40EC)  # fixed IPI, vector 236, to x2APIC ID 16
    assert icr["destination"] == 16 and icr["vector"] == 236
    assert "delivery_status" not in icr.fields and regs.ICR.decode(0x10 << 56)["destination"] == 16


def test_field_names_the_issue_uses():
    assert {"vector", "delivery_status", "mask", "timer_mode"} <= set(
        f.name for f in regs.LVT_TIMER.fields
    )
    assert {"bsp", "extd", "en", "base"} <= {f.name for f in regs.IA32_APIC_BASE.fields}
    assert regs.TIMER_DCR.field("divide").bits == ((3, 3), (1, 0))
    assert regs.TIMER_DCR.reserved_mask & 0b100


def test_get_suggests_close_names():
    with pytest.raises(KeyError, match="LVT_TIMER"):
        get("LVT_TIMR")


def test_user_file_loads_and_registers(tmp_path):
    path = write_spec(
        tmp_path,
        """\
        - name: IOAPIC_REDIR
          title: I/O APIC redirection entry
          width: 64
          fields:
            - {name: vector, bits: [7, 0]}
            - {name: mask, bits: 16, enum: {0: not_masked, 1: masked}}
            - {name: destination, bits: [63, 56]}
        """,
    )
    specs = load(path)
    assert list(specs) == ["IOAPIC_REDIR"]
    assert specs["IOAPIC_REDIR"].reference.edition == "1st edition, 2024"
    with pytest.raises(KeyError):
        get("IOAPIC_REDIR")
    load(path, register=True)
    assert regs.decode("IOAPIC_REDIR", 1 << 16)["mask"].enum == "masked"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            """\
            - name: BAD
              width: 32
              fields:
                - {name: a, bits: [7, 0]}
                - {name: b, bits: [8, 4]}
            """,
            "field b: bit 4 overlaps field a",
        ),
        (
            """\
            - name: BAD
              width: 32
              fields:
                - {name: a, bits: [40, 32]}
            """,
            "field a: bits [40, 32] go past the register's width of 32 bits",
        ),
        (
            """\
            - name: BAD
              width: 32
              fields: [{name: a, bits: 0}, {name: a, bits: 1}]
            """,
            "field a: duplicate field name a",
        ),
        (
            """\
            - {name: BAD, width: 8}
            - {name: BAD, width: 8}
            """,
            "duplicate register name BAD",
        ),
        (
            """\
            - name: BAD
              width: 32
              fields:
                - {name: a, bits: [1, 0], enum: {4: four}}
            """,
            "field a: enum value 0x4 does not fit in the field's 2 bits",
        ),
        (
            """\
            - name: BAD
              width: 32
              fields:
                - {name: a, bits: [0, 1]}
            """,
            "msb >= lsb",
        ),
        (
            """\
            - {name: BAD, width: 8, reset: 0x100}
            """,
            "reset value 0x100 does not fit in 8 bits",
        ),
        (
            """\
            - {name: BAD, width: 8, mmio: 0x10}
            """,
            "unknown key(s) mmio",
        ),
        (
            """\
            - {name: BAD, width: 8, reference: {edition: null}}
            """,
            "reference needs a 'edition'",
        ),
        (
            """\
            - name: BAD
              width: 8
              fields: [{name: Mask, bits: 0}]
            """,
            "lower case",
        ),
        (
            """\
            - name: BAD
              width: 8
              fields: [{name: a, bits: 0, enum: {0: off, 1: "on"}}]
            """,
            "quote the name",
        ),
    ],
)
def test_loader_errors_name_file_and_register(tmp_path, body, message):
    path = write_spec(tmp_path, body)
    with pytest.raises(SpecError) as info:
        load(path)
    text = str(info.value)
    assert str(path) in text
    assert "register BAD" in text
    assert message in text
    assert isinstance(info.value, ValueError)


def test_registering_a_different_register_under_a_builtin_name_is_refused(tmp_path):
    path = write_spec(tmp_path, "- {name: LVT_TIMER, width: 8}\n")
    with pytest.raises(SpecError, match="already known"):
        load(path, register=True)


def test_unreadable_and_non_yaml_files(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("registers: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load(bad)


def test_the_documented_example_loads(tmp_path):
    doc = (Path(__file__).parent.parent / "docs" / "register-specs.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "ioapic.yaml"
    path.write_text(example)
    spec = load(path)["IOAPIC_REDIR"]
    rv = spec.decode(0x10030)
    assert rv["mask"].enum == "masked" and rv["vector"] == 0x30
    assert spec.reference.table == "3-4" and "290566" in spec.reference.edition


def test_unknown_names_are_mvnb_errors_with_close_matches():
    # Before: a plain KeyError, outside the mvnb.Error tree the README promises.
    for call in (lambda: get("IA32_APIC_BAS"), lambda: regs.decode("IA32_APIC_BAS", 0)):
        with pytest.raises(mvnb.UnknownName) as info:
            call()
        assert isinstance(info.value, mvnb.Error) and isinstance(info.value, KeyError)
        assert info.value.matches == ("IA32_APIC_BASE",) and info.value.name == "IA32_APIC_BAS"
        assert str(info.value).startswith("no register spec named 'IA32_APIC_BAS'; did you mean")
    with pytest.raises(mvnb.UnknownName, match="did you mean timer_mode") as info:
        regs.LVT_TIMER.field("timermode")
    assert "fields: vector, delivery_status, mask, timer_mode" in str(info.value)
    with pytest.raises(mvnb.UnknownName) as info:
        get("NO_SUCH_MSR")
    assert info.value.matches == () and "mvnb.regs.names()" in str(info.value)
