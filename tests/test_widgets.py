"""Widgets without a browser: a recording comm stands in for the frontend.

Clicks are simulated the way the frontend sends them (an ``update`` message with the new
state), and the state messages the widgets send back are recorded and checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import comm
import ipywidgets as W
import pytest
from comm.base_comm import BaseComm

from mvnb.errors import Unsupported
from mvnb.regs import LapicSnapshot, decode
from mvnb.widgets import BitfieldWidget, SnapshotWidget, register_html, spec_html

DATA = Path(__file__).parent / "data" / "info_lapic_qemu72.txt"


class RecordingComm(BaseComm):
    sent: ClassVar[list[tuple[str, dict]]] = []

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        RecordingComm.sent.append((self.comm_id, data or {}))


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch):
    RecordingComm.sent = []
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: RecordingComm(*a, **k))
    return RecordingComm.sent


def click(widget: W.Widget, **state) -> None:
    """What the frontend sends when the user changes a control."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state}}})


def sent_values(widget: W.Widget) -> list:
    return [
        d["state"]["value"]
        for cid, d in RecordingComm.sent
        if cid == widget.comm.comm_id and d.get("method") == "update" and "value" in d["state"]
    ]


def lvt_timer(editable=True, **kw) -> BitfieldWidget:
    return BitfieldWidget(decode("LVT_TIMER", 0x000300EC), editable=editable, **kw)


def test_toggling_the_mask_bit_updates_value_box_and_field():
    w = lvt_timer()
    assert w.value_box.value == "0x000300ec"
    click(w.bit_buttons[16], value=False)
    assert w.value == 0x000200EC
    assert w.value_box.value == "0x000200ec"
    assert w.field_controls["mask"].value == 0
    assert w.register_value["mask"].enum == "not_masked"
    assert "0x000200ec" in sent_values(w.value_box)  # the frontend was told
    assert w.bit_buttons[16].description == "0"


def test_every_bit_has_a_numbered_cell_and_reserved_bits_are_locked():
    w = lvt_timer()
    assert sorted(w.bit_buttons) == list(range(32))
    assert w.bit_buttons[31].disabled and w.bit_buttons[19].disabled  # reserved
    assert not w.bit_buttons[16].disabled
    assert "reserved" in w.bit_buttons[31].tooltip
    assert "mask" in w.bit_buttons[16].tooltip and "253668" in w.bit_buttons[16].tooltip


def test_enum_fields_are_dropdowns_and_write_through():
    w = lvt_timer()
    mode = w.field_controls["timer_mode"]
    assert isinstance(mode, W.Dropdown)
    assert dict((v, k) for k, v in mode.options)[1] == "periodic (1)"
    mode.value = 0
    assert w.value == 0x000100EC and w.bit_buttons[17].value is False
    click(w.field_controls["vector"], value="0x20")
    assert w.register_value["vector"] == 0x20


def test_value_box_accepts_hex_dec_and_bin():
    w = lvt_timer()
    click(w.value_box, value="0x000000ec")
    assert w.value == 0xEC and w.bit_buttons[16].value is False
    w.format_selector.value = "dec"
    assert w.value_box.value == "236"
    click(w.value_box, value="237")
    assert w.value == 237
    w.format_selector.value = "bin"
    assert w.value_box.value == "0b" + format(237, "032b")
    assert "dec 237" in w.all_formats.value


def test_bad_input_is_reported_and_the_widget_keeps_its_value():
    w = lvt_timer()
    click(w.value_box, value="0x1ffffffff")  # ipywidgets logs the exception; the status shows it
    assert w.value == 0x000300EC and w.value_box.value == "0x000300ec"
    assert "does not fit" in w.status.value


def test_read_only_view_disables_every_control():
    w = lvt_timer(editable=False)
    assert all(b.disabled for b in w.bit_buttons.values())
    assert all(c.disabled for c in w.field_controls.values())
    assert w.value_box.disabled and w.write_button.layout.display == "none"


def test_on_write_gets_the_new_int():
    written = []
    w = lvt_timer(on_write=written.append)
    click(w.bit_buttons[16], value=False)
    w.write_button.click()
    assert written == [0x000200EC]
    assert type(written[0]) is int
    assert "wrote" in w.status.value


def test_on_write_errors_show_in_the_status():
    def refuse(value):
        raise Unsupported("the stub cannot write this register")

    w = lvt_timer(on_write=refuse)
    w.write_button.click()
    assert "cannot write" in w.status.value
    with pytest.raises(Unsupported):
        w.write()  # called directly, the error reaches the caller


def test_volatile_and_read_only_registers_are_refused_unless_asked():
    ccr = decode("TIMER_CCR", 1234)
    with pytest.raises(Unsupported, match="volatile"):
        BitfieldWidget(ccr, editable=True)
    assert BitfieldWidget(ccr, editable=True, allow_volatile=True).editable
    with pytest.raises(Unsupported, match="side effects"):
        BitfieldWidget(decode("ICR", 0), editable=True)
    with pytest.raises(Unsupported, match="read-only"):
        BitfieldWidget(decode("LAPIC_VERSION", 0x50014), on_write=print)
    BitfieldWidget(ccr)  # looking is always fine


def test_split_field_and_wide_registers():
    w = BitfieldWidget(decode("TIMER_DCR", 0x3), editable=True)
    w.field_controls["divide"].value = 0b111
    assert w.value == 0xB
    w.toggle(3)
    assert w.register_value["divide"].enum == "div16"
    isr = BitfieldWidget(decode("ISR", 1 << 236))
    assert len(isr.bit_buttons) == 256 and isr.bit_buttons[236].value is True
    base = BitfieldWidget(decode("IA32_APIC_BASE", 0xFEE00900), editable=True)
    assert base.field_controls["base"].value == "0xfee00000"
    click(base.field_controls["base"], value="0xfec00000")
    assert base.value == 0xFEC00900


def test_compare_highlights_changed_bits_and_fields():
    before = decode("LVT_TIMER", 0x000300EC)
    w = BitfieldWidget(before.replace(mask=0), compare=before)
    assert w.bit_buttons[16].style.button_color != w.bit_buttons[17].style.button_color
    assert w._changed() == {"mask"}
    bundle = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "LVT_TIMER" in bundle["text/html"]


def test_snapshot_widget_lists_registers_and_opens_a_bitfield():
    text = DATA.read_text()
    first = LapicSnapshot.from_text(text, location="hit 1")
    later = LapicSnapshot.from_text(text.replace("0x000300ec", "0x000200ec"), location="hit 2")
    view = SnapshotWidget(later, compare=first)
    assert list(view.rows) == list(later)
    assert view.changes == {"LVT_TIMER": ["mask"]}
    assert "mask=0 (not_masked)" in view.summaries["LVT_TIMER"].value
    view.rows["LVT_TIMER"].click()
    (detail,) = view.detail.children
    assert isinstance(detail, BitfieldWidget) and detail.value == 0x000200EC
    assert detail._changed() == {"mask"}
    assert "text/html" in view._repr_mimebundle_()


def test_static_html_has_the_figure_and_legend():
    html = register_html(decode("LVT_TIMER", 0x000300EC), changed=["mask"])
    assert html.count("<table") == 2
    assert ">31<" in html and ">0<" in html
    assert "periodic" in html and "masked" in html
    assert "Figure 10-8" in html
    layout = spec_html(decode("TIMER_DCR", 0).spec)
    assert "divide" in layout and "div128" in layout
