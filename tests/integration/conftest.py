"""
conftest.py: fixtures that start the real bulwarkd on free loopback ports.

  bulwark   a factory: bulwark(overrides={...}, users=True) starts a daemon
            with the test config deep-merged with overrides, waits for its
            220, adds the standard users (alice, bob, carol@example.org and
            team@ -> alice, bob). Every daemon is stopped with SIGTERM at the
            end of the test; a non-zero exit or a sanitizer report fails it.
  mx        one such daemon with the default test config, shared by a module.
  sink      an in-process GatedSink (gated_sink.py) for one test;
            test_outbound*.py override it with their sink.py process.

On a failing test the tail of each live daemon's log is attached to the report.
"""

import re

import pytest

import bulwark_helpers as H


class DaemonFactory:
    def __init__(self, tmp_path_factory, label):
        self.tmp_path_factory = tmp_path_factory
        self.label = label
        self.daemons = []

    def __call__(self, overrides=None, users=True, start=True, name=None):
        workdir = self.tmp_path_factory.mktemp(re.sub(r"[^A-Za-z0-9_.-]", "_", name or self.label)[:40])
        d = H.Daemon(workdir, overrides, name=name or self.label)
        self.daemons.append(d)
        if start:
            d.start()
            if users:
                d.add_standard_users()
        return d

    def cleanup(self):
        problems = []
        for d in self.daemons:
            was_running = d.running()
            if d.proc is not None and not was_running and not d.reaped:
                problems.append(f"{d.name}: bulwarkd died during the test with exit "
                                f"{d.proc.returncode}\n{d.log_tail()}")
            if d.proc is not None:
                rc = d.stop()
                if was_running and rc != 0:
                    problems.append(f"{d.name}: bulwarkd exited {rc} on SIGTERM, expected 0\n"
                                    f"{d.log_tail()}")
            reports = d.sanitizer_reports()
            if reports:
                problems.append(f"{d.name}: sanitizer reports:\n" + "\n".join(reports[:20]) +
                                "\n" + d.log_tail(80))
            if d in H.LIVE_DAEMONS:
                H.LIVE_DAEMONS.remove(d)
        self.daemons = []
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def bulwark(tmp_path_factory, request):
    f = DaemonFactory(tmp_path_factory, request.node.name.replace("[", "_").replace("]", ""))
    yield f
    f.cleanup()


@pytest.fixture(scope="module")
def module_bulwark(tmp_path_factory, request):
    f = DaemonFactory(tmp_path_factory, request.module.__name__)
    yield f
    f.cleanup()


@pytest.fixture(scope="module")
def mx(module_bulwark):
    """A daemon with the default test config and the standard users."""
    return module_bulwark(name="mx")



@pytest.fixture
def sink():
    from gated_sink import GatedSink   # here: aiosmtpd only where it is used
    s = GatedSink()
    yield s
    s.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in list(H.LIVE_DAEMONS):
            rep.sections.append((f"bulwarkd log ({d.name})", d.log_tail(40)))

