"""The generator contract: permitted, screened sources in, a draft text with ``[n]`` markers out.

``[n]`` refers to ``sources[n-1]``. A generator only ever sees chunks that passed access control and
document screening; it must not fetch anything else.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .embedding import Embedder
from .models import Chunk, GroundingRequest

__all__ = ["Generation", "Generator", "GeneratorContext"]


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    model: str
    usage: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class GeneratorContext:
    embedder: Embedder
    tenant_regions: dict[str, list[str]] = field(default_factory=dict)


class Generator(ABC):
    """Base class of generators; ``name`` is the registry key used by ``[generator] name``."""

    name: ClassVar[str]

    def __init__(self, context: GeneratorContext, **options: Any) -> None:
        self.context = context
        self.options = options

    @abstractmethod
    def generate(self, request: GroundingRequest, sources: Sequence[Chunk]) -> Generation:
        """Write the draft for ``request`` from ``sources`` only, citing them as ``[n]``."""

    async def agenerate(self, request: GroundingRequest, sources: Sequence[Chunk]) -> Generation:
        """Async variant; the default runs :meth:`generate` in a worker thread."""
        return await asyncio.to_thread(self.generate, request, sources)
