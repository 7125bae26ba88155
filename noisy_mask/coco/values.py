"""JSON text and values as the checks see them (a bool is not a number) and as their messages show
them; the config checks share the number tests."""

import json
import numbers
from typing import Any


def parse_json(data: bytes) -> Any:
    """The value of a json file's bytes (UTF-8, -16 and -32 all decode); ValueError
    `not valid JSON: <the parser's reason>`."""
    try:
        return json.loads(data)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"not valid JSON: {e}") from None


def is_int(value: Any) -> bool:
    """A JSON integer: an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A JSON or YAML number: an int or a float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number passed from Python: any `numbers.Real` but a bool, numpy's scalars included
    (which `is_number` rejects, as json and YAML never give them)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def kind(value: Any) -> str:
    """The JSON type of `value`, with its article: "an int", "a list", "null", ..."""
    if isinstance(value, bool):
        return "a boolean"
    for types, name in ((int, "an int"), (float, "a float"), (str, "a string"), (list, "a list")):
        if isinstance(value, types):
            return name
    return "an object" if isinstance(value, dict) else "null"


def show(value: Any, typed: bool = True) -> str:
    """`value` as the json spells it, cut at 60 characters, followed by its type if `typed`."""
    text = json.dumps(value)
    text = text if len(text) <= 60 else text[:56] + " ..."
    return f"{text} ({kind(value)})" if typed and value is not None else text


def bad(key: str, entry: dict, expected: str) -> str:
    """`'key' is missing` or `'key' is VALUE (type), expected EXPECTED`."""
    if key not in entry:
        return f"'{key}' is missing"
    return f"'{key}' is {show(entry[key])}, expected {expected}"
