"""A secret value that never shows: ``repr`` and ``str`` name only where it came from."""

from __future__ import annotations

from runner.errors import ConfigError


class Secret:
    """A secret value and where it came from; ``repr`` and ``str`` show only the source."""

    __slots__ = ("_value", "source")

    def __init__(self, value: bytes | str, *, source: str = "inline") -> None:
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if not raw:
            raise ConfigError(f"the secret from {source} is empty")
        self._value = raw
        self.source = source

    def reveal(self) -> bytes:
        """The secret's bytes, for computing or comparing an HMAC; never log them."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(source={self.source!r})"

    def __str__(self) -> str:
        return f"<secret from {self.source}>"

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the value into a queue, a cache or a crash dump.
        raise TypeError("a Secret cannot be pickled")

    # Immutable, so a copy is itself; this keeps copy.deepcopy and dataclasses.asdict of
    # the settings working without going through pickling's __reduce__.
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self
