"""`/v2/skills` (the catalogue) and `/v2/pals/{pal_id}/skills/` (a PAL's attached skills).

A PAL's skills are answered as a map keyed by skill id at the top level,
`{"memory": {"config": {}}, ...}`, which is what the SDK's capabilities recipe
reads (it also accepts the map under `data`; a list would read as "nothing
attached").
"""

# No `from __future__ import annotations`: the routes are closures built per vocabulary,
# and FastAPI evaluates their annotations at registration.
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from palaver.api import deps
from palaver.api.bodies import parse_body, request_body_schema
from palaver.api.resources import UNAUTHORIZED, checked_id, invalid_id_responses, no_content, route
from palaver.api.schemas import ErrorBody
from palaver.domain.errors import InvalidId, ResourceNotFound
from palaver.domain.personas import PAL, PERSONA
from palaver.domain.skills import CATALOGUE
from palaver.domain.vocabulary import Vocabulary
from palaver.service.pal_capabilities import PalCapabilities


class SkillConfig(BaseModel):
    """Body of `PUT` (whole config) and `PATCH` (merged in; a null removes a member) of one PAL skill."""

    model_config = ConfigDict(extra="forbid", strict=True)

    config: dict[str, Any] = Field(default_factory=dict, description="The skill's config (see GET /v2/skills).")


class SkillMapBody(BaseModel):
    """Body of `PUT /v2/pals/{pal_id}/skills/`: the PAL's whole skill map."""

    model_config = ConfigDict(extra="forbid", strict=True)

    skills: dict[str, dict[str, Any]] = Field(description='{"<skill_id>": {"config": {...}}, ...}')


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": '`{"error": "Skill not found"}`'},
    **UNAUTHORIZED,
}

catalogue_router = APIRouter(prefix="/v2/skills", tags=["Skills"])


async def list_skills() -> JSONResponse:
    data = [skill.row() for skill in CATALOGUE.values()]
    return JSONResponse({"data": data, "total_count": len(data)})


async def get_skill(skill_id: str) -> JSONResponse:
    skill = CATALOGUE.get(skill_id)
    if skill is None:
        raise ResourceNotFound("Skill not found")
    return JSONResponse(skill.row())


route(catalogue_router, "", list_skills, methods=["GET"], summary="List Skills", responses=UNAUTHORIZED)
route(catalogue_router, "/{skill_id}", get_skill, methods=["GET"], summary="Get Skill", both_slashes=False,
      responses=NOT_FOUND)  # fmt: skip


def capabilities(request: Request) -> PalCapabilities:
    return request.app.state.pal_capabilities


def pal_skills_router(vocabulary: Vocabulary, prefix: str, tag: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[tag])
    id_field = vocabulary.name("persona_id")
    noun = "PAL" if vocabulary is PAL else "Persona"
    invalid = invalid_id_responses(id_field)
    item_responses: dict[int | str, dict[str, Any]] = {
        **invalid,
        404: {"model": ErrorBody, "description": f"The skill is not attached to this {vocabulary.noun}"},
    }

    def missing() -> InvalidId:
        return InvalidId(id_field)

    async def list_attached(request: Request, resource_id: Annotated[str, Path(alias=id_field)]) -> JSONResponse:
        checked_id(resource_id, missing)
        return JSONResponse(await capabilities(request).skills_of(deps.account_id(request), resource_id, vocabulary))

    async def replace_all(request: Request, resource_id: Annotated[str, Path(alias=id_field)]) -> JSONResponse:
        checked_id(resource_id, missing)
        body = await parse_body(request, SkillMapBody)
        account = deps.account_id(request)
        return JSONResponse(await capabilities(request).replace_skills(account, resource_id, body.skills, vocabulary))

    async def get_one(
        request: Request, resource_id: Annotated[str, Path(alias=id_field)], skill_id: str
    ) -> JSONResponse:
        checked_id(resource_id, missing)
        account = deps.account_id(request)
        return JSONResponse(await capabilities(request).skill_of(account, resource_id, skill_id, vocabulary))

    async def put_one(
        request: Request, resource_id: Annotated[str, Path(alias=id_field)], skill_id: str
    ) -> JSONResponse:
        checked_id(resource_id, missing)
        body = await parse_body(request, SkillConfig)
        account = deps.account_id(request)
        return JSONResponse(
            await capabilities(request).put_skill(account, resource_id, skill_id, body.config, vocabulary)
        )

    async def patch_one(
        request: Request, resource_id: Annotated[str, Path(alias=id_field)], skill_id: str
    ) -> JSONResponse:
        checked_id(resource_id, missing)
        body = await parse_body(request, SkillConfig)
        account = deps.account_id(request)
        return JSONResponse(
            await capabilities(request).patch_skill(account, resource_id, skill_id, body.config, vocabulary)
        )

    async def delete_one(
        request: Request, resource_id: Annotated[str, Path(alias=id_field)], skill_id: str
    ) -> Response:
        checked_id(resource_id, missing)
        await capabilities(request).delete_skill(deps.account_id(request), resource_id, skill_id, vocabulary)
        return no_content()

    collection = "/{" + id_field + "}/skills"
    item = collection + "/{skill_id}"
    route(router, collection, list_attached, methods=["GET"], summary=f"List {noun} Skills", responses=invalid)
    route(router, collection, replace_all, methods=["PUT"], summary=f"Replace {noun} Skills",
          openapi_extra=request_body_schema(SkillMapBody), responses=invalid)  # fmt: skip
    route(router, item, get_one, methods=["GET"], summary=f"Get {noun} Skill", both_slashes=False,
          responses=item_responses)  # fmt: skip
    route(router, item, put_one, methods=["PUT"], summary=f"Attach or Replace {noun} Skill", both_slashes=False,
          openapi_extra=request_body_schema(SkillConfig), responses=invalid)  # fmt: skip
    route(router, item, patch_one, methods=["PATCH"], summary=f"Patch {noun} Skill Config", both_slashes=False,
          openapi_extra=request_body_schema(SkillConfig), responses=item_responses)  # fmt: skip
    route(router, item, delete_one, methods=["DELETE"], summary=f"Detach {noun} Skill", both_slashes=False,
          status_code=204, response_class=Response, responses=item_responses)  # fmt: skip
    return router


def routers() -> list[APIRouter]:
    return [
        catalogue_router,
        pal_skills_router(PAL, "/v2/pals", "PALs"),
        pal_skills_router(PERSONA, "/v2/personas", "Personas"),
    ]
