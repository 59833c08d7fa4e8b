"""Dash's exceptions that an app may raise or catch, in Dash 4.4.1's hierarchy."""


class DashException(Exception):
    """Base of Dash's exceptions."""


class CallbackException(DashException):
    """A callback declared or answered wrongly."""


class PreventUpdate(CallbackException):
    """Raised in a callback: nothing changes in the browser."""


class InvalidCallbackReturnValue(CallbackException):
    """A callback returned something that does not fit its outputs."""


class WildcardInLongCallback(CallbackException):
    """A background callback's progress or cancel dependency has a pattern-matching id."""


class BackgroundCallbackError(DashException):
    """A background callback was declared wrongly."""


class WebsocketDisconnected(CallbackException):
    """The page's WebSocket closed while the callback waited for it."""


class UnsupportedRelativePath(CallbackException):
    pass


class PageError(DashException):
    """`register_page` was called where it cannot be."""


class NoLayoutException(DashException):
    """A page has no layout."""


class InvalidConfig(DashException):
    """The app's configuration cannot work (a pages folder that does not exist)."""
