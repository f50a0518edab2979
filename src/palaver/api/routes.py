"""Every router of the API, in the order they are matched."""

from __future__ import annotations

from fastapi import APIRouter

from palaver.api import (
    conversations,
    deployment_pages,
    deployments,
    deprecated,
    dictionaries,
    documents,
    guardrails,
    health,
    memories,
    metrics,
    objectives,
    pal_tools,
    personas,
    replica_training,
    replicas,
    room_socket,
    rooms,
    skills,
    tools,
    voices,
)


def routers() -> list[APIRouter]:
    return [
        conversations.router,
        *personas.routers(),
        *replicas.routers(),
        *replica_training.routers(),
        tools.router,
        *pal_tools.routers(),
        *skills.routers(),
        objectives.router,
        guardrails.router,
        dictionaries.router,
        voices.router,
        memories.router,
        deprecated.router,
        documents.router,
        deployments.router,
        rooms.router,
        room_socket.router,
        deployment_pages.router,
        health.router,
        metrics.router,
    ]
