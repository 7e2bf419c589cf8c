"""The project's error family.

Every error a user can cause (a bad file, a bad question, a bad setting, a locked index) is a
``RagError`` with a one-line message that names the bad value. The CLI, API and UI turn these
into messages; nothing below them prints or exits.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class: a problem the user can act on, described in one line."""


class SettingsError(RagError):
    """A setting has an invalid value."""


class CorpusError(RagError):
    """An article file or export cannot be read as articles."""


class QuestionError(RagError):
    """A question is empty, too long or otherwise unusable."""


class IndexNotBuiltError(RagError):
    """The index is empty or missing: nothing has been ingested yet."""


class IndexLockedError(RagError):
    """Another process is writing the index."""


class ProviderError(RagError):
    """A model or store provider is unknown or failed to load."""


class IndexWriteError(ProviderError):
    """Writing the index failed part way (a full disk, a store that went away): the message
    says what was kept, and the next run of the same ingest completes the rest."""


class BusyError(RagError):
    """The server has no turn free to answer a question soon: the message says when to retry."""
