"""One generic path from a line to a typed message and back.

A message class is a frozen dataclass whose attributes say, in order, which
fields follow the verb and how each is read and written: the annotation of
each attribute is ``Annotated[type, Field(...)]`` (see the aliases in
:mod:`messenger.wire.commands` and :mod:`messenger.wire.server`).  Attributes
with a default are optional and come together at the end, so a verb takes
either its required fields or all of them.  A field marked ``rest_of_line``
(a message body) is split off with a maxsplit, so it may hold ``|``.

Errors follow h11: :class:`RemoteProtocolError` is the peer's mistake,
:class:`LocalProtocolError` is ours.  Parsing has two stages, because
docs/protocol.md#rule-4 needs them apart:

1. structure: is the verb known, and is the field count one the verb takes?
   A failure here is a :class:`MalformedLine` (always answered with 400).
2. values: is the username a username, the limit a number, ...?  A failure
   here is an :class:`InvalidValue`; before login the server answers a
   command that needs login with 401 instead, since values are only checked
   after login.
"""

from __future__ import annotations

import dataclasses
import operator
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from messenger.wire.server import Err


class RemoteProtocolError(Exception):
    """The peer sent something the protocol does not allow.

    ``verb`` is the upper-case verb the reply names, or ``"?"`` when even the
    verb could not be read; the server answers ``ERR|verb|code|reason``.
    """

    def __init__(self, verb: str, code: int, reason: str) -> None:
        super().__init__(f"{verb} {code} {reason}")
        self.verb = verb
        self.code = code
        self.reason = reason

    def to_err(self) -> Err:
        from messenger.wire.server import Err

        return Err(self.verb, self.code, self.reason)


class MalformedLine(RemoteProtocolError):
    """Unknown verb or wrong field count (docs/protocol.md#rule-5): always 400."""

    def __init__(self, verb: str, reason: str) -> None:
        super().__init__(verb, 400, reason)


class InvalidValue(RemoteProtocolError):
    """The line is well formed but a value is not acceptable: 400."""

    def __init__(self, verb: str, reason: str) -> None:
        super().__init__(verb, 400, reason)


class InvalidUtf8(RemoteProtocolError):
    """The line is not UTF-8 (docs/protocol.md, Framing): 400, and the
    connection stays open."""

    def __init__(self) -> None:
        super().__init__("?", 400, "invalid UTF-8")


class LocalProtocolError(Exception):
    """We tried to send something the protocol does not allow: our bug."""


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    """How one field is read from a line: ``parse`` turns its text into the
    value, or raises ValueError with the reason.  A value that is not text
    (a number) is written back with ``str()``."""

    parse: Callable[[str], Any]
    #: The last field, a message body: the rest of the line, ``|`` included.
    rest_of_line: bool = False


def _no_fields(line: object) -> tuple[()]:
    return ()


_L = TypeVar("_L", bound="Line")


