# syntax=docker/dockerfile:1
# The operator image: the locked runtime dependencies in a virtual environment on a slim
# Python, run as a non-root user. No compilers or build tools in the final stage.

FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /src
COPY pyproject.toml uv.lock README.md LICENSE ./
COPY operator ./operator
COPY emulator ./emulator
COPY docker/install.sh ./docker/install.sh
RUN docker/install.sh /src /opt/venv

FROM python:3.11-slim
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The chart's securityContext runs it as this user, with a read-only root filesystem.
USER 65532:65532
ENTRYPOINT ["aml-identity"]
CMD ["run", "--log-format", "json"]
