# A container image of metronome serve: a static binary on an empty base,
# run as an unprivileged user, sessions and files in the /data volume.
#
#   docker build -t metronome .
#   metronome token keygen --out signing.pem        # once, kept secret
#   docker run -p 8888:8888 -v metronome-data:/data \
#       -v "$PWD/signing.pem:/run/secrets/metronome-signing.pem:ro" metronome
#
# Off loopback the server requires tokens (docs/operations.md, "Access
# control"): the default command reads the signing key mounted above.
# Probe GET /healthz for health: it answers 503 with the reason while
# storage fails. Send SIGTERM to stop: sessions are persisted and clients
# asked to reconnect.

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
ENTRYPOINT ["/metronome", "serve"]
CMD ["--addr", "0.0.0.0:8888", "--data-dir", "/data", "--auth", "token", "--auth-secret-file", "/run/secrets/metronome-signing.pem"]