class Line:
    """One line of the protocol, in either direction."""

    NAME: ClassVar[str]
    #: How many fields may follow the verb (derived from the attributes).
    FIELD_COUNTS: ClassVar[Sequence[int]]
    #: True when the last field is a message body (the rest of the line).
    BODY: ClassVar[bool] = False
    #: The error a value the checks refuse becomes.
    VALUE_ERROR: ClassVar[Callable[[str, str], RemoteProtocolError]] = InvalidValue
    # Derived by line_map from the attributes: each field's parser in line
    # order, whether some are optional, and a getter of all their values.
    _PARSERS: ClassVar[tuple[Callable[[str], Any], ...]] = ()
    _OPTIONAL: ClassVar[bool] = False
    #: Positions of the fields that are not text (written with str()).
    _NUMBERS: ClassVar[tuple[int, ...]] = ()
    _VALUES: ClassVar[Callable[[Any], tuple[Any, ...]]] = _no_fields

    @classmethod
    def from_fields(cls: type[_L], fields: list[str]) -> _L:
        try:
            values = [parse(text) for parse, text in zip(cls._PARSERS, fields)]
        except ValueError as e:
            raise cls.VALUE_ERROR(cls.NAME, str(e)) from None
        return cls(*values)

    def to_fields(self) -> tuple[str, ...]:
        values = type(self)._VALUES(self)
        if self._OPTIONAL and None in values:
            # The optional fields are left out together.
            values = values[: values.index(None)]
        if not self._NUMBERS:
            return values
        fields = list(values)
        for i in self._NUMBERS:
            if i < len(fields):
                fields[i] = str(fields[i])
        return tuple(fields)

    def to_line(self) -> str:
        fields = self.to_fields()
        if not fields:
            return self.NAME
        line = self.NAME + "|" + "|".join(fields)
        # Only a body (the last field, when BODY) may hold "|".
        head = line[: -len(fields[-1]) - 1] if self.BODY else line
        if head.count("|") != len(fields) - self.BODY:
            raise LocalProtocolError(f"a field of {fields!r} holds '|'")
        if "\n" in line:
            # A raw LF would end the line early: the rest would be read as
            # another command.  Bodies carry newlines escaped as \n.
            raise LocalProtocolError("a field holds a line feed")
        return line


def _annotated(hint: object) -> Any:
    """``Annotated[T, ...]`` itself, or from ``Annotated[T, ...] | None``."""
    for candidate in [hint, *typing.get_args(hint)]:
        if typing.get_origin(candidate) is Annotated:
            return candidate
    raise TypeError(f"{hint!r} declares no wire Field")


def _field_of(hint: object) -> Field:
    """The Field of an attribute's annotation."""
    for extra in _annotated(hint).__metadata__:
        if isinstance(extra, Field):
            return extra
    raise TypeError(f"{hint!r} declares no wire Field")


def _base_type(hint: object) -> object:
    """``T`` of ``Annotated[T, ...]`` (or of ``Annotated[T, ...] | None``)."""
    return typing.get_args(_annotated(hint))[0]


def line_map(*classes: type[_L]) -> dict[str, type[_L]]:
    """Derive each class's field plan from its attributes; map verb to class.

    A class that writes its own ``from_fields`` (OK, whose fields depend on
    the verb it answers) keeps its own ``FIELD_COUNTS``.
    """
    for cls in classes:
        if "from_fields" in vars(cls):
            continue
        hints = typing.get_type_hints(cls, include_extras=True)
        attributes = dataclasses.fields(cls)  # type: ignore[arg-type]
        fields = [_field_of(hints[a.name]) for a in attributes]
        if any(field.rest_of_line for field in fields[:-1]):
            raise TypeError(f"{cls.NAME}: only the last field may be the rest of the line")
        required = sum(a.default is dataclasses.MISSING for a in attributes)
        total = len(attributes)
        cls.FIELD_COUNTS = (total,) if required == total else (required, total)
        cls.BODY = bool(fields) and fields[-1].rest_of_line
        cls._PARSERS = tuple(field.parse for field in fields)
        cls._OPTIONAL = required < total
        cls._NUMBERS = tuple(
            i for i, a in enumerate(attributes) if _base_type(hints[a.name]) is not str
        )
        cls._VALUES = _getter([a.name for a in attributes])
    return {cls.NAME: cls for cls in classes}


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """One call that reads all the named attributes, as a tuple."""
    if not names:
        return _no_fields
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda line: (one(line),)
    return operator.attrgetter(*names)


def split_fields(verb: str, cls: type[Line], rest: str | None) -> list[str]:
    """The fields after the verb, checked against the counts the verb takes."""
    if rest is None:
        fields: list[str] = []
    elif cls.BODY:
        fields = rest.split("|", max(cls.FIELD_COUNTS) - 1)
    else:
        fields = rest.split("|")
    if len(fields) not in cls.FIELD_COUNTS:
        counts = " or ".join(str(n) for n in cls.FIELD_COUNTS[:4])
        raise MalformedLine(verb, f"{verb} takes {counts} fields")
    return fields
