"""What an enum pickled by value carries besides its members' values (dump side).

The loading side rebuilds an enum class through its metaclass from ``name: _value_`` pairs,
without the class's ``__init__``/``__new__`` (they arrive with the rest of the class state).
Attributes the members got from those (``Planet.EARTH.mass``) are carried here and put back on
the members after the class is made. A mixin enum (``int``, ``str``, ``bytes``...) whose custom
``__new__`` made members that its ``_value_`` alone does not reproduce is refused at dump time
(they would fail on load).
"""

import enum
from pickle import PicklingError
from typing import Any, Dict, Optional


def _own_member_keys() -> frozenset:
    # What the enum machinery itself puts in a member's __dict__, on this Python version.
    probe = enum.Enum("probe", "A")
    return frozenset(vars(probe.A))


_MEMBER_OWN = _own_member_keys()


def member_attrs(cls: Any) -> Optional[Dict[str, Dict[str, Any]]]:
    """``{member name: {attribute: value}}`` for members with attributes of their own (aliases
    once, under the canonical name); None when no member has any.

    Raises :class:`PicklingError` when a member could not be rebuilt from its value.
    """
    found: Optional[Dict[str, Dict[str, Any]]] = None
    member_type = getattr(cls, "_member_type_", object)
    for name, member in cls.__members__.items():
        if member._name_ != name:
            continue  # an alias
        if member_type is not object:
            _check_mixin(cls, member_type, name, member)
        d = getattr(member, "__dict__", None)
        if not d:
            continue
        own = {k: v for k, v in d.items() if k not in _MEMBER_OWN}
        if own:
            if found is None:
                found = {}
            found[name] = own
    return found


def _check_mixin(cls: Any, member_type: type, name: str, member: Any) -> None:
    # On load the metaclass makes the member as member_type.__new__(cls, value) and sets
    # _value_ to member_type(value): both must give back what this member is.
    value = member._value_
    args = value if type(value) is tuple and member_type is not tuple else (value,)
    try:
        rebuilt = member_type(*args)
        eq: Any = member_type.__eq__  # the mixin's own __eq__, two arguments
        same = rebuilt == value and eq(member, rebuilt) is True
    except Exception:
        same = False
    if not same:
        raise PicklingError(
            f"cannot pickle enum {cls.__qualname__} by value: its member {name} cannot be "
            f"rebuilt from its value ({member_type.__name__}({value!r}) does not give it "
            "back, as when a custom __new__ set _value_ to something else); define the enum "
            "in an importable module (pickled by name), or set _value_ to the arguments "
            "__new__ takes")
