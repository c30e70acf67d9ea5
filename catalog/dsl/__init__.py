"""The playbook language: YAML loading with line numbers, validation and
normalisation (DSL.md). Pure Python: no Django imports."""

from catalog.dsl.errors import Issue, PlaybookError
from catalog.dsl.playbook import parse_playbook
from catalog.dsl.yamlload import load_yaml

__all__ = ["Issue", "PlaybookError", "load_yaml", "parse_playbook"]
