"""Parts that own a connection, a server or a file are async context managers.

``app.py`` enters them in start order and exits them in reverse, so every connection is
closed on every way out (a stop, an error, a cancellation).
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Resource:
    """``open()`` on enter, ``aclose()`` on exit, whatever ended the block."""

    async def open(self) -> None:
        """Acquire what the part owns (connect, bind, create); nothing by default."""

    async def aclose(self) -> None:
        """Release it; must not raise for a part that was never opened."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
