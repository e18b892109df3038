"""Shared fixtures: the real Debian guest under real QEMU, driven by real GDB.

Live fixtures are module-scoped (one booted guest per test module where state allows);
a test that breaks its guest boots its own with ``boot``. At the end of the run, any
``qemu-system`` or ``gdb`` process this run started and left behind fails the run.

Every test that boots QEMU runs once per QEMU build of ``--qemu`` (default: ``$MVNB_QEMU``
if set, else ``system,10.0``: Debian's QEMU and the cached QEMU 10): the session-scoped
``qemu_build`` parameter, which ``boot`` and ``calibrating`` depend on and which every test
marked ``live`` that takes ``guest`` (or ``generic``) gets too. Test ids end in
``[qemu7.2]`` / ``[qemu10.0]``. From before such a test's fixtures are set up, ``MVNB_QEMU``
names its build, so module fixtures and test bodies that call ``mvnb.Qemu(guest)`` or
``boot_to`` start it too; other items (notebooks too) see the run's own value. A test
that needs particular builds says which and why with ``@pytest.mark.qemu("10", reason=...)``
(a version prefix); it is skipped, with the reason, when ``--qemu`` selects none of them. A
build that is not cached is skipped with the command that fetches it. A notebook that boots
a particular build itself names it in its metadata (``mvnb.qemu``, whatever ``--qemu``
says) and is skipped the same way when that build is not cached.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import children

import mvnb
from mvnb.errors import Error
from mvnb.vm.builds import QemuBuild, qemu_builds, resolve_qemu

DEFAULT_QEMUS = "system,10.0"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--qemu", default=None,
        help="comma-separated QEMU builds the live tests run on: 'system' (the OS's "
             "qemu-system-x86_64), a cached version such as 10.0, or a path "
             f"(default: $MVNB_QEMU if set, else {DEFAULT_QEMUS!r})")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "qemu(version, reason): runs only on QEMU builds whose version starts "
                   "with `version` (e.g. '10'), for the reason given")


def _selected(config: pytest.Config) -> list[str]:
    text = config.getoption("--qemu") or os.environ.get("MVNB_QEMU") or DEFAULT_QEMUS
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


@functools.cache
def _resolve(spec: str) -> QemuBuild:
    if spec == "system":
        system = [b for b in qemu_builds() if b.origin == "system"]
        if not system:
            raise Error("no system qemu-system-x86_64: `apt-get install qemu-system-x86`")
        return system[0]
    return resolve_qemu(spec)


def _matches(build: QemuBuild, prefix: str) -> bool:
    want = tuple(int(x) for x in prefix.split("."))
    return build.version_tuple[:len(want)] == want


#: Live modules that run on the first build of --qemu only, and why: what they test does
#: not depend on the QEMU version, and the suite must stay well under 15 minutes on 2 cores.
ONE_BUILD = {
    "test_symbols_live.py": "symbols, KASLR and GDB's offsets are the kernel's and GDB's, "
                            "not QEMU's",
    "test_values_live.py": "GDB's values as Python objects: no QEMU in them",
    "test_lifetimes_live.py": "the lifetimes of QEMU and GDB processes: the same code for "
                              "every build",
    "test_cli.py": "the demo command's own path (its boot is test_session_live's)",
    "test_hz.py": "HZ is the kernel's, not QEMU's",
    "test_sweep_live.py": "Dask's scheduling and mvnb's run timeouts and process ends: the "
                          "same for every build (a sweep's grid names its QEMU; the recorded "
                          "TSC-trap sweep ran both)",
}


def _runs_qemu(metafunc: pytest.Metafunc) -> bool:
    """A test that boots QEMU: marked live and taking a guest (``guest``, ``generic``), or
    using ``boot``/``calibrating``/``qemu_build`` itself."""
    names = set(metafunc.fixturenames)
    if "qemu_build" not in names:
        return False
    live = metafunc.definition.get_closest_marker("live") is not None
    return live or bool(names & {"boot", "calibrating"})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One instance of every test that boots QEMU per selected build (above)."""
    if not _runs_qemu(metafunc):
        return
    marker = metafunc.definition.get_closest_marker("qemu")
    params = []
    seen = set()
    for spec in _selected(metafunc.config):
        try:
            build = _resolve(spec)
        except Error as error:
            params.append(pytest.param(None, id=f"qemu{spec}", marks=pytest.mark.skip(
                reason=f"QEMU {spec}: {error} (./setup.sh test fetches QEMU 10.0)")))
            continue
        if build.binary in seen or (marker is not None and not _matches(build, marker.args[0])):
            continue  # "system" may be 10.0 already (Debian 13)
        seen.add(build.binary)
        major_minor = ".".join(map(str, build.version_tuple[:2]))
        params.append(pytest.param(build, id=f"qemu{major_minor}"))
    if not params:
        assert marker is not None
        params = [pytest.param(None, id=f"qemu{marker.args[0]}", marks=pytest.mark.skip(
            reason=f"needs QEMU {marker.args[0]} ({marker.kwargs.get('reason', 'see the test')}); "
                   f"--qemu selects {','.join(_selected(metafunc.config))}"))]
    if metafunc.definition.path.name in ONE_BUILD:
        params = params[:1]
    metafunc.parametrize("qemu_build", params, indirect=True, scope="session")


