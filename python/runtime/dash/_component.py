"""Dash components as plain data: a name, a namespace and the props the author gave.

Tessera serves the stock Dash front end, which needs only each component's JSON
(`{"props", "type", "namespace"}`); the Python classes of the real `dash` package are
not needed for that, so any component name of a known namespace is accepted.
"""

# The positional parameters of the components whose first argument is not `children`,
# in Dash 4.4.1's order (the generated `__init__` of each component).
_POSITIONAL = {
    "dash_core_components": {
        "Dropdown": ("options", "value"),
        "RadioItems": ("options", "value"),
        "Checklist": ("options", "value"),
        "Slider": ("min", "max", "step", "marks", "value"),
        "RangeSlider": ("min", "max", "step", "marks", "value"),
        "Input": ("value",),
        "Textarea": ("value",),
        "Graph": ("id",),
        "Store": ("id",),
        "Location": ("id",),
        "Interval": ("id",),
        "DatePickerSingle": ("date",),
        "Tab": ("children", "label"),
        "Link": ("children", "href"),
    },
    "dash_table": {"DataTable": ("data", "columns")},
}


class Component:
    """One component of a layout."""

    def __init__(self, namespace, type_name, args, props):
        names = _POSITIONAL.get(namespace, {}).get(type_name, ("children",))
        if len(args) > len(names):
            raise TypeError(f"{type_name}() takes at most {len(names)} positional arguments")
        merged = dict(zip(names, args))
        for key, value in props.items():
            if key in merged:
                raise TypeError(f"{type_name}() got multiple values for argument '{key}'")
            merged[key] = value
        self._namespace = namespace
        self._type = type_name
        # Dash writes `children` (null when not given) for every component whose first
        # parameter it is; other props only when the author gave them.
        if names[0] == "children":
            merged.setdefault("children", None)
        self._props = {k: v for k, v in merged.items() if v is not None or k == "children"}

    def __getattr__(self, name):
        props = self.__dict__.get("_props", {})
        if name in props:
            return props[name]
        raise AttributeError(name)

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self._props[name] = value

    def to_plotly_json(self):
        return {"props": dict(self._props), "type": self._type, "namespace": self._namespace}

    def __repr__(self):
        return f"{self._type}({', '.join(f'{k}={v!r}' for k, v in self._props.items())})"


class Namespace:
    """`html`, `dcc`, `dash_table`: every attribute is a component factory."""

    def __init__(self, namespace):
        self._namespace = namespace

    def __getattr__(self, type_name):
        if type_name.startswith("_") or not type_name[:1].isupper():
            raise AttributeError(type_name)
        namespace = self._namespace

        def make(*args, **props):
            return Component(namespace, type_name, args, props)

        make.__name__ = type_name
        return make
