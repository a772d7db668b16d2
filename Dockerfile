# vidfarm, CPU image: web, ingest/cpu workers, autoscaler, beat and Flower all run from it
# (the Helm chart gives each its command). Build: docker build -t vidfarm/vidfarm:0.1.0 .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    VIDFARM_DATA_DIR=/data \
    VIDFARM_MODEL_CACHE_DIR=/opt/vidfarm/models

RUN python -m venv /opt/venv
WORKDIR /app

# Dependencies first, so a code change does not reinstall them. PyAV's wheel bundles FFmpeg
# (libx264), so no system FFmpeg; opencv-python-headless needs no libGL. insightface, trackers
# and mask-recognition go in with --no-deps (requirements-nodeps.txt): the headless OpenCV stays
# the only one, and no torch comes in.
COPY requirements.txt requirements-nodeps.txt ./
RUN pip install -r requirements.txt \
 && pip install --no-deps -r requirements-nodeps.txt

COPY pyproject.toml celeryconfig.py ./
COPY core core
COPY services services
COPY workers workers
COPY tasks tasks
COPY web web
COPY cli cli
COPY autoscaler autoscaler
# Editable: the code stays in /app (templates and static files included) and `vidfarm` is on PATH.
# The mask classifier's ONNX file, converted once at build time (no torch), read-only after.
RUN pip install --no-deps -e . && python -m compileall -q /app \
 && python -m workers.analytics.mask_convert

# Non-root, matching the chart's securityContext; /data is the shared media volume.
RUN useradd --uid 10001 --gid 0 --no-create-home --home-dir /tmp vidfarm \
 && mkdir -p /data && chown 10001:0 /data
USER 10001
EXPOSE 8000
CMD ["gunicorn", "web.wsgi:app", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--timeout", "600"]
