"""Reading YAML that people write: config files, sweep files and ``--set KEY=VALUE`` values.

PyYAML's ``safe_load`` plus three rules:

* **Duplicate keys are refused**, naming the key and its line: YAML's last-one-wins would silently
  drop the first ``model:`` of a file that has two.
* **Aliases are refused** (``*name``): a few lines of nested aliases expand to billions of nodes
  ("billion laughs"), and configs never need them.
* **Floats as YAML 1.2 and Python write them**: ``5e-4`` and ``1E3`` are numbers (PyYAML follows
  YAML 1.1, which needs a dot, and reads them as strings).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from training.errors import ConfigError

FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)[eE][-+]?[0-9]+$")


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the three rules of the module doc."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed in configs"
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"line {line}: duplicate key {key!r} (first on line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep)


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT, list("-+0123456789."))


def load_yaml_text(text: str, source: str = "YAML") -> Any:
    """Parse ``text`` with :class:`StrictLoader`; any problem is one :class:`ConfigError` line naming ``source``."""
    try:
        return yaml.load(text, Loader=StrictLoader)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {str(exc).splitlines()[0]}") from exc
