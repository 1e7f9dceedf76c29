"""Topic patterns with named segments: ``scanners/{device}/data``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A pattern compiled: literal levels to check, named levels to take."""

    text: str
    length: int
    literals: tuple[tuple[int, str], ...]
    names: tuple[tuple[int, str], ...]

    @classmethod
    def compile(cls, text: str) -> TopicPattern:
        levels = text.split("/")
        literals, names = [], []
        for i, level in enumerate(levels):
            if level.startswith("{") and level.endswith("}"):
                names.append((i, level[1:-1]))
            else:
                literals.append((i, level))
        return cls(text, len(levels), tuple(literals), tuple(names))

    @property
    def subscription(self) -> str:
        """The MQTT filter that receives what this pattern matches."""
        levels = self.text.split("/")
        for i, _ in self.names:
            levels[i] = "+"
        return "/".join(levels)

    @property
    def root(self) -> str:
        """The literal first level ("" when the pattern starts with a segment)."""
        return self.literals[0][1] if self.literals and self.literals[0][0] == 0 else ""

    def match(self, levels: list[str]) -> dict[str, str] | None:
        if len(levels) != self.length:
            return None
        for i, literal in self.literals:
            if levels[i] != literal:
                return None
        return {name: levels[i] for i, name in self.names}

    def template(self, values: dict[str, str]) -> list[str]:
        """The pattern's levels with these segments filled in; "+" for the others."""
        levels = self.text.split("/")
        for i, name in self.names:
            levels[i] = values.get(name, "+")
        return levels


def covers(topic_filter: str, template: list[str]) -> bool:
    """Whether an MQTT topic filter receives every topic of ``template`` (a "+" level of
    the template is covered only by a wildcard of the filter)."""
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            return True
        if i >= len(template):
            return False
        if level != "+" and level != template[i]:
            return False
    return len(levels) == len(template)


def receives(topic_filter: str, template: list[str]) -> bool:
    """Whether an MQTT topic filter receives some topic of ``template`` (levels, "+"
    where a level may be anything)."""
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            return True  # also the parent level itself ("a/#" receives "a")
        if i >= len(template):
            return False
        if level != "+" and template[i] != "+" and level != template[i]:
            return False
    return len(levels) == len(template)
