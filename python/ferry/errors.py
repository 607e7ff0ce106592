"""Ferry's exceptions.

Every failure a task or the client reports is a FerryError carrying
libferry's error code (a negative int, see include/ferry/ferry.h), its
name ("ETASK", "ECRASHED", ...), the message and how many runs the
scheduler started (attempts).  The subclass says what kind of failure it
was:

    TaskError        the task function failed (FERRY_ETASK); for a Python
                     task, .remote_type and .remote_traceback say what it
                     raised and where
    TaskCrashed      the task killed its worker process, went over its
                     memory limit, or the worker running it was lost
                     (ECRASHED, EMEMORY, EWORKER)
    TaskDead         quarantined after killing workers (EDEAD)
    DependencyError  a task it refers to (a future among its arguments)
                     failed (EDEPENDENCY)
    ConnectionLost   the scheduler is out of reach, or the client was
                     closed (ECLOSED, ECONNECT); also a ConnectionError
    TimeoutError     the task ran past its timeout (ETIMEDOUT); also the
                     built-in TimeoutError

A cancelled task's future raises concurrent.futures.CancelledError, as
any cancelled future does.
"""

import builtins

__all__ = ["FerryError", "TaskError", "TaskCrashed", "TaskDead",
           "DependencyError", "ConnectionLost", "TimeoutError"]


def _names():
    from . import _ferry
    return _ferry.ERRORS


class FerryError(Exception):
    """A failure reported by Ferry: .code (libferry's negative error code),
    .name ("ETASK", ...), .message, .attempts (runs the scheduler started,
    0 when none or not known), .task_id and .function (None when the
    failure is not a task's)."""

    def __init__(self, code, name, message, attempts=0, task_id=None,
                 function=None):
        super().__init__(code, name, message, attempts)
        self.code = code
        self.name = name
        self.message = message
        self.attempts = attempts
        self.task_id = task_id
        self.function = function

    def _headline(self):
        return self.message

    def __str__(self):
        text = self._headline()
        if self.task_id:
            where = "task %d" % self.task_id
            if self.function:
                where += " (%s)" % self.function
            text = "%s: %s" % (where, text)
        notes = []
        if self.name and self.name != "ETASK":
            notes.append(self.name)
        if self.attempts and self.attempts > 1:
            notes.append("%d attempts" % self.attempts)
        if notes:
            text += " [%s]" % ", ".join(notes)
        return text

    def __reduce__(self):
        return (_rebuild, (type(self), self.code, self.name, self.message,
                           self.attempts, self.task_id, self.function))


def _rebuild(cls, *args):
    return cls(*args)


class _RemoteTraceback(Exception):
    """The traceback of a Python task, as the worker formatted it (shown
    as the cause of the TaskError)."""

    def __init__(self, tb):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return "\n\n" + self.tb.rstrip("\n")


class TaskError(FerryError):
    """The task function failed.  For a Python task the message is
    "Type: message\\n\\nTraceback ...": .remote_type is "Type" (e.g.
    "ValueError" or "mymod.BadInput"), .remote_message the message and
    .remote_traceback the worker's traceback text; for a task written in
    C they are None and .message is what it reported."""

    def __init__(self, code, name, message, attempts=0, task_id=None,
                 function=None):
        super().__init__(code, name, message, attempts, task_id, function)
        self.remote_type, self.remote_message, self.remote_traceback = \
            _parse_remote(message)
        if self.remote_traceback:
            self.__cause__ = _RemoteTraceback(self.remote_traceback)

    def _headline(self):
        if self.remote_type is None:
            return self.message
        if self.remote_message:
            return "%s: %s" % (self.remote_type, self.remote_message)
        return self.remote_type


def _is_type_name(s):
    return bool(s) and all(p.isidentifier() for p in s.split("."))


def _parse_remote(message):
    """(type, message, traceback) from a Python task's failure message
    "Type: message\\n\\nTraceback (most recent call last): ...", or
    (None, None, None) for any other message."""
    head, sep, tail = message.partition("\n\nTraceback")
    if not sep:
        return None, None, None
    tb = "Traceback" + tail
    rtype, colon, rmsg = head.partition(": ")
    if not colon:
        rtype, rmsg = head.strip(), ""
    if not _is_type_name(rtype):
        return None, None, None
    return rtype, rmsg, tb


class TaskCrashed(FerryError):
    """The task crashed its worker process (or went over its memory
    limit), or the worker running it was lost."""


class TaskDead(FerryError):
    """The task was quarantined after killing worker processes; it never
    runs again."""


class DependencyError(FerryError):
    """A task whose result this one takes (a future among its arguments)
    failed or was quarantined; the message names it."""


class ConnectionLost(FerryError, ConnectionError):
    """The scheduler cannot be reached (it stayed away past the client's
    reconnect window), or the client was closed."""


class TimeoutError(FerryError, builtins.TimeoutError):
    """The task ran past its timeout (its worker process was killed)."""


_by_name = {
    "ETASK": TaskError,
    "ECRASHED": TaskCrashed,
    "EMEMORY": TaskCrashed,
    "EWORKER": TaskCrashed,
    "EDEAD": TaskDead,
    "EDEPENDENCY": DependencyError,
    "ECLOSED": ConnectionLost,
    "ECONNECT": ConnectionLost,
    "ETIMEDOUT": TimeoutError,
}


def _from_code(code, message, attempts=0, task_id=0, function=None):
    """The exception for libferry error code with message (the extension
    calls this)."""
    name = _names().get(code, "E%d" % -code if code < 0 else str(code))
    cls = _by_name.get(name, FerryError)
    return cls(code, name, message, attempts, task_id or None, function)
