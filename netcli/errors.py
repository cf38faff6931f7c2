"""User-facing errors. Anything raised as NetcliError is a user mistake: the CLI prints
its message and exits 1, never a traceback (unless --debug)."""


class NetcliError(Exception):
    """A mistake the user can fix; the message says what and where."""


class ConfigError(NetcliError):
    """One or more mistakes in a net or solver file, each naming file, line, layer and field."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))
