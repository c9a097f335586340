#!/usr/bin/env bash
# Builds the Dockerfile's image and checks that it runs: /healthz answers 200,
# the process runs as the unprivileged user 65532, /data is writable by it,
# a token is required off loopback, `metronome version` names the source,
# the image is small, and SIGTERM stops it cleanly. Needs a running Docker
# engine. Cleans up its container, volume and image at the end (KEEP=1 keeps
# the image).
#
# Where the builder's base image (golang:X from the Dockerfile) cannot be
# pulled, STANDIN=1 makes a local stand-in of that name from this machine's
# Go toolchain (/usr/local/go), busybox-static (a shell), git and CA
# certificates, with the same environment as the official image. Module
# downloads then go through this machine's GOPROXY (build network: host).
#
#   scripts/docker-build-check.sh            # base image pulled as usual
#   STANDIN=1 scripts/docker-build-check.sh  # offline machine
set -euo pipefail
cd "$(dirname "$0")/.."

image=${IMAGE:-metronome:check}
port=${PORT:-18888}
name=metronome-check-$$
volume=metronome-check-data-$$
work=$(mktemp -d)
base=$(awk 'toupper($1)=="FROM" && $2 != "scratch" {print $2; exit}' Dockerfile)

step() { printf '\n=== %s\n' "$*"; }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
failed=0

cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker volume rm "$volume" >/dev/null 2>&1 || true
  [ "${KEEP:-0}" = 1 ] || docker rmi "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

standin() {
  step "stand-in base image $base from $(go version)"
  local root=$work/rootfs goversion
  goversion=$(go env GOVERSION)
  goversion=${goversion#go}
  mkdir -p "$root"/{bin,usr/bin,usr/local,etc/ssl/certs,tmp,go,root,lib64,lib/x86_64-linux-gnu}
  chmod 1777 "$root/tmp"
  cp -a "$(go env GOROOT)" "$root/usr/local/go"
  cp /bin/busybox "$root/bin/busybox" # busybox-static
  for tool in sh mkdir chown ls cat rm cp mv env id; do ln -s busybox "$root/bin/$tool"; done
  # git, for the toolchain's VCS stamping, with its shared libraries
  cp /usr/bin/git "$root/usr/bin/git"
  for lib in $(ldd /usr/bin/git | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
    mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"
  done
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  tar -C "$root" -c . | docker import \
    --change "ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV GOLANG_VERSION=$goversion" \
    --change "ENV GOTOOLCHAIN=local" \
    --change "ENV GOPATH=/go" \
    --change "ENV GOPROXY=$(go env GOPROXY)" \
    --change "ENV GOSUMDB=$(go env GOSUMDB)" \
    --change "WORKDIR /go" \
    --change 'CMD ["sh"]' \
    - "$base"
  rm -rf "$root"
}

if ! docker image inspect "$base" >/dev/null 2>&1; then
  if [ "${STANDIN:-0}" = 1 ]; then standin; else docker pull "$base"; fi
fi

step "docker build"
start=$(date +%s)
docker build --network host --force-rm -t "$image" .
echo "built in $(($(date +%s) - start)) s"

step "image"
docker image ls "$image"
size=$(docker image inspect -f '{{.Size}}' "$image")
echo "size: $size bytes"
[ "$size" -lt $((40 * 1024 * 1024)) ] || fail "image larger than 40 MiB"
docker image inspect -f 'user={{.Config.User}} entrypoint={{json .Config.Entrypoint}} cmd={{json .Config.Cmd}} volumes={{json .Config.Volumes}} ports={{json .Config.ExposedPorts}} stopsignal={{.Config.StopSignal}} healthcheck={{json .Config.Healthcheck}}' "$image"

step "metronome version"
version=$(docker run --rm --network none --entrypoint /metronome "$image" version)
echo "$version"
case $version in
*"(devel)"* | *"(unknown)"*) fail "version names neither a module version nor a revision" ;;
esac

step "signing key (metronome token keygen, in the image)"
chmod 0777 "$work"
docker run --rm --network none --user "$(id -u):$(id -g)" -v "$work:/out" \
  --entrypoint /metronome "$image" token keygen --out /out/signing.pem
# keygen writes the key 0600 for whoever ran it; the container's user 65532
# must be able to read it.
chown 65532:65532 "$work/signing.pem"
ls -ln "$work/signing.pem"

step "docker run (default command; published on 127.0.0.1:$port)"
docker volume create "$volume" >/dev/null
docker run -d --name "$name" -p "127.0.0.1:$port:8888" -v "$volume:/data" \
  -v "$work/signing.pem:/run/secrets/metronome-signing.pem:ro" "$image"
code=000
for _ in $(seq 1 50); do
  code=$(curl -s -o "$work/healthz" -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)
  [ "$code" = 200 ] && break
  sleep 0.2
done
echo "GET /healthz: $code $(cat "$work/healthz" 2>/dev/null)"
[ "$code" = 200 ] || { fail "/healthz answered $code"; docker logs "$name"; }

step "user"
docker top "$name" -o uid,gid,pid,args
uid=$(docker top "$name" -o uid,pid | awk 'NR==2 {print $1}')
[ "$uid" = 65532 ] || fail "process runs as uid $uid, not 65532"

step "tokens required off loopback; uploads land in /data"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary probe "http://127.0.0.1:$port/files/apps/check/probe.txt" || true)
echo "PUT /files/apps/check/probe.txt without a token: $code"
[ "$code" = 401 ] || fail "PUT without a token answered $code, not 401"
token=$(docker run --rm --network none -v "$work/signing.pem:/key.pem:ro" --entrypoint /metronome "$image" \
  token mint --key /key.pem --app check --ttl 10m | head -n 1)
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary probe "http://127.0.0.1:$port/k/$token/files/apps/check/probe.txt" || true)
echo "PUT with a minted token: $code"
case $code in 2??) ;; *) fail "PUT with a token answered $code" ;; esac
body=$(curl -s "http://127.0.0.1:$port/k/$token/files/apps/check/probe.txt" || true)
echo "GET it back: $body"
[ "$body" = probe ] || fail "GET with a token returned \"$body\""

step "health status (HEALTHCHECK: metronome healthcheck, every 30 s)"
health=""
for _ in $(seq 1 90); do
  health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$name")
  [ "$health" = healthy ] && break
  sleep 1
done
docker inspect -f '{{json .State.Health}}' "$name"
[ "$health" = healthy ] || fail "health status \"$health\" after 90 s, not healthy"

step "SIGTERM"
docker stop -t 20 "$name" >/dev/null
docker inspect -f 'exit code {{.State.ExitCode}}, OOM {{.State.OOMKilled}}' "$name"
[ "$(docker inspect -f '{{.State.ExitCode}}' "$name")" = 0 ] || fail "non-zero exit after SIGTERM"
echo "--- logs"
docker logs "$name" 2>&1 | tail -n 20

step "/data after the run (metronome check, as the image's user)"
docker run --rm --network none -v "$volume:/data" --entrypoint /metronome "$image" check --data-dir /data ||
  fail "metronome check of /data failed"
if [ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q static; then
  # the image has no shell: borrow a static busybox to show who owns what
  docker run --rm --network none -v "$volume:/data:ro" -v /bin/busybox:/busybox:ro --entrypoint /busybox "$image" \
    find /data -exec /busybox ls -ldn {} +
fi

echo
if [ "$failed" -eq 0 ]; then echo "docker-build-check: all checks passed"; else echo "docker-build-check: $failed check(s) failed"; exit 1; fi
