"""The REST API's request options and answers as pydantic models (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RunOptions(BaseModel):
    """The JSON ``options`` part of ``POST /v1/run``. ``null`` = the model's default."""

    model_config = ConfigDict(extra="forbid")

    instruction: str = Field(min_length=1, max_length=500, description='what to do, e.g. "remove the rain"')
    task: str | None = Field(None, description="decode the output as this task id (default: routed from the "
                                               "instruction; see GET /v1/tasks)")
    steps: int | None = Field(None, ge=1, description="sampling steps (default: the model's for the task)")
    text_guidance: float | None = Field(None, ge=0, le=50, description="text guidance scale")
    image_guidance: float | None = Field(None, ge=0, le=50, description="image guidance scale")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="noise seed")
    size: int | None = Field(None, ge=8, description="run the model with this longest side; the output is "
                                                     "resized back to the input's size")
    shifts: Literal[1, 2, 4] | None = Field(None, description="sampler passes averaged, each on the image shifted by "
                                                              "half a patch (hides the patch grid; each pass costs "
                                                              "one run)")
    tile: int | None = Field(None, ge=16, le=1024, description="run the model on overlapping tiles of this side "
                                                               "at the image's own resolution, blended, instead "
                                                               "of downscaling an image over 512x512 pixels")


class FileOut(BaseModel):
    filename: str
    media_type: str
    url: str = Field(description="GET this to download the file again (recent results are kept)")
    data_base64: str


class Alternative(BaseModel):
    task: str
    confidence: float


class RouteOut(BaseModel):
    task: str = Field(description="the most likely task")
    confidence: float
    low_confidence: bool
    no_match: bool = Field(False, description="the instruction fits no task well; task and alternatives are the "
                                              "closest ones")
    alternatives: list[Alternative]


class Timings(BaseModel):
    queued_s: float
    run_s: float


class RunResponse(BaseModel):
    id: str
    instruction: str
    task: str | None = Field(description="the task the output was decoded as; null when the instruction matched no "
                                          "task well (see route.no_match and notes: no typed outputs then)")
    route: RouteOut | None = Field(description="how the instruction was routed; null when the task was given")
    width: int
    height: int
    steps: int
    shifts: int = Field(description="sampler passes averaged")
    tiles: int = Field(1, description="tiles the image ran in (1: the whole image at once)")
    seed: int
    working_size: list[int] = Field(description="[height, width] the model ran at")
    untrained: bool
    notes: list[str]
    boxes: list[list[float]] | None = Field(None, description="xyxy pixels, x2/y2 exclusive (box tasks)")
    image: FileOut
    outputs: dict[str, FileOut] = Field(description="typed outputs by kind: mask, boxes, depth, depth16, "
                                                    "normals, labels")
    timings: Timings


class TaskOut(BaseModel):
    id: str
    domain: str
    title: str
    codec: str
    outputs: list[str] = Field(description="typed outputs written besides the image")
    examples: list[str]


class TasksResponse(BaseModel):
    tasks: list[TaskOut]


class QueueOut(BaseModel):
    waiting: int
    capacity: int
    busy: bool
    progress: float | None


class Health(BaseModel):
    status: str
    model: str
    device: str
    queue: QueueOut
    completed: int
    failed: int
    uptime_s: float


class ErrorOut(BaseModel):
    detail: str
