"""YAML read as a tree of located values, so every error can say ``file:line:col``.

PyYAML's safe loader builds plain Python objects and forgets where they came from; it also keeps
the last of two equal keys without a word.  Here the document is composed into nodes, duplicate
keys are refused, and every mapping keeps the position of each of its keys and values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import yaml


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based

    @classmethod
    def of(cls, node: yaml.Node) -> Mark:
        return cls(node.start_mark.line + 1, node.start_mark.column + 1)


NOWHERE = Mark(0, 0)  # the mark of a value given in Python, not read from a file


@dataclass(frozen=True)
class Located:
    """A value and where it starts.

    Mappings hold ``dict[str, Located]`` and the position of each key in ``key_marks``; sequences
    hold ``list[Located]``; scalars hold what the safe loader makes of them.
    """

    value: Any
    mark: Mark
    key_marks: dict[str, Mark] = field(default_factory=dict)


def located(value: Any) -> Located:
    """A Python value as the schema's walk takes a YAML one (mappings, lists, scalars; paths
    and tuples as their text and lists), every mark :data:`NOWHERE`."""
    if isinstance(value, dict):
        return Located(
            {str(key): located(item) for key, item in value.items()},
            NOWHERE,
            {str(key): NOWHERE for key in value},
        )
    if isinstance(value, (list, tuple)):
        return Located([located(item) for item in value], NOWHERE)
    if isinstance(value, PurePath):
        return Located(str(value), NOWHERE)
    return Located(value, NOWHERE)


class YamlSyntaxError(Exception):
    def __init__(self, mark: Mark | None, message: str):
        super().__init__(message)
        self.mark = mark
        self.message = message


def load_located(text: str) -> tuple[Located | None, list[tuple[Mark, str, str]]]:
    """Parse ``text`` with the safe loader.

    Returns the root (``None`` for an empty document) and the problems found on the way (repeated
    keys, merge keys, aliases), each as (position, key path such as ``pairs[0].steps``,
    message).  Raises :class:`YamlSyntaxError` for malformed YAML.
    """
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        problems: list[tuple[Mark, str, str]] = []
        located = None if root is None else _convert(loader, root, problems, set(), "")
        return located, problems
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        position = Mark(mark.line + 1, mark.column + 1) if mark else None
        raise YamlSyntaxError(position, f"{error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise YamlSyntaxError(None, str(error)) from None
    finally:
        loader.dispose()


def _convert(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    problems: list[tuple[Mark, str, str]],
    seen: set[int],
    path: str,
) -> Located:
    mark = Mark.of(node)
    # An alias (*name) makes the composer hand out the anchored node again.  Aliases are
    # refused: a manifest has defaults: for sharing, and an alias can refer to itself or nest
    # into an exponentially large document.
    if id(node) in seen and isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        problems.append(
            (mark, path, "YAML aliases (*name) are not supported; put shared settings in defaults:")
        )
        return Located(None, mark)
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        mapping: dict[str, Located] = {}
        key_marks: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(
                    (
                        Mark.of(key_node),
                        path,
                        "YAML merge keys (<<) are not supported; put shared settings in defaults:",
                    )
                )
                continue
            key = loader.construct_object(key_node, deep=True)
            key = repr(key) if isinstance(key, (list, dict)) else str(key)
            if key in mapping:
                first = key_marks[key].line
                problems.append(
                    (
                        Mark.of(key_node),
                        f"{path}.{key}" if path else key,
                        f"duplicate key {key!r} (first given at line {first})",
                    )
                )
                continue
            mapping[key] = _convert(
                loader, value_node, problems, seen, f"{path}.{key}" if path else key
            )
            key_marks[key] = Mark.of(key_node)
        return Located(mapping, mark, key_marks)
    if isinstance(node, yaml.SequenceNode):
        return Located(
            [
                _convert(loader, item, problems, seen, f"{path}[{index}]")
                for index, item in enumerate(node.value)
            ],
            mark,
        )
    return Located(loader.construct_object(node, deep=True), mark)
