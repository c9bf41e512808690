"""Field documentation where ``help()`` shows it.

A dataclass field is documented by the string literal under it (what Sphinx and editors read),
but ``help()`` and ``pydoc`` drop those strings: in a notebook, ``help(Inspection)`` never said
that ``image_size`` is (width, height) while ``anomaly_map`` is (H, W). :func:`with_field_docs`
copies them into the class docstring, once, when the class is made.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
from typing import TypeVar

T = TypeVar("T", bound=type)


@functools.cache
def _classes_of(module_name: str) -> dict[str, ast.ClassDef]:
    """The top-level classes of a module's source by name, parsed once for all its classes (parsed
    per class, the documented dataclasses cost every command 60 ms of start-up)."""
    try:
        source = inspect.getsource(sys.modules[module_name])
    except (KeyError, OSError, TypeError):
        return {}
    return {node.name: node for node in ast.parse(source).body if isinstance(node, ast.ClassDef)}


def field_docs(cls: type) -> list[tuple[str, str]]:
    """(field name, its docstring) for each field of ``cls`` documented by a string under it, in
    source order; none when the source cannot be read (a frozen application, an interactive class)."""
    node = _classes_of(cls.__module__).get(cls.__qualname__)
    if node is None:
        return []
    found = []
    for stmt, after in zip(node.body, node.body[1:], strict=False):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            found.append((stmt.target.id, inspect.cleandoc(after.value.value)))
    return found


def with_field_docs(cls: T) -> T:
    """``cls`` with a "Fields:" section of its documented fields appended to its docstring."""
    if docs := field_docs(cls):
        section = "\n".join(f"    {name}: {' '.join(text.split())}" for name, text in docs)
        cls.__doc__ = f"{inspect.cleandoc(cls.__doc__ or '')}\n\nFields:\n{section}\n"
    return cls


__all__ = ["field_docs", "with_field_docs"]
