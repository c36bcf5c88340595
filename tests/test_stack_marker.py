"""The guard of the `stack` marker, run on a small suite of its own."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)

SUITE = """
import pytest

@pytest.fixture
def stack_up():
    return "the stack"

@pytest.fixture
def namespace(stack_up):
    return "a namespace"

def test_pure():
    pass

@pytest.mark.stack
def test_marked(namespace):
    pass

def test_unmarked(namespace):
    pass

@pytest.mark.parametrize("namespace", ["a value of the same name"])
def test_parametrized(namespace):
    pass

@pytest.mark.stack
class TestMarkedClass:
    def test_inside(self, stack_up):
        pass
"""


def test_an_unmarked_test_using_a_stack_fixture_fails_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nmarkers =\n    stack: needs the stack\n"
    )
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess("-p", "tests.stack_marker", "--strict-markers")
    # It fails in setup, before any fixture reaches for the stack: pytest reports that as an error.
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*test_unmarked uses namespace, stack_up, which need the running stack*"])
