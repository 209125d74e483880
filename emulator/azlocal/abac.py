"""Azure ABAC role-assignment conditions (conditionVersion 2.0), as far as azlocal needs them.

Pure: parse() turns a condition into a tree, evaluate() decides it for one request.
azlocal emulates the documented *delegation* conditions, the ones that constrain which
role assignments a Role Based Access Control Administrator or User Access Administrator
may create or delete (learn.microsoft.com/azure/role-based-access-control/
delegate-role-assignments-examples, conditions-format, conditions-authorization-actions-
attributes). The grammar accepted:

    expr       := term {AND term} | term {OR term}     (AND/&&, OR/||; mixing them at one
                                                         level needs parentheses)
    term       := (NOT | !) term | '(' expr ')' | ActionMatches{'<action>'} | comparison
    comparison := @Request[<attribute>] <operator> values
                | @Resource[<attribute>] <operator> values
    values     := value | '{' value {',' value} '}'
    value      := <GUID> | '<string>'

Attributes: Microsoft.Authorization/roleAssignments:RoleDefinitionId and :PrincipalId
(GUIDs) and :PrincipalType (string). Operators: GuidEquals, GuidNotEquals on the GUID
attributes; StringEquals, StringEqualsIgnoreCase, StringNotEquals,
StringNotEqualsIgnoreCase on PrincipalType; each also behind the cross-product
quantifiers ForAnyOfAnyValues, ForAllOfAnyValues, ForAnyOfAllValues, ForAllOfAllValues.
Keywords, operators and attribute names are matched ignoring case.

Anything else (storage attributes, @Principal/@Environment, SubOperationMatches, Exists,
Like/Numeric/DateTime operators) is refused as a parse error: azlocal cannot evaluate it,
and accepting a condition it would then ignore could make a test pass that fails in Azure.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from azure_operations import matches

ROLE_DEFINITION_ID = "Microsoft.Authorization/roleAssignments:RoleDefinitionId"
PRINCIPAL_ID = "Microsoft.Authorization/roleAssignments:PrincipalId"
PRINCIPAL_TYPE = "Microsoft.Authorization/roleAssignments:PrincipalType"
Kind = Literal["guid", "string"]
# Attribute -> its type (the documented "Attribute type"); looked up in lower case.
_ATTRIBUTE_KINDS: dict[str, Kind] = {
    ROLE_DEFINITION_ID: "guid",
    PRINCIPAL_ID: "guid",
    PRINCIPAL_TYPE: "string",
}
# Comparison function -> the attribute type it applies to.
_FUNCTION_KINDS: dict[str, Kind] = {
    "GuidEquals": "guid",
    "GuidNotEquals": "guid",
    "StringEquals": "string",
    "StringEqualsIgnoreCase": "string",
    "StringNotEquals": "string",
    "StringNotEqualsIgnoreCase": "string",
}
_ATTRIBUTES = {name.lower(): name for name in _ATTRIBUTE_KINDS}
_FUNCTIONS = {name.lower(): name for name in _FUNCTION_KINDS}
_QUANTIFIERS = {
    q.lower(): q
    for q in ("ForAnyOfAnyValues", "ForAllOfAnyValues", "ForAnyOfAllValues", "ForAllOfAllValues")
}
SUPPORTED_VERSION = "2.0"


class ConditionError(ValueError):
    """The condition is not in the grammar azlocal evaluates."""


# --- the tree ---


@dataclass(frozen=True)
class ActionMatches:
    pattern: str


@dataclass(frozen=True)
class Comparison:
    source: Literal["Request", "Resource"]
    attribute: str  # canonical name, e.g. ROLE_DEFINITION_ID
    quantifier: str | None  # e.g. "ForAnyOfAnyValues"; None for a single-valued operator
    function: str  # canonical name, e.g. "GuidEquals"
    values: tuple[str, ...]


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Expr, ...]


Expr = ActionMatches | Comparison | Not | And | Or


@dataclass(frozen=True)
class Attributes:
    """What a request offers a condition: @Request[...] and @Resource[...] values by
    canonical attribute name. An attribute that is absent has no values."""

    request: Mapping[str, str] = field(default_factory=dict)
    resource: Mapping[str, str] = field(default_factory=dict)


NO_ATTRIBUTES = Attributes()


# --- parsing ---

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<attr>@(?P<source>\w+)\[(?P<name>[^\]]*)\])
    | (?P<string>'[^']*')
    | (?P<punct>&&|\|\||[(){},!])
    | (?P<word>[A-Za-z0-9_.:\-]+)
    )""",
    re.VERBOSE,
)


