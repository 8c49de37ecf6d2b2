# One image for the three services and the gateway; docker-compose.yml picks the module to run.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY services ./services
RUN pip install .
RUN useradd --system --uid 10001 offers
USER offers
# HTTP_HOST must listen beyond loopback inside a container.
ENV HTTP_HOST=0.0.0.0
CMD ["python", "-m", "services.offer_service"]
