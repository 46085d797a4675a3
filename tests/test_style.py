"""What the code promises about itself: every command-line option explains itself, and the layers import only
downwards (the library never imports the UI or training; models never import data or evaluation; nothing inside
the package imports its root, where the public names are gathered)."""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (
    "app",
    "cxr_studio.benchmark",
    "cxr_studio.evaluate",
    "cxr_studio.dicom.export",
    "cxr_studio.synthesize",
    "cxr_studio.data.ingest",
    "cxr_studio.data.merge",
    "cxr_studio.data.prepare",
    "cxr_studio.data.phantom",
    "cxr_studio.evaluation.device_removal",
    "cxr_studio.evaluation.placement",
    "cxr_studio.evaluation.prompt_sheet",
    "cxr_studio.evaluation.quick",
    "cxr_studio.evaluation.reid",
    "training.benchmark",
    "training.export",
    "training.train_autoencoder",
    "training.train_cascade",
    "training.train_latent_diffusion",
    "training.finetune",
    "training.adaptation_experiment",
    "training.train_super_resolution",
)


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def _says_what(help_text: str | None) -> bool:
    """A description beyond the default value ("(default 8)" alone says nothing about what the option does)."""
    return bool(re.sub(r"\(default[^)]*\)", "", help_text or "").strip(" .;,"))


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_line_option_has_a_help_line(module, monkeypatch):
    def capture(parser, *args, **kwargs):
        raise _Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Parsed) as parsed:
        importlib.import_module(module).main([])
    silent = [
        "/".join(action.option_strings) or action.dest
        for action in parsed.value.parser._actions
        if not isinstance(action, argparse._HelpAction) and not _says_what(action.help)
    ]
    assert not silent, f"{module}: options without a help line: {silent}"


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("cxr_studio", "training"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, *, module_level_only: bool) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import in ``path`` (relative imports resolved are not used in this code)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.module, [alias.name for alias in node.names]))
        elif module_level_only and isinstance(node, ast.If):  # e.g. TYPE_CHECKING blocks: not run
            continue
    return out


def test_the_layers_import_only_downwards():
    modules = _modules()
    problems = []
    for name, path in modules.items():
        for target, names in _imports(path, module_level_only=False):
            top = target.split(".")[0]
            if name.startswith("cxr_studio") and top in ("gradio", "training", "app"):
                problems.append(f"{name} imports {target}: the library never imports the UI or training")
            if name.startswith("cxr_studio.models") and target.startswith(
                ("cxr_studio.data", "cxr_studio.evaluation")
            ):
                problems.append(f"{name} imports {target}: models never import data or evaluation")
            if name.startswith("cxr_studio.") and target == "cxr_studio":
                roots = [n for n in names if f"cxr_studio.{n}" not in modules]
                if roots:
                    problems.append(f"{name} imports {roots} from the package root: import them from their module")
            if name.startswith("training") and top == "app":
                problems.append(f"{name} imports the app")
    assert not problems, "\n".join(problems)


def test_no_import_circle_including_imports_inside_functions():
    """Imports form no cycle, counting those inside functions (a lazy import still ties two modules together)."""
    modules = _modules()
    graph = {
        name: {
            target if target in modules else f"{target}.{n}"
            for target, names in _imports(path, module_level_only=False)
            for n in (names or [""])
            if (target in modules or f"{target}.{n}" in modules) and target.split(".")[0] in ("cxr_studio", "training")
        }
        - {name}
        for name, path in modules.items()
    }
    graph = {name: {t for t in targets if t in modules} for name, targets in graph.items()}
    # a package's __init__ importing its submodules is how packages gather names, not a circle
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in graph[node]:
            if target.startswith(node + "."):
                continue
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def test_only_the_model_folders_module_opens_a_folders_index():
    """What a model folder is has one owner: no other module names ``model_index.json`` as a path (the cascade's
    reader and writer, ``checkpoints``, writes and checks its own)."""
    owners = {"cxr_studio.model_folders", "cxr_studio.checkpoints"}
    readers = [
        name
        for name, path in _modules().items()
        if name not in owners
        and any(
            isinstance(node, ast.Constant) and node.value == "model_index.json"
            for node in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert not readers, readers


def _recipe_commands(script: Path) -> list[tuple[str, list[str]]]:
    """``(module, arguments)`` of every ``python -m`` line of a recipe script: variables as placeholders, argument
    arrays spelled out, each call of its ``latent`` helper as the helper's command plus the call's own flags."""
    import shlex

    text = script.read_text().replace("\\\n", " ")
    lines = [line.split("  #")[0].strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    arrays = {m[1]: m[2] for line in lines if (m := re.match(r"(\w+)=\((.*)\)$", line))}

    def words(command: str) -> list[str]:
        for name, body in arrays.items():
            command = command.replace(f'"${{{name}[@]}}"', body)
        return ["1" if "$" in word else word for word in shlex.split(command.replace('"$@"', ""))]

    helper = next(words(line[line.index("python -m") :]) for line in lines if "python -m" in line and '"$@"' in line)
    commands = []
    for line in lines:
        if "python -m" in line and line[line.index("python -m") :] != " ".join(helper) and '"$@"' not in line:
            found = words(line[line.index("python -m") :])
            commands.append((found[2], found[3:]))
        elif line.startswith("latent "):  # latent FROM TO SEED STEPS LR [flags...]
            commands.append((helper[2], helper[3:] + words(line)[6:]))
    return commands


def test_every_command_of_the_bundles_recipe_parses(monkeypatch):
    """``training/train_demo.sh`` runs for an hour before a late step can fail on a bad option: each of its commands
    is parsed here by the command's own parser."""
    commands = _recipe_commands(ROOT / "training" / "train_demo.sh")
    assert len(commands) >= 12 and sum(module == "training.train_latent_diffusion" for module, _ in commands) >= 5
    real_parse = argparse.ArgumentParser.parse_args
    for module, arguments in commands:

        def capture(parser, *args, **kwargs):
            raise _Parsed(parser)

        monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
        with pytest.raises(_Parsed) as parsed:
            importlib.import_module(module).main([])
        monkeypatch.setattr(argparse.ArgumentParser, "parse_args", real_parse)
        try:
            parsed.value.parser.parse_args(arguments)
        except SystemExit:
            pytest.fail(f"{module} {' '.join(arguments)}: refused by its parser")
