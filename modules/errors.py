"""The configuration error and the checks that raise it (ground layer: imports nothing)."""


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


def check(ok, field, value, message):
    """Raise ConfigError "invalid configuration: <field> = <value> <message>" unless `ok`."""
    if not ok:
        raise ConfigError(f"invalid configuration: {field} = {value!r} {message}")


def is_int(value):
    """Whether `value` is an int (bools are not)."""
    return isinstance(value, int) and not isinstance(value, bool)
