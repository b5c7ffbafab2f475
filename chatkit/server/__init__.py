"""The HTTP API (`chatkit serve`): OpenAI-compatible chat completions with retrieval and sources, models,
embeddings, search, feedback, health and Prometheus metrics. Needs the `server` extra (FastAPI, uvicorn,
prometheus-client); nothing here is imported until the verb runs."""
