"""Codec and RegisterValue: the decodes issue 3 names, exact round trips, int-like fields."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mvnb.regs as regs
from mvnb.regs import FieldValue, RegisterValue, decode, encode
from mvnb.regs.codec import extract, insert
from mvnb.regs.registry import builtin_specs

SPECS = list(builtin_specs().values())


@st.composite
def spec_and_raw(draw):
    spec = draw(st.sampled_from(SPECS))
    return spec, draw(st.integers(min_value=0, max_value=spec.mask))


def test_lvt_timer_0x000300ec_is_vector_236_masked_periodic():
    rv = decode("LVT_TIMER", 0x000300EC)
    assert rv["vector"] == 236
    assert rv["mask"] == 1 and rv["mask"].enum == "masked"
    assert rv["timer_mode"].enum == "periodic"
    assert rv["delivery_status"].enum == "idle"
    assert str(rv["mask"]) == "1 (masked)"
    assert rv.reserved == 0


@pytest.mark.parametrize(
    ("raw", "name", "divisor"),
    [
        (0x0, "div2", 2),
        (0x1, "div4", 4),
        (0x2, "div8", 8),
        (0x3, "div16", 16),
        (0x8, "div32", 32),
        (0x9, "div64", 64),
        (0xA, "div128", 128),
        (0xB, "div1", 1),
    ],
)
def test_dcr_divide_value_sits_in_bits_3_1_0(raw, name, divisor):
    field = decode("TIMER_DCR", raw)["divide"]
    assert field.enum == name
    assert int(name.removeprefix("div")) == divisor
    assert encode("TIMER_DCR", {"divide": name}) == raw


def test_dcr_bit_2_is_reserved_and_kept():
    rv = decode(regs.TIMER_DCR, 0x7)
    assert rv["divide"].enum == "div16" and rv.reserved == 0x4
    assert int(rv.replace(divide="div1")) == 0xF


def test_ia32_apic_base_0xfee00900():
    rv = decode("IA32_APIC_BASE", 0xFEE00900)
    assert rv["bsp"] == 1 and rv["bsp"].enum == "bsp"
    assert rv["en"] == 1 and rv["en"].enum == "enabled"
    assert rv["extd"] == 0 and rv["extd"].enum == "xapic"
    assert rv["base"] == 0xFEE00000
    assert str(rv["base"]) == "0xfee00000"
    assert int(rv.replace(base=0xFEC00000)) == 0xFEC00900


def test_in_place_field_rejects_unaligned_values():
    with pytest.raises(ValueError, match="in place"):
        decode("IA32_APIC_BASE", 0xFEE00900).replace(base=0xFEE00001)


def test_replace_takes_ints_and_enum_names_and_keeps_reserved_bits():
    rv = decode("LVT_TIMER", 0x000300EC | (1 << 31))
    new = rv.replace(mask=0, timer_mode="one_shot")
    assert isinstance(new, RegisterValue)
    assert int(new) == 0x000000EC | (1 << 31)
    assert new.reserved == rv.reserved == 1 << 31
    assert int(rv) == 0x000300EC | (1 << 31)  # the original is unchanged


def test_replace_errors_say_what_is_wrong():
    rv = decode("LVT_TIMER", 0)
    with pytest.raises(ValueError, match="periodic"):
        rv.replace(timer_mode="sometimes")
    with pytest.raises(ValueError, match="does not fit"):
        rv.replace(vector=256)
    with pytest.raises(KeyError, match="timer_mode"):
        rv.replace(timermode=1)


def test_field_value_is_int_like():
    fv = decode("LVT_TIMER", 0x000300EC)["vector"]
    assert isinstance(fv, FieldValue) and isinstance(fv, int)
    assert int(fv) == 236 and fv == 236 and fv != 235
    assert hex(fv) == "0xec"
    assert list(range(300))[fv] == 236
    assert fv + 1 == 237
    assert fv.enum is None and str(fv) == "236"
    assert f"{fv:#x}" == "0xec"
    assert {fv: "x"}[236] == "x"
    mode = decode("LVT_TIMER", 0x000300EC)["timer_mode"]
    assert mode == "periodic" and mode != "one_shot"


def test_register_value_behaves_like_its_raw_int():
    rv = decode("LVT_TIMER", 0x000300EC)
    assert int(rv) == 0x000300EC and hex(rv) == "0x300ec"
    assert rv == 0x000300EC and rv == decode(regs.LVT_TIMER, 0x000300EC)
    assert list(rv.fields) == ["vector", "delivery_status", "mask", "timer_mode"]
    assert "mask" in rv and list(rv) == list(rv.fields)
    assert eval(repr(rv), {"decode": decode}) == rv
    assert "mask" in str(rv) and "1 (masked)" in str(rv)


def test_register_value_refuses_values_past_the_width():
    with pytest.raises(ValueError, match="32 bits"):
        decode("LVT_TIMER", 1 << 32)


def test_to_frame_and_diff():
    before = decode("LVT_TIMER", 0x000300EC)
    after = before.replace(mask=0)
    frame = before.to_frame()
    assert list(frame.index) == list(before.fields)
    assert frame.loc["timer_mode", "enum"] == "periodic"
    diff = before.diff(after)
    assert list(diff.index) == ["mask"]
    assert diff.loc["mask", "before_enum"] == "masked"
    assert diff.loc["mask", "after_enum"] == "not_masked"
    assert before.diff(before).empty


def test_rendering_hooks():
    rv = decode("LVT_TIMER", 0x000300EC)
    html = rv._repr_html_()
    assert "LVT_TIMER" in html and "0x000300ec" in html and "periodic" in html
    assert "253668" in html  # the SDM edition travels with the figure

    class Printer:
        def __init__(self):
            self.out = []

        def text(self, s):
            self.out.append(s)

    p = Printer()
    rv._repr_pretty_(p, False)
    assert "1 (masked)" in "".join(p.out)


@given(spec_and_raw())
def test_decode_encode_round_trip_is_exact(case):
    spec, raw = case
    rv = decode(spec, raw)
    assert encode(spec, rv.fields, base=raw) == raw
    rebuilt = encode(spec, {n: int(v) for n, v in rv.fields.items()}, base=rv.reserved)
    assert rebuilt == raw
    assert int(rv.replace()) == raw


@given(spec_and_raw(), st.data())
def test_insert_changes_only_its_field(case, data):
    spec, raw = case
    if not spec.fields:
        return
    fspec = data.draw(st.sampled_from(spec.fields))
    if fspec.in_place:
        value = data.draw(st.integers(0, fspec.mask)) & fspec.mask
    else:
        value = data.draw(st.integers(0, fspec.max_value()))
    new = insert(fspec, raw, value)
    assert extract(fspec, new) == value
    assert new & ~fspec.mask == raw & ~fspec.mask


@given(st.integers(0, 7))
def test_enum_names_encode_to_their_values(value):
    name = regs.TIMER_DCR.field("divide").enum_name(value)
    assert name is not None
    assert decode("TIMER_DCR", encode("TIMER_DCR", {"divide": name}))["divide"] == value
