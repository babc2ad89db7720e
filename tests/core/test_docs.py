"""Documentation stays in step with the code."""

from __future__ import annotations

import inspect
import re

import click

from conveyor import hookspecs


def spec_functions():
    return {
        name: fn
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, "conveyor_spec")
    }


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


# -- docs/cli.md against the click tree -----------------------------------------------------

_WORD = re.compile(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*")


def command_tree(pm) -> dict[tuple[str, ...], click.Command]:
    """Every command of ``make_cli(pm)`` by its path of names (the root is ``()``)."""
    from conveyor.cli import make_cli

    found: dict[tuple[str, ...], click.Command] = {}

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        found[path] = command
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), (*path, name))

    walk(make_cli(pm, strict=True), ())
    return found


def long_options(command: click.Command) -> set[str]:
    return {
        o
        for p in command.params
        if isinstance(p, click.Option)
        for o in (*p.opts, *p.secondary_opts)
        if o.startswith("--")
    } - {"--help"}


def mentions(option: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def cli_sections(text: str) -> list[tuple[tuple[str, ...], tuple[str, ...], str]]:
    """``(command path, sub-commands listed a|b|c, section text)`` per ``## conveyor`` heading."""
    out = []
    for heading, body in re.findall(r"^## (.*?)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S):
        words = heading.split()
        assert words[0] == "conveyor", f"docs/cli.md heading {heading!r} is not a command"
        path: list[str] = []
        subs: tuple[str, ...] = ()
        for word in words[1:]:
            if not _WORD.fullmatch(word):
                break
            if "|" in word:
                subs = tuple(word.split("|"))
                break
            path.append(word)
        out.append((tuple(path), subs, f"{heading}\n{body}"))
    return out


def test_cli_reference_matches_the_click_tree(repo_root, plugin_manager):
    """Every command and option is in docs/cli.md, and everything it names exists."""
    text = (repo_root / "docs" / "cli.md").read_text()
    tree = command_tree(plugin_manager)
    sections = cli_sections(text)
    preamble = text.split("\n## ", 1)[0]
    root_options = long_options(tree[()])
    problems = [
        f"`conveyor {o}` is not described"
        for o in sorted(root_options)
        if not mentions(o, preamble)
    ]
    for path, command in tree.items():
        name = " ".join(path)
        owners = [
            body for p, subs, body in sections if p == path or (p == path[:-1] and path[-1] in subs)
        ]
        if not path:
            continue
        if not owners:
            problems.append(f"`conveyor {name}` is not documented")
        problems += [
            f"`conveyor {name} {o}` is not described"
            for o in sorted(long_options(command))
            if owners and not any(mentions(o, body) for body in owners)
        ]
    for path, subs, body in sections:
        name = " ".join(path)
        if path not in tree:
            problems.append(f"`conveyor {name}` is documented but does not exist")
            continue
        problems += [
            f"`conveyor {name} {sub}` is documented but does not exist"
            for sub in subs
            if (*path, sub) not in tree
        ]
        known = root_options | {
            o for p, c in tree.items() if p[: len(path)] == path for o in long_options(c)
        }
        problems += [
            f"{o} is named under `conveyor {name}`, which has no such option"
            for o in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", body)))
            if o not in known
        ]
    for span in re.findall(r"`conveyor ([^`]*)`", text):
        path = ()
        for word in span.split():
            if not isinstance(tree[path], click.Group) or word.startswith(("-", "[")):
                break
            if (*path, word) not in tree:
                problems.append(f"`conveyor {span}` names no command")
                break
            path = (*path, word)
    assert not problems, "docs/cli.md is out of date:\n" + "\n".join(problems)
