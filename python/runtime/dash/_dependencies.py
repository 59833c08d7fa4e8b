"""Input, Output, State and the pattern-matching wildcards, as Dash 4.4.1 writes them."""
import json


class _Wildcard:
    def __init__(self, name):
        self._name = name

    def __repr__(self):
        return self._name

    def to_json(self):
        # Dash writes a wildcard inside a stringified id as `["ALL"]`.
        return f'["{self._name}"]'

    def __eq__(self, other):
        return isinstance(other, _Wildcard) and other._name == self._name

    def __hash__(self):
        return hash(self._name)


MATCH = _Wildcard("MATCH")
ALL = _Wildcard("ALL")
ALLSMALLER = _Wildcard("ALLSMALLER")


def stringify_id(id_):
    """Dash's `stringify_id`: a dict id is JSON with sorted keys and no spaces."""
    if isinstance(id_, dict):

        def one(key, value):
            text = value.to_json() if hasattr(value, "to_json") else json.dumps(value)
            return f"{json.dumps(key)}:{text}"

        return "{" + ",".join(one(k, id_[k]) for k in sorted(id_)) + "}"
    return id_


class DashDependency:
    """One `(component id, property)` pair of a callback."""

    allow_duplicate = False

    def __init__(self, component_id, component_property):
        if hasattr(component_id, "to_plotly_json"):
            component_id = component_id.id
        self.component_id = component_id
        self.component_property = component_property

    def component_id_str(self):
        return stringify_id(self.component_id)

    def __str__(self):
        return f"{self.component_id_str()}.{self.component_property}"

    def __repr__(self):
        return f"<{type(self).__name__} `{self}`>"

    def __eq__(self, other):
        # As Dash: the same kind of dependency on the same prop (a background callback's
        # cancel inputs are told apart this way).
        return isinstance(other, DashDependency) and type(self) is type(other) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def to_dict(self):
        return {"id": self.component_id_str(), "property": self.component_property}

    def has_wildcard(self):
        return isinstance(self.component_id, dict) and any(
            isinstance(v, _Wildcard) for v in self.component_id.values()
        )


class Output(DashDependency):
    """A property the callback writes."""

    def __init__(self, component_id, component_property, allow_duplicate=False):
        super().__init__(component_id, component_property)
        self.allow_duplicate = allow_duplicate


class Input(DashDependency):
    """A property whose change runs the callback."""

    def __init__(self, component_id, component_property, allow_optional=False):
        super().__init__(component_id, component_property)
        self.allow_optional = allow_optional


class State(DashDependency):
    """A property the callback reads without being run by its change."""

    def __init__(self, component_id, component_property, allow_optional=False):
        super().__init__(component_id, component_property)
        self.allow_optional = allow_optional


class ClientsideFunction:
    """A function of an asset script: `window.dash_clientside[namespace][function_name]`."""

    def __init__(self, namespace, function_name):
        self.namespace = namespace
        self.function_name = function_name
