"""The contract as plain data: msgspec types generated from the pydantic models at import.

Ingest's fast accept. `accept_batch_json` / `accept_json` decode a client's request body with
msgspec into Structs (no model instances, no Python per field), run the few checks pydantic
runs in Python (their equivalents sit beside them: plain_rules.py), and give each event as
ingest needs it (`Incoming`): identity, canonical bytes, partition key, retraction target.

One contract: each Struct is made from a model's fields, annotations and constraints
(`_plain_type`); a model, or a type, that the generator cannot read exactly (a Python
validator with no declared equivalent, a serializer, a constraint it does not know) is left
out, and events of that type go to pydantic. The twin is a fast *accept* only: it answers
None whenever it refuses anything or cannot judge, and the caller then runs the pydantic
path, which gives today's answer and errors. So all that must hold, and what the corpus in
tests/unit/contract/test_plain.py checks, is: accepted here => accepted by pydantic, with the
very same canonical bytes.

What makes the two readings agree:
- a field whose default is None is `UNSET` here: left out when encoding, as pydantic's
  `exclude_none` does; an explicit `null` is refused (pydantic's path takes it);
- every other default is written, as pydantic writes it;
- fields keep the models' order, so `msgspec.json.encode` writes the canonical bytes;
- patterns are not msgspec's (Python's `re`, whose `$` and `\\s` differ from Rust's regex):
  each Struct's `__post_init__` hands its patterned strings, and the values a Python check
  judges, to one pydantic-core validator built from the same constraints, so a pattern runs
  on the engine the models run it on;
- the extensions (`recordedtime`, `partitionkey`) are not fields here, so a client's
  are refused (unknown fields are refused everywhere, as `extra="forbid"` does).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import annotated_types
import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from pydantic import BaseModel, StringConstraints, WithJsonSchema
from pydantic.fields import FieldInfo
from pydantic_core import SchemaValidator, core_schema

from .catalogue import EVENT_TYPES, Event, target_of
from .codec import encode_unstamped
from .envelope import EXTENSIONS, EventEnvelope, event_key
from .plain_rules import Plain, check_of, plain_of
from .routing import partition_key_of

__all__ = ["PLAIN_TYPES", "Incoming", "accept_batch_json", "accept_json", "incoming"]


class Incoming(NamedTuple):
    """A client's valid event, as ingest needs it."""

    id: str
    source: str
    key: str  # event_key(source, id)
    unstamped: bytes  # encode_unstamped(event): its digest, and its bytes once stamped
    partition_key: str | None  # partition_key(event): None for a retraction
    retracts: tuple[str, str] | None  # retraction_target(event)


def incoming(event: Event) -> Incoming:
    """An event pydantic validated, as ingest needs it: what `accept_json` gives."""
    return Incoming(
        event.id,
        event.source,
        event_key(event.source, event.id),
        encode_unstamped(event),
        partition_key_of(event.type, event.data),
        target_of(event.type, event.data),
    )


class _NotPlain(Exception):
    """The generator cannot read this type or model exactly: it is left to pydantic."""


def _raise_unless(check: Callable[[Any], bool]) -> Callable[[Any], Any]:
    def checked(value: Any) -> Any:
        if not check(value):
            raise ValueError("not taken by the fast path")
        return value

    return checked


_BOUNDS: dict[type, str] = {
    annotated_types.Ge: "ge",
    annotated_types.Le: "le",
    annotated_types.Gt: "gt",
    annotated_types.Lt: "lt",
    annotated_types.MinLen: "min_length",
    annotated_types.MaxLen: "max_length",
}
"""annotated-types' bounds, each the `msgspec.Meta` argument of its name (and attribute)."""


