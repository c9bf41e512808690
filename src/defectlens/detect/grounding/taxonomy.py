"""Defect vocabularies read from ``taxonomy.json``: an object name and one sentence per defect type.

The grounding model knows defect types only through these sentences, so a taxonomy without
descriptions is an error (raised before any image is encoded), not a silent fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from defectlens.io.atomic import read_json_file
from defectlens.errors import ConfigError

# Prompt templates for defect descriptions; their embeddings are averaged (a prompt ensemble
# is steadier than any single phrasing, as in CLIP zero-shot classification).
DESCRIPTION_TEMPLATES: tuple[str, ...] = (
    "{description}",
    "a photo of a {object} with {description}",
    "a close-up photo of a {name} defect on a {object}: {description}",
    "{object} with a {name} defect",
)


@dataclass(frozen=True)
class DefectDescription:
    """One defect type: its folder name and the sentence that describes it."""

    name: str
    description: str

    def prompts(self, object_name: str, templates: Sequence[str] = DESCRIPTION_TEMPLATES) -> list[str]:
        """The templated sentences whose mean embedding stands for this type."""
        return [t.format(object=object_name, name=self.name, description=self.description) for t in templates]


@dataclass(frozen=True)
class Taxonomy:
    """What a part is called and which defect types it can have, in words."""

    object_name: str
    defects: tuple[DefectDescription, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Defect type names, in taxonomy order."""
        return tuple(d.name for d in self.defects)

    def require(self, defect_types: Sequence[str], where: Path | None = None) -> None:
        """Raise :class:`ConfigError` unless every type in ``defect_types`` has a description."""
        missing = sorted(set(defect_types) - set(self.names))
        if missing:
            raise ConfigError(
                f"no description for defect type(s) {', '.join(missing)}",
                where,
                'add {"name": ..., "description": ...} entries for them to taxonomy.json',
            )

    def to_json(self) -> dict:
        """The ``taxonomy.json`` form."""
        return {"object": self.object_name, "defects": [{"name": d.name, "description": d.description} for d in self.defects]}

    @classmethod
    def from_json(cls, data: object, where: str | Path | None = None) -> Taxonomy:
        """Parse the ``taxonomy.json`` form; every defect needs a non-empty name and description."""
        if not isinstance(data, dict):
            raise ConfigError("taxonomy must be a JSON object", where, 'write {"object": ..., "defects": [...]}')
        obj = data.get("object")
        if not isinstance(obj, str) or not obj.strip():
            raise ConfigError("taxonomy has no object name", where, 'add "object": "<what the part is>"')
        raw = data.get("defects")
        if not isinstance(raw, list) or not raw:
            raise ConfigError(
                "taxonomy lists no defects", where, 'add "defects": [{"name": ..., "description": ...}]'
            )
        defects = []
        for i, d in enumerate(raw):
            name = d.get("name") if isinstance(d, dict) else None
            desc = d.get("description") if isinstance(d, dict) else None
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"defect #{i + 1} has no name", where, 'give every defect a "name"')
            if not isinstance(desc, str) or not desc.strip():
                raise ConfigError(
                    f"defect {name!r} has no description",
                    where,
                    f'add "description": "<one sentence saying what a {name} looks like>"',
                )
            defects.append(DefectDescription(name.strip(), desc.strip()))
        if len({d.name for d in defects}) != len(defects):
            raise ConfigError("taxonomy lists a defect name twice", where, "give every defect a unique name")
        return cls(obj.strip(), tuple(defects))

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        """Read and check a ``taxonomy.json`` file."""
        data = read_json_file(
            path, ConfigError, "taxonomy file not found", "write a taxonomy.json with object and defect descriptions", "fix the JSON syntax"
        )
        return cls.from_json(data, Path(path))
