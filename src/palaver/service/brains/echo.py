"""The echo brain (`pipeline_mode: echo`, and pipecat's and livekit's stock echo personas).

In echo mode the app supplies every word the replica says, through
`conversation.echo`; the room speaks those itself. Asked for an answer of its
own (a `conversation.respond`), the echo brain has none: the user's turn is
recorded and the replica stays silent, as a Tavus echo-mode replica does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from palaver.service.brains.base import Output, Prompt


class EchoBrain:
    name = "echo"

    async def reply(self, prompt: Prompt) -> AsyncIterator[Output]:
        return
        yield  # an async generator that yields nothing
