"""``USECASE@N``: a dataset version named on the command line, as a batch input or in a scheduled
job. One grammar and one message for all of them."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict

from valueloop.outcomes.spec import NAME_RULE

#: dataset versions are stored in an INTEGER column
MAX_VERSION = 2**31 - 1
RULE = f"expected USECASE@N (N a version number from 0 to {MAX_VERSION}) or USECASE@latest"
_FORM = re.compile(rf"(?P<usecase>{NAME_RULE.strip('^$')})(?:@(?P<version>\d{{1,10}}|latest))?")


class DatasetRef(BaseModel):
    """A use case's dataset version; ``version`` None is the newest."""

    model_config = ConfigDict(frozen=True)

    usecase: str
    version: int | None = None

    @classmethod
    def match(cls, text: str) -> DatasetRef | None:
        """The reference ``text`` spells, or None; a bare ``USECASE`` is its newest version."""
        found = _FORM.fullmatch(text)
        if found is None:
            return None
        version = found["version"]
        if version is None or version == "latest":
            return cls(usecase=found["usecase"])
        return cls(usecase=found["usecase"], version=int(version)) if int(version) <= MAX_VERSION else None

    @classmethod
    def parse(cls, text: str, field: str) -> DatasetRef:
        """The reference, or InvalidInput naming ``field``, the text and the rule."""
        from valueloop.errors import InvalidInput

        ref = cls.match(text)
        if ref is None:
            raise InvalidInput(f"{field}: {RULE}, got {json.dumps(text)}")
        return ref


def names_a_version(text: str) -> bool:
    """Whether an input is meant as a dataset version rather than a path: it holds an ``@`` and
    no folder (a file whose name holds ``@`` is named with its folder: ``./scores@2.parquet``)."""
    return "@" in text and not any(c in text for c in "/\\:")
