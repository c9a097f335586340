# A container image of metronome serve: a static binary on an empty base,
# run as an unprivileged user, sessions and files in the /data volume.
#
#   docker build -t metronome .
#   metronome token keygen --out signing.pem        # once, kept secret
#   sudo chown 65532:65532 signing.pem              # mode 0600: readable by the image's user
#   docker run -p 8888:8888 -v metronome-data:/data \
#       -v "$PWD/signing.pem:/run/secrets/metronome-signing.pem:ro" metronome
#
# Off loopback the server requires tokens (docs/operations.md, "Access
# control"): the default command reads the signing key mounted above.
# The health check asks GET /healthz (metronome healthcheck: the image has
# no shell): it answers 503 with the reason while storage fails. Send
# SIGTERM to stop: sessions are persisted and clients asked to reconnect.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/metronome ./cmd/metronome \
    && mkdir -p /out/data && chown 65532:65532 /out/data

FROM scratch
COPY --from=build /out/metronome /metronome
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
VOLUME /data
EXPOSE 8888
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD ["/metronome", "healthcheck", "--url", "http://127.0.0.1:8888/healthz"]
ENTRYPOINT ["/metronome", "serve"]
CMD ["--addr", "0.0.0.0:8888", "--data-dir", "/data", "--auth", "token", "--auth-secret-file", "/run/secrets/metronome-signing.pem"]
