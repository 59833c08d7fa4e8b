"""Dash's exceptions that a callback may raise."""


class DashException(Exception):
    """Base of Dash's exceptions."""


class PreventUpdate(DashException):
    """Raised in a callback: nothing changes in the browser."""


class InvalidCallbackReturnValue(DashException):
    """A callback returned something that does not fit its outputs."""


class UnsupportedRelativePath(DashException):
    pass
