# One image for the three services: `motcua intake|routing|metrics` (or `motcua up`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY contracts contracts
COPY services services
COPY intake intake
COPY routing routing
COPY metrics metrics
COPY registry registry
COPY motcua motcua
RUN pip install --no-cache-dir --prefix=/install -c constraints.txt .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MOTCUA_DATA_DIR=/var/lib/motcua
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --home-dir /var/lib/motcua --create-home motcua
USER 10001
WORKDIR /var/lib/motcua
EXPOSE 8000
# Each service migrates its own schema (Alembic, advisory-locked) before it serves requests.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["motcua"]
CMD ["up", "--host", "0.0.0.0", "--port", "8000"]