class _Constraints:
    """The constraints pydantic reads from a type's metadata: lengths and bounds for
    `msgspec.Meta`; a pattern for pydantic-core (see `_Field`)."""

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}
        self.pattern: str | None = None
        self.plain: Plain | None = None
        self.python = False  # a validator written in Python: needs a `Plain`

    def add(self, item: object) -> None:
        if isinstance(item, Plain):
            self.plain = item
        elif isinstance(item, StringConstraints):
            unsupported = (
                item.strip_whitespace,
                item.to_upper,
                item.to_lower,
                item.strict,
                item.ascii_only,
            )
            if any(flag is not None for flag in unsupported):
                raise _NotPlain(f"string constraints: {item}")
            self._set("min_length", item.min_length)
            self._set("max_length", item.max_length)
            if item.pattern is not None:
                if not isinstance(item.pattern, str) or self.pattern is not None:
                    raise _NotPlain(f"a pattern the generator does not read: {item.pattern}")
                self.pattern = item.pattern
        elif isinstance(item, FieldInfo):
            if item.alias or item.validation_alias or item.discriminator is not None:
                raise _NotPlain(f"field info: {item}")
            for inner in item.metadata:
                self.add(inner)
        elif (bound := _BOUNDS.get(type(item))) is not None:
            self._set(bound, getattr(item, bound))
        elif isinstance(item, WithJsonSchema):
            pass  # the JSON Schema only
        else:
            self.python = True  # a validator, or metadata unknown here

    def _set(self, name: str, value: object) -> None:
        if value is None:
            return
        if name in self.meta and self.meta[name] != value:
            raise _NotPlain(f"two values of {name}")
        self.meta[name] = value

    def annotate(self, tp: Any) -> Any:
        return Annotated[tp, Meta(**self.meta)] if self.meta else tp

    def string_schema(self) -> core_schema.CoreSchema:
        """pydantic-core's check of a string with these constraints: the very one the model
        runs (Rust's regex engine; Python's `re`, which msgspec runs, differs in what `$`
        and a class such as `[^\\s]` match)."""
        return core_schema.str_schema(
            pattern=self.pattern,
            min_length=self.meta.get("min_length"),
            max_length=self.meta.get("max_length"),
        )


class _Field(NamedTuple):
    """A field's msgspec type, and what pydantic-core then checks of its value (a pattern, a
    Python check), if anything: msgspec's own patterns run on Python's `re`."""

    type: Any
    schema: core_schema.CoreSchema | None


def _plain_type(tp: Any, metadata: Iterable[object] = ()) -> _Field:
    """The `_Field` of a pydantic annotation, with the field's own metadata."""
    constraints = _Constraints()
    while get_origin(tp) is Annotated:
        tp, *inner = get_args(tp)
        metadata = [*inner, *metadata]
    for item in metadata:
        constraints.add(item)
    plain = constraints.plain or (plain_of(tp) if isinstance(tp, type) else None)
    if constraints.python and plain is None:
        raise _NotPlain(f"a Python validator without a plain equivalent on {tp}")
    if plain is not None and plain.base is not None:
        field = _plain_type(plain.base)
        return _checked(field.type, field.schema, plain)
    if plain is not None and plain.values is not None:
        if tp is not str:
            raise _NotPlain(f"values of a type other than str: {tp}")
        admits = SchemaValidator(constraints.string_schema()).isinstance_python
        values = tuple(sorted(v for v in plain.values() if admits(v)))
        return _checked(Literal[values], None, plain)
    if tp is str:
        schema = constraints.string_schema() if constraints.pattern is not None else None
        return _checked(constraints.annotate(tp), schema, plain)
    if constraints.pattern is not None:
        raise _NotPlain(f"a pattern on {tp}")
    if tp in (int, float):
        return _checked(constraints.annotate(tp), None, plain)
    if plain is not None:
        raise _NotPlain(f"a plain form of {tp} the generator does not read")
    origin = get_origin(tp)
    if origin is Literal:
        if not all(type(v) in (str, int) for v in get_args(tp)):
            raise _NotPlain(f"a literal msgspec cannot check: {tp}")
        return _Field(tp, None)
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _unchecked(args[0])
            return _Field(constraints.annotate(tuple[item, ...]), None)  # type: ignore[valid-type]
        if constraints.meta:
            raise _NotPlain(f"constraints on a fixed tuple: {tp}")
        return _Field(tuple[tuple(_unchecked(a) for a in args)], None)  # type: ignore[misc]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if constraints.meta:
            raise _NotPlain(f"constraints on a model: {tp}")
        return _Field(_struct(tp), None)
    raise _NotPlain(f"a type the generator does not know: {tp}")