@dataclass
class _Token:
    kind: str  # attr, string, punct, word
    text: str
    source: str = ""
    name: str = ""


def _tokens(text: str) -> list[_Token]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if found is None:
            raise ConditionError(f"unexpected character at offset {pos}: {text[pos : pos + 20]!r}")
        kind = next(k for k in ("attr", "string", "punct", "word") if found.group(k))
        tokens.append(
            _Token(kind, found.group(kind), found.group("source") or "", found.group("name") or "")
        )
        pos = found.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ConditionError("unexpected end of the condition")
        self.pos += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise ConditionError(f"expected {text!r}, found {token.text!r}")

    def connective(self) -> str | None:
        token = self.peek()
        if token is None:
            return None
        word = token.text.upper()
        if word in ("AND", "&&"):
            return "AND"
        if word in ("OR", "||"):
            return "OR"
        return None

    def expr(self) -> Expr:
        operands = [self.term()]
        kinds = set()
        while (kind := self.connective()) is not None:
            self.take()
            kinds.add(kind)
            operands.append(self.term())
        if len(kinds) > 1:
            # The documentation calls `a AND b OR c` ambiguous and requires parentheses.
            raise ConditionError("AND and OR mixed without parentheses")
        if not kinds:
            return operands[0]
        return And(tuple(operands)) if kinds == {"AND"} else Or(tuple(operands))

    def term(self) -> Expr:
        token = self.take()
        if token.text == "!" or token.text.upper() == "NOT":
            return Not(self.term())
        if token.text == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if token.kind == "word" and token.text.lower() == "actionmatches":
            self.expect("{")
            action = self.take()
            if action.kind != "string":
                raise ConditionError("ActionMatches takes one quoted action")
            # Only the single-action form is documented; several actions are written as
            # several ActionMatches joined by AND/OR.
            self.expect("}")
            return ActionMatches(action.text[1:-1])
        if token.kind == "attr":
            return self.comparison(token)
        raise ConditionError(f"unexpected {token.text!r}")

    def comparison(self, attr: _Token) -> Comparison:
        source: Literal["Request", "Resource"]
        if attr.source.lower() == "request":
            source = "Request"
        elif attr.source.lower() == "resource":
            source = "Resource"
        else:
            raise ConditionError(f"attribute source @{attr.source} is not supported")
        attribute = _ATTRIBUTES.get(attr.name.strip().lower())
        if attribute is None:
            raise ConditionError(f"attribute {attr.name!r} is not supported")
        operator = self.take()
        quantifier, _, function_name = operator.text.rpartition(":")
        function = _FUNCTIONS.get(function_name.lower())
        if operator.kind != "word" or function is None:
            raise ConditionError(f"operator {operator.text!r} is not supported")
        canonical_quantifier = _QUANTIFIERS.get(quantifier.lower()) if quantifier else None
        if quantifier and canonical_quantifier is None:
            raise ConditionError(f"operator {operator.text!r} is not supported")
        if _FUNCTION_KINDS[function] != _ATTRIBUTE_KINDS[attribute]:
            raise ConditionError(f"{function} does not apply to {attribute}")
        values = self.values(_FUNCTION_KINDS[function])
        if canonical_quantifier is None and len(values) != 1:
            raise ConditionError(f"{function} takes one value")
        return Comparison(source, attribute, canonical_quantifier, function, values)

    def values(self, kind: Kind) -> tuple[str, ...]:
        token = self.peek()
        if token is not None and token.text == "{":
            self.take()
            found = [self.value(kind)]
            while (token := self.take()).text == ",":
                found.append(self.value(kind))
            if token.text != "}":
                raise ConditionError(f"expected ',' or '}}', found {token.text!r}")
            return tuple(found)
        return (self.value(kind),)

    def value(self, kind: Kind) -> str:
        token = self.take()
        if kind == "string":
            if token.kind != "string":
                raise ConditionError(f"expected a quoted string, found {token.text!r}")
            return token.text[1:-1]
        text = token.text[1:-1] if token.kind == "string" else token.text
        try:
            return str(uuid.UUID(text))
        except ValueError:
            raise ConditionError(f"{token.text!r} is not a GUID") from None


