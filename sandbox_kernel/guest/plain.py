"""Results whose display is known without asking IPython's formatters.

IPython asks each of its dozen formatters in turn, through a signature-binding decorator
and traitlets attribute access: most of a ``1+1`` cell's time under TCG. For builtins with
no printer registered in any formatter but text/plain, the display is text/plain alone; for
scalars whose text/plain printer is IPython's own, that text is their repr.
"""

from typing import Any

from IPython.lib import pretty

# Builtins without _repr_*_ methods: only a registered printer can add another format.
PLAIN_TYPES = frozenset({int, float, complex, bool, str, bytes, list, tuple, dict, set,
                         frozenset, range, type(None)})
_SCALARS = (int, float, str, bool)


class PlainResults:
    def __init__(self, display: Any) -> None:
        self._display = display
        self._registries: list[tuple[dict[Any, Any], dict[Any, Any]]] = []
        self._plain: Any = None
        self._defaults: dict[type, Any] = {}
        display.observe(self._refresh, names=["formatters", "ipython_display_formatter",
                                             "mimebundle_formatter"])
        self._refresh()

    def _refresh(self, change: Any = None) -> None:
        # The registries are dicts changed in place (for_type); a new dict or a formatter
        # switched on or off comes as a trait change, which lands here.
        display = self._display
        others = [f for mime, f in display.formatters.items() if mime != "text/plain"]
        others += [display.ipython_display_formatter, display.mimebundle_formatter]
        self._registries = [(f.type_printers, f.deferred_printers) for f in others if f.enabled]
        plain = display.formatters.get("text/plain")
        self._plain = plain if plain is not None and plain.enabled else None
        for formatter in (*others, plain):
            if formatter is not None and not getattr(formatter, "_sandbox_observed", False):
                formatter.observe(self._refresh, names=["enabled", "type_printers",
                                                       "deferred_printers"])
                formatter._sandbox_observed = True
        if plain is not None and not self._defaults:
            # IPython's own: pretty's, and the float printer that applies %precision.
            self._defaults = {int: pretty._type_pprinters[int], str: pretty._type_pprinters[str],
                              float: plain.type_printers[float]}

    def format(self, result: Any) -> dict[str, str] | None:
        """The format dict, or None when IPython's formatters must decide."""
        cls = type(result)
        plain = self._plain
        if cls not in PLAIN_TYPES or plain is None:
            return None
        mro = cls.__mro__
        for printers, deferred in self._registries:
            for klass in mro:
                if klass in printers or ("builtins", klass.__name__) in deferred:
                    return None
        if cls in _SCALARS and self._is_default_plain(cls, result):
            text = plain.float_format % result if cls is float else repr(result)
        else:
            text = plain(result)
        return {"text/plain": text} if text is not None else {}

    def _is_default_plain(self, cls: type, result: Any) -> bool:
        plain = self._plain
        if ("builtins", cls.__name__) in plain.deferred_printers:
            return False
        if cls is bool:  # pretty looks singletons up first
            return plain.singleton_printers.get(id(result)) is pretty._repr_pprint \
                and not plain.type_printers.get(bool)
        return plain.type_printers.get(cls) is self._defaults.get(cls)
