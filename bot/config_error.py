"""The error of a configuration that cannot be used (`bot.config` raises it while loading; the action
kinds raise it from `open_services` when a key names something that cannot be opened). Its own module so
that the kinds, which `bot.config` reads for their config models, need not import `bot.config`."""


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""
