"""Locust stays in its subprocess: the harness never imports it (its import patches the interpreter with
gevent), and its pytest plugin does not load into the project's test runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests._children import child_env


@pytest.mark.behaviour("load.locust_isolated")
class TestLocustIsNeverImported:
    def test_not_by_the_harness_its_cli_or_the_load_package(self) -> None:
        """Importing the load package and running its CLI's help leaves locust and gevent unimported."""
        code = (
            "import sys, harness.load, harness._load_cli, harness.cli\n"
            "from click.testing import CliRunner\n"
            "CliRunner().invoke(harness.cli.cli, ['load', 'run', '--help'])\n"
            "roots = ('locust', 'gevent', 'pytest_locust')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in roots))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **child_env()},
            timeout=60,
        )
        assert done.stdout.strip() == "[]", done.stdout + done.stderr

    def test_not_by_this_test_run(self) -> None:
        """After the load level's runs in this process, neither locust nor gevent was imported here."""
        assert not [m for m in sys.modules if m.split(".")[0] in ("locust", "gevent")]

    def test_its_pytest_plugin_is_disabled(self, pytestconfig: pytest.Config) -> None:
        """Locust registers a pytest11 plugin (pytest_locust: a --host option, session fixtures); the project
        disables it in its pytest options, as it does pact's."""
        assert not pytestconfig.pluginmanager.has_plugin("locust")
