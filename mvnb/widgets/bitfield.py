"""An interactive register: a bit ruler, field controls and a hex/dec/bin value box.

Built from standard ipywidgets 8 controls. Reading it is like reading the SDM's register
figure (Intel SDM Vol. 3A, Order Number 253668-068US, e.g. Figure 10-8 for the LVT): one
cell per bit, numbered, reserved bits shaded, field names and values below, descriptions
and the manual reference in tooltips. With ``editable=True`` bits and fields change the
value; ``on_write`` (optional) is called with the new int when the user presses Write.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as W

from ..errors import Unsupported
from ..regs._figure import CHANGED_COLOR, field_color, field_tooltip, rows, spec_tooltip
from ..regs.codec import insert
from ..regs.html import register_html
from ..regs.spec import FieldSpec
from ..regs.value import RegisterValue, diff_rows

__all__ = ["BitfieldWidget"]

CELL = "26px"


class BitfieldWidget(W.VBox):
    """A register value as a bitfield; ``widget.value`` is the current raw int.

    ``compare`` (another value of the same register) highlights the bits and fields that
    differ. Volatile or side-effect registers refuse ``editable=True`` unless
    ``allow_volatile=True``; read-only ones refuse ``on_write``.
    """

    def __init__(
        self,
        register_value: RegisterValue,
        editable: bool = False,
        on_write: Callable[[int], object] | None = None,
        *,
        allow_volatile: bool = False,
        compare: RegisterValue | None = None,
    ) -> None:
        spec = register_value.spec
        if editable and (spec.volatile or spec.side_effects) and not allow_volatile:
            why = (
                "is volatile (it changes by itself)"
                if spec.volatile
                else (f"has side effects ({spec.side_effects})")
            )
            raise Unsupported(
                f"{spec.name} {why}: a value edited here would be stale or act on the target; "
                "pass allow_volatile=True to edit it anyway"
            )
        if on_write is not None and spec.access == "ro":
            raise Unsupported(f"{spec.name} is read-only: there is nothing to write it back to")
        self.spec = spec
        self.editable = editable
        self.on_write = on_write
        self.initial = register_value
        self.compare = compare
        self._raw = int(register_value)
        self._syncing = False

        self.output = W.Output()
        self.status = W.HTML()
        self.header = W.HTML(tooltip=spec_tooltip(spec))
        self.bit_buttons: dict[int, W.ToggleButton] = {}
        self._bit_colors: dict[int, str] = {}
        self.field_labels: dict[str, list[W.HTML]] = {}
        self.field_controls: dict[str, W.Widget] = {}
        self.value_box = W.Text(
            description="value",
            disabled=not editable,
            continuous_update=False,
            layout=W.Layout(width="420px"),
        )
        self.format_selector = W.ToggleButtons(
            options=["hex", "dec", "bin"],
            value="hex",
            style={"button_width": "48px"},
        )
        self.all_formats = W.HTML()
        self.write_button = W.Button(
            description="Write",
            icon="upload",
            disabled=not (editable and on_write),
            tooltip=f"call on_write with the new value of {spec.name}",
            layout=W.Layout(display="" if on_write is not None else "none"),
        )
        ruler = self._build_ruler()
        fields = self._build_fields()
        self._wire()
        self._sync()
        value_row = W.HBox([self.value_box, self.format_selector, self.write_button])
        super().__init__(
            [self.header, ruler, value_row, self.all_formats, fields, self.status, self.output]
        )

    # --- layout -------------------------------------------------------------------------

    def _build_ruler(self) -> W.VBox:
        spec, lines = self.spec, []
        cell = W.Layout(width=CELL, min_width=CELL, margin="0", padding="0")
        for row in rows(spec):
            numbers, buttons, names = [], [], []
            for seg in row:
                color = field_color(spec, seg.field)
                for bit in range(seg.msb, seg.lsb - 1, -1):
                    numbers.append(W.HTML(f"<center><small>{bit}</small></center>", layout=cell))
                    button = W.ToggleButton(
                        description="0",
                        tooltip=f"bit {bit}\n" + field_tooltip(spec, seg.field, bit),
                        disabled=seg.field is None or not self.editable,
                        layout=W.Layout(width=CELL, min_width=CELL, margin="0", padding="0"),
                    )
                    button.style.button_color = color
                    self._bit_colors[bit] = color
                    self.bit_buttons[bit] = button
                    buttons.append(button)
                width = f"calc({seg.width} * {CELL})"
                label = W.HTML(
                    layout=W.Layout(
                        width=width,
                        min_width=width,
                        margin="0",
                        overflow="hidden",
                        border="1px solid #999",
                    ),
                    tooltip=field_tooltip(spec, seg.field, seg.lsb),
                )
                if seg.field is not None:
                    self.field_labels.setdefault(seg.field.name, []).append(label)
                else:
                    label.value = f'<div style="background:{color};height:100%">&nbsp;</div>'
                names.append(label)
            lines += [W.HBox(numbers), W.HBox(buttons), W.HBox(names)]
        return W.VBox(lines)

    def _build_fields(self) -> W.GridBox:
        items: list[W.Widget] = []
        for f in self.spec.fields:
            tip = field_tooltip(self.spec, f)
            control = self._control(f)
            control.tooltip = tip
            self.field_controls[f.name] = control
            items += [
                W.HTML(f"<b>{escape(f.name)}</b> <small>[{f.bits_text}]</small>", tooltip=tip),
                control,
            ]
        return W.GridBox(items, layout=W.Layout(grid_template_columns="220px 320px"))

    def _control(self, f: FieldSpec) -> W.Widget:
        disabled = not self.editable or f.access == "ro"
        if f.enum:
            options = [(f"{e.name} ({e.value})", e.value) for e in f.enum]
            named = {e.value for e in f.enum}
            if f.width <= 4:
                options += [(f"{v} (undefined)", v) for v in range(1 << f.width) if v not in named]
            return W.Dropdown(options=sorted(options, key=lambda o: o[1]), disabled=disabled)
        if f.width == 1:
            return W.Checkbox(indent=False, disabled=disabled)
        return W.Text(disabled=disabled, continuous_update=False)

    # --- wiring -------------------------------------------------------------------------

    def _wire(self) -> None:
        for bit, button in self.bit_buttons.items():
            button.observe(lambda ch, bit=bit: self._guard(self._on_bit, bit, ch), names="value")
        for name, control in self.field_controls.items():
            control.observe(lambda ch, n=name: self._guard(self._on_field, n, ch), names="value")
        self.value_box.observe(lambda ch: self._guard(self._on_value_box, ch), names="value")
        self.format_selector.observe(lambda ch: self._sync(), names="value")
        self.write_button.on_click(lambda _b: self._guard(self.write))

    def _guard(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a callback inside the Output widget so a traceback shows in the notebook."""
        if self._syncing:
            return None
        with self.output:
            try:
                return fn(*args)
            except Exception as exc:
                self.status.value = f'<span style="color:#b00">{escape(str(exc))}</span>'
                self._sync()
                raise

    def _on_bit(self, bit: int, change: dict[str, Any]) -> None:
        self.value = (self._raw | (1 << bit)) if change["new"] else (self._raw & ~(1 << bit))

    def _on_field(self, name: str, change: dict[str, Any]) -> None:
        f = self.spec.field(name)
        new = change["new"]
        number = int(new, 0) if isinstance(new, str) else int(new)
        self.value = insert(f, self._raw, number)

    def _on_value_box(self, change: dict[str, Any]) -> None:
        text = change["new"].strip().replace("_", "")
        base = {"hex": 16, "dec": 10, "bin": 2}[self.format_selector.value]
        try:
            number = int(text, 0)
        except ValueError:
            number = int(text, base)
        self.value = number

    # --- state --------------------------------------------------------------------------

    @property
    def value(self) -> int:
        """The current raw value."""
        return self._raw

    @value.setter
    def value(self, raw: int) -> None:
        self._raw = int(RegisterValue(self.spec, raw))
        self.status.value = ""
        self._sync()

    @property
    def register_value(self) -> RegisterValue:
        """The current value, decoded."""
        return RegisterValue(self.spec, self._raw)

    def set_bit(self, bit: int, on: bool = True) -> None:
        """Set or clear one bit as a click on its cell would (editable widgets only)."""
        self.bit_buttons[bit].value = bool(on)

    def toggle(self, bit: int) -> None:
        """Flip one bit as a click on its cell would."""
        self.set_bit(bit, not (self._raw >> bit) & 1)

    def write(self) -> None:
        """Call ``on_write`` with the current value (what the Write button does)."""
        if not self.editable or self.on_write is None:
            raise Unsupported(f"this {self.spec.name} widget was not made editable with on_write")
        self.on_write(self._raw)
        self.initial = self.register_value
        self.status.value = f"wrote <code>{self.register_value.hex()}</code>"

    def _changed(self) -> set[str]:
        if self.compare is None:
            return set()
        return {str(r["field"]) for r in diff_rows(self.compare, self.register_value)}

    def _sync(self) -> None:
        """Push the raw value into every control without re-triggering callbacks."""
        self._syncing = True
        try:
            rv, raw = self.register_value, self._raw
            changed = self._changed()
            diff_bits = raw ^ int(self.compare) if self.compare is not None else 0
            for bit, button in self.bit_buttons.items():
                on = bool((raw >> bit) & 1)
                button.value, button.description = on, str(int(on))
                changed_bit = (diff_bits >> bit) & 1
                button.style.button_color = CHANGED_COLOR if changed_bit else self._bit_colors[bit]
            fields = rv.fields
            for name, control in self.field_controls.items():
                fv = fields[name]
                if isinstance(control, W.Dropdown):
                    control.value = int(fv)
                elif isinstance(control, W.Checkbox):
                    control.value = bool(fv)
                else:
                    control.value = fv.number_text()
                bg = CHANGED_COLOR if name in changed else field_color(self.spec, fv.spec)
                for i, label in enumerate(self.field_labels.get(name, ())):
                    text = f"{escape(name)}={escape(str(fv))}" if i == 0 else "&nbsp;"
                    label.value = (
                        f'<div style="background:{bg};text-align:center;font-size:11px;'
                        f'white-space:nowrap">{text}</div>'
                    )
            fmt = self.format_selector.value
            width = self.spec.width
            self.value_box.value = {
                "hex": rv.hex(),
                "dec": str(raw),
                "bin": f"{raw:#0{width + 2}b}",
            }[fmt]
            self.all_formats.value = (
                f"<code>hex {rv.hex()} · dec {raw} · bin {raw:#0{width + 2}b}</code>"
            )
            self.header.value = (
                f"<b>{escape(self.spec.name)}</b> = <code>{rv.hex()}</code> — "
                f"{escape(self.spec.title)} <small>[{escape(str(self.spec.reference))}]</small>"
            )
        finally:
            self._syncing = False

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """The widget view plus the static figure for frontends and posts without widgets."""
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/html"] = register_html(self.register_value, changed=self._changed())
        return bundle
