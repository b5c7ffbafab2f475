"""The API's request and response bodies (pydantic), in the OpenAI wire format plus chatkit's extra
fields: `sources`, `conversation_id`, `turn`, `abstained` on answers; `conversation_id`, `rag`, `k`,
`mode` and `style` on requests."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from chatkit.server.compat import without_surrogates

MAX_ID = 2**53  # JSON-safe; far past any conversation count

# Every text a client sends is this type: a lone surrogate ("\\ud800" in JSON) becomes U+FFFD here, at
# the edge, so no store, tokenizer or response writer ever meets a string UTF-8 cannot encode.
Text = Annotated[str, BeforeValidator(without_surrogates)]
StopText = Annotated[Text, Field(min_length=1, max_length=200)]

# Request fields are strict: `true` is not the number 1 and "5" is not 5, as the schema says.


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: Text


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")  # other keys are refused by name (compat.unsupported)
    include_usage: bool | None = Field(None, strict=True)


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions request. Sampling fields, `stop` and `max_tokens` are honoured in every
    answer style; OpenAI parameters chatkit cannot honour (penalties, logprobs, tools, ...) are refused
    with a 400 naming them when set to anything but their defaults (chatkit/server/compat.py); fields
    OpenAI does not define are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: Text = Field("chatkit", max_length=200, description="'chatkit' (the default adapter), 'base', or an adapter name from GET /v1/models")
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
    n: int | None = Field(None, ge=1, le=128, strict=True, description="1: one choice is generated (more are refused)")
    user: Text | None = Field(None, max_length=256, description="accepted; no effect")
    stream_options: StreamOptions | None = Field(None, description="with stream=true: include_usage sends a last chunk with usage and no choices")
    metadata: dict[str, Any] | None = Field(None, description="accepted; no effect")
    service_tier: str | None = Field(None, max_length=100, description="accepted; no effect")
    # Refused when set to anything but their defaults (400 naming the parameter):
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, strict=True, description="0 only")
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, strict=True, description="0 only")
    logprobs: bool | None = Field(None, strict=True, description="false only")
    top_logprobs: int | None = Field(None, ge=0, le=20, strict=True, description="0 only")
    logit_bias: dict[str, Any] | None = Field(None, description="empty only")
    response_format: dict[str, Any] | None = Field(None, description="{'type': 'text'} only")
    tools: list[Any] | None = Field(None, description="empty only")
    tool_choice: str | dict[str, Any] | None = Field(None, description="'none' or 'auto' (with no tools) only")
    functions: list[Any] | None = Field(None, description="empty only")
    function_call: str | dict[str, Any] | None = Field(None, description="'none' or 'auto' only")
    parallel_tool_calls: bool | None = Field(None, strict=True, description="accepted; no effect (tools are refused)")
    modalities: list[str] | None = Field(None, description="['text'] only")
    audio: dict[str, Any] | None = Field(None, description="not supported")
    prediction: dict[str, Any] | None = Field(None, description="not supported")
    reasoning_effort: str | None = Field(None, description="not supported")
    web_search_options: dict[str, Any] | None = Field(None, description="not supported")
    store: bool | None = Field(None, strict=True, description="true only: every turn is stored")
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
    input: Text | Annotated[list[Text], Field(min_length=1, max_length=256)] = Field(..., description="a text or 1 to 256 texts")
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
    comment: Text = Field("", max_length=2000)

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
    return {"error": {"message": without_surrogates(message), "type": type_, "param": param, "code": code}}
