"""Documentation stays in step with the code."""

from __future__ import annotations

import inspect
import re

from conveyor import hookspecs


def spec_functions():
    return {name: fn for name, fn in vars(hookspecs).items()
            if inspect.isfunction(fn) and hasattr(fn, "conveyor_spec")}


def test_every_hook_spec_has_a_docstring():
    for name, fn in spec_functions().items():
        assert inspect.getdoc(fn), f"hook spec {name} has no docstring"


def test_every_hook_spec_is_documented_with_its_docstring(repo_root):
    text = (repo_root / "docs" / "plugins" / "hooks.md").read_text()
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    specs = spec_functions()
    assert set(sections) == set(specs), "docs/plugins/hooks.md headings != hook specs"
    for name, fn in specs.items():
        signature = f"`{name}({', '.join(inspect.signature(fn).parameters)})`"
        assert signature in sections[name], f"{name}: signature in docs is stale"
        assert inspect.getdoc(fn) in sections[name], f"{name}: docstring in docs is stale"
        assert "```python" in sections[name], f"{name}: no example"


def test_cli_reference_names_every_core_command(repo_root):
    from conveyor.cli import core_commands

    text = (repo_root / "docs" / "cli.md").read_text()
    for command in core_commands():
        assert f"conveyor {command.name}" in text, f"docs/cli.md lacks `conveyor {command.name}`"
