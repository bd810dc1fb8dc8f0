"""/v1/projects: named bodies of work."""

from __future__ import annotations

from starlette.responses import Response

from agentledger.interfaces.http.call import CONSISTENT_WITH_HEADER, IF_MATCH_HEADER, HttpCall
from agentledger.interfaces.http.routing import Operation
from agentledger.interfaces.http.schemas import (
    ArchiveProject,
    CreateProject,
    ListProjectsQuery,
    ProjectOut,
    ProjectPage,
    ProjectWritten,
    with_position,
)


def create_project(call: HttpCall) -> Response:
    body = call.body(CreateProject)
    outcome = call.runtime.projects.create(call.context(), body.name, body.description)
    project = outcome.value
    return call.written(
        outcome,
        with_position(ProjectWritten, ProjectOut.of(project), outcome.position),
        project.version,
        status=201,
        location=f"/v1/projects/{project.name}",
    )


def list_projects(call: HttpCall) -> Response:
    query = call.query(ListProjectsQuery)
    page = call.runtime.projects.list(
        archived=query.archived,
        limit=query.limit,
        cursor=query.cursor,
        consistent_with=call.consistent_with(),
    )
    body = ProjectPage(
        items=[ProjectOut.of(p) for p in page.items],
        next_cursor=page.next_cursor,
        position=page.position,
    )
    return call.read(body, page.position)


def get_project(call: HttpCall) -> Response:
    read = call.runtime.projects.get(call.path("name"), consistent_with=call.consistent_with())
    return call.read(ProjectOut.of(read.value), read.position, read.value.version)


def archive_project(call: HttpCall) -> Response:
    body = call.body(ArchiveProject)
    outcome = call.runtime.projects.archive(
        call.context(), call.path("name"), body.reason, precondition=call.if_match()
    )
    project = outcome.value
    return call.written(
        outcome,
        with_position(ProjectWritten, ProjectOut.of(project), outcome.position),
        project.version,
    )


OPERATIONS = [
    Operation(
        "POST",
        "/v1/projects",
        create_project,
        "Create a project (names are unique)",
        body=CreateProject,
        body_required=True,
        response=ProjectWritten,
        status=201,
        errors=(400, 403, 409, 413, 415),
        tags=("projects",),
    ),
    Operation(
        "GET",
        "/v1/projects",
        list_projects,
        "List projects by name",
        query=ListProjectsQuery,
        response=ProjectPage,
        errors=(400,),
        headers=(CONSISTENT_WITH_HEADER,),
        tags=("projects",),
    ),
    Operation(
        "GET",
        "/v1/projects/{name}",
        get_project,
        "Get one project",
        response=ProjectOut,
        errors=(400, 404),
        headers=(CONSISTENT_WITH_HEADER,),
        tags=("projects",),
    ),
    Operation(
        "POST",
        "/v1/projects/{name}/archive",
        archive_project,
        "Archive a project (coordinators); its selections are cleared",
        body=ArchiveProject,
        response=ProjectWritten,
        errors=(400, 403, 404, 412, 413, 415),
        headers=(IF_MATCH_HEADER,),
        tags=("projects",),
    ),
]
