"""The import direction of ARCHITECTURE.md, checked on every module's imports (function-level ones too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lfs_s3_agent"


def within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    """Is module ``name`` one of ``prefixes`` or inside one (``lfs_s3_agent.s3glob`` is not in ``lfs_s3_agent.s3``)?"""
    return any(name == p or name.startswith(p + ".") for p in ((prefixes,) if isinstance(prefixes, str) else prefixes))


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (``from . import x`` resolved within the package)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def module_name(path: Path) -> str:
    return ".".join(("lfs_s3_agent", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


MODULES = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}

#: module prefix -> module prefixes it must never import
FORBIDDEN = {
    "lfs_s3_agent.s3": ("lfs_s3_agent.commands", "lfs_s3_agent.protocol", "lfs_s3_agent.store",
                        "lfs_s3_agent.linked", "lfs_s3_agent.agent", "lfs_s3_agent.wiring", "lfs_s3_agent.cli",
                        "lfs_s3_agent.worker", "lfs_s3_agent.relay"),
    "lfs_s3_agent.protocol": ("lfs_s3_agent.s3", "lfs_s3_agent.store", "lfs_s3_agent.linked",
                              "lfs_s3_agent.commands", "lfs_s3_agent.wiring", "lfs_s3_agent.agent", "boto3",
                              "botocore"),
    "lfs_s3_agent.store": ("lfs_s3_agent.protocol", "lfs_s3_agent.agent", "lfs_s3_agent.linked",
                           "lfs_s3_agent.commands", "lfs_s3_agent.links"),
    "lfs_s3_agent.linked": ("lfs_s3_agent.protocol", "lfs_s3_agent.agent", "lfs_s3_agent.commands"),
    "lfs_s3_agent.agent": ("lfs_s3_agent.s3", "lfs_s3_agent.commands", "lfs_s3_agent.linked", "boto3",
                           "botocore"),
    "lfs_s3_agent.settings": ("lfs_s3_agent.s3", "lfs_s3_agent.store", "lfs_s3_agent.commands", "pydantic",
                              "boto3", "botocore"),
    "lfs_s3_agent.commands": ("lfs_s3_agent.cli", "lfs_s3_agent.protocol", "lfs_s3_agent.agent"),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer: str) -> None:
    bad = sorted(f"{module} imports {imported}" for module, imported_all in MODULES.items()
                 if within(module, layer) for imported in imported_all if within(imported, FORBIDDEN[layer]))
    assert bad == []


def test_only_the_s3_layer_uses_boto3_or_botocore() -> None:
    bad = sorted(f"{module} imports {imported}" for module, imported_all in MODULES.items()
                 if not within(module, "lfs_s3_agent.s3")
                 for imported in imported_all if imported.split(".")[0] in ("boto3", "botocore"))
    assert bad == []


def test_every_module_says_what_it_holds() -> None:
    missing = sorted(name for name, path in ((module_name(p), p) for p in PACKAGE.rglob("*.py"))
                     if ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) is None)
    assert missing == []
