"""The API's request and response bodies (pydantic), in the OpenAI wire format plus chatkit's extra
fields: `sources`, `conversation_id`, `turn`, `abstained` on answers; `conversation_id`, `rag`, `k`,
`mode` and `style` on requests."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_ID = 2**53  # JSON-safe; far past any conversation count

StopText = Annotated[str, Field(min_length=1, max_length=200)]

# Request fields are strict: `true` is not the number 1 and "5" is not 5, as the schema says.


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content)


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions request. Sampling fields are honoured; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field("chatkit", max_length=200, description="'chatkit' (the default adapter), 'base', or an adapter name from GET /v1/models")
    # minItems is declared, but checked by the route so an empty list gets a clear message.
    messages: list[ChatMessage] = Field(..., max_length=1000, json_schema_extra={"minItems": 1},
                                        description="the last user message is the question; earlier user/assistant pairs are the history")
    stream: bool = Field(False, strict=True)
    max_tokens: int | None = Field(None, ge=1, le=8192, strict=True)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192, strict=True)
    temperature: float | None = Field(None, ge=0.0, le=2.0, strict=True)
    top_p: float | None = Field(None, gt=0.0, le=1.0, strict=True)
    seed: int | None = Field(None, ge=0, le=2**31 - 1, strict=True)
    stop: StopText | Annotated[list[StopText], Field(max_length=4)] | None = Field(
        None, description="up to 4 strings; the answer ends before the first one it would contain")
    n: int | None = Field(None, ge=1, le=1, strict=True, description="only one choice is generated")
    user: str | None = Field(None, max_length=256)
    # chatkit's extras
    conversation_id: int | None = Field(None, ge=1, le=MAX_ID, strict=True, description="continue this stored conversation (its turns are the history when messages holds only the question)")
    rag: bool = Field(True, strict=True, description="answer from retrieved passages with citations (false: plain chat with the model)")
    k: int | None = Field(None, ge=1, le=50, strict=True, description="passages to give the model (default engine.passages)")
    mode: Literal["dense", "bm25", "hybrid"] | None = None
    style: Literal["auto", "generative", "extractive"] | None = Field(None, description="answer style (default engine.answer_style)")


class Source(BaseModel):
    n: int
    doc_id: str
    title: str
    heading: str = ""
    source: str = ""
    collection: str = ""
    score: float
    dense_score: float | None = None
    cited: bool = False
    text: str = ""


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    sources: list[Source] = []
    conversation_id: int
    turn: int
    abstained: bool = False
    complete: bool = True


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "chatkit"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: str | Annotated[list[str], Field(min_length=1, max_length=256)] = Field(..., description="a text or 1 to 256 texts")
    model: str | None = Field(None, max_length=200, description="ignored: the server has one embedder")
    encoding_format: Literal["float", "base64"] = "float"


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class SearchResult(BaseModel):
    query: str
    hits: list[Source]


class FeedbackRequest(BaseModel):
    conversation_id: int = Field(..., ge=1, le=MAX_ID, strict=True)
    turn: int = Field(..., ge=0, le=MAX_ID, strict=True, description="the turn number the chat response returned")
    rating: Literal[1, -1] = Field(..., description="+1 good, -1 bad")
    comment: str = Field("", max_length=2000)

    @field_validator("rating", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("rating must be the number 1 or -1")
        return value


class FeedbackResult(BaseModel):
    ok: bool = True
    conversation_id: int
    turn: int
    rating: int


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
    adapter: str
    collections: list[str]
    queue: int
    queue_size: int


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_json(message: str, type_: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