def _checked(tp: Any, schema: core_schema.CoreSchema | None, plain: Plain | None) -> _Field:
    if plain is None or plain.check is None:
        return _Field(tp, schema)
    return _Field(
        tp,
        core_schema.no_info_after_validator_function(
            _raise_unless(plain.check), schema or core_schema.any_schema()
        ),
    )


def _unchecked(tp: Any) -> Any:
    """A type inside a tuple: its items are not checked after decoding (the Struct's
    `__post_init__` checks its own fields)."""
    field = _plain_type(tp)
    if field.schema is not None:
        raise _NotPlain(f"a checked type inside a tuple: {tp}")
    return field.type


def _optional(tp: Any) -> Any | None:
    """`X` of `X | None`; None for any other annotation."""
    if get_origin(tp) in (Union, types.UnionType):
        args = get_args(tp)
        if len(args) == 2 and type(None) in args:
            return args[0] if args[1] is type(None) else args[1]
    return None


def _model_checks(model: type[BaseModel]) -> list[Callable[[Any], bool]]:
    """The plain equivalents of `model`'s validators; _NotPlain if one has none, or if the
    model changes its output (serializers, computed fields) or its input (config)."""
    decorators = model.__pydantic_decorators__
    if decorators.field_serializers or decorators.model_serializers or decorators.computed_fields:
        raise _NotPlain(f"{model.__name__} shapes its output")
    config = {k: v for k, v in model.model_config.items() if k not in ("frozen", "title")}
    if config != {"extra": "forbid"}:
        raise _NotPlain(f"{model.__name__}'s configuration: {config}")
    checks: list[Callable[[Any], bool]] = []
    validators: tuple[Any, ...] = (  # pydantic's `Decorator`s
        *decorators.validators.values(),
        *decorators.field_validators.values(),
        *decorators.root_validators.values(),
        *decorators.model_validators.values(),
    )
    for decorator in validators:
        check = check_of(decorator.func)
        if check is None:
            raise _NotPlain(f"{model.__name__}.{decorator.cls_var_name} has no plain equivalent")
        checks.append(check)
    return checks


_STRUCTS: dict[type[BaseModel], type[Struct]] = {}
_UNSET = core_schema.is_instance_schema(UnsetType)


def _struct(model: type[BaseModel], *, overrides: dict[str, Any] | None = None) -> type[Struct]:
    """The Struct of `model`: its fields in its order; its `__post_init__` runs pydantic-core
    over the fields that need more than msgspec checks, then the equivalents of the model's
    validators. `overrides`: field name -> plain type, taken as is."""
    if overrides is None and model in _STRUCTS:
        return _STRUCTS[model]
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    schemas: list[core_schema.CoreSchema] = []
    for name, info in model.model_fields.items():
        if name in EXTENSIONS:
            continue  # set by ingest, never by a client
        if info.alias is not None or info.default_factory is not None:
            raise _NotPlain(f"{model.__name__}.{name}: an alias or a default factory")
        if overrides is not None and name in overrides:
            fields.append((name, overrides[name]))
            schemas.append(core_schema.any_schema())
            continue
        if info.is_required():
            plain = _plain_type(info.annotation, info.metadata)
            fields.append((name, plain.type))
            schema = plain.schema
        elif info.default is None:
            inner = _optional(info.annotation)
            if inner is None:
                raise _NotPlain(f"{model.__name__}.{name}: None default, not optional")
            plain = _plain_type(inner, info.metadata)
            fields.append((name, plain.type | UnsetType, UNSET))
            schema = plain.schema and core_schema.union_schema(
                [_UNSET, plain.schema], mode="left_to_right"
            )
        elif isinstance(info.default, str | int | float | tuple):
            plain = _plain_type(info.annotation, info.metadata)
            fields.append((name, plain.type, info.default))
            schema = plain.schema
        else:
            raise _NotPlain(f"{model.__name__}.{name}: default {info.default!r}")
        schemas.append(schema or core_schema.any_schema())
    # The envelope's validators need its payload, decoded after it: `_Kind` runs them.
    model_checks = [] if overrides else _model_checks(model)
    namespace: dict[str, Any] = {}
    if any(s["type"] != "any" for s in schemas) or model_checks:
        fields_check = SchemaValidator(core_schema.tuple_schema(schemas)).validate_python
        namespace["__post_init__"] = _post_init(fields_check, model_checks)
    struct = msgspec.defstruct(
        model.__name__,
        fields,
        kw_only=True,
        forbid_unknown_fields=True,
        namespace=namespace,
    )
    if overrides is None:
        _STRUCTS[model] = struct
    return struct


