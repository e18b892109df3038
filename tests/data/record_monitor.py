"""Record QEMU monitor text from the Debian cloud guest on QEMU 7.2 and QEMU 10 into tests/data.

Run from the checkout (needs the cached guest and ``mvnb qemu fetch --version 10.0``):

    python tests/data/record_monitor.py [NAME ...]

Each recording boots one guest with ``mvnb.boot_to`` and writes the monitor's text verbatim
except that QEMU's CRLF line ends become LF. tests/data/README.md says how each file was made.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import mvnb

HERE = Path(__file__).parent
X2APIC = ["-cpu", "max", "-device", "intel-iommu,intremap=on,eim=on"]
#: name → (qemu, machine, extra_args, stop at, {file: monitor command})
RECORDINGS = {
    "qemu72_microvm": ("7.2", "microvm", [], "lapic_cal_handler", {
        "info_pic_qemu72_microvm.txt": "info pic",
        "info_registers_qemu72_microvm.txt": "info registers",
        "info_mtree_qemu72_microvm.txt": "info mtree",
    }),
    "qemu72_pc": ("7.2", "pc", [], "lapic_cal_handler", {
        "info_lapic_qemu72_pc.txt": "info lapic",
        "info_pic_qemu72_pc.txt": "info pic",
    }),
    "qemu10_microvm": ("10.0", "microvm", ["-cpu", "max"], "lapic_cal_handler", {
        "info_lapic_qemu10_microvm.txt": "info lapic",
        "info_pic_qemu10_microvm.txt": "info pic",
        "info_registers_qemu10_microvm.txt": "info registers",
        "info_mtree_qemu10_microvm.txt": "info mtree",
    }),
    "qemu10_pc": ("10.0", "pc", [], "lapic_cal_handler", {
        "info_lapic_qemu10_pc.txt": "info lapic",
        "info_pic_qemu10_pc.txt": "info pic",
    }),
    "qemu10_q35": ("10.0", "q35", X2APIC, "lapic_cal_handler", {
        "info_lapic_qemu10_q35_x2apic.txt": "info lapic",
        "info_pic_qemu10_q35.txt": "info pic",
    }),
    "qemu10_q35_smp": ("10.0", "q35", [
        *X2APIC, "-smp", "1,sockets=2,cores=16,threads=1,maxcpus=32",
        "-device", "max-x86_64-cpu,socket-id=1,core-id=0,thread-id=0",
    ], "native_smp_cpus_done", {
        "info_lapic_qemu10_q35_x2apic_cpu0_smp.txt": "info lapic 0",
        "info_lapic_qemu10_q35_x2apic_cpu16.txt": "info lapic 16",
    }),
}
#: Only the lines of ``info mtree`` that show the interrupt controllers' MMIO windows.
MTREE_KEEP = ("address-space: memory", "ioapic", "apic-msi", "hpet", "iommu", "dmar")


def record(name: str) -> None:
    qemu, machine, extra, location, files = RECORDINGS[name]
    guest = mvnb.guests.debian_cloud(progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        vm, s, stop = mvnb.boot_to(guest, location, qemu=qemu, machine=machine,
                                   extra_args=extra, timeout=120)
    with vm:
        print(f"{name}: QEMU {vm.qemu_build.version} {machine} {guest.name} at {stop}")
        for filename, command in files.items():
            text = s.monitor(command).replace("\r\n", "\n")
            if command == "info mtree":  # the "address-space: memory" block, APIC lines
                block = next(b for b in text.split("\n\n")
                             if "address-space: memory" in b.splitlines())
                text = "\n".join(line for line in block.splitlines()
                                 if any(k in line for k in MTREE_KEEP)) + "\n"
            (HERE / filename).write_text(text)
            print(f"  {filename}: {len(text.splitlines())} lines")
        print("  x2apic_mode =", int(s.eval("x2apic_mode")),
              "stderr:", vm.stderr_path.read_text().strip() or "(empty)")


if __name__ == "__main__":
    for name in sys.argv[1:] or RECORDINGS:
        record(name)
