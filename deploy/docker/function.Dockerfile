# syntax=docker/dockerfile:1
# One function image (Kubernetes, deploy/k8s): the official AWS Lambda Python 3.11 base image, whose
# Runtime Interface Emulator serves the Invoke API on :8080 when it runs outside Lambda. The build
# context is one code directory staged from the built artifact (the same bytes `sam deploy` ships):
#   make build && .venv/bin/python -m infra k8s --stage-images .vid2mp3/images
#   docker build -f deploy/docker/function.Dockerfile -t vid2mp3-function-convert .vid2mp3/images/convert
# The handler is the container's argument (the template's Handler; the Deployment passes it).
FROM public.ecr.aws/lambda/python:3.11

# Layers where Lambda extracts them: python/ is on the runtime's sys.path, bin/ (ffmpeg, ffprobe) on PATH.
COPY opt/ /opt/
COPY task/ ${LAMBDA_TASK_ROOT}/

CMD ["app.handler"]