def _post_init(
    fields_check: Callable[[Any], Any], model_checks: list[Callable[[Any], bool]]
) -> Callable[[Any], None]:
    astuple = msgspec.structs.astuple

    def post_init(self: Any) -> None:
        fields_check(astuple(self))  # raises a ValueError: msgspec refuses the value
        for model_check in model_checks:
            if not model_check(self):
                raise ValueError("not taken by the fast path")

    return post_init


class _Kind(NamedTuple):
    """An event type the twin takes: its payload's decoder, and its model's checks."""

    data: msgspec.json.Decoder[Any]
    checks: list[Callable[[Any], bool]]


def _kinds() -> dict[str, _Kind]:
    kinds: dict[str, _Kind] = {}
    envelope_fields = {
        name: (info.annotation, info.metadata)
        for name, info in EventEnvelope.model_fields.items()
        if name not in ("type", "data")
    }
    for name, cls in EVENT_TYPES.items():
        own = {
            field: (info.annotation, info.metadata)
            for field, info in cls.model_fields.items()
            if field not in ("type", "data")
        }
        if own != envelope_fields:
            continue  # an envelope with fields of its own: not generated here
        try:
            data = _struct(cls.model_fields["data"].annotation)  # type: ignore[arg-type]
            checks = _model_checks(cls)
        except _NotPlain:
            continue
        kinds[name] = _Kind(msgspec.json.Decoder(data), checks)
    return kinds


_KINDS = _kinds()
PLAIN_TYPES = frozenset(_KINDS)
"""The event types the fast accept takes; events of any other go to pydantic."""

# The envelope's fields, `type` one of the twin's types and `data` left as its bytes: the
# type then says which payload decoder reads them.
_Envelope = _struct(
    EventEnvelope,
    overrides={"type": Literal[tuple(sorted(PLAIN_TYPES))], "data": msgspec.Raw},
)
_ONE = msgspec.json.Decoder(_Envelope)
_BATCH = msgspec.json.Decoder(list[_Envelope])  # type: ignore[valid-type]
_encode = msgspec.json.Encoder().encode
# What msgspec raises for a body it refuses: its own errors, and RecursionError for nesting
# deeper than it follows (pydantic then answers as it always has).
_REFUSED = (msgspec.MsgspecError, RecursionError)


def _incoming(envelope: Any) -> Incoming | None:
    kind = _KINDS[envelope.type]
    try:
        data = envelope.data = kind.data.decode(envelope.data)
    except _REFUSED:
        return None
    for check in kind.checks:
        if not check(envelope):
            return None
    return Incoming(
        envelope.id,
        envelope.source,
        event_key(envelope.source, envelope.id),
        _encode(envelope),
        partition_key_of(envelope.type, data),
        target_of(envelope.type, data),
    )


def accept_json(raw: bytes | str) -> Incoming | None:
    """The client event `raw` (a JSON object), if the twin accepts it; else None, and the
    caller asks pydantic (`parse_incoming_json`, then `parse_incoming` for the errors)."""
    try:
        envelope = _ONE.decode(raw)
    except _REFUSED:
        return None
    return _incoming(envelope)


def accept_batch_json(raw: bytes | str) -> list[Incoming] | None:
    """Every client event of the JSON array `raw`, if the twin accepts them all; else None."""
    try:
        envelopes = _BATCH.decode(raw)
    except _REFUSED:
        return None
    accepted: list[Incoming] = []
    for envelope in envelopes:
        incoming = _incoming(envelope)
        if incoming is None:
            return None
        accepted.append(incoming)
    return accepted
