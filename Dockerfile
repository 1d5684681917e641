# The exchange's application image: worker, migrations (and later the API) share it.
FROM python:3.11-slim
WORKDIR /app
# LICENSE: the package ships it (pyproject's license-files); constraints.txt: the locked versions.
COPY pyproject.toml README.md LICENSE constraints.txt alembic.ini ./
COPY points ./points
COPY streams ./streams
COPY adapters ./adapters
COPY migrations ./migrations
COPY devstack ./devstack
COPY demo ./demo
RUN pip install --no-cache-dir -c constraints.txt .
ENV POINTS_DATA_DIR=/var/lib/points
CMD ["python", "-m", "streams.worker"]
