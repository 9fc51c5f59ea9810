# syntax=docker/dockerfile:1
# The platform image (Kubernetes, deploy/k8s): the HTTP front (infra/front.py), the invoke gate and the
# scheduled invoker (infra/gate.py), the RabbitMQ bridge (infra/bridge.py) and the migrations
# (vid2mp3.db.migrate). They read infra/template.yaml, baked in here. Build context: the repository root.
#   docker build -f deploy/docker/platform.Dockerfile -t vid2mp3-platform .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# The runtime dependencies of pyproject.toml, plus what infra needs from the dev extra: boto3 (the
# bridge's Lambda client) and pyyaml (the template).
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
name = lambda d: d.lower().split('>')[0].split('=')[0].split('[')[0].strip(); \
dev = [d for d in p['optional-dependencies']['dev'] if name(d) in ('boto3', 'pyyaml')]; \
open('/tmp/requirements.txt', 'w').write('\n'.join(p['dependencies'] + dev) + '\n')" \
 && pip install -r /tmp/requirements.txt

COPY vid2mp3 ./vid2mp3
COPY infra ./infra

RUN useradd --create-home --uid 10001 app
USER 10001
ENV PYTHONPATH=/app

# Each Deployment names its command (python -m infra.front / infra.gate / infra.bridge / vid2mp3.db.migrate).
CMD ["python", "-m", "infra.front"]