@lru_cache(maxsize=256)
def parse(text: str) -> Expr:
    """The tree of a condition; ConditionError when it is not in the supported grammar."""
    parser = _Parser(text)
    if parser.peek() is None:
        raise ConditionError("the condition is empty")
    tree = parser.expr()
    rest = parser.peek()
    if rest is not None:
        raise ConditionError(f"unexpected {rest.text!r} after the end of the condition")
    return tree


# --- evaluation ---


def _guid(value: str) -> str:
    """A GUID in canonical form; a role definition id compares by its last segment."""
    text = value.rstrip("/").rsplit("/", 1)[-1]
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text.lower()


def _compare(function: str, left: str, right: str) -> bool:
    if function == "GuidEquals":
        return _guid(left) == right
    if function == "GuidNotEquals":
        return _guid(left) != right
    if function == "StringEquals":
        return left == right
    if function == "StringEqualsIgnoreCase":
        return left.casefold() == right.casefold()
    if function == "StringNotEquals":
        return left != right
    if function == "StringNotEqualsIgnoreCase":
        return left.casefold() != right.casefold()
    raise AssertionError(function)  # parse() admits no other function


def _comparison_holds(comparison: Comparison, attributes: Attributes) -> bool:
    source = attributes.request if comparison.source == "Request" else attributes.resource
    value = source.get(comparison.attribute)
    # Each supported attribute has at most one value; an absent one has none, so no
    # comparison on it can hold (ForAll... over no values holds vacuously, as documented
    # "every value on the left-hand side").
    left = () if value is None else (value,)
    right = comparison.values

    def any_right(item: str) -> bool:
        return any(_compare(comparison.function, item, r) for r in right)

    def all_right(item: str) -> bool:
        return all(_compare(comparison.function, item, r) for r in right)

    match comparison.quantifier:
        case None:  # a single-valued operator: one value each side
            return any(_compare(comparison.function, item, right[0]) for item in left)
        case "ForAnyOfAnyValues":
            return any(any_right(item) for item in left)
        case "ForAllOfAnyValues":
            return all(any_right(item) for item in left)
        case "ForAnyOfAllValues":
            return any(all_right(item) for item in left)
        case _:  # ForAllOfAllValues
            return all(all_right(item) for item in left)


def evaluate(tree: Expr, action: str, attributes: Attributes = NO_ATTRIBUTES) -> bool:
    """Whether the condition holds for `action` with these attributes."""
    match tree:
        case ActionMatches(pattern):
            # Documented as the matching of actions in a role's permissions.
            return matches(pattern, action)
        case Comparison():
            return _comparison_holds(tree, attributes)
        case Not(operand):
            return not evaluate(operand, action, attributes)
        case And(operands):
            return all(evaluate(o, action, attributes) for o in operands)
        case Or(operands):
            return any(evaluate(o, action, attributes) for o in operands)
    raise AssertionError(tree)


def holds(condition: str, action: str, attributes: Attributes = NO_ATTRIBUTES) -> bool:
    """Evaluate a stored condition; one that does not parse never holds (fail closed:
    such a condition can only come from a state saved before azlocal checked them)."""
    try:
        tree = parse(condition)
    except ConditionError:
        return False
    return evaluate(tree, action, attributes)
