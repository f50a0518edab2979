"""Every service of a Palaver process, built once from its storage, and kept on the app's state.

The HTTP layer reaches a service as `request.app.state.<name>`; this module is
the one place that says which services exist and what each is built from, so
adding a resource means one line here and one router in api/routes.py, not an
edit of the application factory.
"""

from __future__ import annotations

from typing import Any

from palaver.domain.clock import Clock
from palaver.service.auth import Authenticator
from palaver.service.brains.select import BrainFactory
from palaver.service.conversations import ConversationService
from palaver.service.deployments import DeploymentService
from palaver.service.dictionaries import DictionaryService
from palaver.service.document_processing import JOB_KIND as DOCUMENT_JOB
from palaver.service.documents import DocumentService
from palaver.service.guardrails import GuardrailService
from palaver.service.health import DatabaseHealth
from palaver.service.jobs import JobRunner
from palaver.service.memories import MemoryService
from palaver.service.objectives import ObjectivesService
from palaver.service.pal_capabilities import PalCapabilities
from palaver.service.personas import PersonaService
from palaver.service.replica_training import ReplicaTraining
from palaver.service.replicas import ReplicaService
from palaver.service.rooms.bus import RoomBus
from palaver.service.rooms.hub import MeetingTokens, RoomHub
from palaver.service.timers import TimerService
from palaver.service.tools import ToolService
from palaver.settings import Settings
from palaver.storage.base import Storage
from palaver.storage.ledger import DeliveryLedger


def build_services(
    state: Any, storage: Storage, ledger: DeliveryLedger, clock: Clock, settings: Settings, bus: RoomBus
) -> None:
    """Set every service on `state` (the app's state), in dependency order."""
    resources = storage.resources
    state.storage = storage
    state.ledger = ledger
    state.authenticator = Authenticator(storage, clock, ttl=settings.key_cache_ttl)
    state.jobs = JobRunner(resources, clock)  # resources register their job kinds on it
    state.replicas = ReplicaService(resources, clock)
    # Registers the `replica_training` job kind on state.jobs and the hard delete's purge hook.
    state.training = ReplicaTraining(
        state.replicas,
        storage.media,
        state.jobs,
        clock,
        public_url=settings.public_url,
        allow_private=settings.allow_private_callbacks,
    )
    state.personas = PersonaService(resources, clock, state.replicas)
    state.tools = ToolService(resources, clock, state.personas)
    state.pal_capabilities = PalCapabilities(state.personas, state.tools, resources)
    state.objectives = ObjectivesService(resources, clock, state.personas)
    state.guardrails = GuardrailService(resources, clock, state.personas)
    state.dictionaries = DictionaryService(resources, clock, state.personas)
    state.memories = MemoryService(resources, clock)
    state.documents = DocumentService(
        resources, storage.document_chunks, clock, state.jobs, allow_private=settings.allow_private_callbacks
    )
    state.jobs.register(DOCUMENT_JOB, state.documents.job_kind())
    tokens = MeetingTokens(storage)
    state.conversations = ConversationService(
        storage,
        clock,
        settings.public_url,
        ledger=ledger,
        personas=state.personas,
        memories=state.memories,
        tokens=tokens,
    )
    state.brains = BrainFactory(settings, state.documents, state.tools, state.objectives, state.guardrails)
    state.rooms = RoomHub(storage, bus, state.brains, state.personas, tokens, clock)
    state.conversations.on_ended = state.rooms.ended_here
    state.deployments = DeploymentService(
        storage, clock, state.personas, state.conversations, public_url=settings.public_url
    )
    state.timers = TimerService(storage, clock)
    state.health = DatabaseHealth(storage, clock)
