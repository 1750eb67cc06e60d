"""The project's exception types; errors from libraries are translated into these at the boundary."""


class StreamcamError(Exception):
    """Base class of every error streamcam raises on purpose."""


class ConfigError(StreamcamError):
    """A configuration value is missing, unknown or of the wrong type; the message names the key."""


class ProtocolError(StreamcamError):
    """A wire message is malformed; ``reason`` is a short machine-friendly tag for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class ModelError(StreamcamError):
    """A model file is missing, corrupt, or lacks the metadata streamcam needs."""


class BackendUnavailable(StreamcamError):
    """An engine backend cannot run here; the message says why and what to install."""


class SourceError(StreamcamError):
    """A video source cannot be opened or has stopped delivering frames."""


class DataError(StreamcamError):
    """A dataset file (ground truth, sequence info) is missing or malformed; the message names the file and line."""


class RunDirBusy(StreamcamError):
    """Another running pipeline holds the run directory (its sockets, stats and logs); names its pid."""
