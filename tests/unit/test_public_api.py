"""The library's public face: what `import celestial_ssh` offers, and what it never pulls in."""

from __future__ import annotations

import subprocess
import sys

import celestial_ssh


def test_the_api_names_are_exported() -> None:
    for name in (
        "migrate",
        "Migration",
        "MigrationOptions",
        "ConnectionSettings",
        "MigrationReport",
        "MigrationFailed",
        "run_batch",
        "load_plan",
        "evacuate",
        "doctor",
        "list_containers",
        "recover",
        "load_inventory",
        "append_report",
    ):
        assert name in celestial_ssh.__all__
        assert getattr(celestial_ssh, name) is not None


def test_the_library_never_imports_a_user_interface_toolkit() -> None:
    code = (
        "import sys, celestial_ssh;"
        "print(sorted(m for m in ('click', 'rich', 'aiohttp') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_package_ships_its_type_information() -> None:
    from importlib.resources import files

    assert files("celestial_ssh").joinpath("py.typed").is_file()
