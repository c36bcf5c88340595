"""The console's browser tests run on the demo's platform and browser (tests/demo's fixtures)."""

from tests.demo.test_demo_browser import browser, demo  # noqa: F401 (fixtures, re-exported)
