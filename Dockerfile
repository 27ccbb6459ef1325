# Driftwarden daemon image.
#   docker build -t driftwarden .
#   docker run --rm -v driftwarden-state:/var/lib/driftwarden \
#     -v $PWD/configs/demo.toml:/etc/driftwarden/driftwarden.toml:ro -p 9187:9187 driftwarden
FROM python:3.11-slim

WORKDIR /opt/driftwarden
COPY pyproject.toml constraints.txt README.md ./
COPY monitor ./monitor
COPY detectors ./detectors
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --system --uid 10001 --home-dir /var/lib/driftwarden driftwarden \
    && mkdir -p /var/lib/driftwarden /etc/driftwarden \
    && chown driftwarden /var/lib/driftwarden

USER driftwarden
WORKDIR /var/lib/driftwarden
VOLUME ["/var/lib/driftwarden"]
EXPOSE 9187
# The ops server must listen beyond the container's loopback: set [ops] host = "0.0.0.0".
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9187/healthz', timeout=2).status == 200 else 1)"
STOPSIGNAL SIGTERM
ENTRYPOINT ["driftwarden", "run", "--config", "/etc/driftwarden/driftwarden.toml", "--store", "/var/lib/driftwarden/driftwarden.db"]
