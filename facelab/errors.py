"""User-facing errors.

Every error a user can cause with a bad file or argument is a :class:`FacelabError` whose
message is one sentence saying what is wrong and what was expected. The CLI prints it and exits
with status 2; the GUI shows it in a message box. So is an :class:`OSError` about a path the
system refused (:func:`is_path_error`: no such folder, no permission, a full disk), which the user
fixes, not the code. Anything else is a bug and keeps its traceback.
"""

import errno

# What the system says about a path the user chose: missing, not a folder, not writable, full.
PATH_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
                         errno.ENOSPC, errno.EDQUOT, errno.EEXIST, errno.ENAMETOOLONG, errno.EFBIG})


class FacelabError(Exception):
    """An error caused by the user's input, with a message fit to show as it is."""


class MeshError(FacelabError):
    """A mesh file is missing, unreadable, or its contents are invalid."""


class TopologyMismatchError(MeshError):
    """A mesh is valid but not registered to the template a model or dataset expects."""


class DatasetError(FacelabError):
    """A dataset folder or file cannot be recognised or read."""


def is_path_error(error: BaseException) -> bool:
    """Whether ``error`` is the system refusing a path (see :data:`PATH_ERRNOS`), not a bug."""
    return isinstance(error, OSError) and error.errno in PATH_ERRNOS


def os_error_sentence(error: OSError) -> str:
    """One sentence for a path the system refused (no such folder, no permission, disk full)
    where no facelab code said it first: the user's to fix, not a bug, so the CLI and the app
    show it as they show a :class:`FacelabError`."""
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}: expected a path you can read and write."
