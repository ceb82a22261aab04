"""Errors meant for the user: the message names the problem (file, line, field) in plain words."""


class UserError(Exception):
    """A problem the user can fix; shown as is, without a traceback."""


class WrongPassphrase(UserError):
    pass


class ProjectLocked(UserError):
    """The project is open in another window or process."""


class IntegrityError(UserError):
    """Stored data failed authentication: damaged or tampered with."""


class ImportFailed(UserError):
    """An import was rejected as a whole; `errors` holds every problem found, by line."""

    def __init__(self, path, errors):
        self.path = str(path)
        self.errors = list(errors)
        shown = "\n".join(f"  {e}" for e in self.errors[:20])
        more = f"\n  ... and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(f"{self.path}: import rejected, nothing was changed.\n{shown}{more}")
