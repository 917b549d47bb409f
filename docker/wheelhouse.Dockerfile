# A wheelhouse as an image, for offline builds of backend.Dockerfile and label-studio.Dockerfile
# (--build-arg WHEELHOUSE=<this image>). The build context is the wheel directory itself:
#
#   pip wheel --wheel-dir /var/tmp/wheelhouse "torch==2.13.0" "label-studio==1.23.2" \
#       ".[offline]" "setuptools>=77" wheel
#   docker build -f docker/wheelhouse.Dockerfile -t act-wheelhouse /var/tmp/wheelhouse
#
# Build the wheels with the Python version of the base image (cp311 for Debian bookworm's
# python3, cp312 for python:3.12-slim-bookworm). Nothing of it reaches the final images.
FROM scratch
COPY . /wheels/