def notebook_needs_missing_build(path: Path) -> str | None:
    """Why the notebook at ``path`` cannot run here, or None.

    A notebook that boots a particular QEMU build itself (``qemu="10.0"``) names it in its
    metadata, ``"mvnb": {"qemu": {"version": "10.0", "reason": "..."}}``; when that build
    is not cached, the answer says so with the command that fetches it.
    """
    meta = json.loads(path.read_text()).get("metadata", {}).get("mvnb", {}).get("qemu")
    if not meta:
        return None
    try:
        _resolve(str(meta["version"]))
    except Error as error:
        return f"{path.name} needs QEMU {meta['version']} ({meta.get('reason', '')}): {error}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """nbval's cells of a notebook whose QEMU build is not here are skipped, with the
    command that fetches it (:func:`notebook_needs_missing_build`)."""
    missing: dict[Path, str | None] = {}
    for item in items:
        path = Path(str(item.path))
        if path.suffix != ".ipynb":
            continue
        if path not in missing:
            missing[path] = notebook_needs_missing_build(path)
        if missing[path]:
            item.add_marker(pytest.mark.skip(reason=missing[path]))


#: MVNB_QEMU as the run began: what tests that boot no QEMU of their own see.
_MVNB_QEMU = os.environ.get("MVNB_QEMU")


@pytest.fixture(scope="session")
def qemu_build(request: pytest.FixtureRequest) -> QemuBuild:
    """The QEMU build this instance of a live test runs on (see the module docstring); for
    a test that boots no QEMU (it takes ``guest`` for its files), the first of ``--qemu``."""
    return getattr(request, "param", None) or _resolve(_selected(request.config)[0])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture of a test is set up: MVNB_QEMU names the test's build, so module
    fixtures and test bodies that call ``mvnb.Qemu(guest)`` or ``boot_to`` without ``qemu=``
    start it; every other item (unit tests, notebooks under nbval) sees the run's own value."""
    callspec = getattr(item, "callspec", None)
    build = callspec.params.get("qemu_build") if callspec is not None else None
    if build is not None:
        os.environ["MVNB_QEMU"] = str(build.binary)
    elif _MVNB_QEMU is None:
        os.environ.pop("MVNB_QEMU", None)
    else:
        os.environ["MVNB_QEMU"] = _MVNB_QEMU


def _children() -> list[tuple[int, str]]:
    """Processes whose parent is this pytest process and that run qemu or gdb."""
    return children(lambda cmdline: "qemu-system" in cmdline or "gdb" in cmdline)


def live_children() -> list[tuple[int, str]]:
    return _children()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = _children()
    if left:
        print("\nprocesses left behind by the tests:")
        for pid, cmdline in left:
            print(f"  {pid} {cmdline[:160]}")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def guest(qemu_build: QemuBuild) -> mvnb.Guest:
    """The Debian cloud guest; a live test that takes it runs on every selected build."""
    return mvnb.guests.debian_cloud(progress=False)


@pytest.fixture(scope="session")
def generic(qemu_build: QemuBuild) -> mvnb.Guest:
    """Debian's generic kernel (flavour "amd64") with its own -dbg symbols, from the cache.

    Its -dbg package is an 860 MB download, fetched once by setup (`mvnb guest fetch
    --flavour amd64`); the tests that need it skip when it is not cached.
    """
    from mvnb.vm.debian import cached

    guest = cached("amd64")
    if guest is None:
        pytest.skip("Debian's generic kernel is not in the cache: run `mvnb guest fetch "
                    "--flavour amd64` (a 930 MB download) to run this test")
    return guest


@pytest.fixture
def boot(guest: mvnb.Guest, qemu_build: QemuBuild):
    """``boot(location, **qemu_args) -> (vm, session, stop)`` on the test's QEMU build;
    the VMs a test booted close when it ends (a session-wide list kept every guest of the
    run alive, and running ones busy, until the end)."""
    started: list[mvnb.Qemu] = []

    def _boot(location: str = "lapic_cal_handler", **qemu_args):
        qemu_args.setdefault("qemu", qemu_build)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            vm, session, stop = mvnb.boot_to(guest, location, **qemu_args)
        started.append(vm)
        return vm, session, stop

    yield _boot
    for vm in started:
        vm.close()


@pytest.fixture(scope="module")
def calibrating(guest: mvnb.Guest,
                qemu_build: QemuBuild) -> Iterator[tuple[mvnb.Qemu, mvnb.Session]]:
    """One guest per module and build, stopped at the first ``lapic_cal_handler`` hit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        vm, session, _ = mvnb.boot_to(guest, "lapic_cal_handler", qemu=qemu_build)
    with vm:
        yield vm, session
